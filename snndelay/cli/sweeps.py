"""`snndelay sweep | compare-delays`: parse, call snndelay.app, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from snndelay.cli.base import app, console, err_console
from snndelay.errors import ConfigError

if TYPE_CHECKING:
    from snndelay.app.tables import SweepRow


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
    from snndelay.app.tables import groups

    table = Table(title=title)
    for col in ("swept values (over seeds)", "runs", "failed", "median", "IQR", "mean", "std",
                "spikes/sample"):
        if col.startswith("swept"):  # wraps rather than hiding the values behind an ellipsis
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for g in sorted(groups(rows), key=lambda g: g.group):
        pct = (lambda v: "-" if v != v else f"{100 * v:.2f} %")  # NaN: no finished run
        s = g.stats
        table.add_row(escape(g.group), str(s.n), str(g.failed) if g.failed else "",
                      pct(s.median), "-" if s.n == 0 else
                      f"{100 * s.q1:.2f}-{100 * s.q3:.2f}", pct(s.mean), pct(s.std),
                      "-" if g.spikes.n == 0 else f"{g.spikes.median:.1f}")
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


