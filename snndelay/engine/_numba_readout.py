"""Compiled CPU loops of the non-spiking readout (engine/readout.py, docs/model.md section 12):
one scalar loop per (sample, neuron), the window sums kept in the frame of the current window's
start as in _numba_kernels (a shift by dt multiplies A by e^{-dt}; for tau_m = tau_s, B becomes
(B - dt A) e^{-dt}; for tau_m = 2 tau_s, A_m is multiplied by e^{-dt/2}), so no exponential
exceeds the weights after any span of arrivals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from snndelay.engine.kernels import LAMBERT_CODE


@njit(cache=True, inline="always")
def _psp(s, code):
    """(k(s), k'(s), K(s)) for s > 0 (docs/model.md sections 1 and 12)."""
    if code == LAMBERT_CODE:
        e = math.exp(-s)
        return s * e, e - s * e, -math.expm1(-s) - s * e
    eh = math.exp(-0.5 * s)
    e = eh * eh
    em = math.expm1(-0.5 * s)
    return 2.0 * (eh - e), 2.0 * e - eh, 2.0 * em * em


@njit(cache=True, inline="always")
def _arrival(t, d_t, has_d, d_out, has_out, b, j, i):
    x = t[b, i]
    if has_d:
        x += d_t[j, i]
    if has_out:
        x += d_out[j]
    return x


@njit(parallel=True, cache=True)
def readout_forward(t, w_t, d_t, has_d, d_out, has_out, code, mean, t_end):
    """(z [B, M], t* [B, M], the arrival index the maximum sits on [B, M] or -1) for
    arrival-ready times t [B, R], weights w_t [M, R], delays d_t [M, R] (has_d), per-neuron
    shifts d_out [M] (has_out); mean: the time average instead of the maximum."""
    n_b, n_in = t.shape
    n_out = w_t.shape[0]
    z = np.zeros((n_b, n_out))
    t_star = np.full((n_b, n_out), t_end)
    kink = np.full((n_b, n_out), -1, dtype=np.int64)
    for b in prange(n_b):
        arr = np.empty(n_in)
        ids = np.empty(n_in, dtype=np.int64)
        for j in range(n_out):
            if mean:
                acc = 0.0
                for i in range(n_in):
                    x = _arrival(t, d_t, has_d, d_out, has_out, b, j, i)
                    if x < t_end:
                        acc += w_t[j, i] * _psp(t_end - x, code)[2]
                z[b, j] = acc / t_end
                continue
            n = 0  # the arrivals before t_end, compacted (padding and late spikes never sort)
            for i in range(n_in):
                x = _arrival(t, d_t, has_d, d_out, has_out, b, j, i)
                if x < t_end:
                    arr[n] = x
                    ids[n] = i
                    n += 1
            if n == 0:
                continue
            order = np.argsort(arr[:n])  # ties keep no particular order (u is the same)
            a = 0.0
            s2 = 0.0  # B (tau_m = tau_s) or A_m (tau_m = 2 tau_s), in the window's frame
            best = -np.inf
            best_t = t_end
            best_i = -1
            prev = 0.0
            for m in range(n):
                i = ids[order[m]]
                tn = arr[order[m]]
                if m > 0:
                    dt = tn - prev
                    e = math.exp(-dt)
                    if code == LAMBERT_CODE:
                        s2 = (s2 - dt * a) * e
                    else:
                        s2 *= math.exp(-0.5 * dt)
                    a *= e
                a += w_t[j, i]
                if code != LAMBERT_CODE:
                    s2 += w_t[j, i]
                prev = tn
                hi = arr[order[m + 1]] if m + 1 < n else t_end
                width = min(hi, t_end) - tn
                # the window's start
                v = -s2 if code == LAMBERT_CODE else 2.0 * (s2 - a)
                if v > best:
                    best, best_t, best_i = v, tn, i
                # its interior peak
                if a > 0.0:
                    if code == LAMBERT_CODE:
                        sp = 1.0 + s2 / a
                        if 0.0 < sp < width:
                            v = a * math.exp(-sp)
                            if v > best:
                                best, best_t, best_i = v, tn + sp, -1
                    elif s2 > 0.0:
                        xp = s2 / (2.0 * a)
                        if xp < 1.0:
                            sp = -2.0 * math.log(xp)
                            if sp < width:
                                v = s2 * s2 / (2.0 * a)
                                if v > best:
                                    best, best_t, best_i = v, tn + sp, -1
                if m + 1 == n:  # the last window ends at t_end
                    if code == LAMBERT_CODE:
                        v = math.exp(-width) * (a * width - s2)
                    else:
                        xe = math.exp(-0.5 * width)
                        v = 2.0 * xe * (s2 - a * xe)
                    if v > best:
                        best, best_t, best_i = v, t_end, -1
            z[b, j] = best
            t_star[b, j] = best_t
            kink[b, j] = best_i
    return z, t_star, kink


@njit(parallel=True, cache=True)
def readout_backward(g, t, w_t, d_t, has_d, d_out, has_out, code, mean, t_end, t_star, kink,
                     n_chunks):
    """(dL/dT [B, R], dL/dW^T [M, R], dL/dd^T [M, R], dL/d(shift) [B, M]) from dL/dz g [B, M]
    (engine/readout.readout_grads); per-chunk sums over a fixed number of chunks."""
    n_b, n_in = t.shape
    n_out = w_t.shape[0]
    g_t = np.zeros((n_b, n_in))
    g_shift = np.zeros((n_b, n_out))
    gw = np.zeros((n_chunks, n_out, n_in))
    gd = np.zeros((n_chunks, n_out, n_in))
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for b in range(c * per, min(n_b, (c + 1) * per)):
            for j in range(n_out):
                gz = g[b, j]
                if gz == 0.0:
                    continue
                ts = t_star[b, j]
                total = 0.0
                for i in range(n_in):
                    s = ts - _arrival(t, d_t, has_d, d_out, has_out, b, j, i)
                    if not s > 0.0:
                        continue
                    k, dk, k_int = _psp(s, code)
                    if mean:
                        gw[c, j, i] += gz * k_int / t_end
                        ga = -gz * w_t[j, i] * k / t_end
                    else:
                        gw[c, j, i] += gz * k
                        ga = -gz * w_t[j, i] * dk
                    g_t[b, i] += ga
                    gd[c, j, i] += ga
                    total += ga
                i = kink[b, j]
                if i >= 0:  # the maximum moves with the arrival it sits on
                    g_t[b, i] -= total
                    gd[c, j, i] -= total
                    total = 0.0
                g_shift[b, j] = total
    return g_t, gw.sum(axis=0), gd.sum(axis=0), g_shift
