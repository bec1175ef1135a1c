"""Forward pass: exact first-spike times from sorted prefix sums (docs/model.md section 2).

For each (sample, neuron) the arrivals are sorted; on the window [T_(n), T_(n+1)) the potential
is fixed by prefix sums over the first n arrivals (the kernel says which). The first window
whose potential reaches threshold holds the spike, and the kernel's closed form gives its time.
Work is a sort plus O(N_in) per (sample, neuron); memory is O(chunk * N_in * N_out).

Layouts (C samples of a chunk, N arrivals in sorted order, M output neurons):
- shared order (no delays, or delays folded into the input times): the sort runs once per
  sample; arrival times are [C, N, 1], weights gathered by sample order [C, N, M], axis 1;
- per-neuron order (synaptic delays): arrival times and weights are [C, M, N], axis 2.
The kernel's formulas are elementwise, so they run unchanged on either layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snndelay.engine import _impl
from snndelay.engine.kernels import Kernel

# Prefix sums are formed in one frame per row as long as arrivals span at most this many tau_s
# (e^300 leaves ~1e170 of headroom for weights and squares); longer spans switch to sums in
# the frame of each window, formed in the log domain.
SAFE_SPAN = 300.0


def _rows_per_chunk(batch: int, per_row: int, chunk_elems: int | None) -> int:
    """Samples per chunk: chunk_elems work elements (None: the engine's current setting)."""
    elems = _impl.chunk_elems() if chunk_elems is None else chunk_elems
    return max(1, min(batch, elems // max(per_row, 1)))


def _frame_sums(kernel: Kernel, w: torch.Tensor, tr: torch.Tensor, ax: int) -> torch.Tensor:
    """Prefix sums sum_{k<=n} w_k T_k^[time] e^{rate T_k} in the row frame (tr = T - t0 >= 0,
    +inf for missing arrivals, which contribute 0), stacked over the kernel's terms."""
    tr_neg = tr.nan_to_num(posinf=float("-inf"))  # e^{rate * -inf} = 0 for missing arrivals
    cache: dict[float, torch.Tensor] = {}
    factors = []
    for rate, with_time in kernel.terms:
        if rate not in cache:
            cache[rate] = torch.exp(rate * tr_neg)
        f = cache[rate]
        factors.append(f * tr.nan_to_num(posinf=0.0) if with_time else f)
    # One product and one in-place cumsum_ for all terms (cumsum_ is several times faster
    # than torch.cumsum on CPU, torch 2.13).
    return (torch.stack(factors) * w).cumsum_(ax + 1)


def _window_sums_stable(kernel: Kernel, w: torch.Tensor, tr: torch.Tensor, fin: torch.Tensor,
                        ax: int) -> torch.Tensor:
    """The same prefix sums in the frame of each window's own start T_(n), for long spans.

    sum_k w_k e^{rate (T_k - T_n)} is split by the sign of w and formed with logcumsumexp, so no
    exponential exceeds the weights' magnitude. A with-time term shifts as
    sum w (T_k - T_n) e^{...} = sum w T_k e^{...} - T_n sum w e^{...}.
    """
    ninf = torch.tensor(float("-inf"), dtype=tr.dtype, device=tr.device)
    logw = torch.log(w.abs())
    tr0 = tr.masked_fill(~fin, 0.0)
    logt = torch.log(tr0)

    def signed_sum(logmag: torch.Tensor, rate: float) -> torch.Tensor:
        logmag = torch.where(fin, logmag, ninf)
        pos = torch.logcumsumexp(torch.where(w > 0, logmag, ninf), dim=ax)
        neg = torch.logcumsumexp(torch.where(w < 0, logmag, ninf), dim=ax)
        return torch.exp(pos - rate * tr0) - torch.exp(neg - rate * tr0)

    sums = []
    for rate, with_time in kernel.terms:
        plain = signed_sum(logw + rate * tr0, rate)
        if with_time:
            sums.append(signed_sum(logw + logt + rate * tr0, rate) - tr0 * plain)
        else:
            sums.append(plain)
    return torch.stack(sums)


def _selected_window_sums(kernel: Kernel, w: torch.Tensor, tr: torch.Tensor, fin: torch.Tensor,
                          first: torch.Tensor, ax: int) -> tuple[torch.Tensor, ...]:
    """Sums of the selected window n* formed directly in its own frame T_(n*):
    sum_{k<=n*} w_k (T_k - T_n*)^[time] e^{rate (T_k - T_n*)}. Every exponent is <= 0 and no
    large with-time terms cancel, so the crossing keeps full precision after long spans."""
    shape = torch.broadcast_shapes(w.shape, tr.shape)
    t_n = torch.gather(tr.expand(shape), ax, first)
    pos = torch.arange(tr.shape[ax], device=tr.device).view((-1,) + (1,) * (len(shape) - 1 - ax))
    causal = (pos <= first) & fin
    diff = torch.where(causal, tr - t_n, torch.zeros_like(tr))
    sums = []
    for rate, with_time in kernel.terms:
        f = torch.where(causal, torch.exp(rate * diff), torch.zeros_like(diff))
        sums.append((w * (f * diff if with_time else f)).sum(dim=ax))
    return tuple(sums)


def _span_bound(t_in: torch.Tensor, d_syn: torch.Tensor | None) -> float:
    """An upper bound on how many tau_s any neuron's arrivals span (-inf without arrivals):
    latest finite input minus earliest input over the batch, plus the spread of the delays."""
    span = t_in.nan_to_num(posinf=float("-inf")).amax() - t_in.amin()
    if d_syn is not None:
        span = span + (d_syn.amax() - d_syn.amin())
    return float(span)


def solve_first_spikes(t_in: torch.Tensor, weights: torch.Tensor, d_syn: torch.Tensor | None,
                       theta: torch.Tensor, kernel: Kernel, *, stable: bool = False,
                       chunk_elems: int | None = None) -> torch.Tensor:
    """First spike times [B, M] (tau_s units, +inf = silent) of a layer.

    t_in [B, N] arrival-ready input times (+inf = no spike), weights [N, M], d_syn None or
    [N, M] per-synapse delays, theta [B, M] > 0. stable=True forces the per-window log-domain
    sums (otherwise used only when arrivals may span more than SAFE_SPAN).
    """
    return solve_spike_trains(t_in, weights, d_syn, theta, kernel, 1, stable=stable,
                              chunk_elems=chunk_elems)[:, :, 0]


def solve_spike_trains(t_in: torch.Tensor, weights: torch.Tensor, d_syn: torch.Tensor | None,
                       theta: torch.Tensor, kernel: Kernel, max_spikes: int, *,
                       stable: bool = False, chunk_elems: int | None = None) -> torch.Tensor:
    """Spike times [B, M, max_spikes] (tau_s units, sorted, +inf padded) of a layer whose
    neurons subtract theta at each spike (docs/model.md section 11; max_spikes = 1: the first
    spike, section 2). Arguments as solve_first_spikes.

    Spike k is the first window, ending after spike k-1, whose potential reaches theta from
    max(window start, t_(k-1)); the earlier spikes' reset shifts one prefix sum by
    theta * sum_j e^{(t_j - origin) / r}. One vectorised pass over the windows per spike.
    """
    batch, n_in = t_in.shape
    n_out = weights.shape[1]
    inf = float("inf")
    if batch == 0 or n_in == 0 or n_out == 0:
        return torch.full((batch, n_out, max_spikes), inf, dtype=t_in.dtype, device=t_in.device)
    # The crossing is invariant to scaling (w, theta) together: normalise each neuron's
    # weights to max |w| = 1 so huge or tiny weights cannot overflow the prefix sums.
    scale = weights.abs().amax(dim=0).clamp_(min=torch.finfo(weights.dtype).tiny)
    w_n = weights / scale
    theta = theta / scale
    n_fin = torch.isfinite(t_in).sum(dim=1).tolist()  # arrivals per sample (delays keep them)
    long_span = stable or _span_bound(t_in, d_syn) > SAFE_SPAN
    shared = d_syn is None
    ax = 1 if shared else 2  # the arrival axis
    if shared:
        ts, order = torch.sort(t_in, dim=1)
    else:
        assert d_syn is not None
        w_n = w_n.t().contiguous()  # [M, N]
        d_t = d_syn.t().contiguous()
    rows = _rows_per_chunk(batch, n_in * n_out, chunk_elems)
    outs = []
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        out = torch.full((b1 - b0, n_out, max_spikes), inf, dtype=t_in.dtype,
                         device=t_in.device)
        outs.append(out)
        # Non-spiking inputs sort last; drop the arrivals that no row of the chunk has.
        n_max = max(n_fin[b0:b1])
        if n_max == 0:
            continue
        if shared:
            t = ts[b0:b1, :n_max, None]  # [C, N, 1]
            idx = order[b0:b1, :n_max].reshape(-1)
            w = torch.index_select(w_n, 0, idx).view(b1 - b0, n_max, n_out)
            th = theta[b0:b1, None, :]
            pad: tuple[int, ...] = (0, 0, 0, 1)
        else:
            t, idx = torch.sort(t_in[b0:b1, None, :] + d_t, dim=2)  # [C, M, N]
            t, idx = t[..., :n_max], idx[..., :n_max]
            w = torch.gather(w_n.expand(b1 - b0, -1, -1), 2, idx)
            th = theta[b0:b1, :, None]
            pad = (0, 1)
        t0 = t.narrow(ax, 0, 1).nan_to_num(posinf=0.0)  # a row without arrivals never fires
        tr = t - t0  # >= 0; +inf for missing arrivals
        nxt = F.pad(tr.narrow(ax, 1, n_max - 1), pad, value=inf)  # each window's end
        # The frame each window's sums are formed in: the row's (t0) or the window's own start.
        origin: torch.Tensor | float = 0.0
        if long_span:
            fin = torch.isfinite(tr)
            origin = tr.nan_to_num(posinf=0.0)
            sums = _window_sums_stable(kernel, w, tr, fin, ax)
            lo, hi = kernel.bound(tr - origin), kernel.bound(nxt - origin)
        else:
            sums = _frame_sums(kernel, w, tr, ax)
            lo = kernel.bound(tr)
            hi = F.pad(lo.narrow(ax, 1, n_max - 1), pad, value=kernel.bound_inf)
        th_k = th.squeeze(ax)
        start = tr
        t_prev = log_r = None  # the previous spike and log sum_j e^{rate t_j}, rel. to t0
        for k in range(max_spikes):
            sums_k, lo_k = sums, lo
            if t_prev is not None and log_r is not None:
                tp = t_prev.unsqueeze(ax)
                start = torch.maximum(tr, tp)  # a window is searched from the previous spike on
                lo_k = kernel.bound(start - origin)
                r = torch.exp((log_r.unsqueeze(ax) - kernel.reset_rate * origin).clamp_(max=700.0))
                sums_k = kernel.with_reset(sums, th, r)
            # Windows past the last arrival have lo = hi = bound(inf): they never reach threshold.
            reach = kernel.reaches(sums_k, lo_k, hi, th)
            if t_prev is not None:
                reach &= nxt > t_prev.unsqueeze(ax)  # windows that end after the previous spike
            has, first = reach.view(torch.uint8).max(dim=ax, keepdim=True)  # first that fires
            shape = reach.shape
            if isinstance(origin, torch.Tensor):  # long spans: re-form the chosen window's
                # sums in its own frame (full precision)
                sel = _selected_window_sums(kernel, w, tr, fin, first, ax)
                t_org = torch.gather(origin.expand(shape), ax, first).squeeze(ax)
                if log_r is not None:
                    r_sel = torch.exp((log_r - kernel.reset_rate * t_org).clamp_(max=700.0))
                    sel = tuple(kernel.with_reset(torch.stack(sel), th_k, r_sel).unbind(0))
                t_win = kernel.crossing(sel, th_k) + t_org
            else:
                picked = torch.gather(sums_k.expand((len(kernel.terms),) + shape), ax + 1,
                                      first.expand((len(kernel.terms),) + first.shape)
                                      ).squeeze(ax + 1)
                t_win = kernel.crossing(picked.unbind(0), th_k)
            # Not before its window's start (or the previous spike): rounding at a window edge
            # must not drop an input from the causal set the backward sees.
            t_lo = torch.gather(start.expand(shape), ax, first).squeeze(ax)
            t_rel = torch.where(has.squeeze(ax).bool(), torch.maximum(t_win, t_lo), inf)
            out[:, :, k] = t_rel + t0.squeeze(ax)
            if k + 1 == max_spikes or not bool(torch.isfinite(t_rel).any()):
                break
            e = kernel.reset_rate * t_rel  # +inf where silent: no window is searched again
            log_r = e if log_r is None else torch.logaddexp(log_r, e)
            t_prev = t_rel
    return outs[0] if len(outs) == 1 else torch.cat(outs)
