"""The readout seam in networks and training (model/readouts.py, docs/model.md section 12):
gradients of deep spike-train networks into a voltage readout against finite differences, the
cross-entropy's gradient, the configuration rules (which loss reads which readout, which
backends and exports take a non-spiking readout) and runs written before readouts existed."""

import numpy as np
import pytest
import torch
from reference import central_differences
from typer.testing import CliRunner

from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.errors import ConfigError
from snndelay.model.delays import DelaySpec
from snndelay.model.losses import LOSSES
from snndelay.model.network import Network
from snndelay.model.readouts import FirstSpikeConfig, MaxVoltageConfig, MeanVoltageConfig

runner = CliRunner()
SMALL = ["dataset.train_size=200", "dataset.val_size=60", "dataset.test_size=60"]


def _deep_net(kind, readout, ratio=2.0, out_mean=0.0):
    spec = DelaySpec(kind, positivity="sigmoid", scale=2.0)
    return Network([4, 7, 6, 3], w_mean=[1.2, 0.9, out_mean], w_std=[0.6, 0.6, 0.5],
                   delays=[spec] * 3, bias_time=0.9, tau_mem=ratio, tau_syn=1.0,
                   threshold=1.0, seed=3, max_spikes=[4, 3, 1], readout=readout)


def _check_against_differences(net, t_in, y, loss_name, samples=5):
    loss_grad = LOSSES[loss_name]

    def loss() -> float:
        times, _ = net(t_in)
        return float(loss_grad(net.outputs(t_in, times)[0], y)[0].mean())

    times, caches = net(t_in)
    out, state = net.outputs(t_in, times)
    net.backward(caches, loss_grad(out, y)[1] / len(y), readout_state=state)
    checks = central_differences(net, loss, samples)
    for name, k, fd, grad in checks:
        assert abs(fd - grad) < 1e-6 * max(1.0, abs(fd)), (name, k, fd, grad)
    assert sum(abs(g) > 1e-8 for *_, g in checks) >= 10  # the gradients are not all zero
    return times


@pytest.mark.parametrize("kind", ["none", "axonal", "dendritic", "synaptic"])
@pytest.mark.parametrize("readout,ratio", [
    (MaxVoltageConfig(t_end=8.0), 2.0), (MeanVoltageConfig(t_end=8.0), 1.0),
    pytest.param(MaxVoltageConfig(t_end=8.0), 1.0, marks=pytest.mark.slow),
    pytest.param(MeanVoltageConfig(t_end=8.0), 2.0, marks=pytest.mark.slow)])
def test_two_spike_train_layers_into_a_voltage_readout_match_finite_differences(kind, readout,
                                                                                ratio):
    """4 inputs -> 7 neurons (up to 4 spikes) -> 6 neurons (up to 3) -> 3 integrators read by
    their maximum or mean membrane; the cross-entropy on them; central differences (h = 1e-6)
    in sampled entries of every parameter."""
    net = _deep_net(kind, readout, ratio)
    gen = torch.Generator().manual_seed(5)
    t_in = (0.15 + 1.85 * torch.rand(12, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (12,), generator=gen).numpy()
    times = _check_against_differences(net, t_in, y, "cross_entropy")
    assert len(times) == 2 and net.n_spiking == 2  # the readout layer is not solved
    for t in times:  # both hidden layers pass real trains on
        assert (np.isfinite(t).sum(-1) >= 2).mean() > 0.2


def test_a_first_spike_readout_of_a_deep_network_matches_finite_differences():
    net = _deep_net("synaptic", FirstSpikeConfig(), out_mean=1.0)
    gen = torch.Generator().manual_seed(6)
    t_in = (0.15 + 1.85 * torch.rand(12, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (12,), generator=gen).numpy()
    times = _check_against_differences(net, t_in, y, "shift_mse")
    assert len(times) == 3


def test_a_voltage_readout_straight_on_the_inputs_matches_finite_differences():
    """No hidden layer: the integrators read the input spikes themselves."""
    spec = DelaySpec("synaptic", positivity="sigmoid", scale=2.0)
    net = Network([5, 3], w_mean=[0.0], w_std=[1.0], delays=[spec], bias_time=None,
                  tau_mem=2.0, tau_syn=1.0, threshold=1.0, seed=1,
                  readout=MaxVoltageConfig(t_end=6.0))
    rng = np.random.default_rng(2)
    t_in = rng.uniform(0.1, 3.0, (10, 5))
    _check_against_differences(net, t_in, rng.integers(0, 3, 10), "cross_entropy", samples=8)


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z, y = rng.normal(0, 3, (6, 4)), rng.integers(0, 4, 6)
    per, g = LOSSES["cross_entropy"](z, y, scale=0.7)
    assert np.allclose(per, -np.log(np.exp(0.7 * z[np.arange(6), y]) /
                                    np.exp(0.7 * z).sum(1)))
    h = 1e-6
    for b, k in [(0, 0), (1, 3), (5, 2)]:
        up, down = z.copy(), z.copy()
        up[b, k] += h
        down[b, k] -= h
        fd = (LOSSES["cross_entropy"](up, y, scale=0.7)[0][b]
              - LOSSES["cross_entropy"](down, y, scale=0.7)[0][b]) / (2 * h)
        assert abs(fd - g[b, k]) < 1e-7
    big = LOSSES["cross_entropy"](np.array([[1e4, -1e4]]), np.array([1]))[0]
    assert np.isfinite(big).all() and big[0] == pytest.approx(2e4)


def test_a_loss_that_reads_spike_times_is_refused_for_a_voltage_readout():
    res = runner.invoke(app, ["train", "readout=max_voltage", "training.epochs=1"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "loss=cross_entropy" in lines[0] and "readout=max_voltage" in lines[0]
    with pytest.raises(ConfigError, match="loss=shift_mse or loss=ttfs_ce"):
        compose(["loss=cross_entropy"])


@pytest.mark.parametrize("arg,key", [("readout.t_end=0", "readout.t_end"),
                                     ("loss.scale=-1", "loss.scale"),
                                     ("readout.xi=2", "readout.xi")])
def test_bad_readout_settings_exit_2_naming_the_key(arg, key):
    res = runner.invoke(app, ["train", "readout=mean_voltage", "loss=cross_entropy", arg])
    assert res.exit_code == 2
    assert key in res.output and len(res.output.strip().splitlines()) == 1


def test_the_chip_refuses_a_non_spiking_readout_before_training():
    res = runner.invoke(app, ["train", "backend=bss2_emulator", "readout=max_voltage",
                              "loss=cross_entropy", "training.epochs=1"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "readout=first_spike" in lines[0]


def test_training_and_evaluating_with_a_voltage_readout_and_its_export_refusal(tmp_path):
    run = tmp_path / "r"
    res = runner.invoke(app, ["train", "readout=max_voltage", "loss=cross_entropy",
                              "readout.t_end=6", "network.hidden=[20,20]",
                              "neuron.max_spikes=[3,3,1]", "training.epochs=2", *SMALL,
                              "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "silent_layer1" in header and "silent_layer2" not in header  # spiking layers only
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 0, res.output
    acc = float(res.output.split("accuracy")[1].split("%")[0].split()[-1])
    assert acc > 40.0  # three classes: above chance after two epochs
    pytest.importorskip("nir")
    res = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "n.nir")])
    assert res.exit_code == 2
    assert "readout=first_spike" in res.output and len(res.output.strip().splitlines()) == 1


def test_a_run_saved_before_readouts_existed_loads_with_the_first_spike_readout(tmp_path):
    from snndelay.app.rundir import load_run_config, read_yaml

    run = tmp_path / "r"
    res = runner.invoke(app, ["train", "training.epochs=1", *SMALL, "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    raw = read_yaml((run / "config.yaml").read_text())
    assert raw["readout"] == {"name": "first_spike"}
    import yaml

    del raw["readout"]  # as every run before the readout group wrote it
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_run_config(run)
    assert cfg.readout.name == "first_spike" and resolve(cfg).network.readout.spiking
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 0, res.output
