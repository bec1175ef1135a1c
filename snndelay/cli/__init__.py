"""The `snndelay` command line: thin commands (parse, call snndelay.app, render) on one Typer
application (cli/base.py, where every user error becomes one line and exit code 2)."""

from snndelay.cli import hardware, runs, sweeps, tune  # noqa: F401 - the commands register on app
from snndelay.cli.base import app, report_user_error

__all__ = ["app", "report_user_error"]
