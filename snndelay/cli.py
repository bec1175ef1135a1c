"""The `snndelay` command line.

Every user error (snndelay.errors.UserError: config, command-line values, data files, run
directories, backends, the chip mapping) raised anywhere below a command becomes one plain-text
line on stderr and exit code 2 here, in `_Commands.invoke`; commands do not catch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from snndelay.errors import ConfigError, UserError

if TYPE_CHECKING:
    from snndelay.app.tables import SweepRow


def report_user_error(exc: UserError) -> NoReturn:
    """Print a user error as one line (text, never markup) and exit with code 2."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    typer.echo(f"{typer.style('error:', fg='red')} {message}", err=True)
    raise typer.Exit(2)


class _Commands(TyperGroup):
    """The one place where user errors become a line and exit 2, for every command."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            report_user_error(exc)


app = typer.Typer(
    cls=_Commands,
    help="Train spiking networks with learnable delays using exact, event-based gradients.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main() -> None:
    """snndelay: exact-gradient delay learning for spiking neural networks."""


@app.command()
def selfcheck(tolerance: float = typer.Option(
        1e-5, help="Largest accepted |exact - FD| gradient error.")) -> None:
    """Check the engine's exact gradients against finite differences (both tau ratios, all delay types)."""
    from snndelay.app.selfcheck import run_selfcheck

    if not 0 < tolerance < 1:  # also refuses nan and inf
        raise ConfigError(f"--tolerance: must be in (0, 1) (a relative gradient error), got "
                          f"{tolerance}")

    table = Table(title="engine self-check: exact gradient vs central finite differences")
    for col in ("tau_m/tau_s", "delay", "spiking", "max |grad - FD|", "max |grad|", "ok"):
        table.add_column(col, justify="right")
    ok = True
    for row in run_selfcheck():
        good = row.max_abs_err <= tolerance * max(1.0, row.max_grad)
        ok &= good
        table.add_row(f"{row.ratio:g}", row.delay, f"{row.spiking:.2f}", f"{row.max_abs_err:.1e}",
                      f"{row.max_grad:.2f}", "[green]yes[/]" if good else "[red]NO[/]")
    console.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Hydra overrides, e.g. experiment=yinyang_h30_wa training.epochs=50"),
    run_dir: Optional[Path] = typer.Option(
        None, "--run-dir", help="Where to write the run (default outputs/DATE/TIME_<experiment>)."),
    show_cfg: bool = typer.Option(False, "--cfg", help="Print the composed config and exit."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue an interrupted run from its last checkpoint."),
) -> None:
    """Train a network (default experiment: yinyang_h30_ws)."""
    from snndelay.app.records import EpochRow
    from snndelay.app.rundir import (
        check_fresh_run_dir,
        check_writable_dir,
        default_run_dir,
        load_run_config,
        load_run_overrides,
    )
    from snndelay.config import compose, to_yaml

    overrides = list(overrides or [])
    continuing = resume is not None
    start_over = False
    if resume is not None:
        if overrides:
            raise ConfigError("--resume continues a run with its saved config; drop the overrides")
        if run_dir is not None:
            raise ConfigError("--resume continues the run in its own directory; drop --run-dir")
        cfg = load_run_config(resume)
        target = resume
        if not (resume / "checkpoint.pt").exists():
            # Killed before its first checkpoint: nothing to continue, so start it over.
            overrides, continuing, start_over = load_run_overrides(resume), False, True
            err_console.print(f"{resume} has no checkpoint yet (stopped before the first "
                              "epoch ended): starting it over from its saved config",
                              markup=False, highlight=False)
    else:
        _, cfg = compose(overrides)
        target = run_dir or default_run_dir(cfg)
    if show_cfg:
        console.print(to_yaml(cfg), markup=False, highlight=False, end="")
        return
    from snndelay.app.runs import train_run
    from snndelay.app.trainer import check_data
    from snndelay.backends import backend_class
    from snndelay.config import resolve

    check_writable_dir(target)
    if not continuing and not start_over:
        check_fresh_run_dir(target)  # never written over (again under the run's lock)
    backend_class(cfg.backend.name).ensure_available()
    check_data(resolve(cfg).dataset)  # every split's files are read and checked, before output
    console.print(f"[bold]{escape(cfg.name)}[/]: {cfg.training.epochs} epochs, seed "
                  f"{cfg.training.seed}, run directory {escape(str(target))}", highlight=False)
    progress = Progress(TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                        transient=False)
    with progress:
        task = progress.add_task("train", total=cfg.training.epochs, info="")

        def on_epoch(row: EpochRow) -> None:
            progress.update(task, completed=row.epoch, info=(
                f"loss {row.train_loss:.4f}  train {100 * row.train_acc:.1f} %  "
                f"val {100 * row.val_acc:.1f} %"))

        try:
            result = train_run(cfg, target, overrides, resume=continuing, on_epoch=on_epoch,
                               start_over=start_over)
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted; continue with: snndelay train --resume {target}",
                              markup=False, highlight=False)
            raise typer.Exit(130) from None
    s = result.summary
    table = Table(title=escape(f"{cfg.name} (seed {s.seed})"))
    for col in ("test acc", "val acc", "parameters", "epochs", "wall time", "run directory"):
        table.add_column(col, justify="right")
    table.add_row(f"{100 * s.test_accuracy:.2f} %", f"{100 * s.val_accuracy:.2f} %",
                  str(s.n_params), str(s.epochs), f"{s.wall_time_s:.1f} s",
                  escape(str(target)))
    console.print(table)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    split: str = typer.Option("test", "--split", help="test, val or train"),
    repeats: Optional[int] = typer.Option(
        None, "--repeats", help="Runs of the split averaged on a noisy backend (emulator, "
        "chip); default: the run's backend.eval_repeats."),
    model: str = typer.Option("last", "--model", help="last: the network after the last epoch; "
                              "best: that of the best-validation epoch."),
) -> None:
    """Reload a run and report accuracy, loss, confusion matrix and silent neurons."""
    from snndelay.app.runs import evaluate_run

    if split not in ("test", "val", "train"):
        raise ConfigError(f"--split must be test, val or train, got {split!r}")
    from snndelay.limits import MAX_REPEATS

    if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS}], got {repeats}")
    spec, res, confusion, epoch = evaluate_run(run_dir, split, repeats, model)
    console.print(f"[bold]{escape(spec.name)}[/] {escape(str(run_dir))} (network of epoch {epoch}, {model}) on the "
                  f"{split} split: accuracy "
                  f"{100 * res.accuracy:.2f} %, loss {res.loss:.5f}", highlight=False)
    if len(res.accuracy_draws) > 1:  # a noisy backend: every run of the split differs
        import statistics

        draws = [100 * a for a in res.accuracy_draws]
        console.print(f"mean of {len(draws)} runs on {spec.backend.name} (--repeats): "
                      f"std {statistics.pstdev(draws):.2f}, range {min(draws):.1f}-"
                      f"{max(draws):.1f} %; confusion matrix and silent pairs from the first run",
                      highlight=False)
    n_cls = confusion.shape[0]
    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true")
    for c in range(n_cls):
        table.add_column(f"pred {c}", justify="right")
    table.add_column("no spike", justify="right")
    for r in range(n_cls):
        table.add_row(str(r), *[str(int(v)) for v in confusion[r]])
    console.print(table)
    silent = Table(title="silent (sample, neuron) pairs")
    silent.add_column("layer")
    silent.add_column("fraction silent", justify="right")
    for k, f in enumerate(res.silent):
        silent.add_row(f"{k} ({'output' if k == len(res.silent) - 1 else 'hidden'})", f"{f:.3f}")
    console.print(silent)


def _sweep_progress(total: int) -> tuple[Progress, Callable[[SweepRow], None]]:
    progress = Progress(TextColumn("[bold]jobs"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
    task = progress.add_task("sweep", total=total, info="")
    counts = {"failed": 0}

    def on_done(row: SweepRow) -> None:
        counts["failed"] += row.failed
        if row.failed:
            progress.console.print(f"[red]failed[/] {escape(row.job)}: {escape(row.error)}",
                                   highlight=False, soft_wrap=True)
        else:
            progress.console.print(f"{row.status:>6} {escape(row.job)}: test "
                                   f"{100 * (row.test_accuracy or 0.0):.2f} %", highlight=False,
                                   soft_wrap=True)
        progress.update(task, advance=1, info=f"{counts['failed']} failed")

    return progress, on_done


def _group_table(title: str, rows: list[SweepRow]) -> Table:
    from snndelay.app.sweep import groups

    table = Table(title=title)
    for col in ("swept values (over seeds)", "runs", "failed", "median", "IQR", "mean", "std"):
        if col.startswith("swept"):  # wraps rather than hiding the values behind an ellipsis
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for g in sorted(groups(rows), key=lambda g: g.group):
        pct = (lambda v: "-" if v != v else f"{100 * v:.2f} %")  # NaN: no finished run
        s = g.stats
        table.add_row(escape(g.group), str(s.n), str(g.failed) if g.failed else "",
                      pct(s.median), "-" if s.n == 0 else
                      f"{100 * s.q1:.2f}-{100 * s.q3:.2f}", pct(s.mean), pct(s.std))
    return table


def _run_sweep(overrides: list[str], jobs: int, launcher: str, sweep_dir: Path
               ) -> list[SweepRow]:
    """Plan, run and aggregate a sweep (shared by sweep and compare-delays)."""
    from snndelay.app.rundir import directory_lock
    from snndelay.app.sweep import plan_sweep, run_plan

    plan = plan_sweep(overrides, jobs, launcher, sweep_dir)
    launch = plan.launcher
    with directory_lock(sweep_dir, "sweep directory"):
        console.print(f"[bold]sweep[/]: {len(plan.jobs)} jobs ({len(plan.reused)} finished "
                      f"already), launcher {launch.name}"
                      f"{'' if launch.name == 'local' else f' ({launch.cluster})'}, "
                      f"{'' if launch.name == 'slurm' else f'{jobs} at once, '}"
                      f"directory {escape(str(sweep_dir))}", highlight=False)
        progress, on_done = _sweep_progress(len(plan.jobs))
        try:
            with progress:
                return run_plan(plan, on_done, lambda line: progress.console.print(
                    line, markup=False, highlight=False, soft_wrap=True))
        except KeyboardInterrupt as exc:  # Ctrl-C, or launchers.Stopped on SIGTERM / SIGHUP
            signum = getattr(exc, "signum", 2)
            err_console.print(f"stopped (signal {signum}); its jobs were stopped. Rerun the "
                              "same command to continue: finished jobs are reused, interrupted "
                              "ones continue from their checkpoint", markup=False,
                              highlight=False)
            raise typer.Exit(128 + signum) from None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Hydra overrides with sweeps, e.g. experiment=yinyang_h30_wa,yinyang_h30_ws "
                   "training.seed=range(5); launcher.KEY=VALUE sets the launcher."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Jobs running at once (local launcher)."),
    launcher: str = typer.Option("local", "--launcher", help="local (joblib processes) or slurm "
                                 "(submitit; settings in configs/launcher/slurm.yaml)."),
    sweep_dir: Optional[Path] = typer.Option(
        None, "--sweep-dir", help="Sweep directory (default outputs/sweeps/DATE/TIME); "
                                  "rerunning into it reuses finished jobs."),
) -> None:
    """Run every combination of the swept overrides; summary.csv and a table per group."""
    from snndelay.app.sweep import default_sweep_dir

    target = sweep_dir or default_sweep_dir()
    rows = _run_sweep(list(overrides or []), jobs, launcher, target)
    console.print(_group_table(escape(f"test accuracy over seeds ({target / 'summary.csv'})"), rows))
    failed = [r for r in rows if r.failed]
    for r in failed:
        log = Path(r.run_dir) / "error.txt"
        err_console.print(f"[red]failed[/] {escape(r.job)}: {escape(r.error)}"
                          + (f" (see {escape(str(log))})" if log.is_file() else ""),
                          highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("compare-delays",
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def compare_delays(
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Overrides applied to every run, e.g. training.epochs=100 or "
                   "experiment=NAME (then the delay group is swept on that experiment)."),
    hidden: str = typer.Option("5,10,15,20,25,30", "--hidden", help="Hidden sizes, comma-separated."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per (delay type, hidden size)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Jobs running at once (local launcher)."),
    launcher: str = typer.Option("local", "--launcher", help="local or slurm (see sweep)."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output directory (default outputs/compare/DATE/TIME); rerunning "
                            "into it reuses finished runs."),
) -> None:
    """Train every delay type (none, axonal, dendritic, synaptic) at each hidden size and seed;
    comparison.csv, comparison.md and comparison.png of the test error."""
    from snndelay.app import compare
    from snndelay.app.rundir import atomic_write_text, check_output_file

    try:
        sizes = [int(h) for h in hidden.split(",") if h.strip()]
    except ValueError:
        raise ConfigError(f"--hidden: needs comma-separated integers, got {hidden!r}")
    sweep_ov = compare.sweep_overrides(list(overrides or []), sizes, seeds)
    target = out or compare.default_out()
    if not (target / "runs" / "sweep.json").is_file():  # not an earlier comparison's directory
        for name in ("comparison.csv", "comparison.md", "comparison.png"):
            check_output_file(target / name, False, "--out")
    rows = _run_sweep(sweep_ov, jobs, launcher, target / "runs")
    cells = compare.aggregate(rows)
    title = "delay types compared: " + (" ".join(overrides) if overrides else "Yin-Yang presets")
    atomic_write_text(target / "comparison.csv", compare.to_csv(cells))
    atomic_write_text(target / "comparison.md", compare.to_markdown(cells, title))
    compare.plot(cells, target / "comparison.png", title)
    header, table_rows = compare.table_rows(cells)
    table = Table(title=escape(f"test error (%), median [IQR] (parameters): {target}"))
    for col in header:
        table.add_column(col, justify="right")
    for cells_row in table_rows:
        table.add_row(*cells_row)
    console.print(table)
    failed = [r for r in rows if r.failed]
    for r in failed:
        err_console.print(f"[red]failed[/] {escape(r.job)}: {escape(r.error)}", highlight=False,
                          soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def deploy(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    hw: bool = typer.Option(False, "--hw", help="Execute the test set on the hardware backend "
                            "(without it: only write and validate the bundle)."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="A backend that deploys (default: the emulator; the chip)."),
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
    from snndelay.backends import REGISTRY, default_deploy_target, deploy_targets
    from snndelay.limits import MAX_REPEATS, MAX_SEED

    backend = backend or default_deploy_target()
    if backend not in deploy_targets():
        raise ConfigError(f"--backend must be one of {', '.join(deploy_targets())}, "
                          f"got {backend!r}")

    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS}], got {repeats}")
    if chip_seed is not None and not 0 <= chip_seed <= MAX_SEED:
        raise ConfigError(f"--chip-seed must be an integer in [0, {MAX_SEED}], got {chip_seed}")
    if hw:
        REGISTRY[backend].ensure_available()
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    with directory_lock(run_dir):
        report = run_deploy(run_dir, backend, repeats, chip_seed, execute=hw,
                            calibrate=calibrate, model=model)
    net = report.network
    console.print(f"bundle: {escape(str(report.bundle))} (network of epoch {net['epoch']}, "
                  f"{net['model']}; {report.circuits_used} of 512 neuron circuits)",
                  highlight=False)
    if not hw:
        return
    chip = f" chip {report.chip_seed}" if report.chip_seed is not None else ""
    table = Table(title=escape(f"{run_dir}: test accuracy on {backend}{chip}, {repeats} repeats"))
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
    from snndelay.app.export import bucketed, check_time_unit, write_nir
    from snndelay.app.rundir import check_output_file, load_run_config, make_dir
    from snndelay.app.runs import load_network

    if fmt != "nir":
        raise ConfigError(f"--format must be nir, got {fmt!r} (BrainScaleS-2 bundles: "
                          "`snndelay deploy`)")
    if buckets is not None and not 1 <= buckets <= 10_000:
        raise ConfigError(f"--synaptic-buckets must be in [1, 10000], got {buckets}")
    check_time_unit(time_unit_ms)
    path = out or run_dir / "export" / "network.nir"
    check_output_file(path, force, "--out", own_run=run_dir)
    from snndelay.config import resolve

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
        from snndelay.app.deploy import spike_deviation
        from snndelay.app.trainer import load_split
        from snndelay.model.losses import predict

        test = load_split(cfg.dataset, "test")
        t = test.t_in.numpy()
        exact, approx = net(t)[0], bucketed(net, buckets)(t)[0]
        dev = spike_deviation(approx, exact)[-1]
        acc = [float((predict(x[-1]) == test.labels.numpy()).mean()) for x in (exact, approx)]
        console.print(f"bucketing on the test set: output spike times differ by "
                      f"{dev['mean_abs_dt']:.2e} tau_s on average (max {dev['max_abs_dt']:.2e}), "
                      f"{100 * dev['spike_mismatch_fraction']:.2f} % of output spikes appear or "
                      f"vanish; accuracy {100 * acc[0]:.2f} % -> {100 * acc[1]:.2f} %",
                      markup=False, highlight=False)


@app.command("import")
def import_cmd(
    nir_file: Path = typer.Argument(..., help="A .nir file written by `snndelay export`."),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where to write the network as a run "
                                 "directory (config.yaml, checkpoint.pt) for `snndelay evaluate`."),
) -> None:
    """Read a NIR graph written by `snndelay export` back into a snndelay run directory."""
    from snndelay.app.export import read_nir
    from snndelay.app.records import Checkpoint
    from snndelay.app.rundir import (
        atomic_write_text,
        check_fresh_run_dir,
        check_writable_dir,
        directory_lock,
    )
    from snndelay.app.runs import atomic_torch_save
    from snndelay.config import to_yaml

    check_writable_dir(run_dir)
    check_fresh_run_dir(run_dir)
    net, cfg = read_nir(nir_file)
    with directory_lock(run_dir):
        check_fresh_run_dir(run_dir)  # again, under the lock
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        ckpt = Checkpoint(epoch=0, model=net.state_dict(), optimizer={}, shuffle_rng=None,
                          noise_rng=None, bump_layer=-1, bump_value=0.0, elapsed_s=0.0, rows=[],
                          best_epoch=0, best_model={})
        atomic_torch_save(ckpt.to_dict(), run_dir / "checkpoint.pt")
    console.print(f"{run_dir}: imported {nir_file} ({' -> '.join(map(str, net.sizes))}); "
                  f"`snndelay evaluate {run_dir}` runs it", markup=False, highlight=False)
