"""Exact spike-time gradients (docs/model.md section 4) against numerical differentiation, and the
identities the section states."""

import pytest
import torch
from reference import DELAY_KINDS, random_layer

from snndelay.engine import first_spike_times, spike_times_with_grad

pytestmark = pytest.mark.usefixtures("engine_impl")

RATIOS = (1.0, 2.0)


def _times(ratio, *p):
    t = first_spike_times(p[0], p[1], p[2] if len(p) > 2 else None, tau_mem=ratio)
    return torch.where(torch.isfinite(t), t, torch.zeros_like(t))


def well_conditioned_layer(ratio, kind, spikes=1, batch=3, n_in=5, n_out=4, seed=0):
    """A random layer whose spikes sit away from window boundaries (no input within 1e-3 of a
    spike) so that the spike times are smooth in every parameter at the gradcheck step."""
    for s in range(seed, seed + 200):
        t_in, w, d = random_layer(s, batch, n_in, n_out, kind=kind, spikes=spikes,
                                  w_mean=1.0 if ratio == 1.0 else 0.7, w_std=0.6)
        t = first_spike_times(t_in, w, d, tau_mem=ratio)
        fire = torch.isfinite(t)
        if fire.float().mean() < 0.5:
            continue
        ti = t_in if t_in.dim() == 3 else t_in[..., None]
        dd = torch.zeros(n_in, n_out, dtype=torch.float64) if d is None else d.expand(n_in, n_out)
        arr = ti[:, :, :, None] + dd[None, :, None, :]  # [B, N, S, M]
        gap = (arr - t[:, None, None, :]).abs().amin(dim=(1, 2))
        if bool((gap[fire] > 1e-3).all()):
            return [p.requires_grad_() for p in (t_in, w) + (() if d is None else (d,))]
    raise AssertionError("no well-conditioned layer found")


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("kind", DELAY_KINDS)
@pytest.mark.parametrize("spikes", (1, 2))
def test_gradcheck_all_parameters(ratio, kind, spikes):
    params = well_conditioned_layer(ratio, kind, spikes)
    assert torch.autograd.gradcheck(lambda *p: _times(ratio, *p), params, eps=1e-6,
                                    atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("kind", DELAY_KINDS)
def test_central_finite_differences(ratio, kind):
    params = well_conditioned_layer(ratio, kind, seed=50)
    coef = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loss = lambda *p: (coef * _times(ratio, *p)).sum()  # noqa: E731
    grads = torch.autograd.grad(loss(*params), params)
    h = 1e-5
    for k, (p, g) in enumerate(zip(params, grads)):
        fd = torch.zeros_like(p)
        for i in range(p.numel()):
            args_p = [q.detach().clone() for q in params]
            args_m = [q.detach().clone() for q in params]
            args_p[k].view(-1)[i] += h
            args_m[k].view(-1)[i] -= h
            fd.view(-1)[i] = (loss(*args_p) - loss(*args_m)) / (2 * h)
        assert torch.allclose(g, fd, rtol=1e-6, atol=1e-7)
        assert g.abs().max() > 0  # the parameter really influences the spike times


@pytest.mark.parametrize("ratio", RATIOS)
def test_synaptic_delay_gradients_of_a_neuron_sum_to_one(ratio):
    """Shifting all inputs of a neuron shifts its spike: sum_i dt_j/dT_ij = 1 (dendritic identity)."""
    t_in, w, d = well_conditioned_layer(ratio, "synaptic", batch=1, n_in=6, n_out=5)
    t = first_spike_times(t_in, w, d, tau_mem=ratio)
    fire = torch.isfinite(t[0])
    assert fire.sum() >= 2
    for j in torch.nonzero(fire).flatten().tolist():
        (g_d,) = torch.autograd.grad(t[0, j], d, retain_graph=True)
        assert abs(g_d[:, j].sum().item() - 1.0) < 1e-12
        assert torch.all(g_d[:, [i for i in range(5) if i != j]] == 0)
    # the dendritic delay itself: dt_j / dd_j = 1 exactly
    _, w2, d2 = well_conditioned_layer(ratio, "dendritic", batch=1, n_in=6, n_out=5)
    t2 = first_spike_times(t_in.detach(), w2, d2, tau_mem=ratio)
    (g,) = torch.autograd.grad(torch.where(torch.isfinite(t2), t2, 0).sum(), d2)
    assert torch.equal(g[0], torch.isfinite(t2[0]).double())


@pytest.mark.parametrize("ratio", RATIOS)
def test_input_time_gradients_of_a_neuron_sum_to_one(ratio):
    t_in, w = well_conditioned_layer(ratio, "none", batch=1, n_in=6, n_out=4)
    t = first_spike_times(t_in, w, tau_mem=ratio)
    for j in torch.nonzero(torch.isfinite(t[0])).flatten().tolist():
        (g,) = torch.autograd.grad(t[0, j], t_in, retain_graph=True)
        assert abs(g.sum().item() - 1.0) < 1e-12


@pytest.mark.parametrize("ratio", RATIOS)
def test_axonal_delay_gradient_equals_presynaptic_time_gradient(ratio):
    t_in, w, d = well_conditioned_layer(ratio, "axonal", batch=4, n_in=6, n_out=5)
    coef = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = first_spike_times(t_in, w, d, tau_mem=ratio)
    g_t, g_d = torch.autograd.grad((coef * torch.where(torch.isfinite(t), t, 0)).sum(), (t_in, d))
    assert g_d.abs().max() > 0
    assert torch.allclose(g_d[:, 0], g_t.sum(dim=0), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("kind", DELAY_KINDS)
def test_gradients_at_given_times_equal_engine_gradients(ratio, kind):
    """spike_times_with_grad (the hardware path) gives the engine's gradients at the engine's
    times, and its value is whatever times it is given."""
    params = well_conditioned_layer(ratio, kind, seed=20)
    coef = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = first_spike_times(*params[:2], params[2] if len(params) > 2 else None, tau_mem=ratio)
    ref = torch.autograd.grad((coef * torch.where(torch.isfinite(t), t, 0)).sum(), params)
    measured = t.detach().clone()
    t2 = spike_times_with_grad(measured, *params[:2], params[2] if len(params) > 2 else None,
                               tau_mem=ratio)
    assert torch.equal(t2.detach(), measured)
    got = torch.autograd.grad((coef * torch.where(torch.isfinite(t2), t2, 0)).sum(), params)
    for a, b in zip(ref, got):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    # slightly different (noisy) measured times: value passes through, gradients stay finite
    noisy = measured + 0.01
    t3 = spike_times_with_grad(noisy, *params[:2], params[2] if len(params) > 2 else None,
                               tau_mem=ratio)
    assert torch.equal(t3.detach(), noisy)
    got = torch.autograd.grad(torch.where(torch.isfinite(t3), t3, 0).sum(), params)
    assert all(torch.isfinite(g).all() for g in got)


@pytest.mark.parametrize("ratio", RATIOS)
def test_max_dw_norm_drops_whole_weight_columns_per_sample(ratio):
    """docs/model.md section 4: a (sample, neuron) whose largest |delta_j dt_j/dw_ij| exceeds the
    limit contributes no weight gradient; other gradients are untouched."""
    t_in, w, d = well_conditioned_layer(ratio, "synaptic", batch=5, n_in=6, n_out=4, seed=70)
    coef = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = first_spike_times(t_in, w, d, tau_mem=ratio)
    # per (sample, neuron) weight-gradient columns, from plain autograd
    cols = torch.zeros(5, 6, 4, dtype=torch.float64)
    for b in range(5):
        for j in range(4):
            if torch.isfinite(t[b, j]):
                (gw,) = torch.autograd.grad(coef[b, j] * t[b, j], w, retain_graph=True)
                cols[b, :, j] = gw[:, j]
    largest = cols.abs().amax(dim=1)  # [B, M]
    limit = float(largest[largest > 0].median())
    keep = (largest <= limit).unsqueeze(1)
    assert 0 < keep.sum() < 20
    t2 = first_spike_times(t_in, w, d, tau_mem=ratio, max_dw_norm=limit)
    loss2 = (coef * torch.where(torch.isfinite(t2), t2, 0)).sum()
    g_w, g_d, g_t = torch.autograd.grad(loss2, (w, d, t_in))
    assert torch.allclose(g_w, (cols * keep).sum(dim=0), rtol=1e-12, atol=1e-14)
    loss = (coef * torch.where(torch.isfinite(t), t, 0)).sum()
    ref_d, ref_t = torch.autograd.grad(loss, (d, t_in))
    assert torch.allclose(g_d, ref_d) and torch.allclose(g_t, ref_t)
