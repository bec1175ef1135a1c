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

from snndelay.engine.kernels import LAMBERT_CODE

_INV_E_HI = 0.36787944117144233
_INV_E_LO = -1.2428753672788363e-17
_TWO_LN2 = 2.0 * math.log(2.0)
# Corless et al. (1996) branch-point series of W0 in p = sqrt(2 (e z + 1)); see lambertw.py.
_BRANCH = np.array([-1.0, 1.0, -1.0 / 3.0, 11.0 / 72.0, -43.0 / 540.0, 769.0 / 17280.0,
                    -221.0 / 8505.0, 680863.0 / 43545600.0, -1963.0 / 204120.0,
                    226287557.0 / 37623398400.0])


# Up to this many inputs an in-place insertion sort beats np.argsort (no allocations).
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
def _crossing(a, s, rst, lo, elo, hi, dec, theta, code):
    """The first upward crossing of theta in [lo, hi] of one window (its own frame, the window
    starts at 0), -1.0 when u stays below theta there. rst = sum over the neuron's earlier
    spikes t_j of e^{(t_j - T) / r} in this frame (docs/model.md section 11: the reset shifts
    one prefix sum); lo: 0 or the previous spike within this window, elo = e^{-lo} (ratio 1)
    or e^{-lo/2} (ratio 2); dec = e^{-hi} or e^{-hi/2}.
    Ratio 1: u = (A t - B') e^{-t} with B' = s + theta rst;
    ratio 2: u = y (A_m' - A y / 2), y = 2 e^{-t/2}, A_m' = s - theta rst / 2."""
    if a <= 0.0:  # A > 0 at every upward crossing (section 2)
        return -1.0
    if code == LAMBERT_CODE:
        # (rst = 0 before a neuron's first spike: the literal 0.0 of _scan folds away)
        b = s + theta * rst if rst != 0.0 else s
        t_e = min(max(1.0 + b / a, lo), hi)  # the peak 1 + B'/A clamped into the window
        e = dec if t_e == hi else (elo if t_e == lo else math.exp(-t_e))
        if (t_e * a - b) * e >= theta:
            b_over_a = b / a
            # z = -(theta/A) e^{B'/A} >= -1/e wherever the window reaches threshold
            z = max(-(theta / a) * math.exp(b_over_a), -1.0 / math.e)
            return max(b_over_a - lambertw0_scalar(z), lo)
        return -1.0
    am = s - 0.5 * theta * rst if rst != 0.0 else s
    y = min(max(am / a, 2.0 * dec), 2.0 * elo)
    if y * (am - 0.5 * a * y) >= theta:
        disc = max(am * am - 2.0 * theta * a, 0.0)
        return max(_TWO_LN2 - 2.0 * math.log((am + math.sqrt(disc)) / a), lo)
    return -1.0


@njit(cache=True)
def _decays(arr, n, code, dec):
    """dec[k] = e^{-(T_k+1 - T_k)} (ratio 1) or its square root (ratio 2); 0 after the last."""
    rate = 1.0 if code == LAMBERT_CODE else 0.5
    for k in range(n - 1):
        dec[k] = math.exp(-rate * (arr[k + 1] - arr[k]))
    if n > 0:
        dec[n - 1] = 0.0


@njit(cache=True, inline="always")
def _next_frame(a, s, hi, d, code):
    """The window sums carried into the next window's frame, hi later (d = its dec); after
    the last arrival (d = 0) nothing follows."""
    if code == LAMBERT_CODE:
        if hi < np.inf:
            s = (s - hi * a) * d
        return a * d, s
    return a * d * d, s * d


@njit(cache=True, inline="always")
def _scan(arr, idx, wrow, n, theta, code, dec, out, b, j):
    """Spike times of neuron j of sample b into out[b, j, :K] (+inf padded): arr[k] sorted arrival times
    (first n finite), weight of arrival k is wrow[idx[k]], dec from _decays. The sums live in
    the frame of the current window's start; after a spike the search continues in the same
    window from that spike (docs/model.md sections 2 and 11). K = 1: the first spike only."""
    n_max = out.shape[2]
    a = 0.0
    s = 0.0
    t = -1.0
    hi = np.inf
    first = n  # the window of the first spike
    # Up to the first spike there is no reset: a loop of its own, where the literal zeros
    # fold away (first-spike layers scan 1.5x faster than with the reset carried along).
    for k in range(n):
        hi = arr[k + 1] - arr[k] if k + 1 < n else np.inf
        a += wrow[idx[k]]
        if code != LAMBERT_CODE:
            s += wrow[idx[k]]
        t = _crossing(a, s, 0.0, 0.0, 1.0, hi, dec[k], theta, code)
        if t >= 0.0:
            first = k
            break
        a, s = _next_frame(a, s, hi, dec[k], code)
    k = first
    if n_max == 1:  # first-spike neurons: done
        out[b, j, 0] = arr[k] + t if t >= 0.0 else np.inf
        return
    cnt = 0
    if t >= 0.0:
        rate = 1.0 if code == LAMBERT_CODE else 0.5
        rst = 0.0  # sum over the spikes so far of e^{rate (t_j - T_k)}, in window k's frame
        while True:
            while t >= 0.0:  # a spike in window k; search on from it (u = 0 there)
                out[b, j, cnt] = arr[k] + t
                cnt += 1
                if cnt == n_max:
                    return
                ert = math.exp(rate * t)
                rst += ert
                t = _crossing(a, s, rst, t, 1.0 / ert, hi, dec[k], theta, code)
            a, s = _next_frame(a, s, hi, dec[k], code)
            rst *= dec[k]
            k += 1
            if k >= n:
                break
            hi = arr[k + 1] - arr[k] if k + 1 < n else np.inf
            a += wrow[idx[k]]
            if code != LAMBERT_CODE:
                s += wrow[idx[k]]
            t = _crossing(a, s, rst, 0.0, 1.0, hi, dec[k], theta, code)
    for c in range(cnt, n_max):
        out[b, j, c] = np.inf


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


# numba's np.argsort sorts rows of up to this many entries by a stable insertion sort (its
# quicksort partitions longer ones): below it _order_into gives the very same order.
_ARGSORT_INSERTION_MAX = 15


@njit(cache=True)
def _order_into(row, keys, order, limit):
    """The positions of row's entries in ascending order into order (keys: scratch space of
    the same length): for rows of up to `limit` entries by a stable insertion sort in place
    (a per-sample np.argsort allocates, which cost more than a Yin-Yang row's whole scan),
    np.argsort above."""
    n = row.shape[0]
    if n > limit:
        order[:] = np.argsort(row)
        return
    for i in range(n):
        keys[i] = row[i]
        order[i] = i
    _insertion_sort(keys, order, n)


@njit(parallel=True, cache=True)
def forward_shared(t_in, w_t, theta, code, max_spikes, n_chunks):
    """All neurons of a sample share the arrival order: t_in [B, N], w_t [M, N], theta [B, M];
    one sort and one set of window decays per sample. Spike times [B, M, max_spikes]."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out, max_spikes))
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        dec = np.empty(n_in)
        arr = np.empty(n_in)
        perm = np.empty(n_in, dtype=np.int64)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            # The sample's order decides the sums' order for simultaneous inputs (their
            # rounding): np.argsort's own order, also where the sort runs in place.
            _order_into(t_in[b], arr, perm, _ARGSORT_INSERTION_MAX)
            for k in range(n_in):
                arr[k] = t_in[b, perm[k]]
            n_fin = 0
            while n_fin < n_in and arr[n_fin] < np.inf:
                n_fin += 1
            _decays(arr, n_fin, code, dec)  # shared by all neurons of the sample
            for j in range(n_out):
                _scan(arr, perm, w_t[j], n_fin, theta[b, j], code, dec, out, b, j)
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
def forward_synaptic(t_in, d_t, w_t, theta, code, max_spikes, n_chunks):
    """Per-synapse delays: each neuron sorts its own arrivals t_in[b, i] + d_t[j, i]
    (insertion sort for short rows, bucket sort otherwise). Samples are split into n_chunks
    contiguous chunks, one per thread, each with its own scratch buffers. Spike times
    [B, M, max_spikes]."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.empty((n_b, n_out, max_spikes))
    rate = 1.0 if code == LAMBERT_CODE else 0.5
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
        order = np.empty(n_in, dtype=np.int64)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            t0, t1 = _finite_range(t_in[b])
            factor = rate * (t1 - t0 + 2.0 * d_abs) < _FACTOR_SPAN
            # Short rows start from the sample's input order: with delays added they are
            # nearly sorted, so the insertion sort moves few entries.
            if n_in <= _INSERTION_SORT_MAX:  # a starting order only: sorted in place
                _order_into(t_in[b], keys, order, _INSERTION_SORT_MAX)
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
                    _decays(srt, n, code, dec)
                _scan(srt, perm, w_t[j], n, theta[b, j], code, dec, out, b, j)
    return out


@njit(parallel=True, cache=True)
def backward(t_in, w_t, d_t, has_d, t_out, g, theta, code, min_slope, max_dw_norm, n_chunks):
    """dL/dt_in [B, N], dL/dW^T [M, N], dL/dd^T [M, N] (zeros when has_d is False) from
    dL/dt_out g [B, M, K] at the spike trains t_out [B, M, K] (sorted, +inf padded); theta
    [B, M] (the reset's size, used when K > 1). Per neuron: the slopes u'(t_k) including the
    reset kernel of its earlier spikes, then the adjoints lambda_k from the last spike to the
    first as a running suffix sum (docs/model.md sections 4 and 11). A spike whose largest
    |lambda_k dt_k/dw_i| exceeds max_dw_norm adds nothing to dL/dW."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    n_k = t_out.shape[2]
    rate = 1.0 if code == LAMBERT_CODE else 0.5
    # c theta / r with the kernel's scale c (1 for ratio 1, 1/2 for ratio 2): the reset
    # kernel's slope in the units of psp_scaled
    coef = 1.0 if code == LAMBERT_CODE else 0.25
    grad_t = np.zeros((n_b, n_in))
    gw = np.zeros((n_chunks, n_out, n_in))
    gd = np.zeros((n_chunks, n_out, n_in))
    d_abs = np.abs(d_t).max() if has_d else 0.0
    q = _exp_table(d_t, rate) if has_d else np.ones((1, 1))  # e^{r d}
    per = (n_b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        kbuf = np.empty((n_k, n_in))
        dkbuf = np.empty((n_k, n_in))
        p = np.empty(n_in)
        mu = np.empty(n_k)
        mu_w = np.empty(n_k)
        for b in range(c * per, min(n_b, (c + 1) * per)):
            t0, t1 = _finite_range(t_in[b])
            sample_ok = rate * (t1 - t0 + d_abs) < _FACTOR_SPAN
            if sample_ok:
                for i in range(n_in):  # e^{r (t_i - t0)}; unused where t_i = +inf
                    p[i] = math.exp(rate * (t_in[b, i] - t0)) if t_in[b, i] < np.inf else 0.0
            for j in range(n_out):
                if n_k == 1:
                    if not math.isfinite(t_out[b, j, 0]) or g[b, j, 0] == 0.0:
                        continue
                    n_spk = 1
                else:
                    n_spk = 0
                    any_g = False
                    while n_spk < n_k and math.isfinite(t_out[b, j, n_spk]):
                        any_g |= g[b, j, n_spk] != 0.0
                        n_spk += 1
                    if not any_g:  # silent, or no gradient reaches this neuron
                        continue
                reset = 0.0  # sum_{m<k} e^{-r (t_k - t_m)}
                for k in range(n_spk):
                    t = t_out[b, j, k]
                    if k > 0:
                        reset = (reset + 1.0) * math.exp(-rate * (t - t_out[b, j, k - 1]))
                    factor = sample_ok and rate * (t - t0 + d_abs) < _FACTOR_SPAN
                    r = math.exp(-rate * (t - t0)) if factor else 0.0
                    slope = 0.0
                    kmax = 0.0
                    for i in range(n_in):
                        x = t_in[b, i] - t  # T_i - t_k, causal where < 0
                        if has_d:
                            x += d_t[j, i]
                        if x < 0.0:
                            # e^{r x}, from the factor tables where they are safe
                            if factor:
                                erx = p[i] * r * (q[j, i] if has_d else 1.0)
                            else:
                                erx = math.exp(rate * x)
                            if code == LAMBERT_CODE:  # k = s e^{-s}, k' = (1 - s) e^{-s}, s = -x
                                kbuf[k, i] = -x * erx
                                dkbuf[k, i] = erx + x * erx
                            else:  # k/2 = e^{-s/2} - e^{-s}, k'/2 = e^{-s} - e^{-s/2}/2
                                kbuf[k, i] = erx - erx * erx
                                dkbuf[k, i] = erx * erx - 0.5 * erx
                        else:
                            kbuf[k, i] = 0.0
                            dkbuf[k, i] = 0.0
                        slope += w_t[j, i] * dkbuf[k, i]
                        kmax = max(kmax, kbuf[k, i])
                    if k > 0:
                        slope += coef * theta[b, j] * reset
                    mu[k] = max(slope, min_slope)  # the slope, until the adjoints replace it
                    mu_w[k] = kmax
                if n_spk == 1:  # one spike (every first-spike layer): dL/dt / u', no recursion
                    f = g[b, j, 0] / mu[0]
                    f_w = 0.0 if mu_w[0] * abs(f) > max_dw_norm else f
                    for i in range(n_in):
                        if kbuf[0, i] != 0.0 or dkbuf[0, i] != 0.0:
                            da = w_t[j, i] * dkbuf[0, i] * f
                            grad_t[b, i] += da
                            gd[c, j, i] += da
                            gw[c, j, i] -= kbuf[0, i] * f_w
                    continue
                # lambda_k = g_k + c theta / r * sum_{m>k} mu_m e^{-r (t_m - t_k)}: suffix sum
                suffix = 0.0
                for k in range(n_spk - 1, -1, -1):
                    lam = g[b, j, k] + coef * theta[b, j] * suffix if k < n_spk - 1 else g[b, j, k]
                    f = lam / mu[k]
                    mu[k] = f
                    mu_w[k] = 0.0 if mu_w[k] * abs(f) > max_dw_norm else f
                    if k > 0:
                        suffix = (suffix + f) * math.exp(
                            -rate * (t_out[b, j, k] - t_out[b, j, k - 1]))
                for i in range(n_in):
                    da = 0.0
                    dw = 0.0
                    for k in range(n_spk):
                        if kbuf[k, i] != 0.0 or dkbuf[k, i] != 0.0:
                            da += w_t[j, i] * dkbuf[k, i] * mu[k]
                            dw += kbuf[k, i] * mu_w[k]
                    if da != 0.0 or dw != 0.0:
                        grad_t[b, i] += da
                        gd[c, j, i] += da
                        gw[c, j, i] -= dw
    return grad_t, gw.sum(axis=0), gd.sum(axis=0)


@njit(cache=True)
def nominal_scale(t_in, w_t, d_t, has_d, t_out, theta, min_slope):
    """[B, M] factors max(u'(t*), min_slope) / u'_nom (tau_m = tau_s;
    backward.nominal_slope_scale, same mathematics): over the causal set at the measured t*,
    in the frame x = T - t*, A' = sum w e^x, B' = sum w x e^x; u'(t*) = A' + B',
    u'_nom = A' (1 + W0(z)), z = -(theta / A') e^{B'/A'}; 0 where z < -1/e or the neuron is
    silent."""
    n_b, n_in = t_in.shape
    n_out = w_t.shape[0]
    out = np.zeros((n_b, n_out))
    for b in range(n_b):
        for j in range(n_out):
            ts = t_out[b, j]
            if not math.isfinite(ts):
                continue
            a = 0.0
            s = 0.0
            for i in range(n_in):
                x = t_in[b, i] - ts
                if has_d:
                    x += d_t[j, i]
                if x < 0.0:  # causal (+inf inputs are not)
                    e = w_t[j, i] * math.exp(x)
                    a += e
                    s += e * x
            if a <= 0.0:
                continue
            z = -(theta / a) * math.exp(s / a)
            if z < -(_INV_E_HI + _INV_E_LO):
                continue
            den = a * (1.0 + lambertw0_scalar(z))
            if den > 0.0:
                out[b, j] = max(a + s, min_slope) / den
    return out
