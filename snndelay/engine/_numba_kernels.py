"""CPU kernels compiled with numba: the same mathematics as solver.py / backward.py, written as
one scalar loop per (sample, neuron) so that small layers pay no per-operation overhead and
every neuron stops at its first crossing.

Forward (docs/model.md section 2): arrivals are scanned in sorted order with the prefix sums kept in
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


@njit(cache=True, inline="always")
def _window(a, s, wk, hi, dec, theta, lambert):
    """One window of the scan. An arrival of weight wk starts the window [0, hi] (its own
    frame; hi = +inf for the last one); dec = e^{-hi} (ratio 1) or e^{-hi/2} (ratio 2).
    Returns (a, s, t): the sums shifted into the next window's frame, and the crossing time
    within this window (-1.0 when u stays below theta).
    Ratio 1: a = sum w e^{T_i - T}, s = sum w (T_i - T) e^{T_i - T};
    ratio 2: a = sum w e^{T_i - T}, s = sum w e^{(T_i - T)/2}."""
    a += wk
    if lambert:
        if a > 0.0:
            t_e = min(max(1.0 + s / a, 0.0), hi)  # the peak 1 + B/A clamped into the window
            e = dec if t_e == hi else (1.0 if t_e == 0.0 else math.exp(-t_e))
            if (t_e * a - s) * e >= theta:
                b_over_a = s / a
                # z = -(theta/A) e^{B/A} >= -1/e wherever the window reaches threshold
                z = max(-(theta / a) * math.exp(b_over_a), -1.0 / math.e)
                return a, s, max(b_over_a - lambertw0_scalar(z), 0.0)
        if hi < np.inf:
            s = (s - hi * a) * dec
        return a * dec, s, -1.0
    s += wk
    if a > 0.0:
        # y = 2 e^{-t/2} runs from 2 (window start) down to 2 e^{-hi/2}; u = y (A_m - A y/2)
        y = min(max(s / a, 2.0 * dec), 2.0)
        if y * (s - 0.5 * a * y) >= theta:
            disc = max(s * s - 2.0 * theta * a, 0.0)
            return a, s, max(_TWO_LN2 - 2.0 * math.log((s + math.sqrt(disc)) / a), 0.0)
    return a * dec * dec, s * dec, -1.0


@njit(cache=True)
def _decays(arr, n, lambert, dec):
    """dec[k] = e^{-(T_k+1 - T_k)} (ratio 1) or its square root (ratio 2); 0 after the last."""
    rate = 1.0 if lambert else 0.5
    for k in range(n - 1):
        dec[k] = math.exp(-rate * (arr[k + 1] - arr[k]))
    if n > 0:
        dec[n - 1] = 0.0


@njit(cache=True)
def _scan(arr, idx, wrow, n, theta, lambert, dec):
    """First spike time of one neuron: arr[k] sorted arrival times (first n finite), weight of
    arrival k is wrow[idx[k]], dec from _decays. +inf when the potential stays below theta."""
    a = 0.0
    s = 0.0
    for k in range(n):
        hi = arr[k + 1] - arr[k] if k + 1 < n else np.inf
        a, s, t = _window(a, s, wrow[idx[k]], hi, dec[k], theta, lambert)
        if t >= 0.0:
            return arr[k] + t
    return np.inf


@njit(cache=True)
def _insertion_sort(keys, idx, n):
    """Sort keys[:n] in place, carrying idx; fast on short or nearly sorted rows."""
    for i in range(1, n):
        v = keys[i]
        p = idx[i]
        k = i
        while k > 0 and keys[k - 1] > v:
            keys[k] = keys[k - 1]
            idx[k] = idx[k - 1]
            k -= 1
        keys[k] = v
        idx[k] = p


@njit(parallel=True, cache=True)
def forward_shared(t_in, w_t, theta, lambert, n_chunks):
    """All neurons of a sample share the arrival order: t_in [B, N], w_t [M, N], theta [B, M];
    one sort and one set of window decays per sample."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out))
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        dec = np.empty(n_in)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            perm = np.argsort(t_in[b])
            arr = t_in[b][perm]
            n_fin = 0
            while n_fin < n_in and arr[n_fin] < np.inf:
                n_fin += 1
            _decays(arr, n_fin, lambert, dec)  # shared by all neurons of the sample
            for j in range(n_out):
                out[b, j] = _scan(arr, perm, w_t[j], n_fin, theta[b, j], lambert, dec)
    return out


@njit(cache=True)
def _bucket_sort(vals, n, keys, idx, counts):
    """Sort the first n (finite) vals into keys, with their positions in idx: counting sort
    into n equal-width time bins, then an insertion pass that only moves entries within a
    bin. O(n) for spread-out arrivals; crowded bins (over 64 entries) fall back to argsort.
    counts is scratch space of length >= n + 1."""
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        lo = min(lo, vals[i])
        hi = max(hi, vals[i])
    scale = (n - 1) / (hi - lo) if hi > lo else 0.0
    counts[: n + 1] = 0
    for i in range(n):
        counts[int((vals[i] - lo) * scale) + 1] += 1
    crowded = False
    for k in range(n):
        crowded |= counts[k + 1] > 64
        counts[k + 1] += counts[k]
    if crowded:
        order = np.argsort(vals[:n])
        for k in range(n):
            keys[k] = vals[order[k]]
            idx[k] = order[k]
        return
    for i in range(n):
        k = int((vals[i] - lo) * scale)
        keys[counts[k]] = vals[i]
        idx[counts[k]] = i
        counts[k] += 1
    _insertion_sort(keys, idx, n)  # entries only move within their bin


# Exponentials of arrival times are factorised, e^{r T_ij} = e^{r (t_i - t0)} e^{r d_ij}, when
# every factor stays within e^{+-_FACTOR_SPAN}: one exp per input and per synapse instead of one
# per (sample, synapse). Longer spans take one exp per element.
_FACTOR_SPAN = 600.0


@njit(cache=True)
def _finite_range(row):
    lo = np.inf
    hi = -np.inf
    for v in row:
        if v < np.inf:
            lo = min(lo, v)
            hi = max(hi, v)
    return lo, hi


@njit(cache=True)
def _exp_table(x, rate):
    out = np.empty_like(x)
    for j in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[j, i] = math.exp(rate * x[j, i])
    return out


@njit(parallel=True, cache=True)
def forward_synaptic(t_in, d_t, w_t, theta, lambert, n_chunks):
    """Per-synapse delays: each neuron sorts its own arrivals t_in[b, i] + d_t[j, i]
    (insertion sort for short rows, bucket sort otherwise). Samples are split into n_chunks
    contiguous chunks, one per thread, each with its own scratch buffers."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out))
    rate = 1.0 if lambert else 0.5
    d_abs = np.abs(d_t).max() if d_t.size else 0.0
    q = _exp_table(d_t, -rate)  # e^{-r d}
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        arr = np.empty(n_in)
        keys = np.empty(n_in)
        perm = np.empty(n_in, dtype=np.int64)
        pos = np.empty(n_in, dtype=np.int64)
        counts = np.empty(n_in + 1, dtype=np.int64)
        dec = np.empty(n_in)
        p = np.empty(n_in)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            t0, t1 = _finite_range(t_in[b])
            factor = rate * (t1 - t0 + 2.0 * d_abs) < _FACTOR_SPAN
            # Short rows start from the sample's input order: with delays added they are
            # nearly sorted, so the insertion sort moves few entries.
            order = np.argsort(t_in[b]) if n_in <= _INSERTION_SORT_MAX else pos
            # Finite inputs of this sample (a delay never removes a spike).
            n_fin = 0
            for i in range(n_in):
                if t_in[b, i] < np.inf:
                    pos[n_fin] = i
                    n_fin += 1
                    if factor:
                        p[i] = math.exp(-rate * (t_in[b, i] - t0))
            for j in range(n_out):
                if n_in <= _INSERTION_SORT_MAX:
                    for k in range(n_in):
                        arr[k] = t_in[b, order[k]] + d_t[j, order[k]]
                        perm[k] = order[k]
                    _insertion_sort(arr, perm, n_in)
                    n = n_fin
                    srt = arr
                else:
                    for k in range(n_fin):
                        arr[k] = t_in[b, pos[k]] + d_t[j, pos[k]]
                    _bucket_sort(arr, n_fin, keys, perm, counts)
                    for k in range(n_fin):
                        perm[k] = pos[perm[k]]  # back to input indices
                    n = n_fin
                    srt = keys
                if factor:  # dec_k = e^{-r T_k+1} / e^{-r T_k}
                    for k in range(n - 1):
                        dec[k] = (p[perm[k + 1]] * q[j, perm[k + 1]]) / (p[perm[k]] * q[j, perm[k]])
                    if n > 0:
                        dec[n - 1] = 0.0
                else:
                    _decays(srt, n, lambert, dec)
                out[b, j] = _scan(srt, perm, w_t[j], n, theta[b, j], lambert, dec)
    return out


@njit(parallel=True, cache=True)
def backward(t_in, w_t, d_t, has_d, t_out, g, lambert, min_slope, max_dw_norm, n_chunks):
    """dL/dt_in [B, N], dL/dW^T [M, N], dL/dd^T [M, N] (zeros when has_d is False). A
    (sample, neuron) whose largest |dL/dt * dt/dw_i| exceeds max_dw_norm adds nothing to dL/dW."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    rate = 1.0 if lambert else 0.5
    grad_t = np.zeros((n_b, n_in))
    gw = np.zeros((n_chunks, n_out, n_in))
    gd = np.zeros((n_chunks, n_out, n_in))
    d_abs = np.abs(d_t).max() if has_d else 0.0
    q = _exp_table(d_t, rate) if has_d else np.ones((1, 1))  # e^{r d}
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        kbuf = np.empty(n_in)
        dkbuf = np.empty(n_in)
        p = np.empty(n_in)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            t0, t1 = _finite_range(t_in[b])
            sample_ok = rate * (t1 - t0 + d_abs) < _FACTOR_SPAN
            if sample_ok:
                for i in range(n_in):  # e^{r (t_i - t0)}; unused where t_i = +inf
                    p[i] = math.exp(rate * (t_in[b, i] - t0)) if t_in[b, i] < np.inf else 0.0
            for j in range(n_out):
                t = t_out[b, j]
                gg = g[b, j]
                if not math.isfinite(t) or gg == 0.0:
                    continue
                factor = sample_ok and rate * (t - t0 + d_abs) < _FACTOR_SPAN
                r = math.exp(-rate * (t - t0)) if factor else 0.0
                slope = 0.0
                kmax = 0.0
                for i in range(n_in):
                    x = t_in[b, i] - t  # T_i - t*, causal where < 0
                    if has_d:
                        x += d_t[j, i]
                    if x < 0.0:
                        # e^{r x}, from the factor tables where they are safe
                        if factor:
                            erx = p[i] * r * (q[j, i] if has_d else 1.0)
                        else:
                            erx = math.exp(rate * x)
                        if lambert:  # k = s e^{-s}, k' = (1 - s) e^{-s}, s = -x
                            kbuf[i] = -x * erx
                            dkbuf[i] = erx + x * erx
                        else:  # k/2 = e^{-s/2} - e^{-s}, k'/2 = e^{-s} - e^{-s/2}/2
                            kbuf[i] = erx - erx * erx
                            dkbuf[i] = erx * erx - 0.5 * erx
                    else:
                        kbuf[i] = 0.0
                        dkbuf[i] = 0.0
                    slope += w_t[j, i] * dkbuf[i]
                    kmax = max(kmax, kbuf[i])
                f = gg / max(slope, min_slope)
                f_w = 0.0 if kmax * abs(f) > max_dw_norm else f
                for i in range(n_in):
                    if kbuf[i] != 0.0 or dkbuf[i] != 0.0:
                        da = w_t[j, i] * dkbuf[i] * f
                        grad_t[b, i] += da
                        gd[c, j, i] += da
                        gw[c, j, i] -= kbuf[i] * f_w
    return grad_t, gw.sum(axis=0), gd.sum(axis=0)
