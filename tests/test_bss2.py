"""BrainScaleS-2: the mapping module, the emulator (determinism, noise statistics, gradients
with noise off), chip-in-the-loop training, `snndelay deploy`, and the chip adapter's error."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from snndelay.app.deploy import DeployReport, run_deploy
from snndelay.app.trainer import build_network
from snndelay.backends import BackendUnavailable, SimulatorBackend
from snndelay.backends.bss2 import mapping as hw
from snndelay.backends.bss2.bundle import bundle_params, load_bundle, make_bundle, validate_bundle
from snndelay.backends.bss2.emulator import BSS2Emulator, NoiseModel
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.engine import LayerParams, Neuron, _impl, first_spike_times, layer_forward
from snndelay.errors import ConfigError
from snndelay.model.delays import DelaySpec
from snndelay.model.losses import LOSSES, predict
from snndelay.model.network import Network

runner = CliRunner()
needs_numba = pytest.mark.skipif(not _impl.HAVE_NUMBA, reason="hardware backends need numba")
TINY = ["dataset.train_size=200", "dataset.val_size=80", "dataset.test_size=80",
        "training.eval_batch_size=80"]


# -- mapping ----------------------------------------------------------------------------------
def test_weights_round_trip_and_limits():
    k = np.arange(-63, 64)
    w = k / 30.0
    exc, inh = hw.weights_to_hw(w)
    assert exc.dtype == np.uint8 and inh.dtype == np.uint8
    assert ((exc == 0) | (inh == 0)).all()  # a synapse is one or the other
    np.testing.assert_array_equal(exc.astype(int) - inh.astype(int), k)
    np.testing.assert_allclose(hw.hw_to_weights(exc, inh), w, atol=1e-15)
    rng = np.random.default_rng(0)
    w = rng.uniform(-2.1, 2.1, 10_000)
    assert np.abs(hw.quantize_weights(w) - w).max() <= 1 / 60 + 1e-12  # half a step
    np.testing.assert_array_equal(hw.quantize_weights(np.array([5.0, -3.0])), [2.1, -2.1])


def test_delays_round_trip_and_range():
    r = np.arange(hw.R_MIN, hw.R_MAX + 1)
    d = hw.refractory_to_delay(r)
    np.testing.assert_array_equal(hw.delay_to_refractory(d), r)
    np.testing.assert_allclose(d * hw.TAU_S_US, r / 8 + 2)  # delay_us = r / 8 + 2
    x = np.random.default_rng(1).uniform(d[0], d[-1], 5000)
    assert np.abs(hw.quantize_delays(x) - x).max() <= 1 / 96 + 1e-12  # half of 1/48 tau_s
    with pytest.raises(hw.MappingError, match="refractory"):
        hw.delay_to_refractory(np.array([0.5]))
    assert hw.delay_to_refractory(np.array([0.5, 9.0]), clip=True).tolist() == [50, 250]


def test_spike_train_serialisation_round_trip():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 29.9, (7, 5))
    t[rng.random(t.shape) < 0.3] = np.inf
    times_us, ids = hw.serialize(t)
    assert (np.diff(times_us) >= 0).all()  # one time-ordered train
    assert times_us.max() < 7 * 30 * 6
    np.testing.assert_allclose(hw.deserialize(times_us, ids, 7, 5), t, atol=1e-12)
    # a later spike of the same neuron in the same window is not its first spike
    extra_t = np.concatenate([times_us, [hw.to_hw_time(29.95)]])
    back = hw.deserialize(extra_t, np.concatenate([ids, [0]]), 7, 5)
    assert back[0, 0] == min(t[0, 0], 29.95)
    with pytest.raises(hw.MappingError, match="window"):
        hw.serialize(np.array([[30.0]]))


def test_replication_puts_copies_next_to_each_other():
    t = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(hw.replicate_inputs(t), [[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])


def test_placement_and_refusals():
    p = hw.place([30, 3], [4, 30])  # yinyang_bss2_wa
    assert p.used == 33 + 2 * 34
    assert p.delays[0][0] == (33, 34) and p.neurons[1] == [30, 31, 32]
    with pytest.raises(hw.MappingError, match="512"):
        hw.place([400, 10], [0, 60])
    for kind in ("dendritic", "synaptic"):
        with pytest.raises(hw.MappingError, match="axonal delay per presynaptic neuron"):
            hw.check_realisable(["none", kind])
    hw.check_realisable(["axonal", "none"], 1.0, 1.0)
    for tau_mem, tau_syn in ((2.0, 1.0), (2.0, 2.0), (0.5, 0.5)):  # ratio, and the time unit
        with pytest.raises(hw.MappingError, match="tau_mem = tau_syn = 1"):
            hw.check_realisable(["none", "none"], tau_mem, tau_syn)


@pytest.mark.parametrize("override,fragment", [
    (["delay=synaptic"], "cannot realise"),
    (["delay=dendritic"], "cannot realise"),
    (["neuron=lif_tau2"], "tau_mem = tau_syn"),
    (["neuron.tau_mem=2.0", "neuron.tau_syn=2.0"], "tau_syn = 2"),
    (["network.hidden=600"], "512"),
    (["backend.trial_std=-1"], "backend.trial_std"),
    (["backend.backward=exact"], "backend.backward: must be one of nominal, realised"),
])
def test_unrealisable_configs_exit_2_with_the_reason(override, fragment):
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", *override, "--cfg"])
    assert res.exit_code == 2
    assert fragment in res.output and "Traceback" not in res.output


# -- emulator ---------------------------------------------------------------------------------
def _bss2_net(seed=0, delays=True):
    spec = DelaySpec("axonal", shift=2.0, scale=1.5, init_std=0.5) if delays else DelaySpec()
    specs = [DelaySpec(**{**spec.__dict__, "group_size": 5}), spec] if delays else [spec, spec]
    return Network([20, 30, 3], w_mean=[1.0, 0.6], w_std=[0.12, 0.15], delays=specs,
                   bias_time=None, tau_mem=1.0, tau_syn=1.0, threshold=2.6, seed=seed)


def _inputs(n=64, seed=0):
    x = np.random.default_rng(seed).random((n, 4))
    return hw.replicate_inputs(0.15 + 1.85 * x)


@needs_numba
def test_emulator_is_deterministic_per_chip_and_seed():
    net, t = _bss2_net(), _inputs()
    a = BSS2Emulator(chip_seed=3, seed=1).run(net, t).times
    b = BSS2Emulator(chip_seed=3, seed=1).run(net, t).times
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(BSS2Emulator(chip_seed=3).fixed_offsets(0, 30),
                                  BSS2Emulator(chip_seed=3, seed=99).fixed_offsets(0, 30))
    assert not np.array_equal(BSS2Emulator(chip_seed=3).fixed_offsets(0, 30),
                              BSS2Emulator(chip_seed=4).fixed_offsets(0, 30))
    c = BSS2Emulator(chip_seed=3, seed=2).run(net, t).times  # other trial noise, same chip
    assert not np.array_equal(a[0], c[0])


def test_noise_statistics_match_the_configuration():
    n = 40_000
    emu = BSS2Emulator(chip_seed=0, seed=0)
    fixed = emu.fixed_offsets(0, n)
    assert fixed.mean() == pytest.approx(0.13, abs=4 * 0.08 / np.sqrt(n))
    assert fixed.std() == pytest.approx(0.08, rel=0.02)
    trial = np.concatenate([emu.thresholds(0, n, 2.6) - 2.6 - fixed for _ in range(3)])
    assert trial.mean() == pytest.approx(0.0, abs=4 * 0.04 / np.sqrt(trial.size))
    assert trial.std() == pytest.approx(0.04, rel=0.02)
    off = BSS2Emulator(noise=NoiseModel.off())
    np.testing.assert_array_equal(off.thresholds(0, 10, 2.6), np.full(10, 2.6))


@pytest.mark.parametrize("a", [1.0, 0.5])
def test_chip_variation_mixes_in_a_fresh_chip_per_training_batch(a):
    n = 40_000
    emu = BSS2Emulator(chip_seed=0, seed=0, noise=NoiseModel(0.13, 0.08, 0.0, 0.0),
                       chip_variation=a)
    own = emu.fixed_offsets(0, n)
    th1, th2 = (emu.thresholds(0, n, 2.6, variation=a) for _ in range(2))
    for th in (th1, th2):  # (1 - a) * this chip + a * a new chip, whose offsets are N(0.13, 0.08)
        dev = th - 2.6 - (1 - a) * own
        assert dev.mean() == pytest.approx(a * 0.13, abs=4 * 0.08 / np.sqrt(n))
        assert dev.std() == pytest.approx(a * 0.08, rel=0.02)
        assert abs(np.corrcoef(dev, own)[0, 1]) < 0.03
    assert abs(np.corrcoef(th1 - (1 - a) * own, th2 - (1 - a) * own)[0, 1]) < 0.03
    np.testing.assert_array_equal(emu.thresholds(0, n, 2.6), 2.6 + own)  # evaluation: own chip


@needs_numba
def test_chip_variation_leaves_evaluation_on_the_configured_chip(tmp_path):
    net, x = _bss2_net(), _inputs()
    plain = BSS2Emulator(chip_seed=3, seed=1)
    varied = BSS2Emulator(chip_seed=3, seed=1, chip_variation=1.0)
    for a, b in zip(plain.run(net, x).times, varied.run(net, x).times):
        np.testing.assert_array_equal(a, b)
    trained = BSS2Emulator(chip_seed=3, seed=1,
                           chip_variation=1.0).run(net, x, training=True).times
    assert any(not np.array_equal(a, b) for a, b in zip(trained, plain.run(net, x).times))
    for bad in (["backend.chip_variation=1.0"],  # the simulator has no chip to vary
                ["experiment=yinyang_bss2_wa", "backend.chip_variation=1.5"]):
        res = runner.invoke(app, ["train", *bad, "--run-dir", str(tmp_path / "x")])
        assert res.exit_code == 2 and "backend.chip_variation" in res.output, res.output


@needs_numba
def test_delay_jitter_has_the_configured_spread():
    # One delayed input driving one neuron: dt_out/dT = 1, so the output inherits the jitter.
    net = Network([1, 1], w_mean=[3.0], w_std=[0.0], delays=[DelaySpec("axonal", shift=2.0,
                  scale=1.5, init_std=0.0)], bias_time=None, tau_mem=1.0, tau_syn=1.0,
                  threshold=0.5, seed=0)
    emu = BSS2Emulator(noise=NoiseModel(0.0, 0.0, 0.0, 0.01), seed=5)
    out = emu.run(net, np.full((20_000, 1), 1.0)).times[0][:, 0]
    assert np.isfinite(out).all()
    assert out.std() == pytest.approx(0.01, rel=0.03)


@needs_numba
def test_emulator_without_noise_equals_the_engine_on_quantised_parameters():
    net, t = _bss2_net(), _inputs()
    emu = BSS2Emulator(noise=NoiseModel.off())
    times = emu.run(net, t).times
    l0, l1 = emu.realise(net)
    ref0 = first_spike_times(torch.tensor(t), torch.tensor(l0.weights),
                             torch.tensor(l0.delays)[:, None], tau_mem=1.0, tau_syn=1.0,
                             threshold=2.6)
    ref1 = first_spike_times(ref0, torch.tensor(l1.weights), torch.tensor(l1.delays)[:, None],
                             tau_mem=1.0, tau_syn=1.0, threshold=2.6)
    for got, ref in zip(times, (ref0, ref1)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-12)


def test_threshold_probe_inverts_the_engine():
    theta = np.linspace(2.2, 3.8, 17)  # around the chip's 2.6 + offsets, below the peak 3.86
    t_in = torch.zeros(1, hw.PROBE_SOURCES, dtype=torch.float64)
    w = torch.tensor(hw.probe_weights(1))
    t = np.array([first_spike_times(t_in, w, None, tau_mem=1.0, tau_syn=1.0,
                                    threshold=float(th)).item() for th in theta])
    np.testing.assert_allclose(hw.threshold_from_probe(t), theta, rtol=0, atol=1e-9)
    with pytest.raises(hw.MappingError, match="did not spike"):
        hw.threshold_from_probe(np.array([0.4, np.inf]))


@needs_numba
def test_scaled_weights_compensate_other_thresholds_exactly():
    # the crossing depends on w / theta only (docs/model.md section 2): weights scaled by
    # theta_b / theta_a on thresholds theta_b reproduce the spike times of theta_a
    rng = np.random.default_rng(0)
    t_in = rng.uniform(0, 2, (64, 20))
    w = rng.normal(0.5, 0.6, (20, 30))
    th_a, th_b = rng.normal(2.73, 0.08, 30), rng.normal(2.73, 0.08, 30)
    def times(weights, theta):
        return layer_forward(t_in, LayerParams(weights, neuron=Neuron(1.0, 1.0, 2.6)),
                             theta=theta[None, :])[0]

    ref, bare = times(w, th_a), times(w, th_b)
    comp = times(w * hw.compensation_scales(th_a, th_b)[None, :], th_b)
    assert np.isfinite(ref).mean() > 0.5
    np.testing.assert_allclose(comp, ref, rtol=0, atol=1e-9)
    both = np.isfinite(bare) & np.isfinite(ref)
    assert np.abs(bare[both] - ref[both]).max() > 0.01  # the thresholds alone do matter


@needs_numba
def test_emulator_measures_its_chips_thresholds_from_spike_times():
    net = _bss2_net()
    exact = BSS2Emulator(chip_seed=5, noise=NoiseModel(trial_std=0.0)).measure_thresholds(net)
    noisy = BSS2Emulator(chip_seed=5, seed=1).measure_thresholds(net, repeats=20)
    for k, layer in enumerate(net.layers):
        truth = 2.6 + BSS2Emulator(chip_seed=5).fixed_offsets(k, layer.weight.shape[1])
        np.testing.assert_allclose(exact[k], truth, rtol=0, atol=1e-9)
        # trial noise 0.04 averaged over 20 runs: std 0.009
        assert np.abs(noisy[k] - truth).max() < 0.045
    ideal = SimulatorBackend().measure_thresholds(net)
    assert all((m == 2.6).all() for m in ideal)


@needs_numba
def test_emulator_runs_the_realised_parameters_it_reports():
    from dataclasses import replace

    net, t = _bss2_net(), _inputs()
    emu = BSS2Emulator(noise=NoiseModel.off(), backward="realised")
    own = emu.run(net, t)
    assert [p.weights.tolist() for p in own.params] == [p.weights.tolist()
                                                        for p in emu.realise(net)]
    assert own.nominal_threshold is None
    # the published backward: the float shadow parameters and the nominal threshold's slopes
    nominal = BSS2Emulator(noise=NoiseModel.off()).run(net, t)
    for p, q, r in zip(nominal.params, net.layer_params(), own.params):
        np.testing.assert_array_equal(p.weights, q.weights)
        np.testing.assert_array_equal(p.delays, q.delays)
        assert not np.array_equal(p.weights, r.weights)
    assert nominal.nominal_threshold == 2.6
    for x, y in zip(nominal.times, own.times):  # the forward is the same chip run
        np.testing.assert_array_equal(x, y)
    l0, l1 = own.params
    louder = [l0, replace(l1, weights=l1.weights * 2.0)]  # output weights doubled
    fixed = BSS2Emulator(noise=NoiseModel.off(), bundle=louder).run(net, t)
    assert fixed.params is louder
    out = fixed.times[-1]
    both = np.isfinite(out) & np.isfinite(own.times[-1])
    assert both.any() and (out[both] < own.times[-1][both]).all()  # earlier output spikes


@needs_numba
def test_chip_in_the_loop_gradients_equal_the_engine_gradients_when_noise_is_off():
    net, t = _bss2_net(seed=4), _inputs(seed=4)
    y = np.random.default_rng(4).integers(0, 3, t.shape[0])
    with torch.no_grad():  # parameters on the chip's grid: quantisation changes nothing
        for layer in net.layers:
            layer.weight.copy_(torch.round(layer.weight * 30) / 30)
            q = hw.quantize_delays(layer.delays.distinct_values())
            layer.delays.raw.copy_(torch.logit(torch.tensor((q - 2.0) / 1.5)).reshape(
                layer.delays.raw.shape))
    emu = BSS2Emulator(noise=NoiseModel.off())
    run = emu.run(net, t)
    _, g_out = LOSSES["shift_mse"](run.times[-1], y, dt=0.3)
    _, caches = net.forward(t, given=run.times, params=run.params)
    net.backward(caches, g_out / len(y), max_dw_norm=0.2)
    loop = {n: p.grad.clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = None
    # Reference: autograd through the engine's public first_spike_times, composed in the test.
    from reference import autograd_network

    from snndelay.model.torch_losses import shift_mse

    out = autograd_network(net, torch.tensor(t), max_dw_norm=0.2)
    shift_mse(out[-1], torch.tensor(y), dt=0.3).mean().backward()
    for name, p in net.named_parameters():
        torch.testing.assert_close(loop[name], p.grad, rtol=1e-8, atol=1e-10, msg=name)


# -- training and deploy ----------------------------------------------------------------------
def test_each_seed_trains_on_its_own_emulated_chip_unless_one_is_pinned():
    for seed in (0, 5):
        assert compose(["experiment=yinyang_bss2_w", f"training.seed={seed}"])[1] \
            .backend.chip_seed == seed
    pinned = compose(["experiment=yinyang_bss2_w", "training.seed=5", "backend.chip_seed=0"])
    assert pinned[1].backend.chip_seed == 0


@needs_numba
def test_emulator_training_records_the_chip_and_resumes_exactly(tmp_path):
    from snndelay.app.runs import train_run

    ov = ["experiment=yinyang_bss2_wa", *TINY, "training.epochs=2", "backend.chip_seed=7"]
    cfg = compose(ov)[1]
    ref = train_run(cfg, tmp_path / "ref", ov).summary
    assert ref.backend["name"] == "bss2_emulator" and ref.backend["chip_seed"] == 7

    def stop(row):
        if row.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "run", ov, on_epoch=stop)
    again = train_run(cfg, tmp_path / "run", ov, resume=True).summary
    assert again.test_accuracy == ref.test_accuracy
    assert again.val_loss == ref.val_loss
    # trial noise: the test accuracy is the mean of backend.eval_repeats runs of the test set
    assert len(ref.test_accuracy_draws) == cfg.backend.eval_repeats == 10
    assert ref.test_accuracy == pytest.approx(np.mean(ref.test_accuracy_draws))
    res = runner.invoke(app, ["evaluate", str(tmp_path / "ref"), "--repeats", "3"])
    assert res.exit_code == 0 and "mean of 3 runs on bss2_emulator" in " ".join(res.output.split())
    assert runner.invoke(app, ["evaluate", str(tmp_path / "ref"), "--repeats", "0"]).exit_code == 2


@needs_numba
def test_evaluation_averages_runs_only_where_trial_noise_makes_them_differ():
    from snndelay.app.trainer import evaluate, load_split

    cfg = compose(["experiment=yinyang_bss2_wa", *TINY, "training.eval_batch_size=20"])[1]
    net, split = build_network(resolve(cfg).network, cfg.training.seed), load_split(cfg.dataset, "test")
    with torch.no_grad():  # an untrained output layer stays silent; give it spikes to compare
        net.layers[1].weight.normal_(1.0, 0.5, generator=torch.Generator().manual_seed(0))
    labels = split.labels.numpy()
    noisy = BSS2Emulator.from_spec(resolve(cfg), seed=5)
    res = evaluate(net, split, resolve(cfg), noisy, repeats=6)
    assert len(res.accuracy_draws) == 6 and len(set(res.accuracy_draws)) > 1
    # each draw is one fresh run of the split on the same chip, in eval batches of 20
    again = BSS2Emulator.from_spec(resolve(cfg), seed=5)
    for acc in res.accuracy_draws:
        pred = np.concatenate([predict(again.run(net, split.t_in[b:b + 20].numpy()).times[-1])
                               for b in range(0, len(labels), 20)])
        assert acc == pytest.approx(float((pred == labels).mean()))
    quiet = BSS2Emulator.from_spec(resolve(compose(["experiment=yinyang_bss2_wa", *TINY,
                                                    "backend.noise=false"])[1]))
    assert not quiet.stochastic and len(evaluate(net, split, resolve(cfg), quiet, 6).accuracy_draws) == 1
    assert len(evaluate(net, split, resolve(cfg), SimulatorBackend(), 6).accuracy_draws) == 1


@needs_numba
def test_deploy_writes_a_valid_bundle_and_report(tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", *TINY, "training.epochs=1",
                              "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["deploy", str(run), "--hw", "--repeats", "2"])
    assert res.exit_code == 0, res.output
    arrays, meta = load_bundle(run / "deploy")
    validate_bundle(arrays, meta)
    # 33 neurons + 2 circuits per delay: the preset's strided input delays need one relay per
    # input row (20; a consecutive group would share one: 4) + 30 hidden-neuron delays
    assert meta.placement["used"] == 33 + 2 * (20 + 30) and meta.tau_s_us == 6.0
    r0 = arrays["layer0_refractory"]  # one per input row: row i holds delay i mod 4
    assert r0.shape == (20,) and np.array_equal(r0, np.tile(r0[:4], 5))
    # the bundle realises exactly what the emulator runs
    cfg = compose(["experiment=yinyang_bss2_wa"])[1]
    net = build_network(resolve(cfg).network, cfg.training.seed)
    from snndelay.app.runs import load_checkpoint

    net.load_state_dict(load_checkpoint(run).model)
    cal = meta.calibration  # on by default: weights scaled per neuron for chip 1
    assert cal["trained_chip_seed"] == 0 and cal["target_chip_seed"] == 1
    assert all(0.8 < min(sc) and max(sc) < 1.2 for sc in cal["weight_scales"])
    with torch.no_grad():
        for layer, sc in zip(net.layers, cal["weight_scales"]):
            layer.weight.mul_(torch.tensor(sc)[None, :])
    for layer, from_bundle in zip(BSS2Emulator().realise(net), bundle_params(arrays, meta)):
        np.testing.assert_allclose(layer.weights, from_bundle.weights, atol=1e-12)
        np.testing.assert_allclose(layer.delays, from_bundle.delays, atol=1e-12)
    report = DeployReport.from_dict(json.loads((run / "deploy" / "report.json").read_text()))
    assert 0 <= report.uncalibrated_accuracy_mean <= 1
    assert report.calibration["weight_scales"] == cal["weight_scales"]
    assert report.repeats == 2 and len(report.accuracy_per_repeat) == 2
    assert report.chip_seed == 1  # a fresh chip: the training chip (0) + 1
    assert 0 <= report.simulator_accuracy <= 1
    assert [r["layer"] for r in report.spike_time_deviation] == [0, 1]
    assert (run / "deploy" / "hw_vs_sim.png").stat().st_size > 5_000
    arrays["layer1_exc"][0, 0] = 64
    with pytest.raises(hw.MappingError, match="0..63"):
        validate_bundle(arrays, meta)
    res = runner.invoke(app, ["deploy", str(run), "--hw", "--repeats", "1", "--no-calibrate"])
    assert res.exit_code == 0, res.output
    arrays, meta = load_bundle(run / "deploy")
    assert meta.calibration is None
    net.load_state_dict(load_checkpoint(run).model)
    np.testing.assert_array_equal(arrays["layer1_exc"], hw.weights_to_hw(
        net.layers[1].weight.detach().numpy())[0])
    with pytest.raises(ConfigError, match="cannot measure its thresholds"):
        run_deploy(run, "bss2", 1, None, execute=True, calibrate=True)


@needs_numba
def test_deploy_best_bundles_the_network_of_the_best_validation_epoch(tmp_path):
    run = tmp_path / "run"  # lr 0.02: validation accuracy peaks before the last of 4 epochs
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", *TINY, "training.epochs=4",
                              "training.lr=0.02", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    best = ckpt["best_epoch"]
    assert best < 4  # otherwise best and last would be one network and prove nothing
    for model, state, epoch in (("best", ckpt["best_model"], best), ("last", ckpt["model"], 4)):
        res = runner.invoke(app, ["deploy", str(run), "--model", model])
        assert res.exit_code == 0, res.output
        assert f"network of epoch {epoch}, {model}" in " ".join(res.output.split())
        arrays, meta = load_bundle(run / "deploy")
        assert meta.network == {"model": model, "epoch": epoch}
        for k in range(2):
            exc, inh = hw.weights_to_hw(state[f"layers.{k}.weight"].numpy())
            np.testing.assert_array_equal(arrays[f"layer{k}_exc"], exc)
            np.testing.assert_array_equal(arrays[f"layer{k}_inh"], inh)
    # the two bundles differ: the last deploy did not just rewrite the best one
    best_exc = hw.weights_to_hw(ckpt["best_model"]["layers.0.weight"].numpy())[0]
    assert (best_exc != arrays["layer0_exc"]).any()


def test_deploy_refuses_a_network_the_chip_cannot_realise(tmp_path):
    cfg = compose([])[1]  # synaptic delays, tau_m = 2 tau_s
    with pytest.raises(hw.MappingError, match="synaptic"):
        make_bundle(build_network(resolve(cfg).network, cfg.training.seed), experiment=cfg.name,
                    input_replicas=cfg.dataset.replicate, config_yaml="")


@needs_numba
def test_deploy_calibration_failure_is_one_line_and_exit_2(tmp_path):
    # thresholds 2.6 + 1.5 lie above the probe's peak (3.86): no neuron spikes under it
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", *TINY, "training.epochs=1",
                              "backend.fixed_mean=1.5", "backend.fixed_std=0.0",
                              "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["deploy", str(run), "--hw", "--repeats", "1"])
    assert res.exit_code == 2, res.output
    assert "did not spike under the probe" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["deploy", str(run), "--hw", "--repeats", "1", "--no-calibrate"])
    assert res.exit_code == 0, res.output


def test_chip_backend_without_the_stack_fails_at_once_naming_the_emulator(tmp_path):
    from snndelay.backends.bss2.chip import BSS2Chip

    with pytest.raises(BackendUnavailable, match="bss2_emulator"):
        BSS2Chip()
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_w", "backend=bss2",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "pynn_brainscales" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


@needs_numba
def test_chip_adapter_runs_the_bundle_file_not_the_network(tmp_path, monkeypatch):
    # No chip here: a stand-in for the PyNN module lets the adapter be built; only what it
    # would write to the chip (the realised parameters) is checked, against bundle.npz.
    from snndelay.backends.bss2 import chip as bss2_chip

    monkeypatch.setattr(bss2_chip, "_import_pynn", lambda: object())
    run = tmp_path / "r"
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", "training.epochs=1",
                              "dataset.train_size=200", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["deploy", str(run)]).exit_code == 0
    arrays, meta = load_bundle(run / "deploy")
    chip = bss2_chip.BSS2Chip(bundle_params(arrays, meta))
    # another seed's untrained network: the chip must still run the bundle's integers
    spec = resolve(compose(["experiment=yinyang_bss2_wa", "training.seed=1"])[1])
    net = build_network(spec.network, spec.seeds.init)
    for layer, from_bundle in zip(chip.realise(net), bundle_params(arrays, meta)):
        assert layer.kind == from_bundle.kind == "axonal"
        np.testing.assert_array_equal(layer.weights, from_bundle.weights)
        np.testing.assert_array_equal(layer.delays, from_bundle.delays)
    untrained = bss2_chip.BSS2Chip().realise(net)
    assert not np.array_equal(untrained[0].weights, chip.realise(net)[0].weights)


@pytest.mark.parametrize("layout", ["consecutive", "strided"])
def test_a_format_1_bundle_reads_as_it_was_written(layout):
    """Bundles of format /1 recorded the rows per delay circuit pair as delay_group_sizes and no
    layouts; they read to the same per-row delays as the /2 bundle of the same network."""
    from dataclasses import replace

    spec = resolve(compose(["experiment=yinyang_bss2_wa", f"delay.group_layout={layout}"])[1])
    net = build_network(spec.network, spec.seeds.init)
    arrays, meta = make_bundle(net, experiment="x", input_replicas=5, config_yaml="")
    rows_per_circuit = [1 if layout == "strided" and g > 1 else g for g in meta.delay_group_sizes]
    old = replace(meta, format="snndelay-bss2-bundle/1", delay_group_layouts=[],
                  delay_group_sizes=rows_per_circuit)
    for new_layer, old_layer, layer in zip(bundle_params(arrays, meta),
                                           bundle_params(arrays, old), net.layers):
        np.testing.assert_array_equal(new_layer.delays, old_layer.delays)
        # and both are the network's delays, rounded to the chip's refractory grid
        np.testing.assert_allclose(new_layer.delays, layer.delays.value(), atol=1 / 48 + 1e-12)
