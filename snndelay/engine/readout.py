"""Non-spiking readout: leaky integrators read out by the maximum or the time average of their
membrane (docs/model.md section 12), with exact gradients from the arrival times alone.

An output neuron j has no threshold and no reset: u_j(t) = sum_i w_ij k(t - T_ij), with the
arrivals T_ij = t_i + d_ij (every delay kind; a dendritic delay shifts all of j's arrivals).
- mode "max":  z_j = max of u_j over [0, t_end]. On a window between consecutive arrivals u has
  the form of section 2 with one stationary point (the kernel's window_peak), so the maximum is
  the largest of the window starts, the interior peaks and u(t_end). By the envelope theorem
  dz/dw_i = k(t* - T_i) and dz/dT_i = -w_i k'(t* - T_i) at the maximiser t*; where t* is an
  arrival T_n itself (an inhibitory arrival stopping a rise), t* moves with T_n and
  dz/dT_n = u'(T_n^-) = -sum of the other arrivals' dz/dT.
- mode "mean": z_j = (1 / t_end) integral of u_j over [0, t_end] = (1 / t_end) sum_i w_ij
  K(t_end - T_ij), K the kernel's integral; dz/dw = K / t_end, dz/dT = -w k(t_end - T) / t_end.
Arrivals at or after t_end do not count. readout_forward / readout_backward work on a
LayerParams like layer_forward / layer_backward (numpy or torch, no autograd); voltage_readout
is the autograd entry point. The torch functions here are the reference; the compiled loops
(compiled.readout_forward / readout_backward) compute the same on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from snndelay.engine import compiled
from snndelay.engine.kernels import Kernel, kernel_for
from snndelay.engine.prepare import Arrivals, arrivals, fold_grads
from snndelay.engine.solver import _rows_per_chunk, _window_sums_stable
from snndelay.engine.types import DelayKind, LayerParams, Neuron

READOUT_MODES = ("max", "mean")
_F64 = torch.float64
_INF = float("inf")


def _arrival_matrix(t: torch.Tensor, d_syn_t: torch.Tensor | None, d_out: torch.Tensor | None,
                    n_out: int, t_end: float) -> torch.Tensor:
    """Every synapse's arrival time [C, M, R] (+inf: none, or at or after t_end)."""
    arr = t[:, None, :]
    if d_syn_t is not None:
        arr = arr + d_syn_t[None]
    if d_out is not None:
        arr = arr + d_out[None, :, None]
    arr = arr.expand(t.shape[0], n_out, t.shape[1])
    return torch.where(arr < t_end, arr, _INF)


def _chunks(t: torch.Tensor, w_t: torch.Tensor, d_syn: torch.Tensor | None,
            d_out: torch.Tensor | None, t_end: float, chunk_elems: int | None
            ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(b0, b1, the arrival matrix [b1 - b0, M, R] of samples b0..b1) in chunks of at most
    about chunk_elems arrivals."""
    batch, n_rows = t.shape
    n_out = w_t.shape[0]
    d_t = None if d_syn is None else d_syn.t()
    rows = _rows_per_chunk(batch, n_rows * n_out, chunk_elems)
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        yield b0, b1, _arrival_matrix(t[b0:b1], d_t, d_out, n_out, t_end)


def readout_values(t: torch.Tensor, w: torch.Tensor, d_syn: torch.Tensor | None,
                   d_out: torch.Tensor | None, kernel: Kernel, mode: str, t_end: float,
                   chunk_elems: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z [B, M], the maximiser t* [B, M], the arrival index the maximum sits on [B, M] or -1)
    for arrival-ready times t [B, R] (tau_s units), weights w [R, M], per-synapse delays d_syn
    [R, M] or None, per-neuron delays d_out [M] or None. mode "mean" returns t* = t_end and no
    index. A neuron without arrivals before t_end has z = 0."""
    batch, n_rows = t.shape
    n_out = w.shape[1]
    z = torch.zeros(batch, n_out, dtype=_F64, device=t.device)
    t_star = torch.full_like(z, t_end)
    kink = torch.full((batch, n_out), -1, dtype=torch.long, device=t.device)
    if batch == 0 or n_rows == 0 or n_out == 0:
        return z, t_star, kink
    w_t = w.t()
    for b0, b1, arr in _chunks(t, w_t, d_syn, d_out, t_end, chunk_elems):
        if mode == "mean":
            s = (t_end - arr).nan_to_num(neginf=0.0)  # 0 where no arrival: K(0) = 0
            z[b0:b1] = (kernel.psp_integral(s) * w_t).sum(2) / t_end
            continue
        z[b0:b1], t_star[b0:b1], kink[b0:b1] = _max_chunk(arr, w_t, kernel, t_end)
    return z, t_star, kink


def _max_chunk(arr: torch.Tensor, w_t: torch.Tensor, kernel: Kernel, t_end: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The max readout of one chunk of arrival matrices [C, M, R] (see readout_values)."""
    c, m, _ = arr.shape
    ts, idx = torch.sort(arr, dim=2)
    n_max = int(torch.isfinite(ts).sum(2).max())
    z = torch.zeros(c, m, dtype=_F64, device=arr.device)
    if n_max == 0:
        return z, torch.full_like(z, t_end), torch.full((c, m), -1, dtype=torch.long,
                                                        device=arr.device)
    ts, idx = ts[..., :n_max], idx[..., :n_max]
    w = torch.gather(w_t.expand(c, -1, -1), 2, idx)
    fin = torch.isfinite(ts)
    t0 = ts[..., :1].nan_to_num(posinf=0.0)
    tr = ts - t0
    # Sums in each window's own frame (log domain): exact after any span of arrivals.
    sums = tuple(_window_sums_stable(kernel, w, tr, fin, 2).unbind(0))
    nxt = F.pad(ts[..., 1:], (0, 1), value=_INF)
    width = torch.where(fin, torch.clamp(nxt, max=t_end) - ts, torch.zeros_like(ts))
    ninf = torch.full_like(ts, -_INF)
    v_start = torch.where(fin, kernel.window_value(sums, torch.zeros_like(ts)), ninf)
    s_pk, v_pk, ok = kernel.window_peak(sums)
    v_pk = torch.where(ok & fin & (s_pk < width), v_pk, ninf)
    last = fin & (nxt >= t_end)  # the window that ends at t_end
    v_end = torch.where(last, kernel.window_value(sums, width), ninf)
    cand = torch.stack([v_start, v_pk, v_end], dim=3).reshape(c, m, 3 * n_max)
    best, arg = cand.max(dim=2)
    n = (arg // 3)[..., None]
    kind = arg % 3
    t_n = torch.gather(ts, 2, n).squeeze(2)
    peak_t = t_n + torch.gather(s_pk, 2, n).squeeze(2)
    t_star = torch.where(kind == 0, t_n, torch.where(kind == 1, peak_t,
                                                     torch.full_like(t_n, t_end)))
    kink = torch.where(kind == 0, torch.gather(idx, 2, n).squeeze(2), -1)
    has = torch.isfinite(best)
    z = torch.where(has, best, z)
    t_star = torch.where(has, t_star, torch.full_like(t_star, t_end))
    kink = torch.where(has, kink, -1)
    return z, t_star, kink


def readout_grads(g_z: torch.Tensor, t: torch.Tensor, w: torch.Tensor,
                  d_syn: torch.Tensor | None, d_out: torch.Tensor | None, kernel: Kernel,
                  mode: str, t_end: float, t_star: torch.Tensor, kink: torch.Tensor,
                  chunk_elems: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(dL/dT [B, R], dL/dw [R, M], dL/dd_syn [R, M] or None, dL/d(neuron j's shift) [B, M])
    from dL/dz [B, M] (see the module docstring; tau_s units)."""
    batch, n_rows = t.shape
    n_out = w.shape[1]
    g_t = torch.zeros_like(t)
    g_w = torch.zeros(n_out, n_rows, dtype=_F64, device=t.device)
    g_d = None if d_syn is None else torch.zeros(n_out, n_rows, dtype=_F64, device=t.device)
    g_shift = torch.zeros(batch, n_out, dtype=_F64, device=t.device)
    w_t = w.t()
    for b0, b1, arr in _chunks(t, w_t, d_syn, d_out, t_end, chunk_elems):
        s = t_star[b0:b1, :, None] - arr  # -inf where no arrival
        causal = s > 0
        s0 = torch.where(causal, s, torch.zeros_like(s))
        g = g_z[b0:b1, :, None]
        if mode == "mean":
            k_int = torch.where(causal, kernel.psp_integral(s0), torch.zeros_like(s0))
            k, _ = kernel.psp(s0)
            dw = k_int / t_end
            dT = -w_t * torch.where(causal, k, torch.zeros_like(k)) / t_end
        else:
            k, dk = kernel.psp(s0)
            dw = torch.where(causal, k, torch.zeros_like(k))
            dT = -w_t * torch.where(causal, dk, torch.zeros_like(dk))
        g_arr = g * dT  # [C, M, R]
        kc = kink[b0:b1]
        if mode == "max" and bool((kc >= 0).any()):
            # the maximum sits on arrival n and moves with it: dz/dT_n = -sum of the others'
            at = kc.clamp(min=0)[..., None]
            extra = torch.where(kc >= 0, -g_arr.sum(2), torch.zeros_like(kc, dtype=_F64))
            g_arr = g_arr.scatter_add(2, at, extra[..., None])
        g_w += (g * dw).sum(0)
        g_t[b0:b1] = g_arr.sum(1)
        if g_d is not None:
            g_d += g_arr.sum(0)
        g_shift[b0:b1] = g_arr.sum(2)
    return g_t, g_w.t(), None if g_d is None else g_d.t(), g_shift


def _np(x: Any) -> Any:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x


def _tt(x: Any) -> Any:
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


def _like(x: Any, ref: Any) -> Any:
    if isinstance(ref, torch.Tensor):
        return torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    return x.numpy() if isinstance(x, torch.Tensor) else x


@dataclass
class ReadoutCache:
    """What readout_backward needs: the layer, its arrival-ready inputs, the input's shape, the
    mode, t_end in tau_s units, and the maximiser t* with the arrival it sits on (max)."""

    layer: LayerParams
    arr: Arrivals
    in_shape: tuple[int, ...]
    mode: str
    t_end: float
    t_star: Any
    kink: Any


def _check_mode(mode: str, t_end: float) -> None:
    if mode not in READOUT_MODES:
        raise ValueError(f"mode must be one of {', '.join(READOUT_MODES)}, got {mode!r}")
    if not 0 < t_end < math.inf:
        raise ValueError(f"t_end must be positive and finite, got {t_end}")


def readout_forward(t_in: Any, layer: LayerParams, *, mode: str, t_end: float
                    ) -> tuple[Any, ReadoutCache]:
    """z [B, N_out] of `layer` read as non-spiking integrators over [0, t_end] (model units)
    for input times t_in [B, N] or [B, N, S], and the cache for readout_backward. Numpy in,
    numpy out; torch in, torch out."""
    _check_mode(mode, t_end)
    arr = arrivals(t_in, layer)
    tau = layer.neuron.tau_syn
    t_end_s = t_end / tau
    kernel = kernel_for(layer.neuron.tau_mem, tau)
    code = compiled.code_for(kernel, arr.t)
    z: Any
    t_star: Any
    kink: Any
    if code is not None:
        z, t_star, kink = compiled.readout_forward(_np(arr.t), _np(arr.w), _np(arr.d_syn),
                                                   _np(arr.d_out), code, mode, t_end_s)
    else:
        z, t_star, kink = readout_values(_tt(arr.t), _tt(arr.w), _tt(arr.d_syn),
                                         _tt(arr.d_out), kernel, mode, t_end_s)
    cache = ReadoutCache(layer, arr, tuple(t_in.shape), mode, t_end_s, t_star, kink)
    return _like(z, arr.t), cache


def readout_backward(cache: ReadoutCache, g_z: Any) -> tuple[Any, Any, Any]:
    """(dL/dt_in in t_in's shape, dL/dweights [N_rows, N_out], dL/ddelays in the kind's shape
    or None) from dL/dz [B, N_out]."""
    layer, arr = cache.layer, cache.arr
    kernel = kernel_for(layer.neuron.tau_mem, layer.neuron.tau_syn)
    code = compiled.code_for(kernel, arr.t)
    out: tuple[Any, ...]
    if code is not None:
        out = compiled.readout_backward(_np(g_z), _np(arr.t), _np(arr.w), _np(arr.d_syn),
                                        _np(arr.d_out), code, cache.mode, cache.t_end,
                                        _np(cache.t_star), _np(cache.kink))
    else:
        out = readout_grads(_tt(g_z), _tt(arr.t), _tt(arr.w), _tt(arr.d_syn), _tt(arr.d_out),
                            kernel, cache.mode, cache.t_end, _tt(cache.t_star),
                            _tt(cache.kink))
    g_t, g_w, g_dsyn, g_shift = (None if x is None else _like(x, arr.t) for x in out)
    assert g_shift is not None  # every neuron has a shift
    # fold_grads reads a dendritic delay's gradient from the neurons' shifts at finite
    # "spike times": every readout neuron depends on its shift.
    core = _like(np.zeros(g_shift.shape), arr.t)
    return fold_grads(layer, arr, cache.in_shape, core, g_shift, g_t, g_w, g_dsyn)


class _ReadoutFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None,
                kind: DelayKind, neuron: Neuron, mode: str, t_end: float) -> torch.Tensor:
        layer = LayerParams(weights.detach(), kind, None if delays is None else delays.detach(),
                            None, neuron)
        z, ctx.cache = readout_forward(t_in.detach(), layer, mode=mode, t_end=t_end)
        return z

    @staticmethod
    def backward(ctx: Any, g_z: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g_t, g_w, g_d = readout_backward(ctx.cache, g_z.contiguous())
        return g_t, g_w, g_d, None, None, None, None


def voltage_readout(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None = None,
                    *, tau_mem: float = 2.0, tau_syn: float = 1.0, mode: str = "max",
                    t_end: float, check_values: bool = True) -> torch.Tensor:
    """z [B, N_out]: the maximum (mode "max") or time average ("mean") over [0, t_end] of the
    membranes u_j(t) = sum_i w_ij k(t - t_i - d_ij) of non-spiking leaky integrators
    (docs/model.md section 12). t_in [B, N_in] or [B, N_in, S] (+inf = no spike); weights
    [N_in, N_out]; delays None, axonal [N_in, 1], dendritic [1, N_out] or synaptic
    [N_in, N_out], as in first_spike_times; tau_mem / tau_syn in {1, 2}. Differentiable in
    t_in, weights and delays with the exact gradients; float64."""
    from snndelay.engine.layer import _delay_kind, _prepare

    _check_mode(mode, t_end)
    _prepare(t_in, weights, delays, 1.0, tau_mem, tau_syn, check_values)
    n_in, n_out = weights.shape
    kind, d = DelayKind.NONE, None
    if delays is not None:
        kind, d = _delay_kind(delays.to(_F64), n_in, n_out)
    d_kind = None if d is None else (d.reshape(-1) if kind is not DelayKind.SYNAPTIC else d)
    return _ReadoutFn.apply(t_in.to(_F64), weights.to(_F64), d_kind, kind,
                            Neuron(tau_mem, tau_syn, 1.0), mode, float(t_end))
