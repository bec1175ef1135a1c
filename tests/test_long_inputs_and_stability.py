"""Shifted-frame exponentials: long input spans neither overflow nor lose precision."""

import math

import pytest
import torch
from reference import DELAY_KINDS, assert_same_times, random_layer

from snndelay.engine import first_spike_times
from snndelay.engine.kernels import kernel_for
from snndelay.engine.solver import solve_first_spikes

pytestmark = pytest.mark.usefixtures("engine_impl")


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", ("none", "synaptic"))
def test_log_domain_sums_agree_with_frame_sums(ratio, kind):
    """The two ways of forming the prefix sums (one frame per row, or per window in the log
    domain) give the same spike times."""
    t_in, w, d = random_layer(5, 6, 12, 7, kind=kind, w_mean=0.5 if ratio == 2.0 else 0.8)
    theta = torch.ones(6, 7, dtype=torch.float64)
    k = kernel_for(ratio, 1.0)
    fast = solve_first_spikes(t_in, w, d, theta, k)
    stable = solve_first_spikes(t_in, w, d, theta, k, stable=True)
    assert torch.isfinite(fast).sum() >= 10
    assert_same_times(fast, stable, 1e-11)


def with_early_weak_inputs(burst, w, d, kind, shift=1000.0):
    """The burst moved to t + shift, plus as many weak channels spiking in [0, 3]."""
    n_b, n_in = burst.shape
    early = 3.0 * torch.rand(n_b, n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t_in = torch.cat([early, burst + shift], dim=1)
    w_all = torch.cat([torch.full_like(w, 0.05), w], dim=0)
    if kind in ("axonal", "synaptic"):
        d = torch.cat([torch.zeros_like(d), d], dim=0)
    return t_in, w_all, d


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", DELAY_KINDS)
def test_inputs_spanning_1000_tau(ratio, kind):
    """Weak inputs early, then a burst 1000 tau_s later that fires the neurons: the spike times
    equal those of the burst alone shifted by 1000 (the early PSPs have decayed by e^-500),
    and so do the gradients."""
    burst, w, d = random_layer(11, 4, 8, 5, kind=kind, w_mean=0.9 if ratio == 1.0 else 0.6)
    far = [p.clone().requires_grad_() for p in with_early_weak_inputs(burst, w, d, kind)
           if p is not None]
    near = [p.clone().requires_grad_() for p in (burst, w, d) if p is not None]
    t_far = first_spike_times(*far, tau_mem=ratio)
    t_near = first_spike_times(*near, tau_mem=ratio)
    assert torch.isfinite(t_near).sum() >= 10
    assert_same_times(t_far, t_near + 1000.0, 1e-11)
    g_far = torch.autograd.grad(torch.where(torch.isfinite(t_far), t_far, 0).sum(), far)
    g_near = torch.autograd.grad(torch.where(torch.isfinite(t_near), t_near, 0).sum(), near)
    assert torch.allclose(g_far[0][:, 8:], g_near[0], rtol=1e-9, atol=1e-11)
    assert torch.allclose(g_far[1][8:], g_near[1], rtol=1e-9, atol=1e-11)
    assert g_far[1][:8].abs().max() < 1e-200  # inputs 1000 tau_s earlier: influence ~e^-500
    if kind != "none":
        assert torch.allclose(g_far[2][-g_near[2].shape[0]:], g_near[2], rtol=1e-9, atol=1e-11)


def test_huge_and_tiny_weights_scale_with_threshold():
    """The crossing depends on w / theta only: scaling both by 1e150 or 1e-150 changes nothing."""
    t_in, w, d = random_layer(13, 4, 9, 6, kind="synaptic", w_mean=0.6)
    ref = first_spike_times(t_in, w, d)
    for s in (1e150, 1e-150):
        assert_same_times(first_spike_times(t_in, w * s, d, threshold=s), ref, 1e-11)
    assert math.isinf(first_spike_times(t_in, w * 1e-150, d)[0, 0].item())
