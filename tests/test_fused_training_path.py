"""The fused training path (numpy forward, hand-chained spike-time backward, closed-form loss
gradients) against the autograd path and against finite differences."""

import itertools

import numpy as np
import pytest
import torch

from snndelay.config import compose
from snndelay.engine import _impl
from snndelay.losses import LOSSES, LOSSES_NP, predict, predict_np
from snndelay.network import DelaySpec, Network
from snndelay.training import Trainer

pytestmark = pytest.mark.skipif(not _impl.HAVE_NUMBA, reason="the fused path needs numba")

CASES = list(itertools.product(
    ["none", "axonal", "dendritic", "synaptic"], ["sigmoid", "clamp"],
    [(2.0, 1.0), (1.0, 1.0), (1.0, 0.5)], [None, 0.9], [1, 2]))


def _net(kind, pos, taus, bias, group):
    return Network([4, 7, 3], w_mean=[1.0, 1.0], w_std=[1.0, 1.0],
                   delays=[DelaySpec(kind, positivity=pos, group_size=group)] * 2,
                   bias_time=bias, tau_mem=taus[0], tau_syn=taus[1], threshold=1.0, seed=1)


@pytest.mark.parametrize("kind,pos,taus,bias,group", CASES)
def test_fused_times_and_gradients_equal_autograd(kind, pos, taus, bias, group):
    net = _net(kind, pos, taus, bias, group)
    gen = torch.Generator().manual_seed(3)
    t_in = 0.15 + 1.85 * torch.rand(40, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    times = net(t_in, max_dw_norm=0.2)
    LOSSES["shift_mse"](times[-1], y).mean().backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = None

    outs, caches = net.forward_fused(t_in.numpy())
    for a, b in zip(times, outs):
        a = a.detach().numpy()
        assert np.array_equal(np.isinf(a), np.isinf(b))
        np.testing.assert_allclose(b[np.isfinite(b)], a[np.isfinite(a)], rtol=0, atol=1e-12)
    _, g_out = LOSSES_NP["shift_mse"](outs[-1], y.numpy())
    net.backward_fused(caches, g_out, max_dw_norm=0.2)
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, ref[name], rtol=1e-10, atol=1e-12, msg=name)


def test_fused_gradient_matches_finite_differences():
    """Independent of autograd: central differences of the fused loss in every parameter."""
    net = _net("synaptic", "sigmoid", (2.0, 1.0), 0.9, 1)
    gen = torch.Generator().manual_seed(5)
    t_in = (0.15 + 1.85 * torch.rand(20, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (20,), generator=gen).numpy()

    def loss() -> float:
        outs, _ = net.forward_fused(t_in)
        return float(LOSSES_NP["shift_mse"](outs[-1], y)[0].mean())

    outs, caches = net.forward_fused(t_in)
    net.backward_fused(caches, LOSSES_NP["shift_mse"](outs[-1], y)[1])
    h = 1e-6
    for name, p in net.named_parameters():
        flat, grad = p.data.view(-1), p.grad.reshape(-1)
        for k in range(0, flat.numel(), max(1, flat.numel() // 7)):
            old = float(flat[k])
            flat[k] = old + h
            up = loss()
            flat[k] = old - h
            down = loss()
            flat[k] = old
            assert abs((up - down) / (2 * h) - float(grad[k])) < 1e-6, (name, k)


@pytest.mark.parametrize("name,kw", [("shift_mse", {"dt": 0.2}),
                                     ("ttfs_ce", {"xi": 0.2, "alpha": 0.005, "beta": 1.0})])
def test_numpy_losses_and_gradients_equal_torch_with_silent_outputs(name, kw):
    rng = np.random.default_rng(0)
    t = 2.0 * rng.random((300, 3))
    t[rng.random((300, 3)) < 0.15] = np.inf  # silent outputs, label and non-label
    t[7] = np.inf  # a wholly silent sample
    y = rng.integers(0, 3, 300)
    tt = torch.tensor(t, requires_grad=True)
    per = LOSSES[name](tt, torch.tensor(y), **kw)
    per.mean().backward()
    per_np, g_np = LOSSES_NP[name](t, y, **kw)
    assert np.isfinite(per_np).all() and np.isfinite(g_np).all()
    np.testing.assert_allclose(per_np, per.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g_np, tt.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert (g_np[7] == 0).all()
    np.testing.assert_array_equal(predict_np(t), predict(torch.tensor(t)).numpy())


def test_shift_mse_np_gradient_by_hand():
    # t = (1.0, 1.5, 1.1), label 0, dt 0.2: r = (0, 0.3, -0.1); dL/dt = (-0.2, 0.3, -0.1)
    per, g = LOSSES_NP["shift_mse"](np.array([[1.0, 1.5, 1.1]]), np.array([0]), dt=0.2)
    assert per[0] == pytest.approx(0.5 * (0.3 ** 2 + 0.1 ** 2), abs=1e-15)
    np.testing.assert_allclose(g[0], [-0.2, 0.3, -0.1], atol=1e-15)


def test_fused_and_autograd_training_agree_over_an_epoch():
    cfg = compose(["training.epochs=1", "dataset.train_size=600", "dataset.val_size=200"])[1]
    a, b = Trainer(cfg), Trainer(cfg)
    assert a.fused
    b.fused = False
    ra, rb = a.train_epoch(), b.train_epoch()
    for key in ("train_loss", "val_loss"):
        assert ra[key] == pytest.approx(rb[key], rel=1e-9)
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-11)


def test_gradients_are_bit_identical_on_any_thread_count(monkeypatch):
    """Same seed + same config = same run, whether 1 or several threads share the work."""
    import numba

    from snndelay.engine import _impl

    # A Yin-Yang layer is below the work size at which the engine goes parallel: lower it, so
    # that 2 threads really split the loops here.
    monkeypatch.setattr(_impl, "_parallel_min_work", 0)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    gen = torch.Generator().manual_seed(9)
    t_in = (0.15 + 1.85 * torch.rand(150, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (150,), generator=gen).numpy()
    grads = []
    before = numba.get_num_threads()
    try:
        for n in (1, 2):
            numba.set_num_threads(n)
            net = _net("synaptic", "sigmoid", (2.0, 1.0), None, 1)
            outs, caches = net.forward_fused(t_in)
            net.backward_fused(caches, LOSSES_NP["shift_mse"](outs[-1], y)[1], max_dw_norm=0.2)
            grads.append([p.grad.clone() for p in net.parameters()])
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["none", "axonal", "dendritic", "synaptic"])
@pytest.mark.parametrize("bias", [None, 0.9])
def test_fused_multi_spike_inputs_equal_autograd(kind, bias):
    """[B, N, S] event inputs (SHD): each spike is an arrival with its channel's parameters."""
    net = _net(kind, "sigmoid", (2.0, 1.0), bias, 1)
    gen = torch.Generator().manual_seed(11)
    t_in = 0.15 + 4.0 * torch.rand(30, 4, 3, generator=gen, dtype=torch.float64)
    t_in[torch.rand(30, 4, 3, generator=gen) < 0.3] = float("inf")
    y = torch.randint(0, 3, (30,), generator=gen)
    times = net(t_in, max_dw_norm=0.2)
    LOSSES["shift_mse"](times[-1], y).mean().backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    outs, caches = net.forward_fused(t_in.numpy())
    np.testing.assert_allclose(outs[-1], times[-1].detach().numpy(), rtol=0, atol=1e-12)
    net.backward_fused(caches, LOSSES_NP["shift_mse"](outs[-1], y.numpy())[1], max_dw_norm=0.2)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, ref[name], rtol=1e-10, atol=1e-12, msg=name)


def test_small_layers_run_on_one_thread_and_restore_the_count():
    import numba

    from snndelay.engine import _impl

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        with _impl.threads_for(150 * 4 * 30) as n:
            assert n == 1 and numba.get_num_threads() == 1
        assert numba.get_num_threads() == 2
        with _impl.threads_for(_impl.PARALLEL_MIN_WORK) as n:
            assert n == 2 and numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(before)
