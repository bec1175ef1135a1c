"""Sweeps against a real one-node SLURM cluster (slurmctld, slurmd, munge started by
scripts/slurm_cluster.sh), not submitit's local executor: the array through sbatch, a failing
job, threads from the allocation, reuse without queueing, a task killed by scancel, a time
limit with requeue and continuation, sbatch's refusals, a sweep stopped by SIGTERM / SIGHUP,
and a sweep directory that stays locked while its jobs run after the sweep was killed.

Every command runs from a directory holding a folder named `snndelay` (as the parent of a
clone does), which shadowed the installed package in the jobs before. Skips, with the reason,
where the SLURM packages are not installed or this is not root."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runfiles import metrics

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
SNNDELAY = str(Path(sys.executable).parent / "snndelay")
Y = ["experiment=yinyang_h5_ws", "dataset.train_size=300", "dataset.val_size=100",
     "dataset.test_size=100"]
ONE_CPU = ["--launcher", "slurm", "launcher.cpus_per_task=1", "launcher.mem_gb=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster: the environment to talk to it (SLURM_CONF)."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (its daemons run as root here)")
    missing = [t for t in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"SLURM is not installed here ({', '.join(missing)} missing); "
                    f"`bash {SCRIPT.relative_to(ROOT)} install` installs it")
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                           text=True, timeout=120)
    if start.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], timeout=60)
        pytest.fail(f"the SLURM test cluster did not start: {start.stderr.strip()}")
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    yield env
    stop = subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True,
                          text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr


@pytest.fixture
def shadowed(tmp_path):
    """A working directory with a folder named snndelay in it (a namespace package)."""
    (tmp_path / "snndelay").mkdir()
    (tmp_path / "snndelay" / "README.md").write_text("a clone's top level\n")
    return tmp_path


def _run(args, env, cwd, timeout=600):
    return subprocess.run([SNNDELAY, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _popen(args, env, cwd):
    return subprocess.Popen([SNNDELAY, *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _summary(sweep_dir: Path) -> dict[str, dict]:
    with open(sweep_dir / "summary.csv", newline="") as f:
        return {r["job"]: r for r in csv.DictReader(f)}


def _queue(env) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], env=env, capture_output=True,
                         text=True, timeout=60)
    return [ln.split("|") for ln in out.stdout.splitlines() if ln.strip()]


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _submitted_arrays(sweep_dir: Path) -> dict[str, int]:
    """{array id: its tasks} of the sweep's submissions (submitit's folder per task)."""
    tasks = [p.parent.name.split("_")[0]
             for p in (sweep_dir / ".submitit").glob("*/*_submitted.pkl")]
    return {a: tasks.count(a) for a in set(tasks)}


def test_a_sweep_runs_as_an_array_with_the_allocations_threads_and_reuses_without_queueing(
        cluster, shadowed):
    sweep = shadowed / "sweep"
    args = ["sweep", *Y, "training.epochs=2", "training.lr=0.01,0.02,-1", *ONE_CPU,
            "--jobs", "2", "--sweep-dir", str(sweep)]
    res = _run(args, cluster, shadowed)
    assert res.returncode == 1, res.stdout + res.stderr  # one job failed
    rows = _summary(sweep)
    assert sorted(r["status"] for r in rows.values()) == ["done", "done", "failed"]
    bad = next(r for r in rows.values() if r["status"] == "failed")
    assert "training.lr" in bad["error"] and "__version__" not in res.stderr
    for r in rows.values():
        if r["status"] == "done":
            summary = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
            assert summary["threads"] == 1  # launcher.cpus_per_task=1, whatever --jobs says
            assert summary["versions"]["snndelay"]  # the real package, not the shadow
            assert float(r["job_time_s"]) > float(r["wall_time_s"])
    arrays = _submitted_arrays(sweep)
    assert list(arrays.values()) == [3]  # one array of three tasks

    # The same sweep again: finished jobs are reused without a SLURM task; only the failed
    # job is submitted again.
    res = _run(args, cluster, shadowed)
    rows = _summary(sweep)
    assert sorted(r["status"] for r in rows.values()) == ["failed", "reused", "reused"]
    new = {a: n for a, n in _submitted_arrays(sweep).items() if a not in arrays}
    assert list(new.values()) == [1]

    # Two CPUs per task: two threads.
    res = _run(["sweep", *Y, "training.epochs=1", "--launcher", "slurm",
                "launcher.cpus_per_task=2", "launcher.mem_gb=1", "--jobs", "1",
                "--sweep-dir", str(shadowed / "two")], cluster, shadowed)
    assert res.returncode == 0, res.stdout + res.stderr
    run = next(iter(_summary(shadowed / "two").values()))["run_dir"]
    assert json.loads((Path(run) / "summary.json").read_text())["threads"] == 2


def test_a_task_killed_by_scancel_keeps_its_cell_in_compare_delays(cluster, shadowed):
    out = shadowed / "cmp"
    # 3000 epochs: a task seen RUNNING must still be training when scancel reaches it (at
    # 1000 epochs one finished first, once in three CI runs).
    proc = _popen(["compare-delays", *Y, "training.epochs=3000", "--hidden", "3", "--seeds", "1",
                   *ONE_CPU, "--out", str(out)], cluster, shadowed)
    try:
        def running():
            return [i for i, state, _ in _queue(cluster) if state == "RUNNING"]

        _wait(lambda: list((out / "runs").glob("*/metrics.csv")), 180, "a job training")
        victim = _wait(running, 60, "a running task")[0]
        # --full: the batch shell too, so that the task dies whatever step it is in
        subprocess.run(["scancel", "--full", "-s", "KILL", victim], env=cluster, check=True,
                       timeout=60)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    rows = _summary(out / "runs")
    killed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(killed) == 1 and f"SLURM job {victim} ended" in killed[0]["error"]
    assert "(CANCELLED)" in killed[0]["error"] or "killed while running" in killed[0]["error"]
    assert (Path(killed[0]["run_dir"]) / "error.txt").is_file()
    assert "Traceback" not in err and "UncompletedJobError" not in err
    with open(out / "comparison.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 4  # every delay type keeps its cell
    assert sorted(int(c["failed"]) for c in cells) == [0, 0, 0, 1]
    assert "failed" in (out / "comparison.md").read_text()


def test_a_time_limit_requeues_the_job_which_ends_as_an_uninterrupted_run(cluster, shadowed):
    # About 75 s of training: more than one attempt of a 1-minute limit can do.
    long = ["training.epochs=1000", "training.checkpoint_every=5"]
    ref = _run(["train", *long, "--run-dir", str(shadowed / "ref")], cluster, shadowed)
    assert ref.returncode == 0, ref.stderr
    sweep = shadowed / "limit"
    proc = _popen(["sweep", *long, *ONE_CPU, "launcher.timeout_min=1",
                   "launcher.signal_delay_s=15", "--sweep-dir", str(sweep)], cluster, shadowed)
    requeues: set[str] = set()
    try:
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            # SLURM holds a requeued job for 120 s before it may start again; start it now.
            for job, state, reason in _queue(cluster):
                if state == "PENDING" and reason == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                                   env=cluster, timeout=60)
                    requeues.add(f"{job}@{int(time.monotonic())}")
            time.sleep(1)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    (array,) = _submitted_arrays(sweep)
    log = next((sweep / ".submitit").glob(f"{array}*/*_log.err")).read_text()
    assert "by SIGUSR2 (time limit or preemption), checkpoint saved; requeued" in log
    assert "DUE TO JOB REQUEUE" in log and requeues  # cut, requeued and started again
    row = next(iter(_summary(sweep).values()))
    assert row["status"] == "done"
    run = Path(row["run_dir"])
    assert metrics(run) == metrics(shadowed / "ref")
    got, want = (json.loads((d / "summary.json").read_text()) for d in (run, shadowed / "ref"))
    assert got["test_accuracy"] == want["test_accuracy"] and got["epochs"] == 1000


@pytest.mark.parametrize("setting,key", [
    ("launcher.partition=nosuchpart", "launcher.partition"),
    ("launcher.mem_gb=100000", "launcher.mem_gb"),
    ("launcher.cpus_per_task=64", "launcher.cpus_per_task"),
])
def test_sbatch_refusals_are_one_line_and_submit_nothing(cluster, shadowed, setting, key):
    sweep = shadowed / "refused"
    res = _run(["sweep", *Y, "training.epochs=1", "--launcher", "slurm", setting,
                "--sweep-dir", str(sweep)], cluster, shadowed)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], res.stderr
    assert not sweep.exists() and not _queue(cluster)


def test_a_controller_that_is_down_is_one_line(cluster, shadowed):
    conf = Path(cluster["SLURM_CONF"]).read_text().replace("SlurmctldPort=46817",
                                                            "SlurmctldPort=46899")
    (shadowed / "down.conf").write_text(conf)
    env = {**cluster, "SLURM_CONF": str(shadowed / "down.conf")}
    res = _run(["sweep", *Y, "training.epochs=1", "--launcher", "slurm",
                "--sweep-dir", str(shadowed / "down")], env, shadowed)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "controller cannot be reached" in lines[0], res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_sweep_cancels_its_array(cluster, shadowed, sig):
    sweep = shadowed / "stopped"
    proc = _popen(["sweep", *Y, "training.epochs=2000", "training.seed=0,1", *ONE_CPU,
                   "--sweep-dir", str(sweep)], cluster, shadowed)
    try:
        _wait(lambda: [q for q in _queue(cluster) if q[1] == "RUNNING"], 120, "running tasks")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig and "stopped" in err
    _wait(lambda: not _queue(cluster), 60, "the array to leave the queue")


def test_a_sweep_directory_stays_locked_while_its_jobs_run_after_the_sweep_was_killed(
        cluster, shadowed):
    sweep = shadowed / "orphaned"
    args = ["sweep", *Y, "training.epochs=2000", "training.seed=0,1", *ONE_CPU,
            "--sweep-dir", str(sweep)]
    proc = _popen(args, cluster, shadowed)
    try:
        _wait(lambda: len(list(sweep.glob("*/metrics.csv"))) == 2, 180, "both jobs training")
        proc.kill()  # SIGKILL: nothing can cancel the array; its jobs go on
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    listing = {p: p.stat().st_mtime for p in sweep.rglob("config.yaml")}
    changed = args[:-3] + ["training.lr=0.02", "--sweep-dir", str(sweep)]
    for attempt in (args, changed):  # neither the same nor a changed sweep may touch the jobs
        res = _run(attempt, cluster, shadowed)
        assert res.returncode == 2, res.stdout + res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and ("still running" in lines[0] or "still queued" in lines[0])
    assert {p: p.stat().st_mtime for p in sweep.rglob("config.yaml")} == listing
    ids = {q[0].split("_")[0] for q in _queue(cluster)}
    subprocess.run(["scancel", *ids], env=cluster, check=True, timeout=60)
    _wait(lambda: not _queue(cluster), 60, "the array to leave the queue")
