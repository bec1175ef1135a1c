"""Backward pass from spike times only (docs/model.md section 4).

At the crossing u(t*) = theta the implicit function theorem gives, over the causal inputs
(T_i < t*):
    u'(t*)   = sum_i w_i k'(t* - T_i)
    dt*/dw_i = -k(t* - T_i) / u'(t*)
    dt*/dT_i =  w_i k'(t* - T_i) / u'(t*)
Nothing here needs the forward pass's internals: t_out may be measured (hardware) as long as
it is a spike time of the nominal model's neuron, or close to one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from snndelay.engine import _impl
from snndelay.engine.kernels import Kernel
from snndelay.engine.solver import CHUNK_ELEMS, _rows_per_chunk

# Stands in for x = T_i - t* of non-causal inputs: e^x underflows to exactly 0, so k and k'
# vanish for every kernel without inf * 0.
_NON_CAUSAL_X = -1.0e4
# Smallest slope u'(t*) divided by: at a grazing crossing the true derivative diverges; this
# keeps it finite (training additionally clips large per-neuron gradients).
MIN_SLOPE = 1.0e-10


def spike_time_grads(grad_out: torch.Tensor, t_out: torch.Tensor, t_in: torch.Tensor,
                     weights: torch.Tensor, d_syn: torch.Tensor | None, kernel: Kernel, *,
                     min_slope: float = MIN_SLOPE, max_dw_norm: float = math.inf,
                     chunk_elems: int = CHUNK_ELEMS
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Vector-Jacobian product of the spike times (tau_s units).

    grad_out, t_out [B, M]; t_in [B, N]; weights [N, M]; d_syn None or [N, M].
    Returns (dL/dt_in [B, N], dL/dW [N, M], dL/dd_syn [N, M] or None). Silent neurons
    (t_out = +inf) contribute nothing. max_dw_norm (docs/model.md section 4): a (sample, neuron)
    whose largest |dL/dt_j * dt_j/dw_ij| exceeds it adds nothing to dL/dW (near-grazing
    crossings); inf keeps every term. Work tensors are [C, N, M] per chunk of C samples.
    """
    if _impl.use_numba(t_in, kernel.ratio):
        return _grads_numba(grad_out, t_out, t_in, weights, d_syn, kernel.ratio == 1.0,
                            min_slope, max_dw_norm)
    batch, n_in = t_in.shape
    spiking = torch.isfinite(t_out)
    # A silent neuron gets t* = -inf: then no input is causal and every term is 0.
    t_spk = torch.where(spiking, t_out, torch.full_like(t_out, float("-inf")))
    g = torch.where(spiking, grad_out, torch.zeros_like(grad_out))
    grad_t = torch.zeros_like(t_in)
    grad_w = torch.zeros_like(weights)
    grad_d = None if d_syn is None else torch.zeros_like(weights)
    rows = _rows_per_chunk(batch, weights.numel(), chunk_elems)
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        t = t_in[b0:b1, :, None]
        x = t - t_spk[b0:b1, None, :] if d_syn is None else (t + d_syn).sub_(t_spk[b0:b1, None, :])
        # x = T_i - t*; causal inputs have x < 0 (T_i = +inf or t* = -inf give x = +inf).
        x.masked_fill_(x >= 0, _NON_CAUSAL_X)
        k, dk = kernel.psp_scaled(x)  # both scaled by the same c > 0
        w_dk = dk.mul_(weights)
        slope = w_dk.sum(dim=1, keepdim=True)  # c u'(t*)  [C, 1, M]
        f = g[b0:b1, None, :] / slope.clamp(min=min_slope)  # dL/dt* / (c u'(t*))
        d_arrival = w_dk.mul_(f)  # dL/dT_ij
        grad_t[b0:b1] = d_arrival.sum(dim=2)
        if grad_d is not None:
            grad_d += d_arrival.sum(dim=0)
        if max_dw_norm < math.inf:  # k >= 0, so k * |f| = |dL/dt * dt/dw| per input
            f = torch.where(k.amax(dim=1, keepdim=True) * f.abs() > max_dw_norm, 0.0, f)
        grad_w -= k.mul_(f).sum(dim=0)
    return grad_t, grad_w, grad_d


def _grads_numba(grad_out: torch.Tensor, t_out: torch.Tensor, t_in: torch.Tensor, weights: torch.Tensor,
                 d_syn: torch.Tensor | None,
                 lambert: bool, min_slope: float, max_dw_norm: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The compiled CPU loops (engine.compiled; same arguments and results)."""
    from snndelay.engine import compiled

    def arr(x: torch.Tensor) -> np.ndarray:
        return x.detach().numpy()

    g_t, g_w, g_d = compiled.backward(arr(grad_out), arr(t_out), arr(t_in), arr(weights),
                                      None if d_syn is None else arr(d_syn), lambert,
                                      min_slope, max_dw_norm)
    return torch.from_numpy(g_t), torch.from_numpy(g_w), (None if g_d is None
                                                          else torch.from_numpy(g_d))
