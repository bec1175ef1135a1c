"""`snndelay tune`: parse, call snndelay.app.tune, render."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from snndelay.cli.base import app, console, err_console
from snndelay.errors import ConfigError


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def tune(
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Search dimensions in Optuna's terms, e.g. training.lr=float(1e-4,1e-1,log) "
                   "network.hidden=int(16,256) delay=choice(axonal,synaptic); other overrides "
                   "are fixed; launcher.KEY=VALUE sets the launcher."),
    trials: int = typer.Option(20, "--trials", "-n", help="Trials the study ends with."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Workers sharing the study (local "
                             "processes, or SLURM array tasks)."),
    launcher: str = typer.Option("local", "--launcher", help="local or slurm (see sweep)."),
    tune_dir: Optional[Path] = typer.Option(
        None, "--tune-dir", help="Tune directory (default outputs/tune/DATE/TIME); rerunning "
                                 "into it resumes the study."),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna storage URL (default: TUNE/study.db, SQLite; on SLURM "
                                "journal:TUNE/journal.log); e.g. postgresql://host/db."),
    study_name: str = typer.Option("tune", "--study-name", help="The study in the storage."),
    seed: int = typer.Option(0, "--seed", help="The TPE sampler's seed."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Median pruning on each "
                               "epoch's validation accuracy."),
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning); every trial is a run directory.
    Ends with the best trials, best_overrides.yaml (snndelay train --overrides-file) and plots."""
    from snndelay.app.launchers import load_launcher, split_launcher_overrides
    from snndelay.app.rundir import check_writable_dir
    from snndelay.app.tune import StudySpec, check_space, default_storage, open_study, parse_space
    from snndelay.app.tune_launch import best_rows, run_workers, write_results

    if not 1 <= trials <= 100_000:
        raise ConfigError(f"--trials must be in [1, 100000], got {trials}")
    if not 1 <= jobs <= 1024:
        raise ConfigError(f"--jobs must be in [1, 1024], got {jobs}")
    train_ov, launch_ov = split_launcher_overrides(list(overrides or []))
    launch = load_launcher(launcher, launch_ov)
    fixed, dims = parse_space(train_ov)
    cfg = check_space(fixed, dims)  # every corner composes, its data is read: before any trial
    target = tune_dir or Path("outputs/tune") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    check_writable_dir(target, "tune directory")
    target.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(target, launch.name == "slurm")
    spec = StudySpec(str(target.resolve()), url, study_name, tuple(fixed), tuple(dims), trials,
                     seed, prune, warmup_epochs=max(1, cfg.training.epochs // 3))
    study = open_study(spec)
    done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False))
    console.print(f"[bold]tune[/]: {trials} trials ({done} finished already), {jobs} "
                  f"worker{'s' if jobs > 1 else ''}, launcher {launch.name}, study "
                  f"{escape(study_name)} in {escape(url)}", highlight=False, soft_wrap=True)
    try:
        run_workers(spec, jobs, launch, lambda line: console.print(
            line, markup=False, highlight=False, soft_wrap=True))
    except KeyboardInterrupt:
        err_console.print("stopped; rerun the same command to resume the study (finished "
                          "trials are kept)", markup=False, highlight=False)
        raise typer.Exit(130) from None
    rows, best_file = write_results(open_study(spec), target)
    table = Table(title=escape(f"best trials ({target / 'trials.csv'})"))
    for col in ("trial", "val acc", "test acc", "epochs", "parameters"):
        table.add_column(col, justify="right" if col != "parameters" else "left",
                         overflow="fold")
    for r in best_rows(rows):
        table.add_row(str(r.number), f"{100 * (r.val_accuracy or 0):.2f} %",
                      "-" if r.test_accuracy is None else f"{100 * r.test_accuracy:.2f} %",
                      str(r.epochs), escape(r.params))
    console.print(table)
    states = {s: sum(r.state == s for r in rows) for s in ("complete", "pruned", "fail")}
    console.print(f"{states['complete']} complete, {states['pruned']} pruned, {states['fail']} "
                  "failed", highlight=False)
    if best_file is not None:
        console.print(f"best overrides: {best_file} (snndelay train --overrides-file "
                      f"{best_file})", markup=False, highlight=False, soft_wrap=True)
    else:
        err_console.print("no trial completed", markup=False, highlight=False)
        raise typer.Exit(1)
