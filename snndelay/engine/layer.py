"""Public entry points: a layer's first spike times, differentiable by the spike-time rule.

Delays enter as arrival times T_ij = t_i + d (docs/model.md section 3). They are reduced to the two
cases the solver knows, so that an arrival order shared by all receiving neurons is sorted once
per sample:
- axonal d_i [N_in, 1]: folded into the input times, t_i + d_i (shared order);
- dendritic d_j [1, N_out]: shifting every input of neuron j by d_j shifts its spike by d_j
  exactly (time invariance), so t_j = t_j(no delay) + d_j and dL/dd_j = dL/dt_j;
- synaptic d_ij [N_in, N_out]: per-neuron order, passed to the solver.
Multi-spike inputs [B, N_in, S] become N_in * S arrivals carrying their channel's weight and
delay. Times are scaled to units of tau_syn inside (the kernel is k(s / tau_syn)).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from snndelay.engine.backward import MIN_SLOPE, spike_time_grads
from snndelay.engine.kernels import Kernel, kernel_for
from snndelay.engine.solver import solve_first_spikes

_F64 = torch.float64


class _SpikeTimes(torch.autograd.Function):
    """Spike times of one layer (tau_s units); backward from spike times only (section 4)."""

    @staticmethod
    def forward(ctx: Any, t_in: torch.Tensor, weights: torch.Tensor, d_syn: torch.Tensor | None,
                theta: torch.Tensor,
                kernel: Kernel, t_given: torch.Tensor | None, opts: dict[str, float]) -> torch.Tensor:
        if t_given is None:
            t_out = solve_first_spikes(t_in, weights, d_syn, theta, kernel)
        else:
            t_out = t_given.detach().clone()
        ctx.save_for_backward(t_in, weights, d_syn, t_out)
        ctx.kernel, ctx.opts = kernel, opts
        return t_out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        t_in, weights, d_syn, t_out = ctx.saved_tensors
        g_t, g_w, g_d = spike_time_grads(grad_out, t_out, t_in, weights, d_syn, ctx.kernel,
                                         **ctx.opts)
        return g_t, g_w, g_d, None, None, None, None


def _delay_kind(delays: torch.Tensor, n_in: int, n_out: int) -> tuple[str, torch.Tensor]:
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
        return "dendritic", d.expand(1, n_out)
    if cols == 1:
        return "axonal", d
    return "synaptic", d


def _prepare(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None,
             threshold: float | torch.Tensor, tau_mem: float, tau_syn: float,
             check_values: bool = True) -> tuple[Kernel, torch.Tensor]:
    """Check the arguments; return the kernel and the threshold as a [B, N_out] tensor.
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
    kernel = kernel_for(tau_mem, tau_syn)
    batch, n_out = t_in.shape[0], weights.shape[1]
    if isinstance(threshold, (int, float)):
        if not 0 < threshold < math.inf:
            raise ValueError(f"threshold must be positive and finite, got {threshold}")
        return kernel, torch.full((batch, n_out), float(threshold), dtype=_F64, device=t_in.device)
    theta = torch.as_tensor(threshold, dtype=_F64, device=t_in.device)
    try:
        theta = theta.expand(batch, n_out).contiguous()
    except RuntimeError:
        raise ValueError(f"threshold must be a number, [N_out] or [B, N_out] = [{batch}, {n_out}], "
                         f"got shape {tuple(theta.shape)}") from None
    if not bool(((theta > 0) & (theta < math.inf)).all()):
        raise ValueError("threshold must be positive and finite")
    return kernel, theta


def _layer_inputs(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None, tau_syn: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Arrival-ready inputs in tau_s units: (t [B, N], w [N, M], d_syn or None, d_out or None)."""
    n_in, n_out = weights.shape
    t = t_in.to(_F64)
    if tau_syn != 1.0:
        t = t / tau_syn
    w = weights.to(_F64)
    d_syn = d_out = None
    if delays is not None:
        d = delays.to(_F64)
        kind, d = _delay_kind(d if tau_syn == 1.0 else d / tau_syn, n_in, n_out)
        if kind == "axonal":
            t = t + d.reshape((1, n_in) + (1,) * (t.dim() - 2))
        elif kind == "dendritic":
            d_out = d.reshape(1, n_out)
        else:
            d_syn = d.expand(n_in, n_out)
    if t.dim() == 3:  # every spike of a channel is one more arrival with its weight and delay
        spikes = t.shape[2]
        t = t.reshape(t.shape[0], n_in * spikes)
        w = w.repeat_interleave(spikes, dim=0)
        if d_syn is not None:
            d_syn = d_syn.repeat_interleave(spikes, dim=0)
    return t, w, d_syn, d_out


def _apply(t_in: torch.Tensor, weights: torch.Tensor, delays: torch.Tensor | None, tau_mem: float,
           tau_syn: float,
           threshold: float | torch.Tensor, t_given: torch.Tensor | None, opts: dict[str, float],
           check_values: bool = True) -> torch.Tensor:
    kernel, theta = _prepare(t_in, weights, delays, threshold, tau_mem, tau_syn, check_values)
    t, w, d_syn, d_out = _layer_inputs(t_in, weights, delays, tau_syn)
    core_given = None
    if t_given is not None:
        core_given = t_given.detach().to(_F64) / tau_syn
        if d_out is not None:  # the core sees the neuron's time before its dendritic delay
            core_given = core_given - d_out
    out = _SpikeTimes.apply(t, w, d_syn, theta, kernel, core_given, opts)
    if d_out is not None:
        # Only spiking neurons depend on their dendritic delay (dL/dd_j = 0 where silent).
        out = torch.where(torch.isfinite(out), out + d_out, out)
    if tau_syn != 1.0:
        out = out * tau_syn
    if t_given is not None:
        # Straight-through: the value is exactly the given times (no rounding from the unit
        # and delay shifts above), the gradient is the model's.
        given = t_given.detach().to(_F64)
        out = torch.where(torch.isfinite(given), given + (out - out.detach()), given)
    return out


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
