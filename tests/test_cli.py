"""The command line: help and the engine self-check."""

from typer.testing import CliRunner

from snndelay.cli import app

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "selfcheck" in res.output


def test_selfcheck_passes():
    res = runner.invoke(app, ["selfcheck"])
    assert res.exit_code == 0, res.output
    assert res.output.count("yes") == 8
