"""Feed-forward spiking networks over the engine: layers with weights and learnable delays
(docs/model.md section 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, cast

import numpy as np
import torch
from torch import nn

from snndelay.engine import first_spike_times, fused


@dataclass(frozen=True)
class DelaySpec:
    """How one layer's delays are parametrised. d = shift + scale * sigmoid(p) ("sigmoid") or
    d = p kept >= shift by clamping after each step ("clamp"); p ~ N(init_mean, init_std) and,
    for "clamp", starts at shift + scale * sigmoid(p). group_size > 1 shares one axonal
    (dendritic) delay among that many consecutive pre- (post-) synaptic neurons."""

    type: str = "none"
    positivity: str = "sigmoid"
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25
    group_size: int = 1


class Delays(nn.Module):
    """Learnable delays of one connection, broadcastable to [N_in, N_out]."""

    def __init__(self, spec: DelaySpec, n_in: int, n_out: int, gen: torch.Generator):
        super().__init__()
        self.spec = spec
        g = spec.group_size
        shape = {"axonal": (math.ceil(n_in / g), 1), "dendritic": (1, math.ceil(n_out / g)),
                 "synaptic": (n_in, n_out)}[spec.type]
        self.n_in, self.n_out = n_in, n_out
        p = spec.init_mean + spec.init_std * torch.randn(shape, generator=gen, dtype=torch.float64)
        if spec.positivity == "clamp":
            p = spec.shift + spec.scale * torch.sigmoid(p)
        self.raw = nn.Parameter(p)

    def _distinct(self) -> torch.Tensor:
        """The delays in the parameter's shape (one per shared group)."""
        if self.spec.positivity == "sigmoid":
            return self.spec.shift + self.spec.scale * torch.sigmoid(self.raw)
        return self.raw

    def forward(self) -> torch.Tensor:
        d = self._distinct()
        g = self.spec.group_size
        if g > 1 and self.spec.type == "axonal":
            d = d.repeat_interleave(g, dim=0)[: self.n_in]
        elif g > 1 and self.spec.type == "dendritic":
            d = d.repeat_interleave(g, dim=1)[:, : self.n_out]
        return d

    def distinct_values(self) -> np.ndarray:
        """One value per trainable delay (before a shared group's expansion), flattened."""
        return self._distinct().detach().numpy().reshape(-1).copy()

    def numpy_value(self) -> np.ndarray:
        """The effective delays in the engine's per-kind shape: axonal [N_in], dendritic
        [N_out], synaptic [N_in, N_out] (for the fused path)."""
        d = self.forward().detach().numpy()
        return d if self.spec.type == "synaptic" else d.reshape(-1)

    def grad_raw(self, g_d: np.ndarray) -> torch.Tensor:
        """dL/dp from dL/dd (per-kind shape): sums over a shared group, times the sigmoid's
        derivative scale * s (1 - s) (identity for clamping)."""
        spec, g = self.spec, g_d
        if spec.group_size > 1 and spec.type in ("axonal", "dendritic"):
            n = self.raw.numel()
            padded = np.zeros(n * spec.group_size)
            padded[: g.size] = g
            g = padded.reshape(n, spec.group_size).sum(axis=1)
        g = g.reshape(self.raw.shape)
        if spec.positivity == "sigmoid":
            s = 1.0 / (1.0 + np.exp(-self.raw.detach().numpy()))
            g = g * (spec.scale * s * (1.0 - s))
        return torch.from_numpy(np.ascontiguousarray(g))

    @torch.no_grad()
    def project(self) -> None:
        """Keep clamped delays >= shift (after each optimiser step)."""
        if self.spec.positivity == "clamp":
            self.raw.clamp_(min=self.spec.shift)


class SpikingLayer(nn.Module):
    """One layer of LIF neurons: t_out = first_spike_times(t_in [+ bias spike], W, d)."""

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
        self.delays = None if delay.type == "none" else Delays(delay, n_rows, n_out, gen)

    def forward(self, t_in: torch.Tensor, *, tau_mem: float, tau_syn: float, threshold: float,
                max_dw_norm: float = math.inf) -> torch.Tensor:
        if self.bias_time is not None:
            col = t_in.new_full((t_in.shape[0], 1) + tuple(t_in.shape[2:]), float("inf"))
            col.view(t_in.shape[0], -1)[:, 0] = self.bias_time  # one bias spike per sample
            t_in = torch.cat([t_in, col], dim=1)
        d = None if self.delays is None else self.delays()
        # Inputs come from the encoder or the layer below (+inf or finite, never NaN), and the
        # optimiser keeps parameters finite, so the engine's value scans are skipped.
        return first_spike_times(t_in, self.weight, d, tau_mem=tau_mem, tau_syn=tau_syn,
                                 threshold=threshold, max_dw_norm=max_dw_norm,
                                 check_values=False)


class _Layers(nn.ModuleList):
    """A ModuleList of SpikingLayer, typed as such for its users."""

    def __iter__(self) -> Iterator[SpikingLayer]:
        return cast(Iterator[SpikingLayer], super().__iter__())

    def __getitem__(self, idx: int) -> SpikingLayer:  # type: ignore[override]
        return cast(SpikingLayer, super().__getitem__(idx))


class Network(nn.Module):
    """A feed-forward stack of spiking layers; forward returns every layer's spike times."""

    def __init__(self, sizes: list[int], *, w_mean: list[float], w_std: list[float],
                 delays: list[DelaySpec], bias_time: float | None, tau_mem: float,
                 tau_syn: float, threshold: float, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = list(sizes)
        self.tau_mem, self.tau_syn, self.threshold = tau_mem, tau_syn, threshold
        self.layers = _Layers(
            SpikingLayer(sizes[k], sizes[k + 1], w_mean=w_mean[k], w_std=w_std[k],
                         delay=delays[k], bias_time=bias_time, gen=gen)
            for k in range(len(sizes) - 1))

    def forward(self, t_in: torch.Tensor, max_dw_norm: float = math.inf) -> list[torch.Tensor]:
        out = []
        t = t_in
        for layer in self.layers:
            t = layer(t, tau_mem=self.tau_mem, tau_syn=self.tau_syn, threshold=self.threshold,
                      max_dw_norm=max_dw_norm)
            out.append(t)
        return out

    # -- fused path: the same network, chained by hand on numpy arrays (no autograd) --------
    def fused_ok(self) -> bool:
        """Whether forward_fused / backward_fused can run (compiled CPU loops, ratio 1 or 2)."""
        return fused.available(self.tau_mem / self.tau_syn)

    def fused_params(self) -> list[tuple[np.ndarray, str, np.ndarray | None]]:
        """(weights [N, M], delay kind, effective delays in the engine's per-kind shape) per
        layer, as numpy arrays in model units."""
        out = []
        for layer in self.layers:
            kind, d = "none", None
            if layer.delays is not None:
                kind, d = layer.delays.spec.type, layer.delays.numpy_value()
            out.append((layer.weight.detach().numpy(), kind, d))
        return out

    def forward_fused(self, t_in: np.ndarray, *, given: list[np.ndarray] | None = None,
                      params: list | None = None) -> tuple[list[np.ndarray], list]:
        """Every layer's spike times [B, N_k] (numpy, same values as forward) and the caches
        that backward_fused needs. t_in: [B, N_in] float64. given: spike times measured by a
        backend (hardware), used instead of solving (straight-through); params: the
        parameters the backend realised (e.g. quantised), default fused_params()."""
        tau = self.tau_syn
        lambert = self.tau_mem == tau
        t = t_in / tau if tau != 1.0 else t_in
        outs, caches = [], []
        for k, (layer, (w, kind, d)) in enumerate(zip(self.layers, params or self.fused_params())):
            bias = layer.bias_time
            spikes = 1
            if t.ndim == 3:  # [B, N, S]: every spike of a channel is one more arrival with its
                spikes = t.shape[2]  # channel's weight and delay (as in engine/layer.py)
                if bias is not None:
                    col = np.full((t.shape[0], 1, spikes), np.inf)
                    col[:, 0, 0] = bias / tau
                    t = np.concatenate([t, col], axis=1)
                t = t.reshape(t.shape[0], -1)
                w = np.repeat(w, spikes, axis=0)
                if kind in ("axonal", "synaptic") and d is not None:
                    d = np.repeat(d, spikes, axis=0)
            elif bias is not None:
                t = np.concatenate([t, np.full((t.shape[0], 1), bias / tau)], axis=1)
            if d is not None and tau != 1.0:
                d = d / tau
            t_given = None
            if given is not None:
                t_given = given[k] / tau if tau != 1.0 else given[k]
            t, cache = fused.layer_forward(t, w, kind, d, float(self.threshold), lambert, t_given)
            caches.append((kind, cache, spikes))
            outs.append(t * tau if tau != 1.0 else t)
        return outs, caches

    def backward_fused(self, caches: list, g_out: np.ndarray,
                       max_dw_norm: float = math.inf) -> None:
        """Set .grad of every parameter from dL/dt of the last layer (numpy [B, N_out]):
        the engine's spike-time backward (docs/model.md section 4) chained through the layers."""
        tau = self.tau_syn
        lambert = self.tau_mem == tau
        g = g_out * tau if tau != 1.0 else g_out  # per tau_s unit of the scaled times
        for layer, (kind, cache, spikes) in zip(reversed(self.layers), reversed(caches)):
            g_t, g_w, g_d = fused.layer_backward(g, kind, cache, lambert, max_dw_norm=max_dw_norm)
            if spikes > 1:  # sum over the arrivals that share a channel's weight and delay
                g_w = g_w.reshape(-1, spikes, g_w.shape[1]).sum(axis=1)
                if kind == "axonal" and g_d is not None:
                    g_d = g_d.reshape(-1, spikes).sum(axis=1)
                elif kind == "synaptic" and g_d is not None:
                    g_d = g_d.reshape(-1, spikes, g_d.shape[1]).sum(axis=1)
                g_t = g_t.reshape(g_t.shape[0], -1, spikes)
            layer.weight.grad = torch.from_numpy(np.ascontiguousarray(g_w))
            if layer.delays is not None and g_d is not None:
                layer.delays.raw.grad = layer.delays.grad_raw(g_d / tau if tau != 1.0 else g_d)
            g = g_t[:, : g_t.shape[1] - (layer.bias_time is not None)]

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def project(self) -> None:
        for layer in self.layers:
            if layer.delays is not None:
                layer.delays.project()
