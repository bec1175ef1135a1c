"""`snndelay tune`: the search space in Optuna's terms, a study that ends with N trials, the
best overrides that `train` accepts, pruning, a killed study resumed without repeating a
finished trial, two workers on one SQLite study, and the SLURM path (submitit's local
executor) on a journal file."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from snndelay.cli import app

optuna = pytest.importorskip("optuna")
from snndelay.app.tune import Dimension, StudySpec, open_study, parse_space, run_trial  # noqa: E402
from snndelay.errors import ConfigError  # noqa: E402

runner = CliRunner()
SMALL = ["experiment=yinyang_h5_ws", "dataset.train_size=150", "dataset.val_size=100",
         "dataset.test_size=50", "training.batch_size=50", "training.epochs=2"]
SPACE = ["training.lr=float(1e-3,1e-1,log)", "delay=choice(axonal,synaptic)"]


def _flat(text):
    return " ".join(text.split())


def _trials(tune_dir):
    with open(tune_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def _study(tune_dir, name="tune"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tune_dir / 'study.db'}")


def test_the_search_space_is_parsed_in_optunas_terms():
    fixed, dims = parse_space(["training.epochs=3", "training.lr=float(1e-4,1e-1,log)",
                               "network.hidden=int(16,256)", "delay=choice(axonal,synaptic)"])
    assert fixed == ["training.epochs=3"]
    assert dims == [Dimension("training.lr", "float", 1e-4, 1e-1, True),
                    Dimension("network.hidden", "int", 16, 256),
                    Dimension("delay", "choice", choices=("axonal", "synaptic"))]


@pytest.mark.parametrize("args,message", [
    (["training.epochs=3"], "no search dimension"),
    (["training.lr=float(1e-1,1e-4)"], "LOW < HIGH"),
    (["training.lr=float(0,1,log)"], "a log range needs LOW > 0"),
    (["network.hidden=int(1.5,8)"], "integers"),
    (["delay=choice(axonal)"], "at least two choices"),
    (["training.lr=float(0.1,1)", "training.lr=0.3"], "more than once"),
])
def test_a_bad_search_space_is_one_line(args, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(args)


def test_a_bad_corner_of_the_space_is_one_line_before_any_trial(tmp_path):
    res = runner.invoke(app, ["tune", *SMALL, "training.lr=float(1e-3,50)", "--trials", "2",
                              "--tune-dir", str(tmp_path / "t")])
    assert res.exit_code == 2 and "training.lr" in res.output
    assert not (tmp_path / "t").exists()


def test_a_study_ends_with_its_trials_and_the_best_overrides_train_accepts(tmp_path):
    tune_dir = tmp_path / "t"
    res = runner.invoke(app, ["tune", *SMALL, *SPACE, "--trials", "3", "--no-prune",
                              "--tune-dir", str(tune_dir)])
    assert res.exit_code == 0, res.output
    rows = _trials(tune_dir)
    assert [r["state"] for r in rows] == ["complete"] * 3
    best = max(rows, key=lambda r: (float(r["val_accuracy"]), -int(r["number"])))
    for r in rows:  # every trial is an ordinary run directory
        assert (tune_dir / "trials" / f"{int(r['number']):04d}" / "summary.json").is_file()
    text = (tune_dir / "best_overrides.yaml").read_text()
    assert f"trial {best['number']}," in text and best["params"].split()[0] in text
    assert (tune_dir / "history.png").is_file()
    run = tmp_path / "best"
    res = runner.invoke(app, ["train", "--overrides-file", str(tune_dir / "best_overrides.yaml"),
                              "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    trial_dir = tune_dir / "trials" / f"{int(best['number']):04d}"
    assert (run / "metrics.csv").read_text().split("\n")[1].split(",")[:5] == \
        (trial_dir / "metrics.csv").read_text().split("\n")[1].split(",")[:5]


def test_a_trial_the_pruner_stops_is_pruned_and_keeps_its_checkpoint(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec(str(tmp_path), storage, "s", tuple(SMALL[:-1]) + ("training.epochs=4",),
                     (Dimension("training.lr", "float", 1e-3, 1e-1, True),), 1, 0)
    open_study(spec)  # records the space
    study = optuna.load_study(study_name="s", storage=storage,
                              pruner=optuna.pruners.ThresholdPruner(lower=1.1))  # always prunes
    trial = study.ask()
    run_trial(study, spec, trial)
    (done,) = study.get_trials()
    assert done.state.name == "PRUNED" and list(done.intermediate_values) == [1]
    assert (tmp_path / "trials" / "0000" / "checkpoint.pt").is_file()


def test_resuming_with_another_search_space_is_refused(tmp_path):
    tune_dir = tmp_path / "t"
    assert runner.invoke(app, ["tune", *SMALL, *SPACE, "--trials", "1", "--tune-dir",
                               str(tune_dir)]).exit_code == 0
    res = runner.invoke(app, ["tune", *SMALL, SPACE[0], "--trials", "2", "--tune-dir",
                              str(tune_dir)])
    assert res.exit_code == 2 and "give the same arguments to resume it" in _flat(res.output)


def _tune_cmd(tune_dir, trials, *extra):
    return [sys.executable, "-c", "from snndelay.cli import app; app()", "tune", *SMALL,
            "training.epochs=3", *SPACE, "--trials", str(trials), "--no-prune", "--tune-dir",
            str(tune_dir), *extra]


@pytest.mark.slow
def test_a_study_killed_with_sigkill_resumes_without_repeating_finished_trials(tmp_path):
    tune_dir = tmp_path / "t"
    proc = subprocess.Popen(_tune_cmd(tune_dir, 5), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if not (tune_dir / "study.db").exists():
            continue
        try:
            states = [t.state.name for t in _study(tune_dir).get_trials()]
        except KeyError:  # the study is not made yet
            continue
        if True:
            if states.count("COMPLETE") >= 2 and "RUNNING" in states:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: (tune_dir / "trials" / f"{t.number:04d}" / "summary.json").stat().st_mtime_ns
              for t in _study(tune_dir).get_trials() if t.state.name == "COMPLETE"}
    assert len(before) >= 2
    res = subprocess.run(_tune_cmd(tune_dir, 5), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    trials = _study(tune_dir).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    retried = [t for t in trials if t.user_attrs.get("retried")]
    assert len(complete) == 5 and len(retried) == 1
    for number, mtime in before.items():  # finished trials were not trained again
        assert (tune_dir / "trials" / f"{number:04d}" / "summary.json").stat().st_mtime_ns == mtime
    again = [t for t in complete if t.user_attrs.get("retry_of") == retried[0].number]
    assert len(again) == 1 and again[0].params == retried[0].params


@pytest.mark.slow
def test_two_local_workers_share_one_sqlite_study_without_lost_or_duplicated_trials(tmp_path):
    tune_dir = tmp_path / "t"
    res = subprocess.run(_tune_cmd(tune_dir, 6, "--jobs", "2"), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    trials = _study(tune_dir).get_trials()
    counted = [t for t in trials if not t.user_attrs.get("surplus")]
    assert len(counted) == 6 and {t.state.name for t in counted} == {"COMPLETE"}
    assert sorted(t.number for t in counted) == list(range(6))
    pids = {t.user_attrs["pid"] for t in counted}
    assert len(pids) == 2  # both workers ran trials
    dirs = sorted(p.name for p in (tune_dir / "trials").iterdir())
    assert dirs == [f"{n:04d}" for n in range(6)]
    assert len({t.user_attrs["run_dir"] for t in counted}) == 6


@pytest.mark.slow
def test_the_slurm_path_runs_workers_on_a_journal_file_through_submitit(tmp_path):
    tune_dir = tmp_path / "t"
    res = subprocess.run(_tune_cmd(tune_dir, 4, "--jobs", "2", "--launcher", "slurm",
                                   "launcher.cluster=local"),
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr + res.stdout
    assert (tune_dir / "journal.log").is_file() and not (tune_dir / "study.db").exists()
    rows = _trials(tune_dir)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"complete"}
