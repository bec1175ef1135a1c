"""The `snndelay` command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Train spiking networks with learnable delays using exact, event-based gradients.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


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
