"""`snndelay deploy`: a trained run as a BrainScaleS-2 bundle (backends/bss2/bundle.py),
executed on a backend and compared with the simulator (docs/model.md section 8); the outcome
is a DeployReport (deploy/report.json).

Calibration (emulator targets): a network fits the fixed-pattern threshold offsets of the chip it
was trained on. Deploy measures every neuron's threshold on that chip and on the target chip
from spike times (the probe of backends/bss2/mapping.py) and scales each neuron's incoming weights by
theta_target / theta_trained, which restores the trained chip's spike times up to weight rounding
(the crossing depends on w / theta only). The bundle then holds the compensated weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snndelay.backends.bss2 import mapping as hw
from snndelay.backends.bss2.bundle import (
    bundle_params,
    load_bundle,
    make_bundle,
    validate_bundle,
    write_bundle,
)
from snndelay.config import resolve, to_yaml
from snndelay.errors import ConfigError

if TYPE_CHECKING:
    from snndelay.backends import Backend
    from snndelay.model.network import Network
    from snndelay.spec import RunSpec

CALIBRATION_REPEATS = 20  # probe runs per chip: trial noise 0.04 / sqrt(20) ~ 0.01 in theta


def calibrated(net: Network, trained: Backend, target: Backend,
               repeats: int = CALIBRATION_REPEATS) -> tuple[Network, list[np.ndarray]]:
    """(a copy of net whose incoming weights per neuron are scaled by theta_target /
    theta_trained, the scales per layer); thresholds measured on the backends `trained` (the
    chip or simulator the run trained on) and `target`."""
    import copy

    import torch

    scales = [hw.compensation_scales(a, b) for a, b in zip(
        trained.measure_thresholds(net, repeats), target.measure_thresholds(net, repeats))]
    out = copy.deepcopy(net)
    with torch.no_grad():
        for layer, sc in zip(out.layers, scales):
            layer.weight.mul_(torch.from_numpy(sc)[None, :])
    return out, scales


def spike_deviation(hw_times: list[np.ndarray], sim_times: list[np.ndarray]) -> list[dict]:
    """Per layer: mean and max |t_hw - t_sim| over (sample, neuron) pairs that spike in both,
    and the fraction of pairs where exactly one of them spikes."""
    rows = []
    for k, (a, b) in enumerate(zip(hw_times, sim_times)):
        both = np.isfinite(a) & np.isfinite(b)
        diff = np.abs(a[both] - b[both])
        rows.append({"layer": k, "pairs_spiking_in_both": int(both.sum()),
                     "mean_abs_dt": float(diff.mean()) if diff.size else float("nan"),
                     "max_abs_dt": float(diff.max()) if diff.size else float("nan"),
                     "spike_mismatch_fraction": float((np.isfinite(a) != np.isfinite(b)).mean())})
    return rows


@dataclass
class DeployReport:
    """deploy/report.json: the bundle, and with --hw its runs on the backend next to the
    simulator (accuracies as fractions, spike-time deviations per layer in tau_s)."""

    run_dir: str
    network: dict[str, Any]  # {model, epoch}
    bundle: str
    circuits_used: int
    backend: str | None = None
    chip_seed: int | None = None
    trained_on: str | None = None
    trained_chip_seed: int | None = None
    repeats: int = 0
    accuracy_per_repeat: list[float] = field(default_factory=list)
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    simulator_accuracy: float | None = None
    calibration: dict[str, Any] | None = None
    spike_time_deviation: list[dict[str, Any]] = field(default_factory=list)
    uncalibrated_accuracy_mean: float | None = None  # the same chip without compensation
    realisation: dict[str, float] = field(default_factory=dict)  # Backend.realisation

    @property
    def executed(self) -> bool:
        return self.backend is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DeployReport:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def run_deploy(run_dir: Path, backend_name: str, repeats: int, chip_seed: int | None,
               execute: bool, calibrate: bool | None = None, model: str = "last"
               ) -> DeployReport:
    """Write and validate the bundle of the run's network (model: last or best, see
    runs.load_network); with execute, run the test set `repeats` times on the backend and write
    deploy/report.json and deploy/hw_vs_sim.png. calibrate (default: on for the emulator)
    compensates the target chip's thresholds first."""
    from snndelay.app.rundir import load_run_config
    from snndelay.app.runs import load_network
    from snndelay.app.trainer import load_split
    from snndelay.backends import SimulatorBackend, backend_class, deploy_target, make_backend
    from snndelay.model.losses import predict

    cfg = load_run_config(run_dir)
    spec = resolve(cfg)
    trained_cls, target_cls = backend_class(spec.backend.name), deploy_target(backend_name)
    trained_chip = getattr(spec.backend, "chip_seed", None) if trained_cls.seeded_chip else None
    seed = chip_seed if chip_seed is not None else (trained_chip + 1 if trained_chip is not None
                                                    else 1)
    changes = {"chip_seed": seed} if target_cls.seeded_chip else {}
    hw_spec = spec.with_backend(spec.backend.for_backend(target_cls.Config, **changes))
    net, epoch = load_network(run_dir, spec, model)
    target_cls.check(hw_spec)  # before a bundle is written
    out_dir = run_dir / "deploy"
    if not target_cls.runs_bundle:
        return _deploy_network(run_dir, net, epoch, model, spec, hw_spec, execute, calibrate)
    calibrate = execute and (target_cls.calibrates if calibrate is None else calibrate)
    if calibrate and not target_cls.calibrates:
        raise ConfigError(f"--calibrate: backend {backend_name} cannot measure its thresholds "
                          "(the calibration probe runs on the emulator; use --no-calibrate)")
    deployed, calibration = net, None
    try:  # the probe (a neuron that never spikes) and the bundle fail with one line each
        if calibrate:
            deployed, scales = calibrated(
                net, make_backend(spec, seed=spec.seeds.calibration_trained),
                make_backend(hw_spec, seed=spec.seeds.calibration_target))
            calibration = {"trained_on": spec.backend.name, "trained_chip_seed": trained_chip,
                           "target_chip_seed": seed, "probe_repeats": CALIBRATION_REPEATS,
                           "weight_scales": [sc.tolist() for sc in scales]}
        arrays, meta = make_bundle(deployed, experiment=cfg.name,
                                   input_replicas=cfg.dataset.replicate,
                                   config_yaml=to_yaml(cfg), calibration=calibration,
                                   network={"model": model, "epoch": epoch})
        validate_bundle(arrays, meta)
    except hw.MappingError as exc:
        raise ConfigError(f"{run_dir} cannot be deployed: {exc}") from None
    write_bundle(out_dir, arrays, meta)
    report = DeployReport(str(run_dir), meta.network or {}, str(out_dir / "bundle.npz"),
                          int(meta.placement["used"]))
    if not execute:
        return report

    test = load_split(spec.dataset, "test")
    labels = test.labels.numpy()

    def accuracy(times: list[np.ndarray]) -> float:
        return float((predict(times[-1]) == labels).mean())

    sim_times = SimulatorBackend().run(net, test.t_in.numpy()).times
    # Every repeat runs the bundle file just written (its integers), with fresh trial noise.
    bundle = bundle_params(*load_bundle(out_dir))

    def test_runs(network: Network, from_bundle: bool) -> list[list[np.ndarray]]:
        return [make_backend(hw_spec, seed=spec.seeds.deploy_repeats + rep,
                             bundle=bundle if from_bundle else None)
                .run(network, test.t_in.numpy()).times for rep in range(repeats)]

    runs = test_runs(deployed, True)
    accs = [accuracy(times) for times in runs]
    report = replace(
        report, backend=backend_name, chip_seed=seed if target_cls.seeded_chip else None,
        trained_on=spec.backend.name, trained_chip_seed=trained_chip, repeats=repeats,
        accuracy_per_repeat=accs, accuracy_mean=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)), simulator_accuracy=accuracy(sim_times),
        calibration=calibration, spike_time_deviation=spike_deviation(runs[0], sim_times))
    if calibrate:  # what the same chip gives without the compensation
        report.uncalibrated_accuracy_mean = float(np.mean([accuracy(times)
                                                           for times in test_runs(net, False)]))
    _write_report(report, runs[0][-1], sim_times[-1], out_dir)
    return report


def _write_report(report: DeployReport, hw_out: np.ndarray, sim_out: np.ndarray,
                  out_dir: Path) -> None:
    from snndelay.app.rundir import atomic_write_text, make_dir

    make_dir(out_dir, "deploy directory")
    atomic_write_text(out_dir / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")
    _plot(hw_out, sim_out, out_dir / "hw_vs_sim.png", str(report.backend))


def _deploy_network(run_dir: Path, net: Network, epoch: int, model: str, spec: RunSpec,
                    hw_spec: RunSpec, execute: bool, calibrate: bool | None) -> DeployReport:
    """Deploy to a backend that runs the network itself (a PyNN simulator, runs_bundle False):
    no bundle; with execute, one run of the test set (it is deterministic) next to the engine,
    with what the backend changed in realising it (Backend.realisation)."""
    from snndelay.app.trainer import load_split
    from snndelay.backends import SimulatorBackend, make_backend
    from snndelay.model.losses import predict

    name = hw_spec.backend.name
    if calibrate:
        raise ConfigError(f"--calibrate: backend {name} realises the trained thresholds "
                          "exactly; there is nothing to calibrate (use --no-calibrate)")
    report = DeployReport(str(run_dir), {"model": model, "epoch": epoch}, "", 0)
    if not execute:
        return report
    test = load_split(spec.dataset, "test")
    labels, t_in = test.labels.numpy(), test.t_in.numpy()
    target = make_backend(hw_spec, seed=spec.seeds.deploy_repeats)
    hw_times = target.run(net, t_in).times
    sim_times = SimulatorBackend().run(net, t_in).times
    acc = float((predict(hw_times[-1]) == labels).mean())
    report = replace(report, backend=name, trained_on=spec.backend.name, repeats=1,
                     accuracy_per_repeat=[acc], accuracy_mean=acc, accuracy_std=0.0,
                     simulator_accuracy=float((predict(sim_times[-1]) == labels).mean()),
                     spike_time_deviation=spike_deviation(hw_times, sim_times),
                     realisation=target.realisation(net, t_in))
    _write_report(report, hw_times[-1], sim_times[-1], run_dir / "deploy")
    return report


def _plot(hw_out: np.ndarray, sim_out: np.ndarray, path: Path, backend: str) -> None:
    from snndelay.app.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    both = np.isfinite(hw_out) & np.isfinite(sim_out)
    for j in range(hw_out.shape[1]):
        m = both[:, j]
        ax.scatter(sim_out[m, j], hw_out[m, j], s=6, alpha=0.5, label=f"output {j}")
    if both.any():
        lo, hi = float(min(sim_out[both].min(), hw_out[both].min())), \
            float(max(sim_out[both].max(), hw_out[both].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="simulator output spike time (tau_s)",
           ylabel=f"{backend} output spike time (tau_s)",
           title="test set: hardware vs simulated output spikes")
    ax.legend(markerscale=2)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
