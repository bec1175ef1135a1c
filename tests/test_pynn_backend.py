"""backend=pynn: first-spike networks run in real PyNN simulators (NEST's precise-spike-time
neuron, Brian2 on its time step), checked against the engine's closed-form spike times; the
delay grid's rounding reported; training through the simulator."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from snndelay.app.trainer import Trainer, build_network, load_split
from snndelay.backends import SimulatorBackend, make_backend
from snndelay.cli import app
from snndelay.config import compose, resolve

pytest.importorskip("pyNN.nest", reason="backend=pynn needs PyNN and NEST: "
                    "pip install 'snndelay[pynn]'")

runner = CliRunner()
SMALL = ["dataset.train_size=150", "dataset.val_size=100", "dataset.test_size=100"]


def _spec(experiment: str, *overrides: str):
    return resolve(compose([f"experiment={experiment}", "backend=pynn", *SMALL,
                            *overrides])[1])


def _inputs(spec, n: int) -> np.ndarray:
    return load_split(spec.dataset, "test").t_in.numpy()[:n]


def _deviation(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int, float]:
    """(max |dt| over pairs spiking in both, pairs spiking in one only, fraction spiking)."""
    dts, flips, fired = [0.0], 0, []
    for x, y in zip(a, b):
        both = np.isfinite(x) & np.isfinite(y)
        dts.append(float(np.abs(x[both] - y[both]).max(initial=0.0)))
        flips += int((np.isfinite(x) != np.isfinite(y)).sum())
        fired.append(float(np.isfinite(y).mean()))
    return max(dts), flips, min(fired)


@pytest.mark.parametrize("experiment", ["yinyang_h30_ws", "yinyang_h30_wa", "yinyang_h30_wd"])
def test_nest_first_spikes_equal_the_engines_closed_form_on_the_realised_network(experiment):
    # An untrained network of each delay kind, its delays moved onto the 0.01 ms grid: NEST's
    # iaf_psc_exp_ps integrates exactly between events, so its spike times are the engine's
    # (docs/model.md section 2) to round-off, and no spike appears or vanishes.
    spec = _spec(experiment)
    net = build_network(spec.network, spec.seeds.init)
    backend = make_backend(spec)
    t_in = _inputs(spec, 12)
    run = backend.run(net, t_in)
    engine = net.forward(t_in, params=backend.realise(net))[0]
    dt, flips, fired = _deviation(run.times, engine)
    assert fired > 0.3  # the comparison has spikes in every layer
    assert flips == 0
    assert dt < 1e-9


def test_delays_off_the_grid_are_rounded_and_the_change_in_spike_times_reported():
    spec = _spec("yinyang_h30_ws", "backend.resolution_ms=0.1")  # grid 0.01 tau_s
    net = build_network(spec.network, spec.seeds.init)
    backend = make_backend(spec)
    step = 0.1 / 10.0
    realised = backend.realise(net)
    for layer, own in zip(realised, net.layer_params()):
        assert np.allclose(layer.delays / step, np.round(layer.delays / step), atol=1e-9)
        assert np.abs(layer.delays - own.delays).max() <= step / 2 + 1e-12
    t_in = _inputs(spec, 40)
    figures = backend.realisation(net, t_in)
    exact, rounded = net.forward(t_in)[0], net.forward(t_in, params=realised)[0]
    dt, flips, _ = _deviation(exact, rounded)
    assert figures["max_spike_time_change"] == pytest.approx(dt)
    assert 0 < figures["max_delay_change"] <= step / 2 + 1e-12
    assert figures["spikes_appearing_or_vanishing"] == flips / sum(a.size for a in exact)
    line = type(backend).describe_realisation(figures)
    assert "rounded" in line and f"{dt:.2g}" in line


def test_multi_spike_networks_and_voltage_readouts_are_refused_with_the_reason(tmp_path):
    res = runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "backend=pynn",
                              "neuron.max_spikes=3", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "reset to a value" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_a_simulator_that_does_not_import_is_one_line_before_any_output(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyNN.brian2", None)  # import raises ImportError
    res = runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "backend=pynn",
                              "backend.simulator=brian2", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "snndelay[pynn]" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_evaluate_and_deploy_run_a_trained_run_in_nest(tmp_path):
    run = tmp_path / "r"
    assert runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "training.epochs=2",
                               *SMALL, "--run-dir", str(run)]).exit_code == 0
    res = runner.invoke(app, ["evaluate", str(run), "--backend", "pynn"])
    assert res.exit_code == 0, res.output
    assert "on backend pynn" in res.output and "rounded to the simulator's grid" in res.output
    bad = runner.invoke(app, ["evaluate", str(run), "--backend", "pynn", "training.lr=1"])
    assert bad.exit_code == 2 and "only backend.KEY=VALUE" in bad.output
    res = runner.invoke(app, ["deploy", str(run), "--hw", "--backend", "pynn"])
    assert res.exit_code == 0, res.output
    report = json.loads((run / "deploy" / "report.json").read_text())
    assert report["backend"] == "pynn" and report["bundle"] == ""
    # the trained network in NEST: the simulator's accuracy up to the delay grid's effect
    assert abs(report["accuracy_mean"] - report["simulator_accuracy"]) <= 0.02
    assert max(r["max_abs_dt"] for r in report["spike_time_deviation"]) < 0.01
    assert report["realisation"]["max_delay_change"] > 0


def _gradients(trainer: Trainer, backend, t_b: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The training step's gradients (Trainer.train_epoch) at a backend's spike times."""
    net = trainer.net
    for p in net.parameters():
        p.grad = None
    run = backend.run(net, t_b, training=True)
    out, state = net.outputs(t_b, run.times, run.params)
    _, g_out = trainer.loss(out, y)
    _, caches = net.forward(t_b, params=run.params, given=run.times)
    net.backward(caches, g_out / len(y), trainer.max_dw, run.nominal_threshold,
                 readout_state=state)
    return [p.grad.detach().numpy().copy() for p in net.parameters()]


def test_the_training_step_through_nest_takes_the_engines_gradient():
    spec = _spec("yinyang_h5_ws")
    trainer = Trainer(spec)
    t_b, y = trainer.train_split.t_in.numpy()[:60], trainer.train_split.labels.numpy()[:60]
    nest = _gradients(trainer, trainer.backend, t_b, y)

    class RealisedEngine(SimulatorBackend):  # the engine on the network NEST ran
        def realise(self, net):
            return trainer.backend.realise(net)

    engine = _gradients(trainer, RealisedEngine(), t_b, y)
    unrounded = _gradients(trainer, SimulatorBackend(), t_b, y)
    for a, b, c in zip(nest, engine, unrounded):
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
        # and the simulator backend's, within what the 0.001 tau_s delay grid moves
        np.testing.assert_allclose(a, c, rtol=0.05, atol=0.05 * np.abs(c).max())


@pytest.mark.slow
def test_training_through_nest_for_5_epochs_learns(tmp_path):
    run = tmp_path / "r"
    res = runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "backend=pynn",
                              "training.epochs=5", *SMALL, "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    val = [float(r.split(",")[4]) for r in rows]
    assert val[-1] > val[0] + 0.05
    summary = json.loads((run / "summary.json").read_text())
    assert summary["backend"]["simulator"] == "nest"
    assert "max_spike_time_change" in summary["backend"]


@pytest.mark.slow
def test_brian2_first_spikes_are_the_engines_within_its_time_step():
    pytest.importorskip("pyNN.brian2", reason="Brian2: pip install 'snndelay[brian2]'")
    # PyNN's Brian2 runs spike sources on its 0.1 ms clock: that is its step here
    spec = _spec("yinyang_h30_ws", "backend.simulator=brian2", "backend.resolution_ms=0.1")
    net = build_network(spec.network, spec.seeds.init)
    backend = make_backend(spec)
    t_in = _inputs(spec, 12)
    run = backend.run(net, t_in)
    engine = net.forward(t_in, params=backend.realise(net))[0]
    step = 0.1 / 10.0
    for x, e in zip(run.times, engine):
        both = np.isfinite(x) & np.isfinite(e)
        assert both.mean() > 0.3
        dt = x[both] - e[both]
        # inputs on the step's grid, a crossing seen at the end of its step: within a step
        # (median), a few steps where an earlier layer's error moves a flat crossing
        assert np.median(np.abs(dt)) <= step
        assert np.abs(dt).max() <= 5 * step
