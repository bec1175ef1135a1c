"""Feed-forward spiking networks: the trainable parameters (weights, learnable delays) and the
one chain of engine layers that every backend and the trainer use (docs/model.md section 3).

A network hands out its layers as typed LayerParams (engine/types.py); forward chains the
engine's layer_forward over them (or replays spike times a backend measured), backward chains
layer_backward and writes each parameter's .grad. The delay parametrisation (sigmoid or
clamped, shared groups) is written once here with its vector-Jacobian product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, cast

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
from snndelay.model.sharing import GROUP_LAYOUTS


@dataclass(frozen=True)
class DelaySpec:
    """How one layer's delays are parametrised. d = shift + scale * sigmoid(p) ("sigmoid") or
    d = p kept >= shift by clamping after each step ("clamp"); p ~ N(init_mean, init_std) and,
    for "clamp", starts at shift + scale * sigmoid(p). group_size g > 1 shares each axonal
    (dendritic) delay among g pre- (post-) synaptic neurons: with group_layout "consecutive"
    neurons i g .. i g + g - 1 share delay i; with "strided" neuron i takes delay i mod (N / g)
    (the layout of the published hardware configurations: the g copies of an input, placed
    next to each other, then each see a different delay)."""

    type: DelayKind = DelayKind.NONE
    positivity: str = "sigmoid"
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25
    group_size: int = 1
    group_layout: str = "consecutive"

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", DelayKind(self.type))
        if self.group_layout not in GROUP_LAYOUTS:
            raise ValueError(f"group_layout must be one of {', '.join(GROUP_LAYOUTS)}, "
                             f"got {self.group_layout!r}")


def _sigmoid(p: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-p))


class Delays(nn.Module):
    """Learnable delays of one connection. The parameter `raw` holds one value per distinct
    delay ([ceil(N/g), 1] axonal, [1, ceil(M/g)] dendritic, [N, M] synaptic); value() gives
    the delays in the engine's per-kind shape, vjp() the gradient of raw from theirs."""

    def __init__(self, spec: DelaySpec, n_in: int, n_out: int, gen: torch.Generator):
        super().__init__()
        self.spec = spec
        g = spec.group_size
        n = n_in if spec.type is DelayKind.AXONAL else n_out
        if spec.group_layout == "strided" and g > 1 and n % g:
            raise ValueError(f"strided delay groups need the {n} neurons to be a multiple of "
                             f"group_size {g}")
        shape = {DelayKind.AXONAL: (math.ceil(n_in / g), 1),
                 DelayKind.DENDRITIC: (1, math.ceil(n_out / g)),
                 DelayKind.SYNAPTIC: (n_in, n_out)}[spec.type]
        self.n_in, self.n_out = n_in, n_out
        p = spec.init_mean + spec.init_std * torch.randn(shape, generator=gen, dtype=torch.float64)
        if spec.positivity == "clamp":
            p = spec.shift + spec.scale * torch.sigmoid(p)
        self.raw = nn.Parameter(p)

    def _grouped(self) -> bool:
        return self.spec.group_size > 1 and self.spec.type is not DelayKind.SYNAPTIC

    def _strided(self) -> bool:
        return self._grouped() and self.spec.group_layout == "strided"

    def _transform(self) -> np.ndarray:
        """The delays in raw's shape (one per shared group): the transform d(p)."""
        p = self.raw.detach().numpy()
        if self.spec.positivity == "sigmoid":
            return self.spec.shift + self.spec.scale * _sigmoid(p)
        return p.copy()

    def distinct_values(self) -> np.ndarray:
        """One value per trainable delay (before a shared group's expansion), flattened."""
        return self._transform().reshape(-1)

    def value(self) -> np.ndarray:
        """The effective delays in the engine's per-kind shape: axonal [N_in], dendritic
        [N_out] (a shared group's value repeated for its members), synaptic [N_in, N_out]."""
        d = self._transform()
        if self.spec.type is DelayKind.SYNAPTIC:
            return d
        n = self.n_in if self.spec.type is DelayKind.AXONAL else self.n_out
        if self._strided():
            return np.tile(d.reshape(-1), self.spec.group_size)
        return np.repeat(d.reshape(-1), self.spec.group_size)[:n]

    def circuit_values(self) -> np.ndarray:
        """One delay per delay circuit pair of a chip (axonal): a consecutive group's members
        are copies of one source and share one relay; a strided group's members are different
        sources, so each needs its own (tied) relay."""
        return self.value().reshape(-1) if self._strided() else self.distinct_values()

    def vjp(self, g_d: np.ndarray) -> torch.Tensor:
        """dL/dp from dL/dd (per-kind shape): sums over a shared group, times the sigmoid's
        derivative scale * s (1 - s) (identity for clamping)."""
        spec, g = self.spec, g_d
        if self._strided():
            g = g.reshape(spec.group_size, self.raw.numel()).sum(axis=0)
        elif self._grouped():
            n = self.raw.numel()
            padded = np.zeros(n * spec.group_size)
            padded[: g.size] = g
            g = padded.reshape(n, spec.group_size).sum(axis=1)
        g = g.reshape(self.raw.shape)
        if spec.positivity == "sigmoid":
            s = _sigmoid(self.raw.detach().numpy())
            g = g * (spec.scale * s * (1.0 - s))
        return torch.from_numpy(np.ascontiguousarray(g))

    def forward(self) -> torch.Tensor:
        """The delays as a tensor broadcastable to [N_in, N_out] (for plots and inspection)."""
        d = torch.from_numpy(self.value())
        if self.spec.type is DelayKind.AXONAL:
            return d[:, None]
        return d[None, :] if self.spec.type is DelayKind.DENDRITIC else d

    @torch.no_grad()
    def project(self) -> None:
        """Keep clamped delays >= shift (after each optimiser step)."""
        if self.spec.positivity == "clamp":
            self.raw.clamp_(min=self.spec.shift)


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

    def params(self, neuron: Neuron) -> LayerParams:
        """This layer as the engine sees it (numpy views of the current values)."""
        d = None if self.delays is None else self.delays.value()
        return LayerParams(self.weight.detach().numpy(), self.kind, d, self.bias_time, neuron)


class _Layers(nn.ModuleList):
    """A ModuleList of SpikingLayer, typed as such for its users."""

    def __iter__(self) -> Iterator[SpikingLayer]:
        return cast(Iterator[SpikingLayer], super().__iter__())

    def __getitem__(self, idx: int) -> SpikingLayer:  # type: ignore[override]
        return cast(SpikingLayer, super().__getitem__(idx))


def first_spikes(t: np.ndarray) -> np.ndarray:
    """A layer's first spike per neuron [B, N]: its spike times, or the first column of its
    spike trains [B, N, K] (sorted; the readout of the losses, docs/model.md section 5)."""
    return t[:, :, 0] if t.ndim == 3 else t


class Network(nn.Module):
    """A feed-forward stack of spiking layers sharing one neuron model; max_spikes (one per
    layer, default 1) lets a layer's neurons fire repeatedly (docs/model.md section 11)."""

    def __init__(self, sizes: list[int], *, w_mean: list[float], w_std: list[float],
                 delays: list[DelaySpec], bias_time: float | None, tau_mem: float,
                 tau_syn: float, threshold: float, seed: int,
                 max_spikes: list[int] | None = None):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = list(sizes)
        self.neuron = Neuron(float(tau_mem), float(tau_syn), float(threshold))
        self.max_spikes = list(max_spikes) if max_spikes else [1] * (len(sizes) - 1)
        self.layers = _Layers(
            SpikingLayer(sizes[k], sizes[k + 1], w_mean=w_mean[k], w_std=w_std[k],
                         delay=delays[k], bias_time=bias_time, gen=gen)
            for k in range(len(sizes) - 1))

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

    def delay_kinds(self) -> list[DelayKind]:
        return [layer.kind for layer in self.layers]

    def layer_params(self) -> list[LayerParams]:
        """Every layer as a LayerParams of the current parameter values (numpy, model units)."""
        return [layer.params(replace(self.neuron, max_spikes=k))
                for layer, k in zip(self.layers, self.max_spikes)]

    def forward(self, t_in: np.ndarray, *, params: list[LayerParams] | None = None,
                given: list[np.ndarray] | None = None
                ) -> tuple[list[np.ndarray], list[LayerCache]]:
        """(every layer's spike times [B, N_k] (+inf = silent; spike trains [B, N_k, K] for a
        layer with max_spikes K > 1), the caches backward needs) for
        input times t_in [B, N_in] or [B, N_in, S]. params: the layers a backend realised
        (e.g. quantised; default layer_params()). given: spike times a backend measured, one
        array per layer: no solving, the caches hold them (straight-through, docs/model.md
        section 8)."""
        t = np.asarray(t_in, dtype=np.float64)
        outs, caches = [], []
        for k, layer in enumerate(params if params is not None else self.layer_params()):
            t, cache = layer_forward(t, layer, t_given=None if given is None else given[k])
            outs.append(t)
            caches.append(cache)
        return outs, caches

    def backward(self, caches: list[LayerCache], g_out: np.ndarray,
                 max_dw_norm: float = math.inf, nominal_threshold: float | None = None) -> None:
        """Set .grad of every parameter from dL/dt of the last layer (numpy [B, N_out]; for an
        output layer of spike trains, the gradient of their first spikes or [B, N_out, K]):
        the engine's spike-time backward (docs/model.md sections 4 and 11) chained through the
        layers; nominal_threshold: its slopes by the closed form at that threshold (the
        published hardware backward, engine.layer_backward)."""
        g = g_out
        if caches[-1].core.ndim == 3 and g.ndim == 2:  # first-spike readout of trains
            g = np.concatenate([g[:, :, None], np.zeros(caches[-1].core.shape[:2]
                                                        + (caches[-1].core.shape[2] - 1,))],
                               axis=2)
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            g, g_w, g_d = layer_backward(cache, g, max_dw_norm=max_dw_norm,
                                         nominal_threshold=nominal_threshold)
            layer.weight.grad = torch.from_numpy(np.ascontiguousarray(g_w))
            if layer.delays is not None and g_d is not None:
                layer.delays.raw.grad = layer.delays.vjp(g_d)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def project(self) -> None:
        for layer in self.layers:
            if layer.delays is not None:
                layer.delays.project()
