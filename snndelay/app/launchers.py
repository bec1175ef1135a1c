"""Launchers: where a sweep's jobs run (joblib processes on this machine, or one SLURM job array
through submitit) and everything about a job that depends on where it runs: its threads, the
lock it holds on the sweep directory, signals, time limits and requeueing, and the scheduler's
errors. The sweep (snndelay.app.sweep) decides what a job is; this module (the launcher's
config, local runs), app/jobrunner.py (the job's side: locks, signals, requeueing) and
app/slurm.py (the scheduler's side) only run it.

- Threads: a local job gets cores / --jobs; a SLURM task takes the CPUs of its own allocation
  (SLURM_CPUS_PER_TASK, its affinity mask), never a count decided on the submitting machine.
- Locks: the sweep command holds the sweep directory's exclusive lock while it runs; every job
  holds a shared lock on SWEEP_DIR/.jobs.lock while it runs, and the SLURM array ids are kept
  in SWEEP_DIR/.submitit/active.json, so a new sweep on the directory is refused while jobs of
  an earlier one are queued or running, whoever started them (and whatever happened to them).
- Time limits and preemption: SLURM sends SIGUSR2 `signal_delay_s` before the limit (up to
  ~30 s earlier: its timer's resolution); the run saves a checkpoint at the end of the epoch in
  progress and stops, the task requeues itself (`scontrol requeue`, at most `max_requeues`
  times) and the requeued task continues from that checkpoint.
- Errors: sbatch's refusals are checked with `sbatch --test-only` before anything is written
  or submitted, and become one line naming the setting; a task that SLURM ended without a
  result (scancel, time limit, memory, node failure) is a failed job with its state and log.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snndelay.app.jobrunner import JobFn, JobRunner
from snndelay.app.tables import SweepRow
from snndelay.config import config_dir
from snndelay.config.compose import one_line
from snndelay.errors import ConfigError

if TYPE_CHECKING:
    from snndelay.app.jobs import Job

LAUNCHERS = ("local", "slurm")
CLUSTERS = ("slurm", "local", "debug")  # submitit executors
ACTIVE = Path(".submitit") / "active.json"  # the SLURM array ids last submitted from it

RowFn = Callable[[SweepRow], None]


# -- launcher config (configs/launcher/<name>.yaml + launcher.* overrides) --------------------
@dataclass
class LauncherConfig:
    name: str = "local"
    cluster: str = "slurm"  # submitit executor for the slurm launcher (local/debug: no cluster)
    partition: Optional[str] = None
    timeout_min: int = 60
    cpus_per_task: int = 2
    mem_gb: float = 4.0
    array_parallelism: int = 64
    account: Optional[str] = None
    signal_delay_s: int = 60  # SIGUSR2 this long before the time limit: requeue and continue
    max_requeues: int = 20  # requeues of one task after time limits


def load_launcher(name: str, overrides: list[str]) -> LauncherConfig:
    """configs/launcher/NAME.yaml with `launcher.KEY=VALUE` overrides, type-checked."""
    if name not in LAUNCHERS:
        raise ConfigError(f"--launcher: must be one of {', '.join(LAUNCHERS)}, got {name!r}")
    path = config_dir() / "launcher" / f"{name}.yaml"
    try:
        base = OmegaConf.load(path) if path.is_file() else OmegaConf.create({})
        dots = [o.removeprefix("launcher.") for o in overrides]
        known = [f.name for f in fields(LauncherConfig) if f.name != "name"]
        for key in (d.split("=", 1)[0].split(".", 1)[0] for d in dots):
            if key not in known:
                raise ConfigError(f"launcher.{key}: unknown key; the launcher has "
                                  f"{', '.join(known)}")
        merged = OmegaConf.merge(OmegaConf.structured(LauncherConfig), base,
                                 OmegaConf.from_dotlist(dots))
        cfg = OmegaConf.to_object(merged)
        assert isinstance(cfg, LauncherConfig)
    except OmegaConfBaseException as exc:
        msg = one_line(exc)
        raise ConfigError(msg if msg.startswith("launcher.") else f"launcher.{msg}") from None
    cfg.name = name
    if cfg.cluster not in CLUSTERS:
        raise ConfigError(f"launcher.cluster: must be one of {', '.join(CLUSTERS)}, "
                          f"got {cfg.cluster!r}")
    for key, lo, hi in (("timeout_min", 1, 525_600), ("cpus_per_task", 1, 4096),
                        ("array_parallelism", 1, 100_000), ("signal_delay_s", 1, 3600),
                        ("max_requeues", 0, 1000)):
        value = getattr(cfg, key)
        if not lo <= value <= hi:
            raise ConfigError(f"launcher.{key}: must be in [{lo}, {hi}], got {value!r}")
    if not 0 < cfg.mem_gb <= 1e6:
        raise ConfigError(f"launcher.mem_gb: must be in (0, 1e6], got {cfg.mem_gb!r}")
    if cfg.signal_delay_s >= 60 * cfg.timeout_min:
        raise ConfigError(f"launcher.signal_delay_s: must be below the time limit "
                          f"(launcher.timeout_min={cfg.timeout_min} is {60 * cfg.timeout_min} s), "
                          f"got {cfg.signal_delay_s}")
    return cfg


def split_launcher_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(training overrides, launcher.* overrides)."""
    launch = [o for o in overrides if o.startswith("launcher.")]
    return [o for o in overrides if not o.startswith("launcher.")], launch


def on_slurm(launcher: LauncherConfig) -> bool:
    """Whether the jobs go to a real SLURM cluster (not submitit's local/debug executors)."""
    return launcher.name == "slurm" and launcher.cluster == "slurm"


def threads_per_job(n_jobs: int) -> int:
    from snndelay.app.threads import available_cpus

    return max(1, available_cpus() // max(1, n_jobs))


def job_threads(launcher: LauncherConfig, n_jobs: int) -> Optional[int]:
    """Threads of each job: cores / n_jobs here; None on SLURM (the task's own allocation)."""
    return None if on_slurm(launcher) else threads_per_job(n_jobs)


# -- running ----------------------------------------------------------------------------------
def run_jobs(jobs: list["Job"], launcher: LauncherConfig, n_jobs: int, sweep_dir: Path,
             fn: JobFn, on_done: RowFn = lambda row: None,
             on_notice: Callable[[str], None] = lambda line: None) -> list[SweepRow]:
    """Run the jobs through fn: here (n_jobs=1), as joblib processes (local, n_jobs at once),
    or as a submitit job array; a row per job, in the order they end."""
    rows: list[SweepRow] = []

    def done(row: SweepRow) -> None:
        rows.append(row)
        on_done(row)

    with _stop_on_signals():
        if launcher.name == "local":
            _run_local(jobs, n_jobs, fn, done)
        else:
            from snndelay.app.slurm import run_submitit

            run_submitit(jobs, launcher, sweep_dir, fn, done, on_notice)
    return rows


class Stopped(KeyboardInterrupt):
    """The sweep was stopped by a signal (SIGINT, SIGTERM, SIGHUP); its jobs were stopped."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM (what `timeout` and schedulers send), SIGHUP (the terminal or ssh session
    closed) and SIGINT raise Stopped in the main thread, so that the runners below stop their
    workers or cancel the job array instead of leaving them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Stopped(signum)

    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    old = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _run_local(jobs: list["Job"], n_jobs: int, fn: JobFn, done: RowFn) -> None:

    from joblib import Parallel, delayed

    runner = JobRunner(fn)
    if n_jobs == 1:  # in this process: no worker start-up, same code path
        for job in jobs:
            done(runner(job))
        return
    workers = [replace(j, in_worker=True) for j in jobs]
    try:
        for row in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(runner)(j) for j in workers):
            done(row)
    except BaseException:
        _kill_workers()
        raise


def _kill_workers() -> None:
    """Terminate joblib's worker processes now (a job in flight is abandoned; its run keeps
    its last checkpoint, so rerunning the sweep continues it)."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


@contextmanager
def _safe_path() -> Iterator[None]:
    """PYTHONSAFEPATH=1 in the environment the jobs inherit: submitit starts them with
    `python -m`, which would put their working directory first on sys.path, where a folder
    named snndelay (a clone's) would shadow the installed package."""
    old = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = old
