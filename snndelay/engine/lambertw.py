"""Principal branch W0 of the Lambert W function in pure torch (float64, any device).

W0(z) solves w * exp(w) = z with w >= -1, real for z >= -1/e. The first-spike time of a
neuron with tau_m = tau_s is t* = B/A - W0(z) (docs/model.md section 2), so the engine needs W0 on
[-1/e, 0) accurate to the last few ulps, without a round trip through SciPy/NumPy.

Method (Corless, Gonnet, Hare, Jeffrey & Knuth, "On the Lambert W function", 1996):
- near the branch point z = -1/e, the series in p = sqrt(2 (e z + 1)),
  W0 = -1 + p - p^2/3 + 11/72 p^3 - 43/540 p^4 + 769/17280 p^5 - 221/8505 p^6 + ...;
  e z + 1 is formed as e * (z + 1/e) with 1/e split into a double-double, so the
  cancellation near the branch point costs nothing;
- elsewhere Halley's iteration on f(w) = w e^w - z from a cheap start (the series near the
  branch point, a Pade approximant around 0).
"""

from __future__ import annotations

import math

import torch

# 1/e as a double-double: _INV_E_HI + _INV_E_LO = 1/e to ~1e-33.
_INV_E_HI = 0.36787944117144233
_INV_E_LO = -1.2428753672788363e-17
# Series coefficients of W0 in p (Corless et al. 1996, eq. 4.22), constant term first.
_BRANCH_SERIES = (
    -1.0,
    1.0,
    -1.0 / 3.0,
    11.0 / 72.0,
    -43.0 / 540.0,
    769.0 / 17280.0,
    -221.0 / 8505.0,
    680863.0 / 43545600.0,
    -1963.0 / 204120.0,
    226287557.0 / 37623398400.0,
)
# Below this p the truncated series (error ~ p^10) is exact to double precision.
_SERIES_ONLY_P = 0.02
_HALLEY_STEPS = 5


def _horner(p: torch.Tensor, coeffs: tuple[float, ...]) -> torch.Tensor:
    acc = torch.full_like(p, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * p + c
    return acc


def lambertw0(z: torch.Tensor) -> torch.Tensor:
    """W0(z) for real z >= -1/e (elementwise); NaN below -1/e, +inf at +inf.

    Accurate to ~1e-15 relative on [-1/e, 0); differentiable only through the caller's own
    formulas (the engine never backpropagates through this function).
    """
    z = torch.as_tensor(z, dtype=torch.float64)
    # z + 1/e without cancellation (Sterbenz: z + hi is exact when z is near -hi).
    dz = (z + _INV_E_HI) + _INV_E_LO
    p = torch.sqrt((2.0 * math.e) * dz.clamp(min=0.0))
    w_branch = _horner(p, _BRANCH_SERIES)
    # Start: series near the branch point, a Pade approximant around 0 on [-0.25, 0), log1p for
    # z >= 0; Halley's iteration then converges in two or three steps.
    zc = z.clamp(-0.25, 0.0)
    pade = zc * (1.0 + 4.0 / 3.0 * zc) / (1.0 + zc * (7.0 / 3.0 + 5.0 / 6.0 * zc))
    w = torch.where(z < -0.25, _horner(p, _BRANCH_SERIES[:4]),
                    torch.where(z < 0, pade, torch.log1p(z.clamp(min=0.0))))
    for _ in range(_HALLEY_STEPS):
        ew = torch.exp(w)
        f = w * ew - z
        wp1 = w + 1.0
        denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
        step = f / denom
        # Converged or degenerate entries keep their value (no 0/0 at w = -1).
        w = torch.where((f == 0) | ~torch.isfinite(step), w, w - step)
    w = torch.where(p < _SERIES_ONLY_P, w_branch, w)
    # The double nearest -1/e lies just below it: treat [-_INV_E_HI, -1/e) as the branch point.
    w = torch.where(z < -_INV_E_HI, torch.full_like(w, float("nan")), w)
    return torch.where(torch.isposinf(z), z, w)
