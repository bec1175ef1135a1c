"""Lambert W0 in torch against SciPy and against 40-digit mpmath values."""

import math

import mpmath
import numpy as np
import pytest
import scipy.special
import torch

from snndelay.engine import lambertw0

pytestmark = pytest.mark.usefixtures("engine_impl")

INV_E = math.exp(-1.0)


def _grid() -> np.ndarray:
    near_branch = -INV_E + np.logspace(-16, math.log10(INV_E), 3000)
    near_zero = -np.logspace(-300, math.log10(INV_E), 1000)
    return np.unique(np.concatenate([near_branch, near_zero, np.linspace(-INV_E, 0, 1000)[1:-1]]))


def test_matches_scipy_to_1e12_relative():
    z = _grid()
    # SciPy's own error grows to ~5e-9 within 1e-8 of the branch point (checked against mpmath
    # below), so SciPy is the reference only outside that sliver.
    z = z[z + INV_E > 1e-8]
    ours = lambertw0(torch.tensor(z)).numpy()
    ref = scipy.special.lambertw(z).real
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)) < 1e-12


def test_matches_high_precision_everywhere_on_the_branch():
    mpmath.mp.dps = 40
    z = _grid()[::4]
    ref = []
    for v in z:
        w = mpmath.lambertw(mpmath.mpf(float(v)))
        ref.append(float(mpmath.re(w)) if mpmath.im(w) == 0 else -1.0)
    ref = np.array(ref)
    ours = lambertw0(torch.tensor(z)).numpy()
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)) < 1e-12


def test_special_values_and_domain():
    z = torch.tensor([-INV_E, 0.0, -0.0, math.e, -0.5, float("inf")], dtype=torch.float64)
    w = lambertw0(z)
    assert w[0].item() == -1.0
    assert w[1].item() == 0.0 and w[2].item() == 0.0
    assert w[3].item() == pytest.approx(1.0, rel=1e-14)
    assert math.isnan(w[4].item())  # below -1/e: no real branch
    assert math.isinf(w[5].item())


def test_runs_on_the_tensor_device_and_keeps_float64():
    z = torch.linspace(-INV_E, 0, 11, dtype=torch.float64)
    w = lambertw0(z)
    assert w.dtype == torch.float64 and w.device == z.device
    assert torch.allclose(w * torch.exp(w), z, rtol=0, atol=1e-15)


def test_compiled_scalar_version_matches_high_precision():
    from snndelay.engine import _impl

    if not _impl.HAVE_NUMBA:
        pytest.skip("numba not installed")
    from snndelay.engine._numba_kernels import lambertw0_scalar

    mpmath.mp.dps = 40
    z = _grid()[::8]
    worst = 0.0
    for v in z:
        w = mpmath.lambertw(mpmath.mpf(float(v)))
        ref = float(mpmath.re(w)) if mpmath.im(w) == 0 else -1.0
        worst = max(worst, abs(lambertw0_scalar(float(v)) - ref) / max(abs(ref), 1e-300))
    assert worst < 1e-12
    assert math.isnan(lambertw0_scalar(-0.5))
