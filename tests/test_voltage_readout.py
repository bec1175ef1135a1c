"""The non-spiking readout (engine.voltage_readout, docs/model.md section 12) against a
fine-step integration of the membrane written here, and its gradients against central finite
differences, for every delay kind, both tau ratios and both implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snndelay.engine import set_implementation, voltage_readout

IMPLS = ["torch", "numba"]
KINDS = ["none", "axonal", "dendritic", "synaptic"]
T_END = 4.0


@pytest.fixture(params=IMPLS)
def impl(request):
    set_implementation(request.param)
    yield request.param
    set_implementation("auto")


def _delays(kind: str, n_in: int, n_out: int, gen: torch.Generator) -> torch.Tensor | None:
    shape = {"none": None, "axonal": (n_in, 1), "dendritic": (1, n_out),
             "synaptic": (n_in, n_out)}[kind]
    return None if shape is None else 1.5 * torch.rand(shape, generator=gen, dtype=torch.float64)


def _integrate(t_in: np.ndarray, w: np.ndarray, d: np.ndarray | None, ratio: float,
               t_end: float, dt: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(max, mean) over [0, t_end] of u for du/dt = -u / ratio + I, dI/dt = -I (tau_s = 1),
    I jumping by w at each arrival: exact steps of the linear system on a grid of step dt
    refined by every arrival (so that a maximum at an arrival is a grid point)."""
    n_b = t_in.shape[0]
    n_out = w.shape[1]
    arr = t_in[:, :, None] + (0.0 if d is None else np.broadcast_to(d, w.shape)[None])
    arr = np.broadcast_to(arr, (n_b,) + w.shape)
    grid = np.unique(np.concatenate([np.arange(0.0, t_end, dt), [t_end],
                                     arr[np.isfinite(arr) & (arr < t_end)]]))
    idx = np.searchsorted(grid, arr)  # the grid point of each arrival (exactly on it)
    jumps = np.zeros((len(grid), n_b, n_out))
    for b in range(n_b):
        for i in range(w.shape[0]):
            for j in range(n_out):
                if arr[b, i, j] < t_end:
                    jumps[idx[b, i, j], b, j] += w[i, j]
    u = np.zeros((n_b, n_out))
    cur = jumps[0].copy()
    top, integral = u.copy(), np.zeros_like(u)
    for k in range(1, len(grid)):
        h = grid[k] - grid[k - 1]
        phi = h * math.exp(-h) if ratio == 1.0 else \
            (math.exp(-h / ratio) - math.exp(-h)) / (1.0 - 1.0 / ratio)
        u_new = u * math.exp(-h / ratio) + cur * phi
        integral += 0.5 * h * (u + u_new)
        u = u_new
        cur = cur * math.exp(-h) + jumps[k]
        top = np.maximum(top, u)
    return top, integral / t_end


@pytest.mark.parametrize("ratio", [1.0, 2.0])
@pytest.mark.parametrize("kind", KINDS)
def test_readout_matches_a_fine_step_integration_of_the_membrane(impl, kind, ratio):
    gen = torch.Generator().manual_seed(7)
    n_b, n_in, n_out = 2, 5, 3
    t = 2.5 * torch.rand(n_b, n_in, generator=gen, dtype=torch.float64)
    t[0, 1] = math.inf  # a silent input
    w = torch.randn(n_in, n_out, generator=gen, dtype=torch.float64)
    d = _delays(kind, n_in, n_out, gen)
    top, mean = _integrate(t.numpy(), w.numpy(), None if d is None else d.numpy(), ratio, T_END)
    for mode, ref in (("max", top), ("mean", mean)):
        z = voltage_readout(t, w, d, tau_mem=ratio, tau_syn=1.0, mode=mode, t_end=T_END)
        np.testing.assert_allclose(z.numpy(), ref, atol=1e-4, rtol=0)


def _fd_check(t, w, d, ratio, mode, tau_syn=1.0):
    args = [t.clone().requires_grad_(), w.clone().requires_grad_()]
    if d is not None:
        args.append(d.clone().requires_grad_())

    def f(*xs):
        return voltage_readout(xs[0], xs[1], xs[2] if len(xs) > 2 else None, tau_mem=ratio * tau_syn,
                               tau_syn=tau_syn, mode=mode, t_end=T_END * tau_syn)

    gen = torch.Generator().manual_seed(3)
    probe = torch.randn(t.shape[0], w.shape[1], generator=gen, dtype=torch.float64)
    (f(*args) * probe).sum().backward()
    eps = 1e-6
    for a in args:
        flat = a.detach().reshape(-1)
        fd = torch.zeros_like(flat)
        for k in range(flat.numel()):
            if not math.isfinite(float(flat[k])):
                continue
            vals = []
            for sgn in (1.0, -1.0):
                xs = [x.detach().clone() for x in args]
                pos = [i for i, x in enumerate(args) if x is a][0]
                xs[pos].reshape(-1)[k] += sgn * eps
                vals.append(float((f(*xs) * probe).sum()))
            fd[k] = (vals[0] - vals[1]) / (2 * eps)
        got = a.grad.reshape(-1)
        scale = max(1.0, float(fd.abs().max()))
        np.testing.assert_allclose(got.numpy(), fd.numpy(), rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("ratio", [1.0, 2.0])
@pytest.mark.parametrize("kind", KINDS)
def test_readout_gradients_match_central_finite_differences(impl, kind, ratio, mode):
    gen = torch.Generator().manual_seed(11)
    n_b, n_in, n_out = 3, 5, 3
    t = 2.5 * torch.rand(n_b, n_in, generator=gen, dtype=torch.float64)
    t[1, 2] = math.inf
    w = torch.randn(n_in, n_out, generator=gen, dtype=torch.float64)
    _fd_check(t, w, _delays(kind, n_in, n_out, gen), ratio, mode)


def test_readout_gradients_with_spike_trains_and_tau_syn_match_finite_differences(impl):
    """Inputs [B, N, S] (a multi-spike layer's trains), tau_syn != 1 (times scaled)."""
    gen = torch.Generator().manual_seed(5)
    t = torch.sort(3.0 * torch.rand(2, 4, 3, generator=gen, dtype=torch.float64), dim=2).values
    t[0, 1, 2] = math.inf
    w = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    d = _delays("synaptic", 4, 3, gen)
    for mode in ("max", "mean"):
        _fd_check(t * 2.0, w, d * 2.0, 2.0, mode, tau_syn=2.0)


def test_a_maximum_on_an_inhibitory_arrival_moves_with_it(impl):
    """u rises after an excitatory input until an inhibitory one arrives: the maximum is at that
    arrival, and dz/dT of the inhibitory arrival is u'(T^-) (not the envelope's partial)."""
    t = torch.tensor([[0.0, 0.5]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0], [-5.0]], dtype=torch.float64)
    z = voltage_readout(t, w, tau_mem=1.0, mode="max", t_end=T_END)
    assert float(z.detach()) == pytest.approx(0.5 * math.exp(-0.5), rel=1e-12)  # u(0.5) = k(0.5)
    z.sum().backward()
    slope = (1 - 0.5) * math.exp(-0.5)  # u'(0.5^-) = k'(0.5)
    np.testing.assert_allclose(t.grad.numpy(), [[-slope, slope]], rtol=1e-12)


def test_the_compiled_and_torch_readouts_agree_on_long_inputs():
    """Arrivals spanning hundreds of tau_s (the window-frame sums of both implementations)."""
    gen = torch.Generator().manual_seed(2)
    t = 400.0 * torch.rand(4, 30, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    d = 20.0 * torch.rand(30, 6, generator=gen, dtype=torch.float64)
    out = {}
    for impl in IMPLS:
        set_implementation(impl)
        for mode in ("max", "mean"):
            tt, ww, dd = (x.clone().requires_grad_() for x in (t, w, d))
            z = voltage_readout(tt, ww, dd, tau_mem=2.0, mode=mode, t_end=500.0)
            z.sum().backward()
            out[impl, mode] = [z.detach(), tt.grad, ww.grad, dd.grad]
    set_implementation("auto")
    for mode in ("max", "mean"):
        for a, b in zip(out["torch", mode], out["numba", mode]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(n_fin=st.integers(0, 4), span=st.sampled_from([1.0, 50.0, 1e4]),
       w_scale=st.sampled_from([1e-6, 1.0, 1e6]), ratio=st.sampled_from([1.0, 2.0]),
       mode=st.sampled_from(["max", "mean"]), impl=st.sampled_from(IMPLS),
       seed=st.integers(0, 1000), t_end=st.sampled_from([0.5, 10.0, 2e4]))
def test_readout_stays_finite_on_edge_cases(n_fin, span, w_scale, ratio, mode, impl, seed,
                                            t_end):
    """No arrivals, one arrival, arrivals after t_end, huge spans and weights: finite z and
    gradients, never NaN; no arrival before t_end gives z = 0."""
    set_implementation(impl)
    try:
        gen = torch.Generator().manual_seed(seed)
        t = torch.full((2, 4), math.inf, dtype=torch.float64)
        t[:, :n_fin] = span * torch.rand(2, n_fin, generator=gen, dtype=torch.float64)
        w = w_scale * torch.randn(4, 3, generator=gen, dtype=torch.float64)
        d = span * torch.rand(4, 3, generator=gen, dtype=torch.float64)
        tt, ww, dd = (x.clone().requires_grad_() for x in (t, w, d))
        z = voltage_readout(tt, ww, dd, tau_mem=ratio, mode=mode, t_end=t_end)
        z.sum().backward()
        for x in (z, tt.grad, ww.grad, dd.grad):
            assert not torch.isnan(x).any() and torch.isfinite(x).all()
        none_before = ~((t[:, :, None] + d[None]) < t_end).any(dim=1)
        assert (z[none_before] == 0).all()
    finally:
        set_implementation("auto")


def test_readout_refuses_an_unknown_mode_and_a_bad_t_end():
    t = torch.zeros(1, 2, dtype=torch.float64)
    w = torch.ones(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="mode must be one of max, mean"):
        voltage_readout(t, w, mode="median", t_end=1.0)
    with pytest.raises(ValueError, match="t_end must be positive"):
        voltage_readout(t, w, t_end=0.0)
