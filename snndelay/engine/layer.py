"""One layer of LIF neurons: forward and backward on a typed layer description, and the public
autograd entry points built on them.

layer_forward / layer_backward take a LayerParams and numpy arrays or torch tensors (no
autograd inside): arrivals() prepares the inputs (engine/prepare.py), the solver finds the
first crossings (section 2 of docs/model.md), the spike-time backward gives the gradients at
any spike times, solved or measured (section 4), and fold_grads maps them back to the layer's
parameters. The network chains these two functions by hand; first_spike_times and
spike_times_with_grad wrap the same two in one torch.autograd.Function, so there is exactly one
implementation of a layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from snndelay.engine import compiled
from snndelay.engine.backward import MIN_SLOPE, nominal_slope_scale, spike_time_grads
from snndelay.engine.kernels import Kernel, kernel_for
from snndelay.engine.prepare import Arrivals, arrivals, core_times, fold_grads, output_times
from snndelay.engine.solver import solve_spike_trains
from snndelay.engine.types import DelayKind, LayerParams, Neuron

_F64 = torch.float64


def _np(x: Any) -> Any:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x


def _like(x: np.ndarray, ref: Any) -> Any:
    """x in ref's array type (numpy stays numpy; a CPU tensor's result becomes a tensor)."""
    return torch.from_numpy(x) if isinstance(ref, torch.Tensor) else x


def _tt(x: Any) -> Any:
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


_CHOOSE = -1  # solve_arrivals' default: choose the implementation here


def solve_arrivals(arr: Arrivals, theta: Any, neuron: Neuron, code: int | None = _CHOOSE
                   ) -> Any:
    """Crossing times (tau_s units, before any dendritic shift; +inf = silent) of arrival-ready
    inputs: first spikes [B, M] when neuron.max_spikes is 1, else spike trains [B, M, K]
    (sorted, +inf padded; docs/model.md section 11). theta: a number, [M] or [B, M]. numpy in,
    numpy out; torch in, torch out. code: the compiled loops chosen for this layer call
    (compiled.code_for; None: the torch path), chosen here when not given."""
    kernel = kernel_for(neuron.tau_mem, neuron.tau_syn)
    if code == _CHOOSE:
        code = compiled.code_for(kernel, arr.t)
    n_k = neuron.max_spikes
    out: Any
    if code is not None:
        out = _like(compiled.forward(_np(arr.t), _np(arr.w), _np(arr.d_syn), _np(theta), code,
                                     n_k), arr.t)
    else:
        t = _tt(arr.t)
        th = torch.as_tensor(_np(theta), dtype=_F64, device=t.device)
        out = solve_spike_trains(t, _tt(arr.w), _tt(arr.d_syn),
                                 th.expand(t.shape[0], arr.w.shape[1]).contiguous(), kernel, n_k)
        out = out.numpy() if isinstance(arr.t, np.ndarray) else out
    # [B, M, 1] -> [B, M] as a view that stays C-contiguous (the next layer's input)
    return out.reshape(out.shape[:2]) if n_k == 1 else out


def _arrival_grads(g: Any, core: Any, arr: Arrivals, kernel: Kernel, theta: Any,
                   min_slope: float, max_dw_norm: float, code: int | None) -> tuple[Any, Any, Any]:
    """The spike-time backward (sections 4 and 11) on arrival-ready inputs, numpy or torch;
    theta (the reset's size) matters for spike trains only."""
    if code is not None:
        g_t, g_w, g_d = compiled.backward(_np(g), _np(core), _np(arr.t), _np(arr.w),
                                          _np(arr.d_syn), code, min_slope, max_dw_norm,
                                          _np(theta))
        return _like(g_t, arr.t), _like(g_w, arr.t), None if g_d is None else _like(g_d, arr.t)
    th = _tt(np.asarray(theta, dtype=np.float64)) if not isinstance(theta, torch.Tensor) else theta
    out = spike_time_grads(_tt(g), _tt(core), _tt(arr.t), _tt(arr.w), _tt(arr.d_syn), kernel,
                           min_slope=min_slope, max_dw_norm=max_dw_norm, theta=th)
    if isinstance(arr.t, np.ndarray):
        return out[0].numpy(), out[1].numpy(), None if out[2] is None else out[2].numpy()
    return out


@dataclass
class LayerCache:
    """What layer_backward needs: the layer, its arrival-ready inputs, the solver-frame spike
    times (tau_s units, no dendritic shift), the input's shape and the thresholds the spikes
    were found with (the reset of a spike train depends on them)."""

    layer: LayerParams
    arr: Arrivals
    core: Any
    in_shape: tuple[int, ...]
    theta: Any = None


def layer_forward(t_in: Any, layer: LayerParams, *, theta: Any = None, t_given: Any = None
                  ) -> tuple[Any, LayerCache]:
    """First spike times [B, N_out] (+inf = silent), or spike trains [B, N_out, K] when
    layer.neuron.max_spikes = K > 1, of `layer` driven by t_in [B, N] or [B, N, S], and the
    cache for layer_backward. theta: thresholds (a number, [N_out] or
    [B, N_out]; default the layer's neuron.threshold). t_given: spike times measured elsewhere
    (hardware): the solver is skipped, the output is exactly t_given and the cache holds it, so
    that layer_backward gives the nominal model's gradient at those times (straight-through,
    docs/model.md section 8)."""
    arr = arrivals(t_in, layer)
    tau = layer.neuron.tau_syn
    th = layer.neuron.threshold if theta is None else theta
    if t_given is None:
        core = solve_arrivals(arr, th, layer.neuron)
        out = output_times(core, arr, tau)
    else:
        core = core_times(t_given, arr, tau)
        out = t_given
    return out, LayerCache(layer, arr, core, tuple(t_in.shape), th)


def layer_backward(cache: LayerCache, g_out: Any, *, min_slope: float = MIN_SLOPE,
                   max_dw_norm: float = math.inf, nominal_threshold: float | None = None
                   ) -> tuple[Any, Any, Any]:
    """(dL/dt_in in t_in's shape, dL/dweights [N_rows, N_out], dL/ddelays in the kind's shape
    or None) given dL/dt_out in the output's shape ([B, N_out] or [B, N_out, K]).
    max_dw_norm drops the weight gradient of a (sample, neuron) whose largest
    |dL/dt * dt/dw| exceeds it (docs/model.md section 4). nominal_threshold: evaluate the slope
    u'(t*) by section 4's ratio-1 closed form at this threshold instead of at the measured
    crossing (the published hardware backward, see nominal_slope_scale); first spikes only."""
    layer, arr = cache.layer, cache.arr
    tau = layer.neuron.tau_syn
    kernel = kernel_for(layer.neuron.tau_mem, tau)
    code = compiled.code_for(kernel, arr.t)  # the implementation of this call
    g = g_out * tau if tau != 1.0 else g_out  # per tau_s unit of the scaled times
    if nominal_threshold is not None:
        g = g * _nominal_scale(cache, kernel, nominal_threshold, min_slope, code)
    th = layer.neuron.threshold if cache.theta is None else cache.theta
    g_t, g_w, g_dsyn = _arrival_grads(g, cache.core, arr, kernel, th, min_slope, max_dw_norm,
                                      code)
    return fold_grads(layer, arr, cache.in_shape, cache.core, g, g_t, g_w, g_dsyn)


def _nominal_scale(cache: LayerCache, kernel: Kernel, theta: float, min_slope: float,
                   code: int | None) -> Any:
    """nominal_slope_scale on a layer's cached arrivals, in the cache's array type."""
    if kernel.ratio != 1.0 or cache.core.ndim != 2:
        raise ValueError("the nominal-threshold slope is the closed form of tau_mem = tau_syn "
                         "first-spike neurons (docs/model.md section 4)")
    arr = cache.arr
    if code is not None:
        return _like(compiled.nominal_scale(_np(cache.core), _np(arr.t), _np(arr.w),
                                            _np(arr.d_syn), theta, min_slope), cache.core)
    s = nominal_slope_scale(_tt(cache.core), _tt(arr.t), _tt(arr.w), _tt(arr.d_syn), theta,
                            min_slope)
    return s.numpy() if isinstance(cache.core, np.ndarray) else s


class _LayerFn(torch.autograd.Function):
    """layer_forward / layer_backward as one autograd operation (delays in the kind's shape)."""

    @staticmethod
    def forward(ctx: Any, t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None,
                theta: Any, kind: DelayKind, neuron: Neuron, t_given: torch.Tensor | None,
                opts: dict[str, float]) -> torch.Tensor:
        layer = LayerParams(weights.detach(), kind, None if delays is None else delays.detach(),
                            None, neuron)
        out, cache = layer_forward(t_in.detach(), layer, theta=theta,
                                   t_given=None if t_given is None else t_given.detach())
        ctx.cache, ctx.opts = cache, opts
        return out.clone() if t_given is not None else out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g_t, g_w, g_d = layer_backward(ctx.cache, grad_out.contiguous(), **ctx.opts)
        return g_t, g_w, g_d, None, None, None, None, None


def _delay_kind(delays: torch.Tensor, n_in: int, n_out: int) -> tuple[DelayKind, torch.Tensor]:
    """Classify a delay tensor broadcastable to [N_in, N_out]: axonal, dendritic or synaptic."""
    d = delays
    if d.dim() > 2:
        raise ValueError(f"delays must broadcast to [N_in, N_out] = [{n_in}, {n_out}], "
                         f"got shape {tuple(d.shape)}")
    d = d.reshape((1,) * (2 - d.dim()) + tuple(d.shape))
    rows, cols = d.shape
    if rows not in (1, n_in) or cols not in (1, n_out):
        raise ValueError(f"delays must broadcast to [N_in, N_out] = [{n_in}, {n_out}], "
                         f"got shape {tuple(delays.shape)}")
    # With one input (or one output) the kinds coincide, so the cheaper reading is taken.
    if rows == 1:
        return DelayKind.DENDRITIC, d.expand(1, n_out)
    if cols == 1:
        return DelayKind.AXONAL, d
    return DelayKind.SYNAPTIC, d


def _prepare(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None,
             threshold: float | torch.Tensor, tau_mem: float, tau_syn: float,
             check_values: bool = True) -> torch.Tensor:
    """Check the arguments (the tau ratio by finding its kernel); return the threshold as a
    [B, N_out] tensor.
    check_values=False skips the NaN/inf scans of the tensors (trusted callers)."""
    if not torch.is_floating_point(t_in) or not torch.is_floating_point(weights):
        raise ValueError("t_in and weights must be floating-point tensors")
    if t_in.dim() not in (2, 3):
        raise ValueError(f"t_in must be [B, N_in] or [B, N_in, S], got shape {tuple(t_in.shape)}")
    if weights.dim() != 2 or weights.shape[0] != t_in.shape[1]:
        raise ValueError(f"weights must be [N_in, N_out] with N_in = {t_in.shape[1]}, "
                         f"got shape {tuple(weights.shape)}")
    if delays is not None and not torch.is_floating_point(delays):
        raise ValueError("delays must be a floating-point tensor")
    if check_values:
        if not bool((t_in >= 0).all()):  # False for NaN and negative times alike
            raise ValueError("t_in must hold times >= 0, measured from the sample's start "
                             "(+inf for 'no spike'; no NaN or negative values)")
        if not torch.isfinite(weights).all():
            raise ValueError("weights must be finite")
        if delays is not None and not torch.isfinite(delays).all():
            raise ValueError("delays must be finite")
        if delays is not None and not bool((delays >= 0).all()):
            raise ValueError("delays must be >= 0 (a spike cannot arrive before it is sent)")
    kernel_for(tau_mem, tau_syn)
    batch, n_out = t_in.shape[0], weights.shape[1]
    if isinstance(threshold, (int, float)):
        if not 0 < threshold < math.inf:
            raise ValueError(f"threshold must be positive and finite, got {threshold}")
        return torch.full((batch, n_out), float(threshold), dtype=_F64, device=t_in.device)
    theta = torch.as_tensor(threshold, dtype=_F64, device=t_in.device)
    try:
        theta = theta.expand(batch, n_out).contiguous()
    except RuntimeError:
        raise ValueError(f"threshold must be a number, [N_out] or [B, N_out] = [{batch}, {n_out}], "
                         f"got shape {tuple(theta.shape)}") from None
    if not bool(((theta > 0) & (theta < math.inf)).all()):
        raise ValueError("threshold must be positive and finite")
    return theta


def _apply(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None, tau_mem: float,
           tau_syn: float, threshold: float | torch.Tensor, t_given: torch.Tensor | None,
           opts: dict[str, float], check_values: bool = True, max_spikes: int = 1
           ) -> torch.Tensor:
    theta = _prepare(t_in, weights, delays, threshold, tau_mem, tau_syn, check_values)
    n_in, n_out = weights.shape
    kind, d = DelayKind.NONE, None
    if delays is not None:
        kind, d = _delay_kind(delays.to(_F64), n_in, n_out)
    # The kind's own shape ([N_in], [N_out] or [N_in, N_out]); autograd maps the gradient back
    # to the caller's broadcastable shape.
    d_kind = None if d is None else (d.reshape(-1) if kind is not DelayKind.SYNAPTIC else d)
    given = None if t_given is None else t_given.to(_F64)
    return _LayerFn.apply(t_in.to(_F64), weights.to(_F64), d_kind, theta, kind,
                          Neuron(tau_mem, tau_syn, 1.0, max_spikes), given, opts)


def first_spike_times(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None = None,
                      *, tau_mem: float = 2.0, tau_syn: float = 1.0,
                      threshold: float | torch.Tensor = 1.0,
                      min_slope: float = MIN_SLOPE, max_dw_norm: float = math.inf,
                      check_values: bool = True) -> torch.Tensor:
    """First spike times [B, N_out] of LIF neurons driven by input spikes (+inf = silent).

    t_in: [B, N_in] or [B, N_in, S] spike times (+inf = no spike); weights: [N_in, N_out];
    delays: None, axonal [N_in, 1], dendritic [1, N_out] or synaptic [N_in, N_out];
    threshold: number, [N_out] or [B, N_out]. Arrival T_ij = t_i + d_ij; the membrane obeys
    du/dt = -(tau_syn/tau_mem) u + sum_i w_i H(t - T_i) e^{-(t - T_i)/tau_syn} in units of tau_syn
    (docs/model.md section 1), tau_mem/tau_syn in {1, 2}. Differentiable in t_in, weights and delays
    with the exact spike-time gradients of docs/model.md section 4; min_slope floors u'(t*) at
    grazing crossings, max_dw_norm drops the weight gradient of a (sample, neuron) whose largest
    |dL/dt * dt/dw| exceeds it (the reference training uses 0.2). check_values=False skips
    the scans for NaN/-inf inputs and non-finite weights (for callers that guarantee them, such
    as a network's own layers). Computed in float64.
    """
    return _apply(t_in, weights, delays, tau_mem, tau_syn, threshold, None,
                  dict(min_slope=min_slope, max_dw_norm=max_dw_norm), check_values)


def spike_trains(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None = None,
                 *, tau_mem: float = 2.0, tau_syn: float = 1.0,
                 threshold: float | torch.Tensor = 1.0, max_spikes: int = 8,
                 min_slope: float = MIN_SLOPE, max_dw_norm: float = math.inf,
                 check_values: bool = True) -> torch.Tensor:
    """Spike trains [B, N_out, max_spikes] (each row sorted, +inf padded) of LIF neurons that
    subtract the threshold from the membrane at each spike (u: theta -> 0, synaptic current
    kept; docs/model.md section 11), driven by input spikes.

    Arguments as first_spike_times (t_in [B, N_in] or [B, N_in, S], delays axonal [N_in, 1],
    dendritic [1, N_out] or synaptic [N_in, N_out]). A neuron emits at most max_spikes spikes
    (a neuron that hits the limit has a finite last entry). Differentiable in t_in, weights and
    delays with the exact spike-train gradients: the implicit function theorem at every spike,
    including its dependence on the neuron's own earlier spikes, chained from the last spike to
    the first as a running suffix sum. max_spikes = 1 gives exactly first_spike_times[..., None].
    """
    if isinstance(max_spikes, bool) or not isinstance(max_spikes, int) or max_spikes < 1:
        raise ValueError(f"max_spikes must be an integer >= 1, got {max_spikes!r}")
    if max_spikes == 1:
        return first_spike_times(t_in, weights, delays, tau_mem=tau_mem, tau_syn=tau_syn,
                                 threshold=threshold, min_slope=min_slope,
                                 max_dw_norm=max_dw_norm, check_values=check_values)[..., None]
    return _apply(t_in, weights, delays, tau_mem, tau_syn, threshold, None,
                  dict(min_slope=min_slope, max_dw_norm=max_dw_norm), check_values, max_spikes)


def spike_times_with_grad(t_out: torch.Tensor, t_in: torch.Tensor, weights: torch.Tensor,
                          delays: torch.Tensor | None = None, *, tau_mem: float = 2.0,
                          tau_syn: float = 1.0, threshold: float | torch.Tensor = 1.0,
                          min_slope: float = MIN_SLOPE, max_dw_norm: float = math.inf
                          ) -> torch.Tensor:
    """Straight-through spike times: the value is the given t_out [B, N_out] (e.g. measured on
    hardware), the gradient is that of first_spike_times evaluated at t_out with the nominal
    model (docs/model.md sections 4 and 8). Same arguments as first_spike_times.
    """
    if t_out.dim() != 2 or t_out.shape != (t_in.shape[0], weights.shape[1]):
        raise ValueError(f"t_out must be [B, N_out] = [{t_in.shape[0]}, {weights.shape[1]}], "
                         f"got {tuple(t_out.shape)}")
    return _apply(t_in, weights, delays, tau_mem, tau_syn, threshold, t_out,
                  dict(min_slope=min_slope, max_dw_norm=max_dw_norm))
