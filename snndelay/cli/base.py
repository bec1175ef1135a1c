"""The Typer application, its consoles and the one user-error path: every user error
(snndelay.errors.UserError: config, command-line values, data files, run directories, backends,
the chip mapping) raised anywhere below a command becomes one plain-text line on stderr and
exit code 2 here, in `_Commands.invoke`; commands do not catch them."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from snndelay.errors import UserError


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


