"""The small frictions of daily use: the run directory printed whole off a terminal, the time
of every epoch, extending a finished run, the one-time compile notice, efficiency figures."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from snndelay.cli import app

runner = CliRunner()
SMALL = ["experiment=yinyang_h5_ws", "dataset.train_size=200", "dataset.val_size=100",
         "dataset.test_size=100", "training.batch_size=50"]


def _rows(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _without_time(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_the_run_directory_is_printed_whole_when_the_output_is_not_a_terminal(tmp_path):
    run = tmp_path / ("a_long_directory_name_that_a_table_column_would_cut_" * 2) / "run"
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=1", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    assert f"run directory: {run}" in res.output.splitlines()


def test_metrics_csv_has_the_time_of_every_epoch(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *SMALL, "training.epochs=2", "--run-dir",
                               str(run)]).exit_code == 0
    times = [float(r["time_s"]) for r in _rows(run)]
    summary = json.loads((run / "summary.json").read_text())
    assert len(times) == 2 and all(t > 0 for t in times)
    assert sum(times) == pytest.approx(summary["wall_time_s"], rel=0.05, abs=1e-3)


def test_a_finished_run_extended_ends_as_a_run_asked_for_more_epochs(tmp_path):
    short, long_ = tmp_path / "short", tmp_path / "long"
    assert runner.invoke(app, ["train", *SMALL, "training.epochs=2", "training.step_size=2",
                               "--run-dir", str(short)]).exit_code == 0
    res = runner.invoke(app, ["train", "--resume", str(short), "training.epochs=3"])
    assert res.exit_code == 0, res.output
    assert "extending" in res.output
    assert runner.invoke(app, ["train", *SMALL, "training.epochs=3", "training.step_size=2",
                               "--run-dir", str(long_)]).exit_code == 0
    assert _without_time(_rows(short)) == _without_time(_rows(long_))
    a = json.loads((short / "summary.json").read_text())
    b = json.loads((long_ / "summary.json").read_text())
    assert a["epochs"] == 3 and a["test_accuracy"] == b["test_accuracy"]
    assert "epochs: 3" in (short / "config.yaml").read_text()


@pytest.mark.parametrize("extra,override,message", [
    ([], "training.lr=0.1", "the one override it takes is training.epochs=N"),
    ([], "training.epochs=1", "must be at least 2"),
    (["training.schedule=cosine"], "training.epochs=4", "cannot be extended"),
])
def test_extending_refuses_what_it_cannot_continue(tmp_path, extra, override, message):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *SMALL, "training.epochs=2", *extra, "--run-dir",
                               str(run)]).exit_code == 0
    before = (run / "metrics.csv").read_text()
    res = runner.invoke(app, ["train", "--resume", str(run), override])
    assert res.exit_code == 2 and message in " ".join(res.output.split())
    assert (run / "metrics.csv").read_text() == before


def test_the_first_run_after_an_install_says_it_compiles(tmp_path, monkeypatch):
    from snndelay.app import threads
    from snndelay.engine import _impl

    if not _impl.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(threads, "_module_cache", lambda: tmp_path / "nothing")
    assert not threads.kernels_cached()
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=1", "--run-dir",
                              str(tmp_path / "run")])
    assert res.exit_code == 0 and "compiling the engine's kernels" in res.output
    (tmp_path / "empty" / "x").mkdir()
    (tmp_path / "empty" / "x" / "_numba_kernels.forward_shared-1.py311.nbi").write_bytes(b"")
    assert threads.kernels_cached()
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=1", "--run-dir",
                              str(tmp_path / "run2")])
    assert res.exit_code == 0 and "compiling" not in res.output


def test_event_counts_match_a_count_by_hand():
    from snndelay.model.efficiency import count_events

    inf = np.inf
    t_in = np.array([[0.1, inf, 0.3], [inf, inf, 0.2]])  # 3 spikes, 2 samples
    hidden = np.array([[[0.5, 0.9], [inf, inf]], [[0.4, inf], [0.6, inf]]])  # trains: 4
    out = np.array([[1.0, inf, 2.0], [inf, inf, inf]])  # 2
    spikes, events = count_events(t_in, [hidden, out], fan_in_rows=[4, 2], fan_out=[2, 3])
    assert spikes == [3.0, 4.0, 2.0]
    # layer 0: (3 input spikes + 1 bias row x 2 samples) x 2 targets; layer 1: 4 x 3 targets
    assert events == (3 + 2) * 2 + 4 * 3


def test_efficiency_figures_are_in_the_summary_evaluate_and_the_sweep_table(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *SMALL, "training.epochs=1", "--run-dir",
                               str(run)]).exit_code == 0
    eff = json.loads((run / "summary.json").read_text())["efficiency"]
    assert len(eff["spikes_per_sample"]) == 3  # inputs, hidden, output
    assert eff["footprint_bytes"] == 8 * json.loads((run / "summary.json").read_text())["n_params"]
    assert eff["synaptic_events_per_sample"] > 0
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 0 and "synaptic events" in " ".join(res.output.split())
    sweep = tmp_path / "sweep"
    res = runner.invoke(app, ["sweep", *SMALL, "training.epochs=1", "training.seed=0,1",
                              "--jobs", "1", "--sweep-dir", str(sweep)])
    assert res.exit_code == 0, res.output
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["spikes_per_sample"]) > 0 and int(r["footprint_bytes"]) > 0
               for r in rows)
