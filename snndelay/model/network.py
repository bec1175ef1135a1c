"""Feed-forward spiking networks: the trainable parameters (weights, learnable delays) and the
one chain of engine layers that every backend and the trainer use (docs/model.md section 3).

A network hands out its layers as typed LayerParams (engine/types.py); forward chains the
engine's layer_forward over them (or replays spike times a backend measured), backward chains
layer_backward and writes each parameter's .grad. The delay parametrisation and its
vector-Jacobian product: model/delays.py; shared delays: model/sharing.py.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, cast

import numpy as np
import torch
from torch import nn

from snndelay.engine import (
    DelayKind,
    LayerCache,
    LayerParams,
    Neuron,
    layer_backward,
    layer_forward,
)
from snndelay.model.delays import Delays, DelaySpec
from snndelay.model.dropout import SpikeDropout
from snndelay.model.efficiency import count_events
from snndelay.model.placement import NUMPY, Placement
from snndelay.model.readouts import FirstSpikeConfig, ReadoutConfig, first_spikes


class SpikingLayer(nn.Module):
    """The parameters of one layer of LIF neurons (weights [N_in (+1 bias row), N_out], delays)."""

    weight: nn.Parameter
    delays: Delays | None
    bias_time: float | None

    def __init__(self, n_in: int, n_out: int, *, w_mean: float, w_std: float, delay: DelaySpec,
                 bias_time: float | None, gen: torch.Generator):
        super().__init__()
        self.bias_time = bias_time
        n_rows = n_in + (bias_time is not None)
        self.weight = nn.Parameter(
            w_mean + w_std * torch.randn(n_rows, n_out, generator=gen, dtype=torch.float64))
        self.delays = None if delay.type is DelayKind.NONE else Delays(delay, n_rows, n_out, gen)

    @property
    def kind(self) -> DelayKind:
        return DelayKind.NONE if self.delays is None else self.delays.spec.type

    def params(self, neuron: Neuron, placement: Placement = NUMPY) -> LayerParams:
        """This layer as the engine sees it (numpy views of the current values, or tensors on
        the placement's device)."""
        d = None if self.delays is None else self.delays.value(placement.tensors)
        return LayerParams(placement.param(self.weight), self.kind, d, self.bias_time, neuron)


class _Layers(nn.ModuleList):
    """A ModuleList of SpikingLayer, typed as such for its users."""

    def __iter__(self) -> Iterator[SpikingLayer]:
        return cast(Iterator[SpikingLayer], super().__iter__())

    def __getitem__(self, idx: int) -> SpikingLayer:  # type: ignore[override]
        return cast(SpikingLayer, super().__getitem__(idx))


__all__ = ["Network", "SpikingLayer", "first_spikes"]


class Network(nn.Module):
    """A feed-forward stack of layers sharing one neuron model; max_spikes (one per layer,
    default 1) lets a layer's neurons fire repeatedly (docs/model.md section 11). The readout
    (model/readouts.py) reads the output layer: by its first spikes, or, for a non-spiking
    readout, as integrators of the last spiking layer's spikes (section 12)."""

    def __init__(self, sizes: list[int], *, w_mean: list[float], w_std: list[float],
                 delays: list[DelaySpec], bias_time: float | None, tau_mem: float,
                 tau_syn: float, threshold: float, seed: int,
                 max_spikes: list[int] | None = None, readout: ReadoutConfig | None = None):
        super().__init__()
        self.placement = NUMPY
        self.drop: SpikeDropout | None = None  # this batch's spike dropout (dropping())
        self.readout = readout or FirstSpikeConfig()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = list(sizes)
        self.neuron = Neuron(float(tau_mem), float(tau_syn), float(threshold))
        self.max_spikes = list(max_spikes) if max_spikes else [1] * (len(sizes) - 1)
        self.layers = _Layers(
            SpikingLayer(sizes[k], sizes[k + 1], w_mean=w_mean[k], w_std=w_std[k],
                         delay=delays[k], bias_time=bias_time, gen=gen)
            for k in range(len(sizes) - 1))

    def place(self, placement: Placement) -> Network:
        """Run on `placement` from now on: the parameters move to its device, the layers are
        handed to the engine as its arrays (model/placement.py)."""
        self.placement = placement
        self.to(placement.device or "cpu")
        return self

    @contextmanager
    def dropping(self, drop: SpikeDropout | None) -> Iterator[None]:
        """Within the block, forward, outputs and backward drop hidden spikes by `drop`'s masks
        (model/dropout.py; None: none)."""
        self.drop = drop
        try:
            yield
        finally:
            self.drop = None

    @property
    def tau_mem(self) -> float:
        return self.neuron.tau_mem

    @property
    def tau_syn(self) -> float:
        return self.neuron.tau_syn

    @property
    def threshold(self) -> float:
        return self.neuron.threshold

    @property
    def bias_time(self) -> float | None:
        return self.layers[0].bias_time

    @property
    def n_spiking(self) -> int:
        """The layers solved for spike times (all but a non-spiking readout layer)."""
        return len(self.layers) - (not self.readout.spiking)

    def delay_kinds(self) -> list[DelayKind]:
        return [layer.kind for layer in self.layers]

    def layer_params(self) -> list[LayerParams]:
        """Every layer as a LayerParams of the current parameter values (numpy, model units)."""
        return [layer.params(replace(self.neuron, max_spikes=k), self.placement)
                for layer, k in zip(self.layers, self.max_spikes)]

    def forward(self, t_in: np.ndarray, *, params: list[LayerParams] | None = None,
                given: list[np.ndarray] | None = None
                ) -> tuple[list[np.ndarray], list[LayerCache]]:
        """(every spiking layer's spike times [B, N_k] (+inf = silent; spike trains [B, N_k, K]
        for a layer with max_spikes K > 1), the caches backward needs) for
        input times t_in [B, N_in] or [B, N_in, S]. params: the layers a backend realised
        (e.g. quantised; default layer_params()). given: spike times a backend measured, one
        array per layer: no solving, the caches hold them (straight-through, docs/model.md
        section 8)."""
        t = (t_in.to(torch.float64) if isinstance(t_in, torch.Tensor)
             else np.asarray(t_in, dtype=np.float64))
        outs, caches = [], []
        layers = params if params is not None else self.layer_params()
        drop = self.drop
        if drop is not None:
            layers = drop.params(layers)
        for k, layer in enumerate(layers[:self.n_spiking]):
            t, cache = layer_forward(t, layer, t_given=None if given is None else given[k])
            outs.append(t)  # every spike (the neuron's own reset saw them all)
            caches.append(cache)
            if drop is not None and k < len(drop.masks):
                t = drop.spikes(k, t)  # what the next layer receives
        return outs, caches

    def outputs(self, t_in: np.ndarray, times: list[np.ndarray],
                params: list[LayerParams] | None = None) -> tuple[np.ndarray, Any]:
        """(the readout's values [B, N_out] (first spikes, or membrane maxima / means), the
        state backward needs) for inputs t_in and the spiking layers' times from forward."""
        layers = params if params is not None else self.layer_params()
        drop = self.drop
        if drop is not None:
            layers = drop.params(layers)
            times = [drop.spikes(k, t) if k < len(drop.masks) else t
                     for k, t in enumerate(times)]
        return self.readout.outputs(t_in, times, layers)

    def backward(self, caches: list[LayerCache], g_out: np.ndarray,
                 max_dw_norm: float = math.inf, nominal_threshold: float | None = None, *,
                 readout_state: Any = None) -> None:
        """Set .grad of every parameter from dL/d(the readout's values) [B, N_out]: the
        readout's backward (readout_state: what outputs() returned with them; a first-spike
        readout reads it from the caches), then the engine's spike-time backward
        (docs/model.md sections 4, 11 and 12) chained through the spiking layers;
        nominal_threshold: its slopes by the closed form at that threshold (the published
        hardware backward, engine.layer_backward)."""
        if readout_state is None and self.readout.spiking:
            readout_state = caches[-1].core.shape
        drop = self.drop
        g, readout_grads = self.readout.backward(readout_state, g_out)
        if readout_grads is not None:
            g_w, g_d = readout_grads
            last = len(self.layers) - 1
            if drop is not None and last >= 1:
                g_w = drop.weight_grad(last, g_w)
                g = drop.input_grad(last - 1, g)
            self._set_grads(self.layers[-1], g_w, g_d)
        for k in reversed(range(len(caches))):
            g, g_w, g_d = layer_backward(caches[k], g, max_dw_norm=max_dw_norm,
                                         nominal_threshold=nominal_threshold)
            if drop is not None and k >= 1:
                g_w = drop.weight_grad(k, g_w)
                g = drop.input_grad(k - 1, g)  # layer k read layer k-1's kept spikes
            self._set_grads(self.layers[k], g_w, g_d)

    def _set_grads(self, layer: SpikingLayer, g_w: Any, g_d: Any) -> None:
        layer.weight.grad = self.placement.grad(g_w, layer.weight)
        if layer.delays is not None and g_d is not None:
            layer.delays.raw.grad = self.placement.grad(layer.delays.vjp(g_d), layer.delays.raw)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def footprint_bytes(self) -> int:
        """Bytes of the trained tensors (NeuroBench's parameter footprint)."""
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def event_counts(self, t_in: np.ndarray, times: list[np.ndarray]) -> tuple[list[float], float]:
        """(spikes per layer, inputs first; synaptic events) of a batch (model/efficiency.py)."""
        return count_events(t_in, times, [ly.weight.shape[0] for ly in self.layers],
                            self.sizes[1:])

    def project(self) -> None:
        for layer in self.layers:
            if layer.delays is not None:
                layer.delays.project()
