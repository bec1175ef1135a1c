"""The launcher layer without a cluster: sbatch's refusals as one line naming the setting, the
threads of a SLURM task, requeueing only after progress, a sweep directory that stays locked
while jobs run in it, a killed job that keeps its compare cell, job directories a sweep did not
write (refused, never removed), and a job started where a folder named snndelay would shadow
the package. The same against a real SLURM controller: test_slurm_cluster.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from runfiles import metrics
from test_fail_safe import _one_line_exit_2
from typer.testing import CliRunner

from snndelay.app import compare, jobrunner, launchers, slurm, threads
from snndelay.app.jobs import Job
from snndelay.app.rundir import shared_lock
from snndelay.app.sweep import job_row
from snndelay.cli import app
from snndelay.config import compose
from snndelay.errors import ConfigError, LauncherError

runner = CliRunner()
TINY = ["experiment=yinyang_h5_ws", "dataset.train_size=150", "dataset.val_size=60",
        "dataset.test_size=60", "training.batch_size=50", "training.epochs=1"]


@pytest.mark.parametrize("stderr,kind,fragment", [
    ("sbatch: error: invalid partition specified: nosuchpart\nallocation failure: Invalid "
     "partition name specified", ConfigError, "launcher.partition"),
    ("allocation failure: Requested node configuration is not available", ConfigError,
     "launcher.cpus_per_task=2 / launcher.mem_gb=4"),
    ("sbatch: error: Memory specification can not be satisfied", ConfigError, "launcher.mem_gb"),
    ("sbatch: error: Invalid account or account/partition combination specified", ConfigError,
     "launcher.account"),
    ("sbatch: error: Requested time limit is invalid (missing or exceeds some limit)",
     ConfigError, "launcher.timeout_min"),
    ("allocation failure: Unable to contact slurm controller (connect failure)", LauncherError,
     "controller cannot be reached"),
    ("sbatch: error: something new", LauncherError, "something new"),
])
def test_sbatch_refusals_name_their_setting(stderr, kind, fragment):
    err = slurm.sbatch_error(stderr, launchers.load_launcher("slurm", []))
    assert isinstance(err, kind) and fragment in str(err) and "\n" not in str(err)


def test_a_slurm_sweep_without_sbatch_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    sweep = tmp_path / "sweep"
    line = _one_line_exit_2(runner.invoke(app, ["sweep", *TINY, "--launcher", "slurm",
                                                "--sweep-dir", str(sweep)]))
    assert "sbatch is not on PATH" in line
    assert not sweep.exists()


@pytest.mark.parametrize("override,key", [
    ("launcher.signal_delay_s=3600", "launcher.signal_delay_s"),
    ("launcher.max_requeues=-1", "launcher.max_requeues"),
    ("launcher.mem_gb=0", "launcher.mem_gb"),
])
def test_launcher_values_are_bounded(override, key):
    with pytest.raises(ConfigError, match=key):
        launchers.load_launcher("slurm", [override])


def test_a_slurm_task_uses_the_cpus_of_its_allocation(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    here = threads.available_cpus()  # outside a job the variable means nothing
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert threads.available_cpus() == 1
    assert here == len(os.sched_getaffinity(0))
    slurm, local = launchers.load_launcher("slurm", []), launchers.load_launcher("local", [])
    assert launchers.job_threads(slurm, 2) is None  # decided in the task, not by --jobs
    assert launchers.job_threads(local, 1) == launchers.threads_per_job(1)


def test_a_stop_request_saves_the_epoch_and_the_resumed_run_ends_as_uninterrupted(tmp_path):
    from snndelay.app.runs import RunStopped, train_run

    ov = [*TINY[:-1], "training.epochs=4", "training.checkpoint_every=3"]
    cfg = compose(ov)[1]
    ref = train_run(cfg, tmp_path / "ref", ov)
    epochs: list[int] = []
    with pytest.raises(RunStopped) as stop:  # asked during epoch 2: not a checkpoint epoch
        train_run(cfg, tmp_path / "run", ov, on_epoch=lambda row: epochs.append(row.epoch),
                  should_stop=lambda: len(epochs) == 2)
    assert stop.value.epoch == 2 and epochs == [1, 2]
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 3  # saved at 2
    again = train_run(cfg, tmp_path / "run", ov, resume=True)
    assert again.summary.test_accuracy == ref.summary.test_accuracy
    assert metrics(tmp_path / "run") == metrics(tmp_path / "ref")


def test_sigusr2_in_a_slurm_task_only_asks_the_run_to_stop(tmp_path):
    job = Job("job", tuple(TINY), str(tmp_path / "sweep" / "job"))

    def train(j, should_stop):
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGUSR2)  # what SLURM sends before the time limit
        time.sleep(0.05)
        return replace(job_row(j), status="done", error=f"asked={should_stop()}")

    row = jobrunner.JobRunner(train, requeue=True)(job)
    assert row.error == "asked=True" and row.status == "done"
    assert row.job_time_s is not None and row.job_time_s > 0
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # restored


def test_a_stopped_task_requeues_itself_up_to_max_requeues(tmp_path, monkeypatch):
    from snndelay.app.runs import RunStopped

    calls = []
    monkeypatch.setattr(jobrunner.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0, "", ""))
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    job = Job("job", tuple(TINY), str(tmp_path / "sweep" / "job"))

    def stopped(j, should_stop):
        raise RunStopped(7)

    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with pytest.raises(SystemExit):
        jobrunner.JobRunner(stopped, requeue=True, max_requeues=2)(job)
    assert calls == [["scontrol", "requeue", "41"]]
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    row = jobrunner.JobRunner(stopped, requeue=True, max_requeues=2)(job)
    assert row.status == "failed" and "launcher.max_requeues" in row.error
    assert "epoch 7" in (tmp_path / "sweep" / "job" / "error.txt").read_text()
    assert len(calls) == 1


def test_a_sweep_directory_with_running_jobs_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with shared_lock(sweep / jobrunner.JOBS_LOCK):  # a job of an earlier sweep, still running
        line = _one_line_exit_2(runner.invoke(app, ["sweep", *TINY, "--sweep-dir", str(sweep)]))
    assert "still running" in line
    assert not (sweep / "summary.csv").exists()
    assert runner.invoke(app, ["sweep", *TINY, "--sweep-dir", str(sweep)]).exit_code == 0


def test_a_job_that_died_keeps_its_compare_cell():
    cfg = compose([*TINY, "delay=axonal", "network.hidden=3"])[1]
    row = replace(job_row(Job("j", tuple(TINY), "/nowhere", cfg=cfg)), status="failed",
                  error="SLURM job 4_0 ended (CANCELLED)")
    (cell,) = compare.aggregate([row])
    assert (cell.delay, cell.hidden, cell.failed, cell.stats.n) == ("axonal", "3", 1, 0)


@pytest.mark.parametrize("damage", ["user_file", "unknown_key"])
def test_a_sweep_refuses_job_directories_it_did_not_write(tmp_path, damage):
    sweep = tmp_path / "sweep"
    args = ["sweep", *TINY, "training.seed=0,1", "--sweep-dir", str(sweep)]
    assert runner.invoke(app, args).exit_code == 0
    job = sweep / "training.seed=1"
    if damage == "user_file":
        (job / "notes.txt").write_text("mine\n")
    else:
        cfg = job / "config.yaml"
        cfg.write_text(cfg.read_text() + "future_key: 1\n")
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != ".lock"}
    rerun = [*args[:-2], "training.lr=0.02", *args[-2:]]  # changed: every job would retrain
    line = _one_line_exit_2(runner.invoke(app, rerun))
    assert str(job) in line and "nothing was removed" in line
    after = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


@pytest.mark.slow  # a submitit subprocess job, ~15 s
def test_jobs_started_beside_a_folder_named_snndelay_import_the_real_package(tmp_path):
    (tmp_path / "snndelay").mkdir()  # what the parent of a clone holds: a namespace package
    cmd = [str(Path(sys.executable).parent / "snndelay"), "sweep", *TINY, "--launcher", "slurm",
           "launcher.cluster=local", "--sweep-dir", str(tmp_path / "sweep")]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "__version__" not in res.stdout + res.stderr


@pytest.mark.slow  # end to end, several seconds
def test_a_hung_up_local_sweep_stops_its_workers(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [str(Path(sys.executable).parent / "snndelay"), "sweep", *TINY[:-1],
           "dataset.train_size=3000", "training.epochs=200", "training.seed=0,1", "--jobs", "2",
           "--sweep-dir", str(sweep)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(list(sweep.glob("*/metrics.csv"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)  # the terminal closed
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP and "stopped" in err
    # No job trains on: the metrics stop changing.
    sizes = [p.stat().st_size for p in sweep.glob("*/metrics.csv")]
    time.sleep(3)
    assert [p.stat().st_size for p in sweep.glob("*/metrics.csv")] == sizes
