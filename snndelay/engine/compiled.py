"""The compiled CPU loops (_numba_kernels) behind one numpy interface: the solver and the
spike-time backward on arrival-ready inputs (docs/model.md sections 2-4), without torch.

The torch solver and backward call these on CPU tensors when numba is installed, and the
engine's layer functions call them directly on numpy arrays, where a small network's training
step would otherwise spend most of its time in per-operation overhead. Times in units of tau_s;
kernel ratios 1 and 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snndelay.engine import _impl

_TINY = np.finfo(np.float64).tiny
_NO_DELAYS = np.zeros((1, 1))


def available(ratio: float) -> bool:
    """True when the compiled loops can run this kernel ratio and the user did not force the
    torch implementation."""
    return _impl.HAVE_NUMBA and _impl.get_implementation() != "torch" and ratio in (1.0, 2.0)


def forward(t: np.ndarray, w: np.ndarray, d_syn: np.ndarray | None, theta: Any,
            lambert: bool) -> np.ndarray:
    """First spike times [B, M] (+inf = silent) of arrival-ready times t [B, N] through
    weights w [N, M] with per-synapse delays d_syn [N, M] (or None: one shared order); theta
    broadcasts to [B, M]. The crossing is invariant to scaling w and theta together, so each
    neuron's weights are normalised to max |w| = 1 first (no overflow of the prefix sums)."""
    from snndelay.engine import _numba_kernels as nk

    t = np.ascontiguousarray(t, dtype=np.float64)
    scale = np.maximum(np.abs(w).max(axis=0), _TINY) if w.size else np.ones(w.shape[1])
    w_t = np.ascontiguousarray((w / scale).T)
    th = np.broadcast_to(np.asarray(theta, dtype=np.float64) / scale,
                         (t.shape[0], w.shape[1])).copy()
    with _impl.threads_for(t.size * w.shape[1]) as threads:
        chunks = max(1, min(t.shape[0], threads))
        if d_syn is None:
            return nk.forward_shared(t, w_t, th, lambert, chunks)
        return nk.forward_synaptic(t, np.ascontiguousarray(d_syn.T), w_t, th, lambert, chunks)


def backward(g_out: np.ndarray, t_out: np.ndarray, t: np.ndarray, w: np.ndarray,
             d_syn: np.ndarray | None, lambert: bool, min_slope: float, max_dw_norm: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dL/dT [B, N], dL/dw [N, M], dL/dd_syn [N, M] or None) given dL/dt_out [B, M] at the
    spike times t_out (docs/model.md section 4; max_dw_norm as in spike_time_grads). The
    per-chunk sums use a fixed number of chunks: the same gradients on any thread count."""
    from snndelay.engine import _numba_kernels as nk

    has_d = d_syn is not None
    d_t = np.ascontiguousarray(d_syn.T) if d_syn is not None else _NO_DELAYS
    with _impl.threads_for(t.size * w.shape[1]):
        g_t, g_w_t, g_d_t = nk.backward(np.ascontiguousarray(t), np.ascontiguousarray(w.T),
                                        d_t, has_d, np.ascontiguousarray(t_out),
                                        np.ascontiguousarray(g_out), lambert, float(min_slope),
                                        float(max_dw_norm), _impl.backward_chunks(t.shape[0]))
    return g_t, g_w_t.T, (g_d_t.T if has_d else None)
