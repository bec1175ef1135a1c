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

import torch

from snndelay.engine.kernels import Kernel
from snndelay.engine.solver import _rows_per_chunk

# Stands in for x = T_i - t* of non-causal inputs: e^x underflows to exactly 0, so k and k'
# vanish for every kernel without inf * 0.
_NON_CAUSAL_X = -1.0e4
# Smallest slope u'(t*) divided by: at a grazing crossing the true derivative diverges; this
# keeps it finite (training additionally clips large per-neuron gradients).
MIN_SLOPE = 1.0e-10


def spike_time_grads(grad_out: torch.Tensor, t_out: torch.Tensor, t_in: torch.Tensor,
                     weights: torch.Tensor, d_syn: torch.Tensor | None, kernel: Kernel, *,
                     min_slope: float = MIN_SLOPE, max_dw_norm: float = math.inf,
                     chunk_elems: int | None = None, theta: torch.Tensor | float = 1.0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Vector-Jacobian product of the spike times (tau_s units).

    grad_out, t_out [B, M] (first spikes), or [B, M, K] (spike trains, sorted, +inf padded;
    theta, a number or [B, M], sizes the reset: docs/model.md section 11); t_in [B, N];
    weights [N, M]; d_syn None or [N, M]. Returns (dL/dt_in [B, N], dL/dW [N, M], dL/dd_syn
    [N, M] or None). Silent neurons (t_out = +inf) contribute nothing. max_dw_norm
    (docs/model.md section 4): a spike whose largest |lambda * dt/dw_ij| exceeds it adds
    nothing to dL/dW (near-grazing crossings); inf keeps every term. Work tensors are
    [C, N, M, K] per chunk of C samples.
    """
    batch, n_in = t_in.shape
    t_k = t_out if t_out.dim() == 3 else t_out[:, :, None]
    g_k = grad_out if grad_out.dim() == 3 else grad_out[:, :, None]
    n_k = t_k.shape[2]
    spiking = torch.isfinite(t_k)
    # A silent neuron gets t* = -inf: then no input is causal and every term is 0.
    t_spk = torch.where(spiking, t_k, torch.full_like(t_k, float("-inf")))
    g = torch.where(spiking, g_k, torch.zeros_like(g_k))
    rate = kernel.reset_rate
    if n_k > 1:
        th = torch.as_tensor(theta, dtype=t_in.dtype, device=t_in.device).expand(
            t_k.shape[:2])[:, :, None]
        # e^{-(t_k - t_(k-1)) / r} between consecutive spikes of a neuron (0 past its last)
        both = spiking[:, :, 1:] & spiking[:, :, :-1]
        gap = torch.where(both, t_k[:, :, 1:] - t_k[:, :, :-1], torch.zeros_like(t_k[:, :, 1:]))
        dec = torch.where(both, torch.exp(-rate * gap), torch.zeros_like(gap))
    grad_t = torch.zeros_like(t_in)
    grad_w = torch.zeros_like(weights)
    grad_d = None if d_syn is None else torch.zeros_like(weights)
    rows = _rows_per_chunk(batch, weights.numel() * n_k, chunk_elems)
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        t = t_in[b0:b1, :, None, None]
        spk = t_spk[b0:b1, None, :, :]  # [C, 1, M, K]
        if d_syn is None:
            x = t - spk
        else:
            x = t + d_syn[:, :, None]  # [C, N, M, 1]
            x = x.sub_(spk) if n_k == 1 else x - spk
        # x = T_i - t_k; causal inputs have x < 0 (T_i = +inf or t_k = -inf give x = +inf).
        x.masked_fill_(x >= 0, _NON_CAUSAL_X)
        k, dk = kernel.psp_scaled(x)  # both scaled by the same c > 0  [C, N, M, K]
        w_dk = dk.mul_(weights[:, :, None])
        slope = w_dk.sum(dim=1)  # c u'(t_k) from the inputs  [C, M, K]
        gc = g[b0:b1]
        if n_k == 1:
            f = gc / slope.clamp(min=min_slope)  # dL/dt* / (c u'(t*))
        else:
            dc = dec[b0:b1]
            # + the reset kernels of the earlier spikes: c theta / r sum_{j<k} e^{-(t_k-t_j)/r}
            reset = torch.zeros_like(slope)
            for kk in range(1, n_k):
                reset[:, :, kk] = (reset[:, :, kk - 1] + 1.0) * dc[:, :, kk - 1]
            slope = slope.add_(kernel.reset_slope * th[b0:b1] * reset).clamp_(min=min_slope)
            # adjoints lambda_k = g_k + c theta / r sum_{m>k} f_m e^{-(t_m-t_k)/r}, f = lambda/slope:
            # a running suffix sum from the last spike to the first
            f = torch.empty_like(slope)
            suffix = torch.zeros_like(slope[:, :, 0])
            coef = kernel.reset_slope * th[b0:b1, :, 0]
            for kk in range(n_k - 1, -1, -1):
                f[:, :, kk] = (gc[:, :, kk] + coef * suffix) / slope[:, :, kk]
                if kk > 0:
                    suffix = (suffix + f[:, :, kk]) * dc[:, :, kk - 1]
        d_arrival = w_dk.mul_(f[:, None]).sum(dim=3)  # dL/dT_ij  [C, N, M]
        grad_t[b0:b1] = d_arrival.sum(dim=2)
        if grad_d is not None:
            grad_d += d_arrival.sum(dim=0)
        if max_dw_norm < math.inf:  # k >= 0, so k * |f| = |lambda * dt/dw| per input
            f = torch.where(k.amax(dim=1) * f.abs() > max_dw_norm, 0.0, f)
        grad_w -= k.mul_(f[:, None]).sum(dim=(0, 3))
    return grad_t, grad_w, grad_d


def nominal_slope_scale(t_out: torch.Tensor, t_in: torch.Tensor, weights: torch.Tensor,
                        d_syn: torch.Tensor | None, theta: float,
                        min_slope: float = MIN_SLOPE) -> torch.Tensor:
    """[B, M] factors s = max(u'(t*), min_slope) / u'_nom that turn the spike-time backward at
    measured first spikes into the published hardware backward (docs/model.md sections 4 and
    8; tau_m = tau_s only).

    The backward divides by the slope u'(t*) = sum_C w_i k'(t* - T_i) = e^{-t*} A (1 + B/A - t*)
    over the causal set C (T_i < t*) of the given inputs and weights, clamped at min_slope. The
    published code evaluates section 4's closed form with the *nominal* threshold instead:
    u'_nom = e^{-t*} A (1 + W0(z)), z = -(theta / A) e^{B/A}, which differs whenever the measured
    neuron's threshold did (fixed-pattern and trial noise), and stays positive even where
    u'(t*) of these weights is not (they need not be the ones that fired: the float shadow
    weights). Every spike-time derivative carries 1/u', so scaling dL/dt* by s gives 1/u'_nom
    exactly. In the frame shifted by t* (x_i = T_i - t*): A' = sum w e^x, B' = sum w x e^x,
    so u'(t*) = A' + B' and z = -(theta / A') e^{B'/A'}. s = 0 where z < -1/e (the
    nominal neuron would not fire with this causal set: the published code drops that
    gradient) and for silent neurons. t_in [B, N], weights [N, M], d_syn [N, M] or None,
    t_out [B, M], all in tau_s units."""
    from snndelay.engine.lambertw import lambertw0

    x = t_in[:, :, None] - t_out[:, None, :]
    if d_syn is not None:
        x = x + d_syn[None]
    causal = x < 0  # +inf inputs and silent neurons (t* = inf gives NaN or +-inf) drop out
    x = torch.where(causal, x, torch.zeros_like(x))
    e = torch.where(causal, weights[None] * torch.exp(x), torch.zeros_like(x))
    a = e.sum(dim=1)
    b = (e * x).sum(dim=1)
    spiking = torch.isfinite(t_out) & (a > 0)
    a_s = torch.where(spiking, a, torch.ones_like(a))
    ratio = torch.where(spiking, b / a_s, torch.zeros_like(a))
    z = -(theta / a_s) * torch.exp(ratio)
    ok = spiking & (z >= -math.exp(-1.0))
    w0 = lambertw0(torch.where(ok, z, torch.zeros_like(z)))
    denom = torch.where(ok, a_s * (1.0 + w0), torch.ones_like(w0))
    slope = (a + b).clamp(min=min_slope)  # what the backward divides by
    return torch.where(ok & (denom > 0), slope / denom, torch.zeros_like(denom))
