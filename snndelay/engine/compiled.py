"""The compiled CPU loops (_numba_kernels) behind one numpy interface: the solver and the
spike-time backward on arrival-ready inputs (docs/model.md sections 2-4), without torch.

The engine's layer functions (layer.py) choose once per call between these and the torch path
(code_for), on numpy arrays or CPU tensors, where a small network's training step would
otherwise spend most of its time in per-operation overhead. Times in units of tau_s; a kernel's
loops are named by its compiled_code (kernels.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from snndelay.engine import _impl
from snndelay.engine.kernels import Kernel, kernel_for

_TINY = np.finfo(np.float64).tiny
_NO_DELAYS = np.zeros((1, 1))
_NO_THETA = np.ones((1, 1))


def code_for(kernel: Kernel, array: Any) -> int | None:
    """The compiled loops that run this kernel on `array` (numpy, or a CPU tensor), or None:
    the torch path (no numba, implementation "torch", another device, or a kernel without
    compiled loops). The one place where the engine chooses its implementation."""
    if not _impl.HAVE_NUMBA or _impl.get_implementation() == "torch":
        return None
    if isinstance(array, torch.Tensor) and array.device.type != "cpu":
        return None
    return kernel.compiled_code


def available(ratio: float) -> bool:
    """True when a kernel of this ratio runs on the compiled loops (thread policy)."""
    try:
        return code_for(kernel_for(ratio, 1.0), np.zeros(0)) is not None
    except ValueError:
        return False


def forward(t: np.ndarray, w: np.ndarray, d_syn: np.ndarray | None, theta: Any,
            code: int, max_spikes: int = 1) -> np.ndarray:
    """Spike times [B, M, max_spikes] (sorted, +inf padded; max_spikes = 1: the first spike)
    of arrival-ready times t [B, N] through weights w [N, M] with per-synapse delays d_syn
    [N, M] (or None: one shared order); theta broadcasts to [B, M]. The crossings are invariant
    to scaling w and theta together (the reset subtracts theta), so each neuron's weights are
    normalised to max |w| = 1 first (no overflow of the prefix sums)."""
    from snndelay.engine import _numba_kernels as nk

    t = np.ascontiguousarray(t, dtype=np.float64)
    scale = np.maximum(np.abs(w).max(axis=0), _TINY) if w.size else np.ones(w.shape[1])
    w_t = np.ascontiguousarray((w / scale).T)
    th = np.broadcast_to(np.asarray(theta, dtype=np.float64) / scale,
                         (t.shape[0], w.shape[1])).copy()
    with _impl.threads_for(t.size * w.shape[1]) as threads:
        chunks = max(1, min(t.shape[0], threads))
        if d_syn is None:
            return nk.forward_shared(t, w_t, th, code, max_spikes, chunks)
        return nk.forward_synaptic(t, np.ascontiguousarray(d_syn.T), w_t, th, code,
                                   max_spikes, chunks)


def backward(g_out: np.ndarray, t_out: np.ndarray, t: np.ndarray, w: np.ndarray,
             d_syn: np.ndarray | None, code: int, min_slope: float, max_dw_norm: float,
             theta: Any = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dL/dT [B, N], dL/dw [N, M], dL/dd_syn [N, M] or None) given dL/dt_out [B, M] at the
    spike times t_out [B, M] (docs/model.md section 4), or at spike trains [B, M, K] with
    their thresholds theta (broadcast to [B, M]; section 11); max_dw_norm as in
    spike_time_grads. The per-chunk sums use a fixed number of chunks: the same gradients on
    any thread count."""
    from snndelay.engine import _numba_kernels as nk

    has_d = d_syn is not None
    d_t = np.ascontiguousarray(d_syn.T) if d_syn is not None else _NO_DELAYS
    trains = t_out.ndim == 3
    t_k = t_out if trains else t_out.reshape(t_out.shape + (1,))
    g_k = g_out if trains else g_out.reshape(g_out.shape + (1,))
    # theta sizes the reset, so only trains read it (no [B, M] copy per first-spike call)
    th = (np.broadcast_to(np.asarray(theta, dtype=np.float64), t_k.shape[:2])
          if trains else _NO_THETA)
    with _impl.threads_for(t.size * w.shape[1] * t_k.shape[2]):
        g_t, g_w_t, g_d_t = nk.backward(np.ascontiguousarray(t), np.ascontiguousarray(w.T),
                                        d_t, has_d, np.ascontiguousarray(t_k),
                                        np.ascontiguousarray(g_k), np.ascontiguousarray(th),
                                        code, float(min_slope), float(max_dw_norm),
                                        _impl.backward_chunks(t.shape[0]))
    return g_t, g_w_t.T, (g_d_t.T if has_d else None)


def nominal_scale(t_out: np.ndarray, t: np.ndarray, w: np.ndarray, d_syn: np.ndarray | None,
                  theta: float, min_slope: float) -> np.ndarray:
    """backward.nominal_slope_scale on numpy arrays (first spikes [B, M], tau_m = tau_s)."""
    from snndelay.engine import _numba_kernels as nk

    has_d = d_syn is not None
    d_t = np.ascontiguousarray(d_syn.T) if d_syn is not None else _NO_DELAYS
    return nk.nominal_scale(np.ascontiguousarray(t, dtype=np.float64),
                            np.ascontiguousarray(w.T), d_t, has_d,
                            np.ascontiguousarray(t_out), float(theta),
                            float(min_slope))


def readout_forward(t: np.ndarray, w: np.ndarray, d_syn: np.ndarray | None,
                    d_out: np.ndarray | None, code: int, mode: str, t_end: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """readout.readout_values on numpy arrays (docs/model.md section 12)."""
    from snndelay.engine import _numba_readout as nr

    d_t = np.ascontiguousarray(d_syn.T) if d_syn is not None else _NO_DELAYS
    d_o = np.ascontiguousarray(d_out, dtype=np.float64) if d_out is not None else np.zeros(1)
    t = np.ascontiguousarray(t, dtype=np.float64)
    with _impl.threads_for(t.size * w.shape[1]):
        return nr.readout_forward(t, np.ascontiguousarray(w.T), d_t, d_syn is not None, d_o,
                                  d_out is not None, code, mode == "mean", float(t_end))


def readout_backward(g_z: np.ndarray, t: np.ndarray, w: np.ndarray, d_syn: np.ndarray | None,
                     d_out: np.ndarray | None, code: int, mode: str, t_end: float,
                     t_star: np.ndarray, kink: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """readout.readout_grads on numpy arrays: (dL/dT, dL/dw, dL/dd_syn or None, dL/dshift)."""
    from snndelay.engine import _numba_readout as nr

    has_d = d_syn is not None
    d_t = np.ascontiguousarray(d_syn.T) if d_syn is not None else _NO_DELAYS
    d_o = np.ascontiguousarray(d_out, dtype=np.float64) if d_out is not None else np.zeros(1)
    t = np.ascontiguousarray(t, dtype=np.float64)
    with _impl.threads_for(t.size * w.shape[1]):
        g_t, g_w_t, g_d_t, g_shift = nr.readout_backward(
            np.ascontiguousarray(g_z, dtype=np.float64), t, np.ascontiguousarray(w.T), d_t,
            has_d, d_o, d_out is not None, code, mode == "mean", float(t_end),
            np.ascontiguousarray(t_star), np.ascontiguousarray(kink),
            _impl.backward_chunks(t.shape[0]))
    return g_t, g_w_t.T, (g_d_t.T if has_d else None), g_shift
