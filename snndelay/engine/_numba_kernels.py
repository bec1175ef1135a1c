"""CPU kernels compiled with numba: the same mathematics as solver.py / backward.py, written as
one scalar loop per (sample, neuron) so that small layers pay no per-operation overhead and
every neuron stops at its first crossing.

Forward (model.md section 2): arrivals are scanned in sorted order with the prefix sums kept in
the frame of the current window's start T_n (a frame shift by dt multiplies A by e^{-dt}; for
tau_m = tau_s, B becomes (B - dt A) e^{-dt}), so no exponential ever exceeds the weights and no
span of inputs is too long. Backward (section 4): u'(t*) = sum w k', then dt/dw = -k/u',
dt/dT = w k'/u', accumulated per thread and summed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_INV_E_HI = 0.36787944117144233
_INV_E_LO = -1.2428753672788363e-17
_TWO_LN2 = 2.0 * math.log(2.0)
# Corless et al. (1996) branch-point series of W0 in p = sqrt(2 (e z + 1)); see lambertw.py.
_BRANCH = np.array([-1.0, 1.0, -1.0 / 3.0, 11.0 / 72.0, -43.0 / 540.0, 769.0 / 17280.0,
                    -221.0 / 8505.0, 680863.0 / 43545600.0, -1963.0 / 204120.0,
                    226287557.0 / 37623398400.0])


# Below this many inputs an in-place insertion sort beats np.argsort (no allocations).
_INSERTION_SORT_MAX = 48


@njit(cache=True)
def lambertw0_scalar(z: float) -> float:
    """W0(z) for z >= -1/e, the algorithm of lambertw.lambertw0 for one value."""
    if z < -_INV_E_HI:
        return np.nan
    dz = (z + _INV_E_HI) + _INV_E_LO
    p = math.sqrt(2.0 * math.e * max(dz, 0.0))
    if p < 0.02:
        acc = _BRANCH[-1]
        for c in _BRANCH[-2::-1]:
            acc = acc * p + c
        return acc
    if z < -0.25:
        w = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p * p * p
    elif z < 0.0:
        w = z * (1.0 + 4.0 / 3.0 * z) / (1.0 + z * (7.0 / 3.0 + 5.0 / 6.0 * z))
    else:
        w = math.log1p(z)
    for _ in range(5):
        ew = math.exp(w)
        f = w * ew - z
        if f == 0.0:
            break
        wp1 = w + 1.0
        step = f / (ew * wp1 - (w + 2.0) * f / (2.0 * wp1))
        if not math.isfinite(step):
            break
        w -= step
        if abs(step) <= 1e-16 * abs(w):  # Halley converges cubically: done
            break
    return w


@njit(cache=True)
def _scan(arr, idx, wrow, n, theta, lambert):
    """First spike time of one neuron: arr[k] sorted arrival times (first n finite), weight of
    arrival k is wrow[idx[k]]. Returns +inf when the potential never reaches theta."""
    a = 0.0  # sum w e^{T_i - T_n}
    s = 0.0  # ratio 2: sum w e^{(T_i - T_n)/2};  ratio 1: sum w (T_i - T_n) e^{T_i - T_n}
    for k in range(n):
        t_k = arr[k]
        hi = arr[k + 1] - t_k if k + 1 < n else np.inf  # window [T_k, T_k+1] in its own frame
        wk = wrow[idx[k]]
        if lambert:
            a += wk
            dec = math.exp(-hi) if k + 1 < n else 0.0  # frame shift to the next window
            if a > 0.0:
                t_e = min(max(1.0 + s / a, 0.0), hi)  # the peak 1 + B/A clamped into the window
                e = dec if t_e == hi else (1.0 if t_e == 0.0 else math.exp(-t_e))
                if (t_e * a - s) * e >= theta:
                    b_over_a = s / a
                    # z = -(theta/A) e^{B/A} >= -1/e wherever the window reaches threshold
                    z = max(-(theta / a) * math.exp(b_over_a), -1.0 / math.e)
                    return t_k + max(b_over_a - lambertw0_scalar(z), 0.0)
            if k + 1 < n:
                s = (s - hi * a) * dec
                a *= dec
        else:
            a += wk
            s += wk
            eh = math.exp(-0.5 * hi) if k + 1 < n else 0.0
            if a > 0.0:
                # y = 2 e^{-t/2} runs from 2 (window start) down to 2 e^{-hi/2}; u = y (A_m - A y/2)
                y = min(max(s / a, 2.0 * eh), 2.0)
                if y * (s - 0.5 * a * y) >= theta:
                    disc = max(s * s - 2.0 * theta * a, 0.0)
                    t_cross = _TWO_LN2 - 2.0 * math.log((s + math.sqrt(disc)) / a)
                    return t_k + max(t_cross, 0.0)
            a *= eh * eh
            s *= eh
    return np.inf


@njit(cache=True)
def _sorted_arrivals(arr, perm):
    """Sort arr in place, carrying perm (initialised here to 0..n-1); return the number of
    finite entries (+inf sorts last). Insertion sort for short rows (no allocation)."""
    n = arr.shape[0]
    if n <= _INSERTION_SORT_MAX:
        for i in range(n):
            v = arr[i]
            k = i
            while k > 0 and arr[k - 1] > v:
                arr[k] = arr[k - 1]
                perm[k] = perm[k - 1]
                k -= 1
            arr[k] = v
            perm[k] = i
    else:
        order = np.argsort(arr)
        sorted_vals = arr[order]
        arr[:] = sorted_vals
        perm[:] = order
    n_fin = 0
    while n_fin < n and arr[n_fin] < np.inf:
        n_fin += 1
    return n_fin


@njit(parallel=True, cache=True)
def forward_shared(t_in, w_t, theta, lambert):
    """All neurons of a sample share the arrival order: t_in [B, N], w_t [M, N], theta [B, M];
    one sort per sample."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out))
    for b in prange(n_b):
        arr = t_in[b].copy()
        perm = np.empty(n_in, dtype=np.int64)
        n_fin = _sorted_arrivals(arr, perm)
        for j in range(n_out):
            out[b, j] = _scan(arr, perm, w_t[j], n_fin, theta[b, j], lambert)
    return out


@njit(parallel=True, cache=True)
def forward_synaptic(t_in, d_t, w_t, theta, lambert):
    """Per-synapse delays: each neuron sorts its own arrivals t_in[b, i] + d_t[j, i]."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out))
    for b in prange(n_b):
        arr = np.empty(n_in)
        perm = np.empty(n_in, dtype=np.int64)
        for j in range(n_out):
            for i in range(n_in):
                arr[i] = t_in[b, i] + d_t[j, i]
            n_fin = _sorted_arrivals(arr, perm)
            out[b, j] = _scan(arr, perm, w_t[j], n_fin, theta[b, j], lambert)
    return out


@njit(parallel=True, cache=True)
def backward(t_in, w_t, d_t, has_d, t_out, g, lambert, min_slope, n_chunks):
    """dL/dt_in [B, N], dL/dW^T [M, N], dL/dd^T [M, N] (zeros when has_d is False)."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    grad_t = np.zeros((n_b, n_in))
    gw = np.zeros((n_chunks, n_out, n_in))
    gd = np.zeros((n_chunks, n_out, n_in))
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        kbuf = np.empty(n_in)
        dkbuf = np.empty(n_in)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            for j in range(n_out):
                t = t_out[b, j]
                gg = g[b, j]
                if not math.isfinite(t) or gg == 0.0:
                    continue
                slope = 0.0
                for i in range(n_in):
                    x = t_in[b, i] - t  # T_i - t*, causal where < 0
                    if has_d:
                        x += d_t[j, i]
                    if x < 0.0:
                        if lambert:  # k = s e^{-s}, k' = (1 - s) e^{-s}, s = -x
                            e = math.exp(x)
                            kbuf[i] = -x * e
                            dkbuf[i] = e + x * e
                        else:  # k/2 = e^{-s/2} - e^{-s}, k'/2 = e^{-s} - e^{-s/2}/2
                            eh = math.exp(0.5 * x)
                            kbuf[i] = eh - eh * eh
                            dkbuf[i] = eh * eh - 0.5 * eh
                    else:
                        kbuf[i] = 0.0
                        dkbuf[i] = 0.0
                    slope += w_t[j, i] * dkbuf[i]
                f = gg / max(slope, min_slope)
                for i in range(n_in):
                    if kbuf[i] != 0.0 or dkbuf[i] != 0.0:
                        da = w_t[j, i] * dkbuf[i] * f
                        grad_t[b, i] += da
                        gd[c, j, i] += da
                        gw[c, j, i] -= kbuf[i] * f
    return grad_t, gw.sum(axis=0), gd.sum(axis=0)
