"""`snndelay deploy`: a trained run as a BrainScaleS-2 bundle, executed on a backend and
compared with the simulator (docs/model.md section 8).

The bundle (deploy/bundle.npz + deploy/bundle.json) holds integer weight matrices (excitatory
and inhibitory, 0..63), one refractory setting per axonal delay, the placement of neurons and
delay circuit pairs, the time scaling and the network's configuration; it is validated against
the chip's limits before anything runs.

Calibration (emulator targets): a network fits the fixed-pattern threshold offsets of the chip it
was trained on. Deploy measures every neuron's threshold on that chip and on the target chip
from spike times (bss2_mapping's probe) and scales each neuron's incoming weights by
theta_target / theta_trained, which restores the trained chip's spike times up to weight rounding
(the crossing depends on w / theta only). The bundle then holds the compensated weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from snndelay.backends.bss2 import mapping as hw
from snndelay.config import Config, resolve, to_yaml
from snndelay.errors import ConfigError
from snndelay.model.sharing import CONSECUTIVE

if TYPE_CHECKING:
    from snndelay.backends import Backend
    from snndelay.model.network import Network

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


def make_bundle(cfg: Config, net, calibration: dict | None = None, network: dict | None = None
                ) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays for bundle.npz, metadata for bundle.json) of a network; MappingError if the chip
    cannot realise it. calibration: what the weights were compensated for; network: which of
    the run's networks this is ({model, epoch}); both recorded as is."""
    kinds = [kind.value for kind in net.delay_kinds()]
    hw.check_realisable(kinds, net.tau_mem, net.tau_syn)
    arrays: dict[str, np.ndarray] = {}
    sharing = []
    for k, layer in enumerate(net.layers):
        exc, inh = hw.weights_to_hw(layer.weight.detach().numpy())
        arrays[f"layer{k}_exc"], arrays[f"layer{k}_inh"] = exc, inh
        if layer.delays is not None:
            # one refractory setting per delay circuit pair (DelaySharing.circuit_values)
            d = layer.delays.circuit_values()  # tau_s (tau_syn = 1 on the chip)
            arrays[f"layer{k}_refractory"] = hw.delay_to_refractory(d)
            sharing.append(layer.delays.sharing)
        else:
            sharing.append(None)
    placement = hw.place(net.sizes[1:], [0 if sh is None else sh.circuits for sh in sharing])
    meta = {
        "format": hw.BUNDLE_FORMAT,
        "experiment": cfg.name,
        "sizes": net.sizes, "delay_types": kinds,
        # shared delays (DelaySharing): the group size and layout of each layer
        "delay_group_sizes": [1 if sh is None else sh.group for sh in sharing],
        "delay_group_layouts": [CONSECUTIVE if sh is None else sh.layout for sh in sharing],
        "bias_time": net.bias_time,
        "threshold": float(net.threshold),
        "input_replicas": cfg.dataset.replicate,
        "weight_scale": hw.WEIGHT_SCALE, "weight_max": hw.WEIGHT_MAX,
        "tau_s_us": hw.TAU_S_US, "sample_window_tau_s": hw.SAMPLE_WINDOW,
        "refractory_range": [hw.R_MIN, hw.R_MAX], "delay_us": "r / 8 + 2",
        "placement": placement.to_dict(),
        "calibration": calibration,
        "network": network,
        "config_yaml": to_yaml(cfg),
    }
    return arrays, meta


def validate_bundle(arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Check a bundle against the chip's limits (MappingError naming what is wrong)."""
    n_layers = len(meta["sizes"]) - 1
    for k in range(n_layers):
        for part in ("exc", "inh"):
            m = arrays[f"layer{k}_{part}"]
            if m.dtype != np.uint8 or m.size and int(m.max()) > hw.WEIGHT_MAX:
                raise hw.MappingError(f"layer{k}_{part}: weights must be integers 0..{hw.WEIGHT_MAX}")
        if ((arrays[f"layer{k}_exc"] > 0) & (arrays[f"layer{k}_inh"] > 0)).any():
            raise hw.MappingError(f"layer {k}: a synapse is both excitatory and inhibitory")
        r = arrays.get(f"layer{k}_refractory")
        if r is not None and r.size and (r.min() < hw.R_MIN or r.max() > hw.R_MAX):
            raise hw.MappingError(f"layer {k}: refractory settings must lie in "
                                  f"{hw.R_MIN}..{hw.R_MAX}")
    hw.check_realisable(meta["delay_types"])
    if meta["placement"]["used"] > hw.N_CIRCUITS:
        raise hw.MappingError(f"placement uses {meta['placement']['used']} circuits of "
                              f"{hw.N_CIRCUITS}")


def write_bundle(out_dir: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    from snndelay.app.rundir import atomic_write, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "bundle.npz",
                 lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # stub: **kwds bool
    atomic_write_text(out_dir / "bundle.json", json.dumps(meta, indent=2) + "\n")


def load_bundle(out_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(out_dir / "bundle.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads((out_dir / "bundle.json").read_text())


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


def run_deploy(run_dir: Path, backend_name: str, repeats: int, chip_seed: int | None,
               execute: bool, calibrate: bool | None = None, model: str = "last") -> dict:
    """Write and validate the bundle of the run's network (model: last or best, see
    runs.load_network); with execute, run the test set `repeats` times on the backend and write
    deploy/report.json and deploy/hw_vs_sim.png. calibrate (default: on for the emulator)
    compensates the target chip's thresholds first. Returns the report."""

    from snndelay.app.rundir import atomic_write_text, load_run_config
    from snndelay.app.runs import load_network
    from snndelay.app.trainer import load_split
    from snndelay.backends import SimulatorBackend, backend_class, deploy_targets, make_backend
    from snndelay.model.losses import predict

    cfg = load_run_config(run_dir)
    spec = resolve(cfg)
    trained_cls, target_cls = backend_class(spec.backend.name), backend_class(backend_name)
    if not target_cls.deploys:
        raise ConfigError(f"--backend: {backend_name} is not a deploy target; use one of "
                          f"{', '.join(deploy_targets())}")
    trained_chip = getattr(spec.backend, "chip_seed", None) if trained_cls.seeded_chip else None
    seed = chip_seed if chip_seed is not None else (trained_chip + 1 if trained_chip is not None
                                                    else 1)
    changes = {"chip_seed": seed} if target_cls.seeded_chip else {}
    hw_spec = spec.with_backend(spec.backend.for_backend(target_cls.Config, **changes))
    net, epoch = load_network(run_dir, spec, model)
    target_cls.check(hw_spec)  # before a bundle is written
    out_dir = run_dir / "deploy"
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
        arrays, meta = make_bundle(cfg, deployed, calibration, {"model": model, "epoch": epoch})
        validate_bundle(arrays, meta)
    except hw.MappingError as exc:
        raise ConfigError(f"{run_dir} cannot be deployed: {exc}") from None
    write_bundle(out_dir, arrays, meta)
    report: dict = {"run_dir": str(run_dir), "network": meta["network"],
                    "bundle": str(out_dir / "bundle.npz"),
                    "circuits_used": meta["placement"]["used"]}
    if not execute:
        return report

    test = load_split(spec.dataset, "test")
    labels = test.labels.numpy()

    def accuracy(times: list[np.ndarray]) -> float:
        return float((predict(times[-1]) == labels).mean())

    sim_times = SimulatorBackend().run(net, test.t_in.numpy()).times
    sim_acc = accuracy(sim_times)
    # Every repeat runs the bundle file just written (its integers), with fresh trial noise.
    bundle = hw.bundle_params(*load_bundle(out_dir))

    def test_runs(network, from_bundle: bool) -> list[list[np.ndarray]]:
        return [make_backend(hw_spec, seed=spec.seeds.deploy_repeats + rep,
                             bundle=bundle if from_bundle else None)
                .run(network, test.t_in.numpy()).times for rep in range(repeats)]

    runs = test_runs(deployed, True)
    accs = [accuracy(times) for times in runs]
    report.update({
        "backend": backend_name, "chip_seed": seed if target_cls.seeded_chip else None,
        "trained_on": spec.backend.name, "trained_chip_seed": trained_chip,
        "repeats": repeats, "accuracy_per_repeat": accs,
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
        "simulator_accuracy": sim_acc, "calibration": calibration,
        "spike_time_deviation": spike_deviation(runs[0], sim_times),
    })
    if calibrate:  # what the same chip gives without the compensation
        report["uncalibrated_accuracy_mean"] = float(np.mean([accuracy(times)
                                                               for times in test_runs(net, False)]))
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    _plot(runs[0][-1], sim_times[-1], out_dir / "hw_vs_sim.png", backend_name)
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
