"""The `snndelay` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    help="Train spiking networks with learnable delays using exact, event-based gradients.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _user_error(msg: str) -> None:
    err_console.print(f"[red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def main() -> None:
    """snndelay: exact-gradient delay learning for spiking neural networks."""


@app.command()
def selfcheck(tolerance: float = typer.Option(1e-5, help="Largest accepted |exact - FD| gradient error.")) -> None:
    """Check the engine's exact gradients against finite differences (both tau ratios, all delay types)."""
    from snndelay.selfcheck import run_selfcheck

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
    from snndelay.config import ConfigError, compose, to_yaml
    from snndelay.runs import default_run_dir, load_run_config, train_run

    overrides = list(overrides or [])
    try:
        if resume is not None:
            if overrides:
                _user_error("--resume continues a run with its saved config; drop the overrides")
            cfg = load_run_config(resume)
            target = resume
        else:
            _, cfg = compose(overrides)
            target = run_dir or default_run_dir(cfg)
    except ConfigError as exc:
        _user_error(str(exc))
    if show_cfg:
        console.print(to_yaml(cfg), highlight=False, end="")
        return
    if resume is None and (target / "checkpoint.pt").exists():
        _user_error(f"{target} already holds a run; use --resume {target} or another --run-dir")
    console.print(f"[bold]{cfg.name}[/]: {cfg.training.epochs} epochs, seed {cfg.training.seed}, "
                  f"run directory {target}", highlight=False)
    progress = Progress(TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                        transient=False)
    with progress:
        task = progress.add_task("train", total=cfg.training.epochs, info="")

        def on_epoch(row: dict) -> None:
            progress.update(task, completed=row["epoch"], info=(
                f"loss {row['train_loss']:.4f}  train {100 * row['train_acc']:.1f} %  "
                f"val {100 * row['val_acc']:.1f} %"))

        try:
            result = train_run(cfg, target, overrides, resume=resume is not None,
                               on_epoch=on_epoch)
        except ConfigError as exc:
            _user_error(str(exc))
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted; continue with: snndelay train --resume {target}",
                              highlight=False)
            raise typer.Exit(130) from None
    s = result.summary
    table = Table(title=f"{cfg.name} (seed {s['seed']})")
    for col in ("test acc", "val acc", "parameters", "epochs", "wall time", "run directory"):
        table.add_column(col, justify="right")
    table.add_row(f"{100 * s['test_accuracy']:.2f} %", f"{100 * s['val_accuracy']:.2f} %",
                  str(s["n_params"]), str(s["epochs"]), f"{s['wall_time_s']:.1f} s", str(target))
    console.print(table)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `snndelay train`."),
    split: str = typer.Option("test", "--split", help="test, val or train"),
) -> None:
    """Reload a run and report accuracy, loss, confusion matrix and silent neurons."""
    from snndelay.config import ConfigError
    from snndelay.runs import evaluate_run

    if split not in ("test", "val", "train"):
        _user_error(f"--split must be test, val or train, got {split!r}")
    try:
        cfg, res, confusion = evaluate_run(run_dir, split)
    except ConfigError as exc:
        _user_error(str(exc))
    console.print(f"[bold]{cfg.name}[/] {run_dir} on the {split} split: accuracy "
                  f"{100 * res.accuracy:.2f} %, loss {res.loss:.5f}", highlight=False)
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
