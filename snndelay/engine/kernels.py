"""PSP kernels: one small unit per tau_m / tau_s ratio (docs/model.md sections 1, 2 and 4).

A kernel knows
- its PSP shape k(s) and slope k'(s) (section 1), used by the spike-time backward (section 4);
- which prefix sums over the sorted arrivals determine the potential on a window (section 2):
  term m accumulates  w_i * T_i^{with_time_m} * exp(rate_m * T_i);
- whether the potential reaches the threshold inside a closed window [lo, hi], and the
  crossing time in closed form.
All times are in units of tau_s and relative to the frame origin in which the sums were formed
(the LIF response is time-invariant, so any origin is exact). Adding a kernel means writing one
more subclass and registering it in KERNELS; the torch solver and backward stay untouched. Its
compiled_code says which compiled CPU loops of _numba_kernels implement it (LAMBERT_CODE,
QUADRATIC_CODE); None (the default) runs it on the torch path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch

from snndelay.engine.lambertw import lambertw0
from snndelay.engine.types import KERNEL_RATIOS

_TWO_LN2 = 2.0 * math.log(2.0)
# The kernel codes of the compiled loops (_numba_kernels branches on them).
LAMBERT_CODE, QUADRATIC_CODE = 0, 1
# The prefix sums of a window, one per term: stacked [terms, ...] or as a tuple.
Sums = Union[torch.Tensor, tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class Kernel:
    """Interface of a PSP kernel; see the module docstring."""

    ratio: float
    # (rate, with_time) of each prefix-sum term.
    terms: tuple[tuple[float, bool], ...]
    # Which compiled CPU loops implement this kernel (_numba_kernels' kernel codes), or None:
    # the kernel runs on the torch path only (the reference for every kernel and feature).
    compiled_code: int | None = None

    def psp_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c k(s), c k'(s)) at s = -x for x = T_i - t* <= 0 (docs/model.md section 1), with one
        positive factor c shared by both: it cancels in dt/dw = -k/u' and dt/dT = w k'/u'.
        May overwrite x. x = -1e4 (a non-causal input) gives exactly 0. Backward hot path."""
        raise NotImplementedError

    # bound(+inf), the value that closes the last window.
    bound_inf: float = math.inf
    # The reset of a multi-spike neuron (docs/model.md section 11): theta * e^{-(t - t_j) / r}
    # subtracted from u shifts prefix-sum term reset_term by reset_coef * theta * R, with
    # R = sum_j e^{reset_rate t_j} (reset_rate = 1 / r); its slope in psp_scaled's units is
    # reset_slope * theta * e^{-(t - t_j) / r} (reset_slope = c / r).
    reset_term: int = 1
    reset_coef: float = 1.0
    reset_rate: float = 1.0
    reset_slope: float = 1.0

    def with_reset(self, sums: torch.Tensor, theta: torch.Tensor, r: torch.Tensor
                   ) -> torch.Tensor:
        """Stacked prefix sums [terms, ...] with the reset of earlier spikes applied; r = sum_j
        e^{reset_rate (t_j - origin)} in the sums' frame."""
        terms = list(sums.unbind(0))
        terms[self.reset_term] = terms[self.reset_term] + self.reset_coef * theta * r
        return torch.stack(torch.broadcast_tensors(*terms))

    def bound(self, t: torch.Tensor) -> torch.Tensor:
        """The form in which reaches() takes a window bound t (may be +inf); computed once per
        arrival so that the windows [T_n, T_n+1] share it."""
        return t

    def reaches(self, sums: Sums, lo: torch.Tensor, hi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """True where u reaches theta on the window [lo, hi] (given as bound(lo), bound(hi)).

        u is evaluated at one point of the window, its maximum whenever u peaks inside; that
        decides the first crossing window exactly, because before it u < theta everywhere.
        """
        raise NotImplementedError

    def crossing(self, sums: Sums, theta: torch.Tensor) -> torch.Tensor:
        """Earliest upward crossing u(t) = theta of the window's potential (finite where reached)."""
        raise NotImplementedError

    # -- the non-spiking readout (docs/model.md section 12): sums in the window's own frame --
    def psp(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k(s), k'(s)) for s >= 0 (section 1; the caller masks s < 0)."""
        raise NotImplementedError

    def psp_integral(self, s: torch.Tensor) -> torch.Tensor:
        """K(s) = integral of k over [0, s], for s >= 0 (the mean readout)."""
        raise NotImplementedError

    def window_value(self, sums: Sums, s: torch.Tensor) -> torch.Tensor:
        """u at offset s >= 0 from the window's start, from sums in the window's own frame."""
        raise NotImplementedError

    def window_peak(self, sums: Sums) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(offset s* of u's stationary maximum from the window's start, u there, where that
        maximum exists with s* > 0), from sums in the window's own frame."""
        raise NotImplementedError


@dataclass(frozen=True)
class LambertKernel(Kernel):
    """tau_m = tau_s: k(s) = s e^{-s}, u(t) = e^{-t} (t A - B), A = sum w e^T, B = sum w T e^T."""

    ratio: float = 1.0
    terms: tuple[tuple[float, bool], ...] = ((1.0, False), (1.0, True))
    compiled_code: int | None = LAMBERT_CODE
    # B' = B + theta R (reset_coef 1, reset_rate 1, reset_slope 1: the base defaults)

    def psp_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # c = 1: k = s e^{-s} = -x e^x, k' = (1 - s) e^{-s} = e^x + x e^x.
        e = torch.exp(x)
        xe = x.mul_(e)
        return xe.neg(), e.add_(xe)

    def reaches(self, sums: Sums, lo: torch.Tensor, hi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        a, b = sums
        # u peaks at t = 1 + B/A; the window maximum is at that peak clamped into [lo, hi].
        # For A <= 0 the clamped point is still a point of the window, and u there is below
        # threshold in every window before the first crossing, so no sign test is needed;
        # 0/0 and inf * 0 give NaN, which compares False (no reach).
        t_e = torch.clamp(1.0 + b / a, lo, hi)
        return (t_e * a - b) * torch.exp(-t_e) >= theta

    def crossing(self, sums: Sums, theta: torch.Tensor) -> torch.Tensor:
        a, b = sums
        a_safe = a.clamp(min=torch.finfo(a.dtype).tiny)  # A > 0 at any upward crossing
        b_over_a = b / a_safe
        # t* = B/A - W0(z), z = -(theta/A) e^{B/A} (docs/model.md section 2), formed in the log
        # domain; clamped to the branch point where rounding pushes a grazing z below -1/e.
        z = -torch.exp(torch.log(theta) - torch.log(a_safe) + b_over_a)
        return b_over_a - lambertw0(z.clamp(min=-1.0 / math.e))

    def psp(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.exp(-s)
        return s * e, e - s * e

    def psp_integral(self, s: torch.Tensor) -> torch.Tensor:
        # 1 - (1 + s) e^{-s}, written with expm1 so that small s keeps its precision
        return -torch.expm1(-s) - s * torch.exp(-s)

    def window_value(self, sums: Sums, s: torch.Tensor) -> torch.Tensor:
        a, b = sums
        return torch.exp(-s) * (a * s - b)

    def window_peak(self, sums: Sums) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b = sums
        # u' = e^{-s} (A + B - A s) = 0 at s* = 1 + B/A, a maximum for A > 0, where u = A e^{-s*}
        s = 1.0 + b / a
        ok = (a > 0) & (s > 0)
        s = torch.where(ok, s, torch.zeros_like(s))
        return s, a * torch.exp(-s), ok


@dataclass(frozen=True)
class QuadraticKernel(Kernel):
    """tau_m = 2 tau_s: k(s) = 2 (e^{-s/2} - e^{-s}); with x = e^{-t/2},
    u = 2 (A_m x - A x^2), A = sum w e^T, A_m = sum w e^{T/2}."""

    ratio: float = 2.0
    terms: tuple[tuple[float, bool], ...] = ((1.0, False), (0.5, False))
    compiled_code: int | None = QUADRATIC_CODE
    bound_inf: float = 0.0
    reset_coef: float = -0.5  # A_m' = A_m - theta R / 2
    reset_rate: float = 0.5
    reset_slope: float = 0.25  # c = 1/2, r = 2

    def bound(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * t).mul_(2.0)  # y = 2 e^{-t/2}, decreasing in t

    def psp_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # c = 1/2: k/2 = e^{-s/2} - e^{-s}, k'/2 = e^{-s} - e^{-s/2} / 2.
        eh = x.mul_(0.5).exp_()  # e^{-s/2}; squaring it is cheaper than a second exp or sqrt
        e = eh * eh
        dk = torch.sub(e, eh, alpha=0.5)
        return eh.sub_(e), dk

    def reaches(self, sums: Sums, lo: torch.Tensor, hi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        a, a_m = sums
        # With y = 2x = bound(t), u = y (A_m - A y / 2); its peak y* = A_m / A is clamped into
        # the window [bound(hi), bound(lo)]. As for the Lambert kernel, the clamped point is a
        # point of the window whatever the sign of A, so no sign test is needed.
        y = torch.clamp(a_m / a, hi, lo)
        return torch.addcmul(a_m, a, y, value=-0.5).mul_(y) >= theta

    def crossing(self, sums: Sums, theta: torch.Tensor) -> torch.Tensor:
        a, a_m = sums
        a_safe = a.clamp(min=torch.finfo(a.dtype).tiny)  # A > 0 at any upward crossing
        # Larger root of A x^2 - A_m x + theta/2 = 0 is the earlier crossing (docs/model.md sec. 2);
        # D is clamped at 0 for grazing windows where rounding makes it slightly negative.
        disc = torch.addcmul(a_m * a_m, theta, a_safe, value=-2.0).clamp_(min=0.0)
        # t = -2 ln x = 2 ln 2 - 2 ln((A_m + sqrt(D)) / A)
        return torch.log(disc.sqrt_().add_(a_m).div_(a_safe)).mul_(-2.0).add_(_TWO_LN2)

    def psp(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eh = torch.exp(-0.5 * s)
        e = eh * eh
        return 2.0 * (eh - e), 2.0 * e - eh

    def psp_integral(self, s: torch.Tensor) -> torch.Tensor:
        # 4 (1 - e^{-s/2}) - 2 (1 - e^{-s}) = 2 (1 - e^{-s/2})^2
        return 2.0 * torch.expm1(-0.5 * s).square()

    def window_value(self, sums: Sums, s: torch.Tensor) -> torch.Tensor:
        a, a_m = sums
        x = torch.exp(-0.5 * s)
        return 2.0 * x * (a_m - a * x)

    def window_peak(self, sums: Sums) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, a_m = sums
        # u = 2 (A_m x - A x^2), x = e^{-s/2} <= 1: a maximum at x* = A_m / (2 A) for A > 0
        # (e^{-s*/2} = A_m / (2 A), the form of the issue), inside the window where x* < 1;
        # u there is A_m^2 / (2 A)
        x = a_m / (2.0 * a)
        ok = (a > 0) & (a_m > 0) & (x < 1.0)
        x = torch.where(ok, x, torch.ones_like(x))
        return -2.0 * torch.log(x), a_m * a_m / (2.0 * torch.where(ok, a, torch.ones_like(a))), ok


KERNELS: dict[float, Kernel] = {k.ratio: k for k in (LambertKernel(), QuadraticKernel())}
assert tuple(KERNELS) == KERNEL_RATIOS, "engine.types.KERNEL_RATIOS must list every kernel"


def kernel_for(tau_mem: float, tau_syn: float) -> Kernel:
    """The kernel for tau_mem / tau_syn; ValueError naming the supported ratios otherwise."""
    if not (tau_mem > 0 and tau_syn > 0):
        raise ValueError(f"tau_mem and tau_syn must be positive, got {tau_mem} and {tau_syn}")
    ratio = tau_mem / tau_syn
    for r, kernel in KERNELS.items():
        if abs(ratio - r) <= 1e-12 * r:
            return kernel
    supported = ", ".join(f"{r:g}" for r in KERNELS)
    raise ValueError(
        f"tau_mem / tau_syn = {ratio:g} has no closed-form spike time; supported ratios: {supported}"
    )
