"""The published hardware backward (backend.backward=nominal): spike-time derivatives with the
slope from docs/model.md section 4's ratio-1 closed form at the *nominal* threshold, taken at
spike times that a noisy threshold produced. Checked against that closed form written here
with SciPy's Lambert W (independent of the engine's torch W0 and of its prefix sums)."""

import numpy as np
import pytest
import torch
from scipy.special import lambertw

from snndelay.engine import LayerParams, Neuron, layer_backward, layer_forward
from snndelay.engine.backward import nominal_slope_scale
from snndelay.engine.types import DelayKind

THETA = 2.6


def _layer(seed, n_in=12, n_out=5, kind=DelayKind.NONE):
    rng = np.random.default_rng(seed)
    w = rng.normal(0.8, 0.5, (n_in, n_out))
    d = {DelayKind.NONE: None, DelayKind.AXONAL: rng.uniform(0.0, 1.5, n_in),
         DelayKind.SYNAPTIC: rng.uniform(0.0, 1.5, (n_in, n_out))}[kind]
    return LayerParams(w, kind, d, None, Neuron(1.0, 1.0, THETA))


def _published(t, w, d_syn, t_out, g):
    """dL/dw and dL/dt_in of the published backward: with A = sum_C w e^T, B = sum_C w T e^T over
    the causal set at the measured t*, W = W0(-(theta/A) e^{B/A}) at the nominal theta,
    dt*/dw_i = -e^{T_i} (t* - T_i) / (A (1 + W)), dt*/dT_i = w_i e^{T_i} (1 - (t* - T_i)) /
    (A (1 + W)); nothing where W0 has no real value or the neuron is silent."""
    b_n, n_in = t.shape
    g_w, g_t = np.zeros_like(w), np.zeros_like(t)
    for b in range(b_n):
        for m in range(w.shape[1]):
            ts = t_out[b, m]
            if not np.isfinite(ts):
                continue
            arr = t[b] + (0.0 if d_syn is None else d_syn[:, m])
            c = arr < ts
            e = np.exp(arr[c])
            a = float((w[c, m] * e).sum())
            bb = float((w[c, m] * arr[c] * e).sum())
            z = -(THETA / a) * np.exp(bb / a)
            if z < -np.exp(-1.0):
                continue
            den = a * (1.0 + lambertw(z, 0).real)
            g_w[c, m] += g[b, m] * -e * (ts - arr[c]) / den
            g_t[b, c] += g[b, m] * w[c, m] * e * (1.0 - (ts - arr[c])) / den
    return g_w, g_t


@pytest.mark.parametrize("kind", [DelayKind.NONE, DelayKind.AXONAL, DelayKind.SYNAPTIC])
def test_nominal_slope_is_the_measured_one_when_the_threshold_was_nominal(kind):
    layer = _layer(1, kind=kind)
    t = np.random.default_rng(2).uniform(0.0, 2.0, (16, 12))
    out, cache = layer_forward(t, layer)
    assert np.isfinite(out).mean() > 0.5
    arr = cache.arr
    s = nominal_slope_scale(*(torch.from_numpy(x) if x is not None else None
                              for x in (cache.core, arr.t, arr.w, arr.d_syn)), THETA).numpy()
    np.testing.assert_allclose(s[np.isfinite(out)], 1.0, rtol=1e-10)
    assert (s[~np.isfinite(out)] == 0).all()


@pytest.mark.parametrize("kind", [DelayKind.NONE, DelayKind.AXONAL, DelayKind.SYNAPTIC])
def test_nominal_backward_equals_the_published_closed_form_at_noisy_spike_times(kind, engine_impl):
    layer = _layer(3, kind=kind)
    rng = np.random.default_rng(4)
    t = rng.uniform(0.0, 2.0, (24, 12))
    # per (sample, neuron) thresholds around the nominal one: fixed-pattern and trial offsets
    theta = THETA + rng.normal(0.13, 0.08, 5)[None, :] + rng.normal(0.0, 0.04, (24, 5))
    theta[0, :] = THETA - 0.3  # some below nominal too
    out, cache = layer_forward(t, layer, theta=theta)
    assert np.isfinite(out).mean() > 0.5
    g = rng.normal(size=out.shape)
    g_t, g_w, _ = layer_backward(cache, g, nominal_threshold=THETA)
    arrive = t + layer.delays[None, :] if kind is DelayKind.AXONAL else t  # dT/dt_in = 1
    ref_w, ref_t = _published(arrive, layer.weights, layer.delays if kind is DelayKind.SYNAPTIC
                              else None, out, g)
    np.testing.assert_allclose(g_w, ref_w, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g_t, ref_t, rtol=1e-8, atol=1e-10)
    exact_t, exact_w, _ = layer_backward(cache, g)
    assert not np.allclose(exact_w, g_w)  # the two backwards do differ under noise


def test_nominal_backward_at_times_that_other_weights_produced(engine_impl):
    # Chip-in-the-loop: the chip ran quantised weights, the backward takes the float shadow
    # weights at the measured times. Where u'(t*) of the shadow weights is <= 0 (no crossing of
    # theirs) the result must still be the published 1 / u'_nom, not a division by ~0.
    rng = np.random.default_rng(5)
    shadow = _layer(6, n_in=12, n_out=5)
    quant = LayerParams(np.round(shadow.weights * 3) / 3, DelayKind.NONE, None, None,
                        shadow.neuron)  # coarse, so that slopes disagree
    t = rng.uniform(0.0, 2.0, (64, 12))
    theta = THETA + rng.normal(0.13, 0.08, 5)[None, :] + rng.normal(0.0, 0.04, (64, 5))
    measured, _ = layer_forward(t, quant, theta=theta)
    _, cache = layer_forward(t, shadow, t_given=measured)
    x = t[:, :, None] - measured[:, None, :]
    c = (x < 0) & np.isfinite(measured[:, None, :])
    slope = np.where(c, shadow.weights[None] * np.exp(np.where(c, x, 0)) * (1 + np.where(c, x, 0)),
                     0).sum(axis=1)
    assert (slope[np.isfinite(measured)] <= 0).any()  # the case this test is about occurs
    g = rng.normal(size=measured.shape)
    g_t, g_w, _ = layer_backward(cache, g, nominal_threshold=THETA)
    ref_w, ref_t = _published(t, shadow.weights, None, measured, g)
    np.testing.assert_allclose(g_w, ref_w, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g_t, ref_t, rtol=1e-8, atol=1e-10)


def test_nominal_backward_drops_a_spike_the_nominal_neuron_could_not_fire():
    # one input of weight 1 at t = 0: u peaks at 1/e ~ 0.37; a threshold of 0.3 fires,
    # the nominal 2.6 never would: the published backward gives that spike no gradient
    layer = LayerParams(np.ones((1, 1)), DelayKind.NONE, None, None, Neuron(1.0, 1.0, THETA))
    out, cache = layer_forward(np.zeros((1, 1)), layer, theta=np.array([[0.3]]))
    assert np.isfinite(out).all()
    g_t, g_w, _ = layer_backward(cache, np.ones((1, 1)), nominal_threshold=THETA)
    assert g_t[0, 0] == 0.0 and g_w[0, 0] == 0.0
    _, g_w_exact, _ = layer_backward(cache, np.ones((1, 1)))
    assert g_w_exact[0, 0] != 0.0


def test_nominal_backward_refuses_other_neurons():
    layer = LayerParams(np.ones((2, 1)), DelayKind.NONE, None, None, Neuron(2.0, 1.0, 0.5))
    _, cache = layer_forward(np.zeros((1, 2)), layer)
    with pytest.raises(ValueError, match="tau_mem = tau_syn"):
        layer_backward(cache, np.ones((1, 1)), nominal_threshold=0.5)
