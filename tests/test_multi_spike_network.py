"""Multi-spike hidden layers in networks and training (docs/model.md section 11): gradients
through spike trains against finite differences, the first-spike readout, weight bumping,
configuration checks, SHD-format files with their own class count, the loss guard and the
NIR round trip."""

import numpy as np
import pytest
import torch
from reference import central_differences
from shd_files import write_shd
from typer.testing import CliRunner

from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.errors import ConfigError
from snndelay.model.delays import DelaySpec
from snndelay.model.losses import LOSSES
from snndelay.model.network import Network, first_spikes

runner = CliRunner()


def _net(kind, max_spikes, ratio=2.0):
    spec = DelaySpec(kind, positivity="sigmoid", scale=2.0)
    return Network([4, 7, 3], w_mean=[1.2, 0.5], w_std=[0.6, 0.6], delays=[spec, spec],
                   bias_time=0.9, tau_mem=ratio, tau_syn=1.0, threshold=1.0, seed=3,
                   max_spikes=max_spikes)


@pytest.mark.parametrize("kind", ["none", "axonal", "dendritic", "synaptic"])
@pytest.mark.parametrize("max_spikes,ratio", [([4, 1], 2.0),
                                               pytest.param([4, 3], 1.0, marks=pytest.mark.slow)])
def test_network_gradient_through_spike_trains_matches_finite_differences(kind, max_spikes, ratio):
    """The hidden layer passes all its spikes on; the loss reads the first output spikes.
    Central differences of the training loss (h = 1e-6) in sampled parameters."""
    net = _net(kind, max_spikes, ratio)
    gen = torch.Generator().manual_seed(5)
    t_in = (0.15 + 1.85 * torch.rand(16, 4, generator=gen, dtype=torch.float64)).numpy()
    y = torch.randint(0, 3, (16,), generator=gen).numpy()

    def loss() -> float:
        outs, _ = net(t_in)
        return float(LOSSES["shift_mse"](first_spikes(outs[-1]), y)[0].mean())

    outs, caches = net(t_in)
    assert outs[0].shape == (16, 7, max_spikes[0])
    assert (np.isfinite(outs[0]).sum(-1) >= 2).mean() > 0.2  # real trains
    net.backward(caches, LOSSES["shift_mse"](first_spikes(outs[-1]), y)[1] / len(y))
    checks = central_differences(net, loss, 6)
    for name, k, fd, grad in checks:
        assert abs(fd - grad) < 1e-6 * max(1.0, abs(fd)), (name, k, fd, grad)
    assert len(checks) >= 10


def test_training_with_a_multi_spike_hidden_layer_reports_saturation(tmp_path):
    res = runner.invoke(app, ["train", "neuron.max_spikes=[3,1]", "training.epochs=2",
                              "dataset.train_size=300", "dataset.val_size=100",
                              "dataset.test_size=100", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    header, *rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert "saturated_layer0" in header.split(",") and "saturated_layer1" not in header
    assert len(rows) == 2
    res = runner.invoke(app, ["evaluate", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output


def test_bumping_counts_a_neuron_without_any_spike_as_silent():
    from snndelay.app.trainer import Trainer

    cfg = compose(["neuron.max_spikes=[3,1]", "dataset.train_size=300", "dataset.val_size=100",
                   "dataset.test_size=100", "training.max_missing_hidden=0.25"])[1]
    tr = Trainer(resolve(cfg))
    hidden = np.full((4, 30, 3), np.inf)
    hidden[:, :, 0] = 1.0  # every neuron fires once ...
    hidden[:, :10, :] = np.inf  # ... but 10 of 30 never: a third silent (> 0.25)
    out = np.ones((4, 3))
    before = tr.net.layers[0].weight.detach().clone()
    assert tr._bump([hidden, out]) is True
    changed = (tr.net.layers[0].weight.detach() != before).any(dim=0)
    assert changed[:10].all() and not changed[10:].any()
    hidden[:, :10, 0] = 2.0  # now all fire: no bump
    assert tr._bump([hidden, out]) is False


@pytest.mark.parametrize("override", ["neuron.max_spikes=0", "neuron.max_spikes=[2,2,2]",
                                      "neuron.max_spikes=1.5"])
def test_bad_max_spikes_is_one_line(override):
    with pytest.raises(ConfigError, match="neuron.max_spikes"):
        compose([override])


@pytest.mark.parametrize("backend", ["bss2_emulator", "bss2"])
def test_brainscales_backends_refuse_spike_trains_with_the_reason(backend):
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_w", f"backend={backend}",
                              "neuron.max_spikes=[4,1]", "training.epochs=1"])
    assert res.exit_code == 2
    assert "time-to-first-spike neurons only" in res.output and len(res.output.strip().splitlines()) == 1


def test_shd_format_file_with_ten_classes_sizes_the_output_and_evaluates(tmp_path):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 40, 0, classes=10)
    write_shd(tmp_path, "test", 12, 1, classes=10)
    base = ["experiment=shd_ms", f"dataset.root={tmp_path}", "dataset.val_size=8",
            "dataset.max_spikes=2", "dataset.channel_factor=10", "network.hidden=[12]"]
    assert resolve(compose(base)[1]).network.sizes[-1] == 10  # from the file's labels
    assert resolve(compose(base + ["dataset.n_classes=14"])[1]).network.sizes[-1] == 14
    # more outputs than the data's classes: an output that never is a label may win
    res = runner.invoke(app, ["train", *base, "dataset.n_classes=20", "training.epochs=1",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "confusion matrix" in res.output


def test_an_exploding_loss_stops_the_run_with_the_remedy(tmp_path):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 40, 0, classes=10)
    write_shd(tmp_path, "test", 12, 1, classes=10)
    res = runner.invoke(app, ["train", "experiment=shd_ws", f"dataset.root={tmp_path}",
                              "dataset.val_size=8", "dataset.channel_factor=10",
                              "network.hidden=[12]", "loss.beta=0.5", "training.epochs=1",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert "training loss" in line and "loss.beta" in line


def test_nir_round_trip_keeps_spike_trains(tmp_path):
    pytest.importorskip("nir")
    from snndelay.app.export import to_nir
    from snndelay.app.nir_import import from_nir

    cfg = compose(["neuron.max_spikes=[4,1]", "delay=synaptic"])[1]
    from snndelay.app.trainer import build_network

    net = build_network(resolve(cfg).network, cfg.training.seed)
    graph, _ = to_nir(net, cfg)
    assert float(graph.nodes["lif0"].v_reset[0]) == 0.0  # reset to 0 = subtracting theta at u = theta
    back, cfg2 = from_nir(graph)
    assert back.max_spikes == [4, 1]
    t_in = np.random.default_rng(0).uniform(0.15, 2.0, (20, 4))
    a, _ = net(t_in)
    b, _ = back(t_in)
    fin = np.isfinite(a[0])
    assert np.array_equal(fin, np.isfinite(b[0])) and fin.sum() > 20
    assert np.max(np.abs(a[0][fin] - b[0][fin])) < 1e-9
