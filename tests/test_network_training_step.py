"""The network's one training path (engine layers chained by hand on numpy arrays, closed-form
loss gradients, the delay transform's vjp) against an autograd composition of the engine's
public first_spike_times written in the test, and against finite differences."""

import itertools

import numpy as np
import pytest
import torch
from reference import autograd_network, central_differences

from snndelay.config import resolve
from snndelay.model.delays import DelaySpec
from snndelay.model.losses import LOSSES, predict
from snndelay.model.network import Network
from snndelay.model.torch_losses import shift_mse, torch_loss

CASES = list(itertools.product(
    ["none", "axonal", "dendritic", "synaptic"], ["sigmoid", "clamp"],
    [(2.0, 1.0), (1.0, 1.0), (1.0, 0.5)], [None, 0.9], [1, 2]))


def _net(kind, pos, taus, bias, group):
    return Network([4, 7, 3], w_mean=[1.0, 1.0], w_std=[1.0, 1.0],
                   delays=[DelaySpec(kind, positivity=pos, group_size=group)] * 2,
                   bias_time=bias, tau_mem=taus[0], tau_syn=taus[1], threshold=1.0, seed=1)


def _torch_impl_cases():
    """The torch implementation on every delay kind once (ratio 2, with bias and groups)."""
    return [c for c in CASES if c[1] == "sigmoid" and c[2] == (2.0, 1.0) and c[3] and c[4] == 2]


@pytest.mark.parametrize("kind,pos,taus,bias,group", CASES)
def test_network_times_and_gradients_equal_autograd(kind, pos, taus, bias, group):
    _check_against_autograd(kind, pos, taus, bias, group)


@pytest.mark.parametrize("kind,pos,taus,bias,group", _torch_impl_cases())
def test_network_with_the_torch_implementation_equals_autograd(kind, pos, taus, bias, group):
    from snndelay.engine import set_implementation

    set_implementation("torch")
    _check_against_autograd(kind, pos, taus, bias, group)


@pytest.mark.parametrize("kind", ["axonal", "dendritic"])
def test_strided_delay_groups_equal_autograd(kind):
    net = Network([4, 8, 4], w_mean=[1.0, 1.0], w_std=[1.0, 1.0],
                  delays=[DelaySpec(kind, group_size=2, group_layout="strided")] * 2,
                  bias_time=None, tau_mem=1.0, tau_syn=1.0, threshold=1.0, seed=1)
    d = net.layers[0].delays
    v = d.value()
    assert np.array_equal(v[: v.size // 2], v[v.size // 2:])  # neuron i takes delay i mod N/2
    assert d.raw.numel() == v.size // 2
    _check_against_autograd(kind, "sigmoid", (1.0, 1.0), None, 2, net=net)


def _check_against_autograd(kind, pos, taus, bias, group, net=None):
    net = net if net is not None else _net(kind, pos, taus, bias, group)
    gen = torch.Generator().manual_seed(3)
    t_in = 0.15 + 1.85 * torch.rand(40, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    times = autograd_network(net, t_in, max_dw_norm=0.2)
    shift_mse(times[-1], y).mean().backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = None

    outs, caches = net(t_in.numpy())
    for a, b in zip(times, outs):
        a = a.detach().numpy()
        assert np.array_equal(np.isinf(a), np.isinf(b))
        np.testing.assert_allclose(b[np.isfinite(b)], a[np.isfinite(a)], rtol=0, atol=1e-12)
    _, g_out = LOSSES["shift_mse"](outs[-1], y.numpy())
    net.backward(caches, g_out / len(y), max_dw_norm=0.2)
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, ref[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("kind,pos,group", [("synaptic", "sigmoid", 1), ("axonal", "sigmoid", 2),
                                            ("dendritic", "clamp", 2), ("none", "sigmoid", 1)])
@pytest.mark.parametrize("spikes", [1, 3])
def test_network_gradient_matches_finite_differences(kind, pos, group, spikes):
    """Independent of autograd: central differences of the training loss in every parameter,
    for single- and multi-spike inputs."""
    net = _net(kind, pos, (2.0, 1.0), 0.9, group)
    gen = torch.Generator().manual_seed(5)
    shape = (20, 4) if spikes == 1 else (20, 4, spikes)
    t_in = (0.15 + 1.85 * torch.rand(*shape, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (20,), generator=gen).numpy()

    def loss() -> float:
        outs, _ = net(t_in)
        return float(LOSSES["shift_mse"](outs[-1], y)[0].mean())

    outs, caches = net(t_in)
    net.backward(caches, LOSSES["shift_mse"](outs[-1], y)[1] / len(y))
    for name, k, fd, grad in central_differences(net, loss, 7):
        assert abs(fd - grad) < 1e-6, (name, k)


@pytest.mark.parametrize("name,kw", [("shift_mse", {"dt": 0.2}),
                                     ("ttfs_ce", {"xi": 0.2, "alpha": 0.005, "beta": 1.0})])
def test_loss_gradients_match_finite_differences_with_silent_outputs(name, kw):
    rng = np.random.default_rng(0)
    t = 2.0 * rng.random((300, 3))
    t[rng.random((300, 3)) < 0.15] = np.inf  # silent outputs, label and non-label
    t[7] = np.inf  # a wholly silent sample
    y = rng.integers(0, 3, 300)
    per, g = LOSSES[name](t, y, **kw)
    assert np.isfinite(per).all() and np.isfinite(g).all()
    assert (g[7] == 0).all() and per[7] == 0
    h = 1e-6
    for b, k in zip(*np.nonzero(np.isfinite(t))):
        up, down = t.copy(), t.copy()
        up[b, k] += h
        down[b, k] -= h
        fd = (LOSSES[name](up, y, **kw)[0][b] - LOSSES[name](down, y, **kw)[0][b]) / (2 * h)
        assert abs(fd - g[b, k]) < 1e-7 * max(1.0, abs(g[b, k])), (b, k)
    # the torch form is the same loss, differentiable by autograd
    tt = torch.tensor(t, requires_grad=True)
    torch_loss(name)(tt, torch.tensor(y), **kw).sum().backward()
    np.testing.assert_array_equal(tt.grad.numpy(), g)
    np.testing.assert_array_equal(predict(t), predict(torch.tensor(t)).numpy())


def test_shift_mse_gradient_by_hand():
    # t = (1.0, 1.5, 1.1), label 0, dt 0.2: r = (0, 0.3, -0.1); dL/dt = (-0.2, 0.3, -0.1)
    per, g = LOSSES["shift_mse"](np.array([[1.0, 1.5, 1.1]]), np.array([0]), dt=0.2)
    assert per[0] == pytest.approx(0.5 * (0.3 ** 2 + 0.1 ** 2), abs=1e-15)
    np.testing.assert_allclose(g[0], [-0.2, 0.3, -0.1], atol=1e-15)


def test_gradients_are_bit_identical_on_any_thread_count(monkeypatch):
    """Same seed + same config = same run, whether 1 or several threads share the work."""
    numba = pytest.importorskip("numba")

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
            outs, caches = net(t_in)
            net.backward(caches, LOSSES["shift_mse"](outs[-1], y)[1] / len(y), max_dw_norm=0.2)
            grads.append([p.grad.clone() for p in net.parameters()])
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["none", "axonal", "dendritic", "synaptic"])
@pytest.mark.parametrize("bias", [None, 0.9])
def test_multi_spike_inputs_equal_autograd(kind, bias, engine_impl):
    """[B, N, S] event inputs (SHD): each spike is an arrival with its channel's parameters."""
    net = _net(kind, "sigmoid", (2.0, 1.0), bias, 1)
    gen = torch.Generator().manual_seed(11)
    t_in = 0.15 + 4.0 * torch.rand(30, 4, 3, generator=gen, dtype=torch.float64)
    t_in[torch.rand(30, 4, 3, generator=gen) < 0.3] = float("inf")
    y = torch.randint(0, 3, (30,), generator=gen)
    times = autograd_network(net, t_in, max_dw_norm=0.2)
    shift_mse(times[-1], y).mean().backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    outs, caches = net(t_in.numpy())
    np.testing.assert_allclose(outs[-1], times[-1].detach().numpy(), rtol=0, atol=1e-12)
    net.backward(caches, LOSSES["shift_mse"](outs[-1], y.numpy())[1] / len(y), max_dw_norm=0.2)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, ref[name], rtol=1e-10, atol=1e-12, msg=name)


def test_small_layers_run_on_one_thread_and_restore_the_count():
    numba = pytest.importorskip("numba")

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


def _tiny_cfg(*extra):
    from snndelay.config import compose

    return compose(["training.epochs=1", "dataset.train_size=600", "dataset.val_size=200",
                    *extra])[1]


def test_training_epoch_is_the_same_with_either_engine_implementation():
    from snndelay.app.trainer import Trainer
    from snndelay.engine import _impl

    if not _impl.HAVE_NUMBA:
        pytest.skip("needs numba for the compiled implementation")
    cfg = _tiny_cfg()
    rows, params = [], []
    for impl in ("numba", "torch"):
        _impl.set_implementation(impl)
        trainer = Trainer(resolve(cfg))
        rows.append(trainer.train_epoch())
        params.append(list(trainer.net.parameters()))
    for key in ("train_loss", "val_loss"):
        assert getattr(rows[0], key) == pytest.approx(getattr(rows[1], key), rel=1e-9)
    for pa, pb in zip(*params):
        torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-11)


def test_trainer_takes_the_gradient_at_whatever_times_a_stand_in_backend_returns(monkeypatch):
    """The trainer knows no backend by name: a stand-in that reports shifted ("measured")
    spike times and its own realised weights gets its gradient taken at exactly those."""
    from dataclasses import replace

    from snndelay.app import trainer as training
    from snndelay.backends import Backend, BackendRun

    class StandIn(Backend):
        name = "stand-in"

        def __init__(self):
            self.sent = []

        def run(self, net, t_in, *, training=False):
            params = [replace(p, weights=p.weights * 1.01) for p in net.layer_params()]
            times = [t + 0.01 for t in net(t_in, params=params)[0]]
            if training:
                self.sent.append((times, params))
            return BackendRun(times, params)

    stand_in = StandIn()
    monkeypatch.setattr(training, "make_backend", lambda cfg, seed=0: stand_in)
    seen = []
    original = Network.backward

    def spy(self, caches, g_out, max_dw_norm=float("inf"), nominal_threshold=None, **kw):
        seen.append(caches)
        return original(self, caches, g_out, max_dw_norm, nominal_threshold, **kw)

    monkeypatch.setattr(Network, "backward", spy)
    trainer = training.Trainer(resolve(_tiny_cfg()))
    before = [p.detach().clone() for p in trainer.net.parameters()]
    trainer.train_epoch()
    assert seen and len(stand_in.sent) >= len(seen)
    sent = {id(params[0]): (times, params) for times, params in stand_in.sent}
    for caches in seen:
        times, params = sent[id(caches[0].layer)]
        for cache, t, p in zip(caches, times, params):
            assert cache.layer is p  # the stand-in's realised parameters
            np.testing.assert_array_equal(cache.core, t)  # its times (tau_syn = 1, no shift)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters()))
