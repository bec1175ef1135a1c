"""Arrival preparation: what a layer does to its input spike times before the solver, written
once for the simulator, the emulator, the chip adapter and the autograd entry points.

Input spike times t_in [B, N] or [B, N, S] (S spikes per channel, +inf = none) become
arrival-ready times in units of tau_syn (docs/model.md sections 1 and 3):
1. the bias spike: one more input row at bias_time per sample (its own weight and delay);
2. scaling: times and delays are divided by tau_syn (the kernel is k(s / tau_syn));
3. axonal delays d_i are folded into the times, t_i + d_i (one arrival order shared by all
   receiving neurons); synaptic delays d_ij go to the per-synapse solver; dendritic delays d_j
   shift the neuron's spike afterwards (time invariance: t_j = t_j(no delay) + d_j);
4. a multi-spike input [B, N, S] becomes N * S arrivals, each carrying its channel's weight
   and delay.
fold_grads is the adjoint of these steps. numpy arrays and torch tensors are both accepted;
the result has the input's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from snndelay.engine.types import DelayKind, LayerParams


@dataclass
class Arrivals:
    """A layer's arrival-ready inputs, in units of tau_syn: times t [B, R] (R = N_rows * S),
    weights w [R, M], per-synapse delays d_syn [R, M] or None, per-neuron output shifts d_out
    [M] or None (dendritic), and S, the spikes per input channel (1 for [B, N] inputs)."""

    t: Any
    w: Any
    d_syn: Any
    d_out: Any
    spikes: int


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _cat_rows(t: Any, col: Any) -> Any:
    return torch.cat([t, col], dim=1) if _is_torch(t) else np.concatenate([t, col], axis=1)


def _repeat_rows(x: Any, n: int) -> Any:
    return x.repeat_interleave(n, dim=0) if _is_torch(x) else np.repeat(x, n, axis=0)


def _f64(x: Any) -> Any:
    return x.to(torch.float64) if _is_torch(x) else np.asarray(x, dtype=np.float64)


def _bias_column(t: Any, bias_time: float) -> Any:
    """[B, 1] (or [B, 1, S]) of +inf with the bias spike at bias_time in the first slot."""
    shape = (t.shape[0], 1) + tuple(t.shape[2:])
    col = (torch.full(shape, float("inf"), dtype=t.dtype, device=t.device) if _is_torch(t)
           else np.full(shape, np.inf))
    if len(shape) == 3:
        col[:, 0, 0] = bias_time
    else:
        col[:, 0] = bias_time
    return col


def arrivals(t_in: Any, layer: LayerParams) -> Arrivals:
    """The arrival-ready inputs of `layer` for input spike times t_in (see the module
    docstring). t_in: [B, N] or [B, N, S] with N = N_rows - (bias row)."""
    tau = layer.neuron.tau_syn
    t = _f64(t_in)
    if layer.bias_time is not None:
        t = _cat_rows(t, _bias_column(t, layer.bias_time))
    w = _f64(layer.weights)
    if t.shape[1] != w.shape[0]:
        raise ValueError(f"inputs have {t.shape[1]} rows (bias included), the weights "
                         f"{w.shape[0]}")
    if tau != 1.0:
        t = t / tau
    d = None if layer.delays is None else _f64(layer.delays)
    if d is not None and tau != 1.0:
        d = d / tau
    d_syn = d_out = None
    if layer.kind is DelayKind.AXONAL:
        assert d is not None  # LayerParams guarantees values for every kind but NONE
        t = t + (d[None, :, None] if t.ndim == 3 else d[None, :])  # inf + d stays inf
    elif layer.kind is DelayKind.DENDRITIC:
        d_out = d
    elif layer.kind is DelayKind.SYNAPTIC:
        d_syn = d
    spikes = 1
    if t.ndim == 3:  # every spike of a channel is one more arrival with its weight and delay
        spikes = int(t.shape[2])
        t = t.reshape(t.shape[0], -1)
        if spikes > 1:
            w = _repeat_rows(w, spikes)
            if d_syn is not None:
                d_syn = _repeat_rows(d_syn, spikes)
    return Arrivals(t, w, d_syn, d_out, spikes)


def _per_neuron(d_out: Any, times: Any) -> Any:
    """d_out [M] shaped to broadcast against spike times [B, M] or spike trains [B, M, K]."""
    return d_out[None, :, None] if times.ndim == 3 else d_out[None, :]


def output_times(core: Any, arr: Arrivals, tau_syn: float) -> Any:
    """A neuron's spike times ([B, M] or trains [B, M, K]) in model units from the solver's
    times (tau_s units, before any dendritic shift): + d_out, times tau_syn. No spike (+inf)
    stays no spike."""
    out = core + _per_neuron(arr.d_out, core) if arr.d_out is not None else core
    return out * tau_syn if tau_syn != 1.0 else out


def core_times(t_out: Any, arr: Arrivals, tau_syn: float) -> Any:
    """The inverse of output_times: given (e.g. measured) spike times in model units, the times
    the solver would have returned (tau_s units, dendritic shift removed)."""
    t = _f64(t_out)
    t = t / tau_syn if tau_syn != 1.0 else t
    return t - _per_neuron(arr.d_out, t) if arr.d_out is not None else t


def fold_grads(layer: LayerParams, arr: Arrivals, in_shape: tuple[int, ...], core: Any,
               g_core: Any, g_t: Any, g_w: Any, g_dsyn: Any) -> tuple[Any, Any, Any]:
    """The adjoint of arrivals(): from the gradients with respect to the arrival-ready
    quantities (g_core = dL/dt_core [B, M] or [B, M, K], g_t = dL/dT [B, R], g_w [R, M], g_dsyn [R, M] or
    None, all in tau_s units) to (dL/dt_in in in_shape, dL/dweights [N_rows, M], dL/ddelays in
    the kind's shape or None). Copies of a channel's weight and delay sum their gradients; the
    bias row's input gradient is dropped; the scaling by tau_syn is undone."""
    s = arr.spikes
    tau = layer.neuron.tau_syn
    if s > 1:
        g_w = g_w.reshape(-1, s, g_w.shape[1]).sum(1)
        if g_dsyn is not None:
            g_dsyn = g_dsyn.reshape(-1, s, g_dsyn.shape[1]).sum(1)
    rows_t = g_t.reshape(g_t.shape[0], -1, s)  # [B, N_rows, S]
    g_d = None
    if layer.kind is DelayKind.AXONAL:
        g_d = rows_t.sum(2).sum(0)
    elif layer.kind is DelayKind.DENDRITIC:  # only spiking neurons depend on their delay
        fin = torch.isfinite(core) if _is_torch(core) else np.isfinite(core)
        g_d = (g_core * fin).sum(0)
        if g_d.ndim == 2:  # spike trains: every spike moves with the neuron's delay
            g_d = g_d.sum(1)
    elif layer.kind is DelayKind.SYNAPTIC:
        g_d = g_dsyn
    n_in = in_shape[1]
    g_in = rows_t[:, :n_in].reshape(in_shape) if len(in_shape) == 3 else rows_t[:, :n_in, 0]
    if tau != 1.0:
        g_in = g_in / tau
        if g_d is not None:
            g_d = g_d / tau
    return g_in, g_w, g_d
