"""Hidden spike dropout (training.spike_dropout, model/dropout.py): the gradients of the masked
network against central differences, what a dropped spike does and does not do, reproducible
masks across a resume, and the configuration rules."""

import numpy as np
import pytest
import torch
from reference import central_differences
from runfiles import metrics, uninterrupted_and_resumed
from typer.testing import CliRunner

from snndelay.cli import app
from snndelay.model.delays import DelaySpec
from snndelay.model.dropout import SpikeDropout
from snndelay.model.losses import LOSSES
from snndelay.model.network import Network
from snndelay.model.readouts import FirstSpikeConfig, MaxVoltageConfig

runner = CliRunner()
YY = ["dataset.train_size=300", "dataset.val_size=100", "dataset.test_size=100"]


def _net(readout, out_mean=0.0):
    spec = DelaySpec("synaptic", positivity="sigmoid", scale=2.0)
    return Network([4, 7, 6, 3], w_mean=[1.2, 0.9, out_mean], w_std=[0.6, 0.6, 0.5],
                   delays=[spec] * 3, bias_time=0.9, tau_mem=2.0, tau_syn=1.0, threshold=1.0,
                   seed=3, max_spikes=[4, 3, 1], readout=readout)


@pytest.mark.parametrize("readout,loss_name,out_mean", [
    (MaxVoltageConfig(t_end=8.0), "cross_entropy", 0.0), (FirstSpikeConfig(), "shift_mse", 1.0)])
def test_the_gradient_of_a_network_with_dropped_spikes_matches_finite_differences(
        readout, loss_name, out_mean):
    """Two spike-train layers, 30 % of their spikes dropped by a fixed mask, into a voltage or
    a first-spike readout: every parameter's gradient against central differences (h = 1e-6)
    of the same masked network."""
    net = _net(readout, out_mean)
    gen = torch.Generator().manual_seed(5)
    t_in = (0.15 + 1.85 * torch.rand(12, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (12,), generator=gen).numpy()
    drop = SpikeDropout.draw(0.3, np.random.default_rng(1), 12, net.sizes, net.max_spikes)
    assert [m.shape for m in drop.masks] == [(12, 7, 4), (12, 6, 3)]
    loss_grad = LOSSES[loss_name]

    def loss() -> float:
        times, _ = net(t_in)
        return float(loss_grad(net.outputs(t_in, times)[0], y)[0].mean())

    with net.dropping(drop):
        times, caches = net(t_in)
        out, state = net.outputs(t_in, times)
        net.backward(caches, loss_grad(out, y)[1] / len(y), readout_state=state)
        checks = central_differences(net, loss, 5)
    for name, k, fd, grad in checks:
        assert abs(fd - grad) < 1e-6 * max(1.0, abs(fd)), (name, k, fd, grad)
    assert sum(abs(g) > 1e-8 for *_, g in checks) >= 10
    dropped = sum(int((m & np.isfinite(t)).sum()) for m, t in zip(drop.masks, times))
    assert dropped > 10  # real spikes were dropped, not only empty slots


def test_a_dropped_spike_never_arrives_and_kept_ones_drive_with_the_scaled_weight():
    """Layer 1 of a masked network equals layer 1 fed by hand: its input with the dropped
    spikes removed, its weights from layer 0 times 1 / (1 - p); layer 0's own spikes (and so
    its resets) are those of the unmasked network."""
    net = _net(FirstSpikeConfig(), out_mean=1.0)
    t_in = np.random.default_rng(0).uniform(0.15, 2.0, (9, 4))
    plain, _ = net(t_in)
    drop = SpikeDropout.draw(0.5, np.random.default_rng(2), 9, net.sizes, net.max_spikes)
    with net.dropping(drop):
        masked, _ = net(t_in)
    assert np.array_equal(masked[0], plain[0])
    from snndelay.engine import layer_forward

    params = net.layer_params()
    w = params[1].weights.copy()
    w[:7] *= 2.0
    from dataclasses import replace

    by_hand, _ = layer_forward(np.where(drop.masks[0], np.inf, plain[0]),
                               replace(params[1], weights=w))
    assert np.array_equal(np.isinf(by_hand), np.isinf(masked[1]))
    assert np.allclose(by_hand[np.isfinite(by_hand)], masked[1][np.isfinite(masked[1])],
                       rtol=0, atol=1e-12)
    assert not np.allclose(masked[1], plain[1])  # it changed layer 1


def test_dropout_masks_depend_on_seed_epoch_and_batch_only_so_a_resume_is_exact(tmp_path):
    args = ["experiment=yinyang_h30_ws", *YY, "training.spike_dropout=0.2", "training.epochs=3"]
    uninterrupted, resumed = uninterrupted_and_resumed(args, tmp_path)
    assert uninterrupted == resumed and len(resumed) == 3
    plain = runner.invoke(app, ["train", *args[:-2], "training.epochs=3", "--run-dir",
                                str(tmp_path / "c")])
    assert plain.exit_code == 0
    assert uninterrupted != metrics(tmp_path / "c")  # the dropout acted


@pytest.mark.parametrize("args,why", [
    (["training.spike_dropout=1.0"], "[0, 1)"),
    (["training.spike_dropout=0.1", "experiment=yinyang_bss2_w"], "backend=simulator"),
    (["training.spike_dropout=0.1", "network.hidden=[]"], "hidden layer")])
def test_spike_dropout_settings_that_cannot_act_exit_2_in_one_line(tmp_path, args, why):
    res = runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "training.spike_dropout" in lines[0] and why in lines[0]
