"""The numba CPU loops and the vectorised torch code compute the same spike times and gradients."""

import pytest
import torch
from reference import DELAY_KINDS, assert_same_times, random_layer

from snndelay.engine import _impl, first_spike_times, set_implementation

pytestmark = pytest.mark.skipif(not _impl.HAVE_NUMBA, reason="numba not installed")


def _run(impl, params, ratio, theta):
    set_implementation(impl)
    leaves = [p.detach().clone().requires_grad_() for p in params]
    t = first_spike_times(*leaves[:2], leaves[2] if len(leaves) > 2 else None, tau_mem=ratio,
                          threshold=theta)
    coef = torch.linspace(0.5, 1.5, t.numel(), dtype=torch.float64).view(t.shape)
    grads = torch.autograd.grad((coef * torch.where(torch.isfinite(t), t, 0)).sum(), leaves)
    return t.detach(), grads


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", DELAY_KINDS)
@pytest.mark.parametrize("spikes", (1, 3))
def test_numba_and_torch_agree(ratio, kind, spikes):
    t_in, w, d = random_layer(31, 16, 40, 12, kind=kind, spikes=spikes,
                              w_mean=0.06, w_std=0.3)
    params = [t_in, w] + ([] if d is None else [d])
    theta = 0.7 + 0.6 * torch.rand(16, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t_torch, g_torch = _run("torch", params, ratio, theta)
    t_numba, g_numba = _run("numba", params, ratio, theta)
    fire = torch.isfinite(t_torch)
    assert 0.2 < fire.double().mean() < 1.0
    assert_same_times(t_numba, t_torch, 1e-10)
    for a, b in zip(g_numba, g_torch):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("pattern", ("spread", "clustered", "identical"))
def test_long_rows_with_synaptic_delays_agree(ratio, pattern):
    """Rows longer than the insertion-sort limit take the bucket sort (and its argsort fallback
    for crowded bins, e.g. many identical arrival times)."""
    g = torch.Generator().manual_seed(4)
    n_b, n_in, n_out = 6, 120, 9
    t_in = 0.15 + 1.85 * torch.rand(n_b, n_in, generator=g, dtype=torch.float64)
    d = torch.rand(n_in, n_out, generator=g, dtype=torch.float64)
    if pattern == "clustered":
        t_in[:, :80] = 1.0 + 1e-9 * torch.rand(n_b, 80, generator=g, dtype=torch.float64)
    if pattern == "identical":
        t_in[:] = 1.0
        d = torch.full((n_in, n_out), 0.5, dtype=torch.float64)
        d[:10] = torch.rand(10, n_out, generator=g, dtype=torch.float64)
    t_in[0, ::3] = float("inf")
    w = (0.05 + 0.25 * torch.randn(n_in, n_out, generator=g, dtype=torch.float64))
    t_torch, g_torch = _run("torch", [t_in, w, d], ratio, 1.0)
    t_numba, g_numba = _run("numba", [t_in, w, d], ratio, 1.0)
    assert torch.isfinite(t_torch).sum() >= 10
    assert_same_times(t_numba, t_torch, 1e-10)
    for a, b in zip(g_numba, g_torch):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)
