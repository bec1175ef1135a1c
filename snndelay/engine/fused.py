"""One layer's forward and backward on float64 numpy arrays, without autograd.

The same formulas as first_spike_times / spike_time_grads (docs/model.md sections 2-4), for callers
that chain the backward by hand: a small network's training step spends most of its time in
per-operation overhead of torch and autograd, not in the compiled loops. Delays are passed by
kind (section 3): axonal [N] is folded into the input times, dendritic [M] shifts the output
spike (sum_i dt_j/dT_ij = 1, so dL/dd_j = dL/dt_j where the neuron spikes), synaptic [N, M]
goes to the per-synapse solver. Times in units of tau_s; only the CPU loops of _numba_kernels
(ratios 1 and 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snndelay.engine import _impl
from snndelay.engine.backward import _NO_DELAYS, MIN_SLOPE

_TINY = np.finfo(np.float64).tiny
_NO_DELAY = np.zeros(0)


def available(ratio: float) -> bool:
    """True when the compiled loops can run this kernel ratio and the user did not force the
    torch implementation."""
    return _impl.HAVE_NUMBA and _impl.get_implementation() != "torch" and ratio in (1.0, 2.0)


@dataclass
class LayerCache:
    """What the backward needs: arrival-ready inputs (axonal delays added), the core spike
    times (before any dendritic shift), the weights and synaptic delays used."""

    t: np.ndarray
    t_core: np.ndarray
    w: np.ndarray
    d_syn_t: np.ndarray | None


def layer_forward(t_in: np.ndarray, w: np.ndarray, kind: str, d: np.ndarray | None,
                  theta: float | np.ndarray, lambert: bool, t_given: np.ndarray | None = None
                  ) -> tuple[np.ndarray, LayerCache]:
    """First spike times [B, M] (+inf = silent) of inputs t_in [B, N] through weights w [N, M]
    with delays d of the given kind ("none", "axonal" [N], "dendritic" [M], "synaptic" [N, M]);
    theta: a number, [M] or [B, M]. With t_given (e.g. measured on hardware) the solver is
    skipped and the cache holds those times, so that layer_backward gives the model's gradient
    at them (straight-through, docs/model.md section 8)."""
    from snndelay.engine import _numba_kernels as nk

    if kind != "none" and d is None:
        raise ValueError(f"{kind} delays need their values, got None")
    dk = d if d is not None else _NO_DELAY  # the none kind never reads it
    t = np.ascontiguousarray(t_in + dk[None, :] if kind == "axonal" else t_in)
    d_syn_t = np.ascontiguousarray(dk.T) if kind == "synaptic" else None
    if t_given is not None:
        core = t_given - dk[None, :] if kind == "dendritic" else np.array(t_given, dtype=np.float64)
    else:
        # The crossing is invariant to scaling w and theta together (as in solver.py).
        scale = np.maximum(np.abs(w).max(axis=0), _TINY)
        w_t = np.ascontiguousarray((w / scale).T)
        th = np.broadcast_to(np.asarray(theta, dtype=np.float64) / scale,
                             (t.shape[0], w.shape[1])).copy()
        with _impl.threads_for(t.size * w.shape[1]) as threads:
            chunks = max(1, min(t.shape[0], threads))
            if kind == "synaptic":
                core = nk.forward_synaptic(t, d_syn_t, w_t, th, lambert, chunks)
            else:
                core = nk.forward_shared(t, w_t, th, lambert, chunks)
    out = core + dk[None, :] if kind == "dendritic" else core  # inf + d stays inf
    return out, LayerCache(t, core, w, d_syn_t)


def layer_backward(g_out: np.ndarray, kind: str, cache: LayerCache, lambert: bool, *,
                   min_slope: float = MIN_SLOPE, max_dw_norm: float = np.inf
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dL/dt_in [B, N], dL/dw [N, M], dL/dd in the delay's shape or None) given dL/dt_out.
    max_dw_norm drops the weight gradient of a (sample, neuron) whose largest
    |dL/dt * dt/dw| exceeds it (docs/model.md section 4)."""
    from snndelay.engine import _numba_kernels as nk

    has_d = cache.d_syn_t is not None
    with _impl.threads_for(cache.t.size * cache.w.shape[1]):
        g_t, g_w_t, g_d_t = nk.backward(cache.t, np.ascontiguousarray(cache.w.T),
                                        cache.d_syn_t if has_d else _NO_DELAYS, has_d,
                                        cache.t_core, np.ascontiguousarray(g_out), lambert,
                                        float(min_slope), float(max_dw_norm),
                                        _impl.backward_chunks(g_out.shape[0]))
    g_d = None
    if kind == "axonal":
        g_d = g_t.sum(axis=0)
    elif kind == "dendritic":
        g_d = np.where(np.isfinite(cache.t_core), g_out, 0.0).sum(axis=0)
    elif kind == "synaptic":
        g_d = g_d_t.T
    return g_t, g_w_t.T, g_d
