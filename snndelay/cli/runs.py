"""`snndelay selfcheck | train | evaluate`: parse, call snndelay.app, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from snndelay.cli.base import app, console, err_console
from snndelay.errors import ConfigError

if TYPE_CHECKING:
    from snndelay.app.records import EpochRow


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
        None, "--resume", help="Continue an interrupted run from its last checkpoint; with "
        "training.epochs=N, extend a run to N epochs."),
    overrides_file: Optional[Path] = typer.Option(
        None, "--overrides-file", help="A YAML list of overrides (e.g. tune's "
        "best_overrides.yaml); those on the command line come after it."),
) -> None:
    """Train a network (default experiment: yinyang_h30_ws)."""
    from snndelay.app.plan import plan_train, read_overrides_file
    from snndelay.app.rundir import check_fresh_run_dir, check_writable_dir
    from snndelay.config import to_yaml

    given = list(overrides or [])
    if overrides_file is not None:
        given = read_overrides_file(overrides_file) + given
    plan = plan_train(given, run_dir, resume)
    if plan.note:
        err_console.print(plan.note, markup=False, highlight=False)
    cfg, target = plan.cfg, plan.run_dir
    if show_cfg:
        console.print(to_yaml(cfg), markup=False, highlight=False, end="")
        return
    from snndelay.app.runs import train_run
    from snndelay.app.tracking import check_available
    from snndelay.app.trainer import check_data
    from snndelay.backends import backend_class
    from snndelay.model.placement import resolve_device

    check_writable_dir(target)
    if not plan.resume and not plan.start_over:
        check_fresh_run_dir(target)  # never written over (again under the run's lock)
    backend_class(cfg.backend.name).ensure_available(cfg.backend)
    resolve_device(cfg.training.device)  # training.device=cuda where no GPU is visible
    check_available(cfg.tracking)
    check_data(cfg.dataset)  # every split's files are read and checked here, before any output
    _compile_notice(cfg.neuron.tau_mem / cfg.neuron.tau_syn)
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
            result = train_run(cfg, target, plan.overrides, resume=plan.resume,
                               on_epoch=on_epoch, start_over=plan.start_over)
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted; continue with: snndelay train --resume {target}",
                              markup=False, highlight=False)
            raise typer.Exit(130) from None
    s = result.summary
    table = Table(title=escape(f"{cfg.name} (seed {s.seed})"))
    for col in ("test acc", "val acc", "parameters", "epochs", "wall time", "spikes/sample"):
        table.add_column(col, justify="right")
    spikes = s.efficiency.get("spikes_per_sample", [])
    table.add_row(f"{100 * s.test_accuracy:.2f} %", f"{100 * s.val_accuracy:.2f} %",
                  str(s.n_params), str(s.epochs), f"{s.wall_time_s:.1f} s",
                  f"{sum(spikes[1:]):.1f}" if spikes else "-")
    console.print(table)
    # Whole on its own line (a table column is cut to the width of a log or a CI console).
    console.print(f"run directory: {target}", markup=False, highlight=False, soft_wrap=True)


def _compile_notice(ratio: float) -> None:
    """Say once (the first run after an install) why the first epoch takes a minute."""
    from snndelay.app.threads import kernels_cached
    from snndelay.engine import compiled

    if compiled.available(ratio) and not kernels_cached():
        err_console.print("compiling the engine's kernels (once after an install, about a "
                          "minute; later runs load them from numba's cache)", markup=False,
                          highlight=False)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    split: str = typer.Option("test", "--split", help="test, val or train"),
    repeats: Optional[int] = typer.Option(
        None, "--repeats", help="Runs of the split averaged on a noisy backend (emulator, "
        "chip); default: the run's backend.eval_repeats."),
    model: str = typer.Option("last", "--model", help="last: the network after the last epoch; "
                              "best: that of the best-validation epoch."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Run the network on another backend (e.g. pynn: a PyNN "
        "simulator) instead of the run's own."),
    backend_overrides: Optional[list[str]] = typer.Argument(
        None, help="backend.KEY=VALUE settings of that backend (e.g. backend.simulator=brian2)."),
) -> None:
    """Reload a run and report accuracy, loss, confusion matrix and silent neurons."""
    from snndelay.app.runs import evaluate_run

    if split not in ("test", "val", "train"):
        raise ConfigError(f"--split must be test, val or train, got {split!r}")
    from snndelay.limits import MAX_REPEATS

    if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS}], got {repeats}")
    spec, res, confusion, epoch = evaluate_run(run_dir, split, repeats, model, backend,
                                               backend_overrides or [])
    on = f" on backend {spec.backend.name}" if backend or backend_overrides else ""
    console.print(f"[bold]{escape(spec.name)}[/] {escape(str(run_dir))} (network of epoch {epoch}, {model}){on} on the "
                  f"{split} split: accuracy "
                  f"{100 * res.accuracy:.2f} %, loss {res.loss:.5f}", highlight=False)
    if res.realisation:
        from snndelay.backends import backend_class

        console.print(f"{spec.backend.name}: "
                      + backend_class(spec.backend.name).describe_realisation(res.realisation),
                      markup=False, highlight=False, soft_wrap=True)
    if len(res.accuracy_draws) > 1:  # a noisy backend: every run of the split differs
        import statistics

        draws = [100 * a for a in res.accuracy_draws]
        console.print(f"mean of {len(draws)} runs on {spec.backend.name} (--repeats): "
                      f"std {statistics.pstdev(draws):.2f}, range {min(draws):.1f}-"
                      f"{max(draws):.1f} %; confusion matrix and silent pairs from the first run",
                      highlight=False)
    eff = res.efficiency
    console.print("efficiency per sample (NeuroBench): spikes "
                  + " / ".join(f"{v:.1f}" for v in eff.spikes_per_sample)
                  + " (inputs, then each layer), synaptic events "
                  f"{eff.synaptic_events_per_sample:.0f}, parameter footprint "
                  f"{eff.footprint_bytes} bytes", highlight=False, soft_wrap=True)
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


