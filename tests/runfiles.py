"""Reading run directories in tests."""

import csv
from pathlib import Path


def metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv's rows without time_s, the one column that differs between two runs that
    trained the same (it is the epoch's wall time)."""
    with open(Path(run) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


def uninterrupted_and_resumed(args: list[str], root: Path) -> tuple[list, list]:
    """(metrics of `snndelay train ARGS` in root/a, metrics of the same run stopped after its
    first epoch in root/b and continued with `--resume`): equal when a resume is exact."""
    import pytest
    from typer.testing import CliRunner

    from snndelay.app.runs import train_run
    from snndelay.cli import app
    from snndelay.config import compose

    runner = CliRunner()
    res = runner.invoke(app, ["train", *args, "--run-dir", str(root / "a")])
    assert res.exit_code == 0, res.output

    def stop_after_one(row):
        if row.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(compose(args)[1], root / "b", args, on_epoch=stop_after_one)
    res = runner.invoke(app, ["train", "--resume", str(root / "b")])
    assert res.exit_code == 0, res.output
    return metrics(root / "a"), metrics(root / "b")
