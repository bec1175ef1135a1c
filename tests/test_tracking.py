"""Experiment tracking: every epoch, the config, the summary and the files reach TensorBoard
and MLflow, read back with the trackers' own readers; sweeps group their jobs; a missing
package is one line before any training."""

import csv
import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from snndelay.cli import app

runner = CliRunner()
SMALL = ["experiment=yinyang_h5_ws", "dataset.train_size=200", "dataset.val_size=100",
         "dataset.test_size=100", "training.batch_size=50", "training.epochs=2"]
needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                  reason="mlflow is not installed")
needs_tb = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                              reason="tensorboard is not installed")


def _rows(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _search(uri, experiment):
    """MLflow's runs of an experiment as a table (mlflow.search_runs on that store)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[experiment])
    finally:
        mlflow.set_tracking_uri(previous)


def _train(run, *extra):
    res = runner.invoke(app, ["train", *SMALL, *extra, "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    return res


@needs_mlflow
def test_mlflow_holds_every_epoch_the_config_the_summary_and_the_files(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store: outputs/mlflow.db of the working dir
    run = tmp_path / "run"
    _train(run, "tracking=mlflow")
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    runs = _search(uri, "yinyang_h5_ws")
    assert len(runs) == 1 and runs.status[0] == "FINISHED"
    client = MlflowClient(uri)
    run_id = runs.run_id[0]
    rows = _rows(run)
    for key in ("val_acc", "train_loss", "time_s", "silent_layer0"):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == [float(r[key]) for r in rows]
    params = client.get_run(run_id).data.params
    assert params["training.epochs"] == "2" and params["dataset.train_size"] == "200"
    summary = json.loads((run / "summary.json").read_text())
    final = client.get_run(run_id).data.metrics
    assert final["final.test_accuracy"] == summary["test_accuracy"]
    assert final["final.efficiency.footprint_bytes"] == summary["efficiency"]["footprint_bytes"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"checkpoint.pt", "learning_curves.png", "metrics.csv", "summary.json"} <= artifacts


@needs_mlflow
def test_a_resumed_run_continues_its_mlflow_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    _train(run, "tracking=mlflow")
    first = json.loads((run / "tracking.json").read_text())["run_id"]
    res = runner.invoke(app, ["train", "--resume", str(run), "training.epochs=3"])
    assert res.exit_code == 0, res.output
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    runs = _search(uri, "yinyang_h5_ws")
    assert list(runs.run_id) == [first]
    history = MlflowClient(uri).get_metric_history(first, "val_acc")
    assert sorted(m.step for m in history) == [1, 2, 3]


@needs_tb
def test_tensorboard_event_files_hold_every_epoch_and_the_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    _train(run, "tracking=tensorboard")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = _rows(run)
    for key in ("val_acc", "train_loss", "lr", "time_s"):
        got = [(e.step, e.value) for e in events.Scalars(key)]
        # TensorBoard stores scalars as float32
        assert got == [(i + 1, float(np.float32(r[key]))) for i, r in enumerate(rows)]
    hparams = EventAccumulator(str(run / "tensorboard" / "hparams"))
    hparams.Reload()
    summary = json.loads((run / "summary.json").read_text())
    (acc,) = hparams.Scalars("hparam/test_accuracy")
    assert acc.value == pytest.approx(summary["test_accuracy"], abs=1e-7)


@needs_mlflow
def test_sweep_jobs_are_children_of_one_parent_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "my_sweep"
    res = runner.invoke(app, ["sweep", *SMALL[:-1], "training.epochs=1", "training.seed=0,1",
                              "tracking=mlflow", "--jobs", "1", "--sweep-dir", str(sweep)])
    assert res.exit_code == 0, res.output
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    runs = _search(uri, "my_sweep")
    parent = runs[runs["tags.snndelay.group"] == "my_sweep"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent.run_id.iloc[0]]
    assert len(parent) == 1 and len(children) == 2
    assert set(runs.status) == {"FINISHED"}
    # Tracking does not change what a job trains: the same sweep without it reuses both.
    res = runner.invoke(app, ["sweep", *SMALL[:-1], "training.epochs=1", "training.seed=0,1",
                              "--jobs", "1", "--sweep-dir", str(sweep)])
    assert res.exit_code == 0 and "2 finished already" in " ".join(res.output.split())


def test_a_missing_tracker_package_is_one_line_before_any_training(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", *SMALL, "tracking=mlflow", "--run-dir", str(run)])
    assert res.exit_code == 2
    assert "tracking=mlflow needs the mlflow package: pip install 'snndelay[tracking]'" in \
        res.output
    assert not run.exists()


def test_tracking_keys_are_checked_like_every_option(tmp_path):
    res = runner.invoke(app, ["train", *SMALL, "tracking=tensorboard",
                              "tracking.tracking_uri=x", "--cfg"])
    assert res.exit_code == 2 and "tracking=mlflow" in res.output
    res = runner.invoke(app, ["train", *SMALL, "tracking=wandb", "--cfg"])
    assert res.exit_code == 2 and "none" in res.output and "mlflow" in res.output
