"""Property-based checks of the engine's edge cases: never NaN, +inf exactly where silent,
finite gradients (zero where a neuron does not fire)."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snndelay.engine import first_spike_times

pytestmark = pytest.mark.usefixtures("engine_impl")

INF = math.inf
times = st.one_of(st.floats(0.0, 5.0), st.just(INF), st.sampled_from([0.0, 1.0, 1.0, 2.5]))
weights = st.one_of(st.floats(-3.0, 3.0), st.just(0.0), st.floats(1e6, 1e12),
                    st.floats(-1e12, -1e6), st.floats(1e-14, 1e-10), st.sampled_from([2.0, -1.0]))


@st.composite
def layers(draw):
    n_b = draw(st.integers(1, 3))
    n_in = draw(st.integers(1, 5))
    n_out = draw(st.integers(1, 4))
    spikes = draw(st.sampled_from([1, 1, 2]))
    shape = (n_b, n_in) if spikes == 1 else (n_b, n_in, spikes)
    t = torch.tensor(draw(st.lists(times, min_size=math.prod(shape), max_size=math.prod(shape))),
                     dtype=torch.float64).view(shape)
    w = torch.tensor(draw(st.lists(weights, min_size=n_in * n_out, max_size=n_in * n_out)),
                     dtype=torch.float64).view(n_in, n_out)
    if draw(st.booleans()):
        w = -w.abs()  # all-negative layers
    kind = draw(st.sampled_from(["none", "axonal", "dendritic", "synaptic"]))
    dshape = {"none": None, "axonal": (n_in, 1), "dendritic": (1, n_out), "synaptic": (n_in, n_out)}[kind]
    d = None
    if dshape is not None:
        n = math.prod(dshape)
        d = torch.tensor(draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n)),
                         dtype=torch.float64).view(dshape)
    ratio = draw(st.sampled_from([1.0, 2.0]))
    theta = draw(st.sampled_from([1.0, 0.5, 2.6]))
    return t, w, d, ratio, theta


def _check(t, w, d, ratio, theta):
    params = [p.clone().requires_grad_() for p in (t, w) + (() if d is None else (d,))]
    out = first_spike_times(*params[:2], params[2] if d is not None else None,
                            tau_mem=ratio, threshold=theta)
    assert not torch.isnan(out).any()
    assert not torch.isneginf(out).any()
    fire = torch.isfinite(out)
    loss = torch.where(fire, out, torch.zeros_like(out)).sum()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for g in grads:
        assert g is None or torch.isfinite(g).all()
    if not fire.any():
        assert all(g is None or torch.all(g == 0) for g in grads)
    # A neuron fires at or after its earliest arrival.
    ti = t if t.dim() == 3 else t[..., None]
    dd = torch.zeros(w.shape, dtype=torch.float64) if d is None else d.expand(w.shape)
    earliest = (ti[:, :, :, None] + dd[None, :, None, :]).amin(dim=(1, 2))
    assert torch.all(out[fire] >= earliest[fire])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers())
def test_never_nan_and_finite_gradients(layer):
    _check(*layer)


@pytest.mark.parametrize("ratio, peak", [(2.0, 0.5), (1.0, 1.0 / math.e)])
@pytest.mark.parametrize("rel", [-1e-12, 0.0, 1e-12, 1e-6])
def test_grazing_crossing_is_finite(ratio, peak, rel):
    """One input whose PSP peak equals the threshold up to rel: the crossing is grazing."""
    w = torch.tensor([[1.0 / peak * (1.0 + rel)]], dtype=torch.float64)
    t = torch.tensor([[0.5]], dtype=torch.float64)
    out = _check(t, w, None, ratio, 1.0)
    if rel > 0:
        assert torch.isfinite(out).all()
    if rel < 0:
        assert torch.isinf(out).all()


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_silent_and_empty_inputs(ratio):
    t = torch.full((2, 3), INF, dtype=torch.float64)
    w = torch.ones(3, 2, dtype=torch.float64)
    out = _check(t, w, torch.ones(3, 2, dtype=torch.float64), ratio, 1.0)
    assert torch.isinf(out).all()
    # identical arrival times from many inputs
    t = torch.ones(2, 6, dtype=torch.float64)
    out = _check(t, torch.full((6, 2), 0.5, dtype=torch.float64), None, ratio, 1.0)
    assert torch.isfinite(out).all() and torch.all(out > 1.0)
