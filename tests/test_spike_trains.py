"""Multi-spike neurons (reset by subtraction, docs/model.md section 11): spike trains against a
fine-step ODE integration with reset and an exact root-finding reference, gradients against
central finite differences, and the guarantees of the single-spike engine (sorted, padded,
never NaN, max_spikes = 1 is first_spike_times)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import (
    DELAY_KINDS,
    arrivals,
    exact_spike_train,
    ode_spike_trains,
    random_layer,
)

from snndelay.engine import first_spike_times, set_implementation, spike_trains

pytestmark = pytest.mark.usefixtures("engine_impl")

K = 6
CASES = [(r, k) for r in (1.0, 2.0) for k in DELAY_KINDS]


def _layer(i, spikes=1):
    ratio, kind = CASES[i]
    # Strong positive drive: most neurons fire several times (ratio 1 PSPs peak at w/e).
    return random_layer(300 + i, 3, 8, 4, kind=kind, spikes=spikes,
                        w_mean=1.6 if ratio == 1.0 else 0.9, w_std=0.8)


@pytest.fixture(scope="module")
def ode_results():
    """ODE spike trains for every case (numba-compiled reference, dt = 1e-4)."""
    out = {}
    for i, (ratio, _) in enumerate(CASES):
        arr, ww = arrivals(*_layer(i))
        out[i] = (arr, ww) + ode_spike_trains(arr, ww, 1.0, ratio, K)
    return out


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"ratio{r:g}-{k}" for r, k in CASES])
def test_spike_trains_match_ode_with_reset_and_exact_roots(ode_results, case):
    ratio = CASES[case][0]
    t_eng = spike_trains(*_layer(case), tau_mem=ratio, max_spikes=K).numpy()
    arr, ww, t_ode, slope, gap = ode_results[case]
    flat_eng = t_eng.reshape(-1, K)
    flat_ode, flat_slope, flat_gap = (x.reshape(-1, K) for x in (t_ode, slope, gap))
    flat_arr, flat_ww = arr.reshape(-1, arr.shape[-1]), ww.reshape(-1, ww.shape[-1])
    n_multi = n_exact = 0
    for p in range(flat_eng.shape[0]):
        # Compare up to the first grazing event: a crossing with a tiny slope or a peak within
        # 1e-3 of theta may legitimately be found by one solver and not the other.
        ok = K
        for k in range(K):
            if (np.isfinite(flat_ode[p, k]) and flat_slope[p, k] < 1e-2) or flat_gap[p, k] < 1e-3:
                ok = k
                break
        e, o = flat_eng[p, :ok], flat_ode[p, :ok]
        assert np.array_equal(np.isfinite(e), np.isfinite(o)), (p, e, o)
        f = np.isfinite(o)
        assert np.all(np.abs(e[f] - o[f]) < 1e-3), (p, e, o)
        n_multi += int(f.sum() >= 2)
        exact = exact_spike_train(flat_arr[p], flat_ww[p], 1.0, ratio, flat_eng[p, :ok])
        good = np.isfinite(exact)
        assert np.all(np.abs(exact[good] - e[good]) < 1e-8), (p, exact, e)
        n_exact += int(good.sum())
    assert n_multi >= 4 and n_exact >= 15  # the comparison is not vacuous


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", DELAY_KINDS)
def test_max_spikes_one_is_first_spike_times(ratio, kind):
    t_in, w, d = random_layer(11, 4, 6, 5, kind=kind, spikes=2, w_mean=1.0)
    one = spike_trains(t_in, w, d, tau_mem=ratio, max_spikes=1)
    first = first_spike_times(t_in, w, d, tau_mem=ratio)
    assert one.shape == (4, 5, 1)
    assert torch.equal(one[..., 0], first)
    many = spike_trains(t_in, w, d, tau_mem=ratio, max_spikes=K)
    # A neuron's first spike does not depend on the reset of later ones.
    assert torch.allclose(many[..., 0], first, rtol=0, atol=1e-12, equal_nan=False) or \
        torch.equal(torch.isinf(many[..., 0]), torch.isinf(first))


def _loss(t, c):
    return torch.where(torch.isfinite(t), t * c, torch.zeros_like(t)).sum()


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", DELAY_KINDS)
@pytest.mark.parametrize("spikes", (1, pytest.param(2, marks=pytest.mark.slow)))
def test_gradients_match_central_differences(ratio, kind, spikes):
    """dL/d(inputs, weights, delays) of L = sum_k c_k t_k against central differences with
    h = 1e-6, on every entry whose perturbation neither adds nor removes a spike."""
    t_in, w, d = random_layer(40 + spikes, 2, 5, 3, kind=kind, spikes=spikes,
                              w_mean=1.6 if ratio == 1.0 else 0.9, w_std=0.6)
    params = [t_in, w] + ([] if d is None else [d])
    for p in params:
        p.requires_grad_()
    c = torch.randn(2, 3, K, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = spike_trains(*params, tau_mem=ratio, max_spikes=K)
    assert (torch.isfinite(out).sum(-1) >= 2).any()  # trains, not just first spikes
    grads = torch.autograd.grad(_loss(out, c), params)
    h = 1e-6
    checked = 0
    for p, g in zip(params, grads):
        flat = p.detach().clone().reshape(-1)
        for idx in range(flat.numel()):
            if not math.isfinite(float(flat[idx])):
                continue
            vals = []
            for sign in (1.0, -1.0):
                q = flat.clone()
                q[idx] += sign * h
                args = [q.reshape(p.shape) if a is p else a.detach() for a in params]
                vals.append(spike_trains(*args, tau_mem=ratio, max_spikes=K))
            if not torch.equal(torch.isfinite(vals[0]), torch.isfinite(out)) or \
                    not torch.equal(torch.isfinite(vals[1]), torch.isfinite(out)):
                continue  # a spike appears or vanishes: no derivative there
            fd = float((_loss(vals[0], c) - _loss(vals[1], c)) / (2 * h))
            an = float(g.reshape(-1)[idx])
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), (p.shape, idx, fd, an)
            checked += 1
    assert checked >= 20


def test_implementations_agree_on_trains_and_gradients():
    """The compiled CPU loops and the vectorised torch code (the GPU path) give the same
    trains and gradients, including inputs spanning hundreds of tau_s (the torch solver's
    log-domain path)."""
    for seed, span in ((0, 3.0), (1, 400.0)):
        g = torch.Generator().manual_seed(seed)
        t_in = span * torch.rand(3, 30, 4, generator=g, dtype=torch.float64)
        w = 0.5 + 0.6 * torch.randn(30, 6, generator=g, dtype=torch.float64)
        d = 5.0 * torch.rand(30, 6, generator=g, dtype=torch.float64)
        res = []
        for impl in ("torch", "numba"):
            set_implementation(impl)
            ps = [x.clone().requires_grad_() for x in (t_in, w, d)]
            out = spike_trains(*ps, tau_mem=2.0, max_spikes=K)
            gr = torch.autograd.grad(_loss(out, torch.ones_like(out)), ps)
            res.append((out.detach(), gr))
        (o1, g1), (o2, g2) = res
        assert torch.equal(torch.isfinite(o1), torch.isfinite(o2))
        assert (torch.isfinite(o1).sum(-1) >= 2).sum() >= 5
        f = torch.isfinite(o1)
        assert torch.allclose(o1[f], o2[f], rtol=0, atol=1e-9)
        for a, b in zip(g1, g2):
            assert torch.allclose(a, b, rtol=1e-7, atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-6, 1.0, 30.0, 1e6]),
       span=st.sampled_from([0.5, 20.0, 2000.0]), max_spikes=st.integers(1, 9),
       ratio=st.sampled_from([1.0, 2.0]), kind=st.sampled_from(DELAY_KINDS))
def test_trains_are_sorted_padded_and_never_nan(seed, scale, span, max_spikes, ratio, kind):
    g = torch.Generator().manual_seed(seed)
    t_in = span * torch.rand(2, 7, 3, generator=g, dtype=torch.float64)
    t_in[torch.rand(2, 7, 3, generator=g) < 0.3] = math.inf
    w = scale * torch.randn(7, 4, generator=g, dtype=torch.float64)
    shape = {"none": None, "axonal": (7, 1), "dendritic": (1, 4), "synaptic": (7, 4)}[kind]
    d = None if shape is None else 3.0 * torch.rand(shape, generator=g, dtype=torch.float64)
    params = [p.requires_grad_() for p in [t_in, w] + ([] if d is None else [d])]
    out = spike_trains(*params, tau_mem=ratio, threshold=scale, max_spikes=max_spikes)
    assert out.shape == (2, 4, max_spikes)
    assert not torch.isnan(out).any()
    fin = torch.isfinite(out)
    # +inf padding only after the last spike, and every row is sorted
    assert torch.equal(fin, fin.cummin(dim=-1).values)
    diffs = torch.diff(torch.where(fin, out, torch.full_like(out, 1e300)), dim=-1)
    assert (diffs >= 0).all()
    grads = torch.autograd.grad(_loss(out, torch.ones_like(out)), params)
    for p, gr in zip(params, grads):
        assert not torch.isnan(gr).any()


def test_bad_max_spikes_is_one_clear_error():
    t_in, w, _ = random_layer(0, 2, 3, 2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_spikes must be an integer >= 1"):
            spike_trains(t_in, w, max_spikes=bad)
