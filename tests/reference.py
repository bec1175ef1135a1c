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
            if spec.type == "axonal":
                d = p.repeat_interleave(spec.group_size, dim=0)[:n_rows]
            elif spec.type == "dendritic":
                d = p.repeat_interleave(spec.group_size, dim=1)[:, :n_out]
            else:
                d = p
        t = first_spike_times(t, layer.weight, d, tau_mem=net.tau_mem, tau_syn=net.tau_syn,
                              threshold=net.threshold, max_dw_norm=max_dw_norm)
        out.append(t)
    return out
