"""Every command maps a user error raised anywhere below it to one line and exit code 2.

Each case makes a function deep inside one command raise a user error, as a data file, a
checkpoint, the chip mapping or a missing backend would, and checks what the user sees. A new
command without a case here fails test_every_command_has_a_case."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from snndelay import errors
from snndelay.cli import app

runner = CliRunner()

# command -> (module attribute that the command calls below itself, arguments)
CASES = {
    "train": ("snndelay.app.trainer.load_split", ["train", "training.epochs=1"]),
    "evaluate": ("snndelay.app.runs.evaluate_run", ["evaluate", "some/run"]),
    "sweep": ("snndelay.app.sweep.make_jobs", ["sweep", "training.seed=0,1"]),
    "compare-delays": ("snndelay.app.compare.sweep_overrides", ["compare-delays", "--seeds", "1"]),
    "deploy": ("snndelay.backends.default_deploy_target", ["deploy", "some/run", "--hw"]),
    "selfcheck": ("snndelay.app.selfcheck.run_selfcheck", ["selfcheck"]),
    "export": ("snndelay.app.rundir.load_run_config", ["export", "some/run"]),
    "tune": ("snndelay.app.tune.check_space", ["tune", "training.lr=float(1e-3,1e-1)"]),
    "import": ("snndelay.app.nir_import.read_nir", ["import", "some.nir", "--run-dir", "some/run"]),
}
ERRORS = [errors.ConfigError, errors.DataError, errors.DatasetMissing, errors.RunDirError,
          errors.BackendUnavailable, errors.MappingError, errors.UserError]


def test_every_command_has_a_case() -> None:
    assert set(get_command(app).commands) == set(CASES)  # type: ignore[attr-defined]


def _raise_in(monkeypatch: pytest.MonkeyPatch, target: str, exc: Exception) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(target, fail)


@pytest.mark.parametrize("command", sorted(CASES))
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_user_error_below_a_command_is_one_line_and_exit_2(monkeypatch, command, error) -> None:
    target, args = CASES[command]
    # Brackets and a newline: printed as text (never as markup), folded onto one line.
    _raise_in(monkeypatch, target, error(f"{command} [bad] value\nsecond part"))
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {command} [bad] value second part"], res.stderr
    assert "Traceback" not in res.output


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch) -> None:
    _raise_in(monkeypatch, "snndelay.app.runs.evaluate_run", KeyError("internal"))
    res = runner.invoke(app, ["evaluate", "some/run"])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)


def test_user_errors_keep_their_builtin_bases() -> None:
    # Library callers that catch the builtin types keep working.
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.DatasetMissing, FileNotFoundError)
    assert issubclass(errors.BackendUnavailable, RuntimeError)
    for err in ERRORS:
        assert issubclass(err, errors.UserError)


def test_unreadable_run_directory_is_one_line(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 2 and "no config.yaml" in res.stderr
    cfg = runner.invoke(app, ["train", "--cfg", "experiment=yinyang_h5_ws"])
    (run / "config.yaml").write_text(cfg.stdout)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert "not a readable snndelay checkpoint" in res.stderr
    assert "weights_only" not in res.output
    (run / "config.yaml").write_text("[unclosed")
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 2 and "cannot be read as YAML" in res.stderr
