"""`snndelay deploy | export | import`: parse, call snndelay.app, render."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from snndelay.cli.base import app, console
from snndelay.errors import ConfigError


@app.command()
def deploy(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    hw: bool = typer.Option(False, "--hw", help="Execute the test set on the hardware backend "
                            "(without it: only write and validate the bundle)."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="A backend that deploys (default: the emulator; the chip; pynn: a PyNN simulator)."),
    repeats: int = typer.Option(5, "--repeats", help="Runs of the test set (fresh trial noise each)."),
    chip_seed: Optional[int] = typer.Option(
        None, "--chip-seed", help="Emulated chip (default: a fresh one, the training chip + 1)."),
    calibrate: Optional[bool] = typer.Option(
        None, "--calibrate/--no-calibrate",
        help="Measure the thresholds of the training and target chips and scale each neuron's "
             "weights to match (default: on for the emulator; not yet on the chip)."),
    model: str = typer.Option("last", "--model", help="last: the network after the last epoch; "
                              "best: that of the best-validation epoch."),
) -> None:
    """Convert a trained run into a BrainScaleS-2 bundle (deploy/bundle.npz, bundle.json) and,
    with --hw, run it on the backend next to the simulator (deploy/report.json, hw_vs_sim.png)."""
    from snndelay.app.deploy import run_deploy
    from snndelay.app.rundir import directory_lock
    from snndelay.backends import deploy_target
    from snndelay.limits import MAX_REPEATS, MAX_SEED

    target = deploy_target(backend)
    backend = target.name

    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS}], got {repeats}")
    if chip_seed is not None and not 0 <= chip_seed <= MAX_SEED:
        raise ConfigError(f"--chip-seed must be an integer in [0, {MAX_SEED}], got {chip_seed}")
    if hw:
        target.ensure_available()
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    with directory_lock(run_dir):
        report = run_deploy(run_dir, backend, repeats, chip_seed, execute=hw,
                            calibrate=calibrate, model=model)
    net = report.network
    if report.bundle:
        console.print(f"bundle: {escape(str(report.bundle))} (network of epoch {net['epoch']}, "
                      f"{net['model']}; {report.circuits_used} of 512 neuron circuits)",
                      highlight=False)
    else:
        console.print(f"{backend} runs the trained network itself (network of epoch "
                      f"{net['epoch']}, {net['model']}; no bundle)", highlight=False)
    if not hw:
        return
    chip = f" chip {report.chip_seed}" if report.chip_seed is not None else ""
    table = Table(title=escape(f"{run_dir}: test accuracy on {backend}{chip}, {report.repeats} repeats"))
    calibrated = report.calibration is not None
    cols = ["backend mean", "backend std"] + (["uncalibrated mean"] if calibrated else []) \
        + ["simulator", "trained on"]
    for col in cols:
        table.add_column(col, justify="right")
    trained = (report.trained_on or "") + (f" (chip {report.trained_chip_seed})"
                                      if report.trained_chip_seed is not None else "")
    row = [f"{100 * (report.accuracy_mean or 0.0):.2f} %",
           f"{100 * (report.accuracy_std or 0.0):.2f}"]
    if calibrated:
        row.append(f"{100 * (report.uncalibrated_accuracy_mean or 0.0):.2f} %")
    table.add_row(*row, f"{100 * (report.simulator_accuracy or 0.0):.2f} %", trained)
    console.print(table)
    dev = Table(title="spike times, backend vs simulator (first repeat)")
    for col in ("layer", "spiking in both", "mean |dt| (tau_s)", "max |dt| (tau_s)",
                "spike / no-spike mismatch"):
        dev.add_column(col, justify="right")
    for r in report.spike_time_deviation:
        dev.add_row(str(r["layer"]), str(r["pairs_spiking_in_both"]), f"{r['mean_abs_dt']:.4f}",
                    f"{r['max_abs_dt']:.4f}", f"{100 * r['spike_mismatch_fraction']:.2f} %")
    console.print(dev)
    if report.realisation:
        console.print(f"{backend}: {target.describe_realisation(report.realisation)}",
                      markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {run_dir / 'deploy' / 'report.json'}, plot: "
                  f"{run_dir / 'deploy' / 'hw_vs_sim.png'}", markup=False, highlight=False)


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    fmt: str = typer.Option("nir", "--format", help="nir (the BrainScaleS-2 bundle: "
                            "`snndelay deploy`)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The file to write (default: "
                                       "RUN_DIR/export/network.nir)."),
    model: str = typer.Option("last", "--model", help="last or best (best-validation epoch)."),
    time_unit_ms: float = typer.Option(1.0, "--time-unit-ms", help="Milliseconds per model "
                                       "time unit (tau_s): scales time constants and delays."),
    buckets: Optional[int] = typer.Option(
        None, "--synaptic-buckets", help="Write synaptic delays as K shared values per layer "
        "(instead of the exact per-synapse fan-out) and report the spike-time error."),
    force: bool = typer.Option(False, "--force", help="Replace the --out file if it exists "
                               "(never a directory, device or a file of a run directory)."),
) -> None:
    """Write a trained network as a NIR graph with its delays (needs the optional nir package);
    what NIR cannot express (fire-once, first-spike readout, input encoding) is in its
    metadata (docs/model.md section 10)."""
    from snndelay.app.export import check_time_unit, write_nir
    from snndelay.app.rundir import check_output_file, load_run_config, make_dir
    from snndelay.app.runs import load_network
    from snndelay.config import resolve

    if fmt != "nir":
        raise ConfigError(f"--format must be nir, got {fmt!r} (BrainScaleS-2 bundles: "
                          "`snndelay deploy`)")
    if buckets is not None and not 1 <= buckets <= 10_000:
        raise ConfigError(f"--synaptic-buckets must be in [1, 10000], got {buckets}")
    check_time_unit(time_unit_ms)
    path = out or run_dir / "export" / "network.nir"
    check_output_file(path, force, "--out", own_run=run_dir)
    cfg = load_run_config(run_dir)
    net, epoch = load_network(run_dir, resolve(cfg), model)
    make_dir(path.parent, "--out directory")
    report = write_nir(net, cfg, path, time_unit_ms=time_unit_ms, buckets=buckets)
    for warning in report.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    console.print(f"{path}: {report.n_nodes} nodes, network of epoch {epoch} ({model}), "
                  f"synaptic delays {report.synaptic}, {time_unit_ms:g} ms per tau_s",
                  markup=False, highlight=False)
    console.print("a reader must apply: neurons fire once (drop a neuron's later spikes), the "
                  "prediction is the first output neuron to spike, input 'bias' spikes at the "
                  "bias time (the graph's metadata 'semantics' and 'snndelay' say so)",
                  markup=False, highlight=False)
    if buckets is not None:
        from snndelay.app.export import bucketing_effect

        eff = bucketing_effect(net, cfg.dataset, buckets)
        console.print(f"bucketing on the test set: output spike times differ by "
                      f"{eff['mean_abs_dt']:.2e} tau_s on average (max {eff['max_abs_dt']:.2e}), "
                      f"{100 * eff['spike_mismatch_fraction']:.2f} % of output spikes appear or "
                      f"vanish; accuracy {100 * eff['accuracy_exact']:.2f} % -> "
                      f"{100 * eff['accuracy_bucketed']:.2f} %", markup=False, highlight=False)


@app.command("import")
def import_cmd(
    nir_file: Path = typer.Argument(..., help="A .nir file written by `snndelay export`."),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where to write the network as a run "
                                 "directory (config.yaml, checkpoint.pt) for `snndelay evaluate`."),
) -> None:
    """Read a NIR graph written by `snndelay export` back into a snndelay run directory."""
    from snndelay.app.nir_import import import_run

    net = import_run(nir_file, run_dir)
    console.print(f"{run_dir}: imported {nir_file} ({' -> '.join(map(str, net.sizes))}); "
                  f"`snndelay evaluate {run_dir}` runs it", markup=False, highlight=False)
