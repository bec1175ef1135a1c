"""Independent references for the engine's tests: a fine-step ODE integration of the LIF neuron
written from docs/model.md section 1 only (no closed forms), and random layer builders."""

from __future__ import annotations

import math

import numpy as np
import torch

DELAY_KINDS = ("none", "axonal", "dendritic", "synaptic")


def delay_shape(kind: str, n_in: int, n_out: int) -> tuple[int, int] | None:
    return {"none": None, "axonal": (n_in, 1), "dendritic": (1, n_out),
            "synaptic": (n_in, n_out)}[kind]


def random_layer(seed: int, batch: int, n_in: int, n_out: int, *, kind: str = "none",
                 spikes: int = 1, w_mean: float = 0.6, w_std: float = 1.0, requires_grad=False):
    """Random inputs in [0.15, 2], mixed-sign weights, delays in (0, 1); multi-spike inputs
    have S spikes per channel with some missing (+inf)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, n_in) if spikes == 1 else (batch, n_in, spikes)
    t_in = 0.15 + 1.85 * torch.rand(shape, generator=g, dtype=torch.float64)
    if spikes > 1:
        t_in = torch.sort(3.0 * torch.rand(shape, generator=g, dtype=torch.float64), dim=-1).values
        t_in[torch.rand(shape, generator=g) < 0.25] = math.inf
    w = w_mean + w_std * torch.randn(n_in, n_out, generator=g, dtype=torch.float64)
    ds = delay_shape(kind, n_in, n_out)
    d = None if ds is None else torch.rand(ds, generator=g, dtype=torch.float64)
    if requires_grad:
        t_in.requires_grad_()
        w.requires_grad_()
        if d is not None:
            d.requires_grad_()
    return t_in, w, d


def arrivals(t_in: torch.Tensor, w: torch.Tensor, d: torch.Tensor | None):
    """Per postsynaptic neuron (b, j): arrival times and weights, [B, M, K] numpy arrays."""
    t = t_in.detach().numpy()
    if t.ndim == 2:
        t = t[:, :, None]
    n_b, n_in, n_s = t.shape
    n_out = w.shape[1]
    dd = np.zeros((n_in, n_out)) if d is None else np.broadcast_to(d.detach().numpy(), (n_in, n_out))
    arr = t[:, :, :, None] + dd[None, :, None, :]  # [B, N, S, M]
    ww = np.broadcast_to(w.detach().numpy()[None, :, None, :], arr.shape)
    arr = arr.transpose(0, 3, 1, 2).reshape(n_b, n_out, n_in * n_s)
    ww = ww.transpose(0, 3, 1, 2).reshape(n_b, n_out, n_in * n_s)
    return arr, ww


def ode_first_spikes(arr: np.ndarray, ww: np.ndarray, theta: float, ratio: float, *,
                     dt: float = 1e-4, t_end: float | None = None, block: int = 2000):
    """First threshold crossing of du/dt = -g u + I, I = sum_i w_i H(t - T_i) e^{-(t - T_i)}
    (g = 1/ratio, tau_s = 1) for every neuron, by exponential-Euler steps of dt with linear
    interpolation at the crossing. Arrivals enter at the first grid point after them with the
    amplitude they have decayed to there.

    Returns (t_spike, slope_at_crossing, max_u), each shaped like arr[..., 0]; t_spike = inf
    for no crossing before t_end; max_u is the largest u seen up to the crossing (or t_end).
    """
    shape = arr.shape[:-1]
    arr = arr.reshape(-1, arr.shape[-1])
    ww = ww.reshape(-1, ww.shape[-1])
    n = arr.shape[0]
    fin = np.isfinite(arr)
    if t_end is None:
        t_end = (arr[fin].max() if fin.any() else 0.0) + 20.0
    steps = int(math.ceil(t_end / dt))
    g = 1.0 / ratio
    a_u = math.exp(-g * dt)
    a_i = math.exp(-dt)
    # Exact response of u over one step to a current I_k e^{-(t - t_k)} (the current decays
    # exactly; only the arrival grid is approximate).
    b_u = dt * math.exp(-dt) if ratio == 1.0 else (math.exp(-g * dt) - math.exp(-dt)) / (1.0 - g)
    # Injection events: (step index, neuron, amplitude at that grid point).
    neuron, k = np.nonzero(fin)
    step = np.ceil(arr[neuron, k] / dt).astype(np.int64)
    amp = ww[neuron, k] * np.exp(-(step * dt - arr[neuron, k]))
    order = np.argsort(step, kind="stable")
    step, neuron, amp = step[order], neuron[order], amp[order]
    bounds = np.searchsorted(step, np.arange(steps + 2))
    u = np.zeros(n)
    cur = np.zeros(n)
    t_spike = np.full(n, np.inf)
    slope = np.zeros(n)
    max_u = np.full(n, -np.inf)
    done = np.zeros(n, dtype=bool)
    hist = np.empty((block + 1, n))
    for start in range(0, steps, block):
        stop = min(steps, start + block)
        hist[0] = u
        for s in range(start, stop):
            lo, hi = bounds[s], bounds[s + 1]
            if hi > lo:
                np.add.at(cur, neuron[lo:hi], amp[lo:hi])
            u = a_u * u + b_u * cur
            cur = a_i * cur
            hist[s - start + 1] = u
        h = hist[: stop - start + 1]
        above = h[1:] >= theta
        hit = above.any(axis=0) & ~done
        if hit.any():
            idx = np.argmax(above, axis=0)
            cols = np.nonzero(hit)[0]
            i0 = idx[cols]
            u0, u1 = h[i0, cols], h[i0 + 1, cols]
            frac = (theta - u0) / (u1 - u0)
            t_spike[cols] = (start + i0 + frac) * dt
            slope[cols] = (u1 - u0) / dt
            for c, i in zip(cols, i0):
                max_u[c] = max(max_u[c], h[: i + 1, c].max())
        open_ = ~done & ~hit
        max_u[open_] = np.maximum(max_u[open_], h[:, open_].max(axis=0))
        done |= hit
        if done.all():
            break
    return t_spike.reshape(shape), slope.reshape(shape), max_u.reshape(shape)


def assert_same_times(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    """Same neurons silent (+inf), and the firing ones within atol."""
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    assert torch.equal(fa, fb), "different neurons fire"
    assert not torch.isnan(a).any() and not torch.isnan(b).any()
    if fa.any():
        assert torch.max(torch.abs(a[fa] - b[fa])).item() <= atol


def autograd_network(net, t_in: torch.Tensor, max_dw_norm: float = float("inf")) -> list[torch.Tensor]:
    """A network's spike times composed in the test from the engine's public autograd entry
    point, layer by layer: bias column, the delay transform d(p) in torch (sigmoid or clamp,
    shared groups) and first_spike_times. Gradients flow to net's parameters by autograd, an
    independent check of Network.backward's hand-chained gradients and Delays.vjp."""
    from snndelay.engine import first_spike_times

    out, t = [], t_in
    for layer in net.layers:
        if layer.bias_time is not None:
            col = torch.full((t.shape[0], 1) + tuple(t.shape[2:]), float("inf"), dtype=t.dtype)
            col.view(t.shape[0], -1)[:, 0] = layer.bias_time
            t = torch.cat([t, col], dim=1)
        d = None
        if layer.delays is not None:
            spec, raw = layer.delays.spec, layer.delays.raw
            p = spec.shift + spec.scale * torch.sigmoid(raw) if spec.positivity == "sigmoid" else raw
            n_rows, n_out = layer.weight.shape
            strided = spec.group_layout == "strided"  # neuron i takes delay i mod (N / g)
            if spec.type == "axonal":
                d = p.repeat(spec.group_size, 1) if strided else \
                    p.repeat_interleave(spec.group_size, dim=0)[:n_rows]
            elif spec.type == "dendritic":
                d = p.repeat(1, spec.group_size) if strided else \
                    p.repeat_interleave(spec.group_size, dim=1)[:, :n_out]
            else:
                d = p
        t = first_spike_times(t, layer.weight, d, tau_mem=net.tau_mem, tau_syn=net.tau_syn,
                              threshold=net.threshold, max_dw_norm=max_dw_norm)
        out.append(t)
    return out


def _ode_trains_kernel():
    """The fine-step integration with reset, compiled (a Python loop over 10^5 steps per neuron
    would take minutes)."""
    from numba import njit

    @njit(cache=True)
    def run(arr, ww, theta, ratio, max_spikes, dt, t_end):
        n, m = arr.shape
        g = 1.0 / ratio
        a_u = math.exp(-g * dt)
        a_i = math.exp(-dt)
        b_u = dt * math.exp(-dt) if ratio == 1.0 else (math.exp(-g * dt) - math.exp(-dt)) / (1.0 - g)
        out = np.full((n, max_spikes), np.inf)
        slope = np.zeros((n, max_spikes))
        peak_gap = np.full((n, max_spikes), np.inf)  # how close u came to theta without a spike
        steps = int(math.ceil(t_end / dt))
        for p in range(n):
            order = np.argsort(arr[p])
            u = 0.0
            cur = 0.0
            nxt = 0
            cnt = 0
            for s in range(steps):
                t1 = (s + 1) * dt
                # Arrivals in (s dt, t1]: their current from T_k to t1 (decayed), and what it
                # added to u over that part of the step (the step's exact response).
                inj = 0.0
                inj_u = 0.0
                while nxt < m and arr[p, order[nxt]] <= t1:
                    tk = arr[p, order[nxt]]
                    rem = t1 - tk
                    inj += ww[p, order[nxt]] * math.exp(-rem)
                    if ratio == 1.0:
                        inj_u += ww[p, order[nxt]] * rem * math.exp(-rem)
                    else:
                        inj_u += ww[p, order[nxt]] * (math.exp(-g * rem) - math.exp(-rem)) / (1.0 - g)
                    nxt += 1
                u_new = a_u * u + b_u * cur + inj_u
                cur = a_i * cur + inj
                if u_new >= theta:
                    frac = (theta - u) / (u_new - u)
                    out[p, cnt] = (s + frac) * dt
                    slope[p, cnt] = (u_new - u) / dt
                    # Subtract theta at the crossing; it decays with tau_m to the grid point.
                    u_new -= theta * math.exp(-g * (1.0 - frac) * dt)
                    cnt += 1
                    if cnt == max_spikes:
                        break
                elif cnt < max_spikes and u_new < u and u >= u_new and theta - u < peak_gap[p, cnt]:
                    peak_gap[p, cnt] = theta - u  # a local maximum below threshold
                u = u_new
        return out, slope, peak_gap

    return run


_ODE_TRAINS = None


def ode_spike_trains(arr: np.ndarray, ww: np.ndarray, theta: float, ratio: float,
                     max_spikes: int, *, dt: float = 1e-4, t_end: float | None = None):
    """Spike trains of du/dt = -u / ratio + I with u -> u - theta at each crossing (docs/model.md
    section 11), by exponential-Euler steps of dt (the scheme of ode_first_spikes, with arrivals
    entering at their own time within a step; no closed form for the crossings). arr, ww: [..., K] arrival times and weights per neuron.

    Returns (times [..., max_spikes] (+inf padded), slope at each crossing, peak_gap: how far
    below theta the highest local maximum before the next spike stayed)."""
    global _ODE_TRAINS
    if _ODE_TRAINS is None:
        _ODE_TRAINS = _ode_trains_kernel()
    shape = arr.shape[:-1]
    a = np.ascontiguousarray(arr.reshape(-1, arr.shape[-1]))
    w = np.ascontiguousarray(ww.reshape(-1, ww.shape[-1]))
    fin = np.isfinite(a)
    if t_end is None:
        t_end = (a[fin].max() if fin.any() else 0.0) + 30.0
    t, s, gap = _ODE_TRAINS(a, w, float(theta), float(ratio), int(max_spikes), dt, float(t_end))
    return (t.reshape(shape + (max_spikes,)), s.reshape(shape + (max_spikes,)),
            gap.reshape(shape + (max_spikes,)))


def exact_spike_train(arr: np.ndarray, ww: np.ndarray, theta: float, ratio: float,
                      approx: np.ndarray, width: float = 5e-3) -> np.ndarray:
    """Refine approximate spike times of one neuron to machine precision: spike k is the root of
    u_k(t) = sum_i w_i k(t - T_i) - theta sum_{j<k} e^{-(t - t_j)/ratio} = theta bracketed
    within +-width of approx[k] (Brent's method on the direct sum, no prefix sums, no Lambert W).
    NaN where the bracket holds no sign change (grazing crossings)."""
    from scipy.optimize import brentq

    g = 1.0 / ratio
    fin = np.isfinite(arr)
    a, w = arr[fin], ww[fin]

    def u(t: float, prev: list[float]) -> float:
        s = np.maximum(t - a, 0.0)
        if ratio == 1.0:
            psp = s * np.exp(-s)
        else:
            psp = (np.exp(-g * s) - np.exp(-s)) / (1.0 - g)
        psp = np.where(t > a, psp, 0.0)
        return float((w * psp).sum() - theta * sum(math.exp(-g * (t - tj)) for tj in prev))

    out = np.full(len(approx), np.inf)
    prev: list[float] = []
    for k, tk in enumerate(approx):
        if not np.isfinite(tk):
            break
        lo = max(tk - width, prev[-1] + 1e-9 if prev else 0.0)
        hi = tk + width
        f_lo, f_hi = u(lo, prev) - theta, u(hi, prev) - theta
        if not (f_lo < 0.0 < f_hi):
            out[k:] = np.nan
            break
        out[k] = brentq(lambda t: u(t, prev) - theta, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=200)
        prev.append(out[k])
    return out


def central_differences(net, loss, samples: int, h: float = 1e-6):
    """(name, index, central difference of loss(), the parameter's .grad) for about `samples`
    entries of every parameter of net, each perturbed by +-h in place and restored."""
    out = []
    for name, p in net.named_parameters():
        flat, grad = p.data.view(-1), p.grad.reshape(-1)
        for k in range(0, flat.numel(), max(1, flat.numel() // samples)):
            old = float(flat[k])
            flat[k] = old + h
            up = loss()
            flat[k] = old - h
            down = loss()
            flat[k] = old
            out.append((name, k, (up - down) / (2 * h), float(grad[k])))
    return out
