"""Sweeps: Hydra sweep overrides expanded into jobs, run on joblib (local processes) or
submitit (SLURM, or submitit's local/debug executors), aggregated into summary.csv.

Every job is an ordinary run directory (as `snndelay train` writes) under the sweep directory,
named after its swept values. A job's identity is its full resolved config: running a sweep
into the same directory again reuses a finished job and continues an interrupted one only when
the config it ran with equals the job's; otherwise (a changed non-swept override, a failed or
foreign run) it trains the job anew. A failing job never stops the others.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from snndelay.app import launchers, slurm, tracking
from snndelay.app.jobs import Job, make_jobs, with_configs
from snndelay.app.launchers import (  # noqa: F401 - the sweep's launcher API, re-exported
    LauncherConfig,
    Stopped,
    job_threads,
    load_launcher,
    split_launcher_overrides,
    threads_per_job,
)
from snndelay.app.tables import DONE, FAILED, REUSED, SweepRow, summary_csv
from snndelay.app.tables import RERUN as RERUN_STATUS
from snndelay.config import Config, compose
from snndelay.config.compose import one_line
from snndelay.config.resolve import hidden_sizes
from snndelay.config.tracking import NoTrackingConfig
from snndelay.errors import ConfigError, RunDirError, UserError


# -- one job (runs in a worker process or a SLURM task) ---------------------------------------
def _hidden(cfg) -> str:
    return ",".join(str(h) for h in hidden_sizes(cfg))


def job_row(job: Job) -> SweepRow:
    """A summary row for the job with what is known before it runs (its config's experiment,
    delay type, hidden sizes and seed when it composed: a job that dies still has its cell)."""
    row = SweepRow(job.name, swept=" ".join(job.swept), overrides=" ".join(job.overrides),
                   run_dir=job.run_dir)
    return _with_config(row, job.cfg) if job.cfg is not None else row


def _with_config(row: SweepRow, cfg: Config) -> SweepRow:
    return replace(row, experiment=cfg.name, delay=cfg.delay.type, hidden=_hidden(cfg),
                   seed=cfg.training.seed)


# What a job does with its run directory (job_plan): reuse a finished run, resume a checkpoint,
# start on a directory holding nothing of a run ("fresh"), or clear and retrain a run made
# with another config ("rerun").
REUSE, RESUME, FRESH, RERUN = "reuse", "resume", "fresh", "rerun"


def job_plan(run_dir: Path, cfg: Config) -> str:
    """A job's identity is its full resolved config: a run directory is reused (finished) or
    continued (checkpoint) only when the config it was trained with equals cfg. A directory
    that is not exactly what `snndelay train` writes (another file in it, a config.yaml this
    version cannot read) raises RunDirError: it is refused, never removed."""
    from snndelay.app.rundir import check_no_foreign, load_run_config

    if not run_dir.exists():
        return FRESH
    if not run_dir.is_dir() or run_dir.is_symlink():
        raise RunDirError(f"{run_dir}: the sweep's job path is not a directory it made; move "
                          "it away")
    check_no_foreign(run_dir, "move it away or choose another --sweep-dir")
    has = {name: (run_dir / name).is_file() for name in ("config.yaml", "checkpoint.pt",
                                                           "summary.json")}
    if not has["config.yaml"]:
        if has["checkpoint.pt"] or has["summary.json"]:
            raise RunDirError(f"{run_dir}: a run without its config.yaml; move it away or "
                              "choose another --sweep-dir (nothing was removed)")
        return FRESH  # failed before it started: nothing of a run to keep
    try:
        same = without_tracking(load_run_config(run_dir)) == without_tracking(cfg)
    except UserError as exc:
        raise RunDirError(f"{exc} (a job directory this version cannot read; move it away "
                          "or choose another --sweep-dir; nothing was removed)") from None
    if same and has["summary.json"]:
        return REUSE
    if same and has["checkpoint.pt"]:
        return RESUME
    return RERUN if has["summary.json"] else FRESH


def without_tracking(cfg: Config) -> Config:
    """A config as a job's identity sees it: where it is logged does not change what it
    trains, so a job is reused whatever its tracking."""
    return replace(cfg, tracking=NoTrackingConfig())


def grouped(jobs: list[Job], group: str) -> list[Job]:
    """The jobs with their tracker's group (tracking.open_group: an MLflow parent run made
    once, before they start); unchanged where tracking is off."""
    group = re.sub(r"[^\w.-]", "_", group)
    out = []
    for job in jobs:
        extra = [] if job.cfg is None else tracking.open_group(job.cfg.tracking, group,
                                                               job.cfg.name)
        if extra and job.cfg is not None:
            job = replace(job, overrides=(*job.overrides, *extra), cfg=replace(
                job.cfg, tracking=replace(job.cfg.tracking, group=group)))
        out.append(job)
    return out


def reused_row(job: Job) -> SweepRow:
    """The row of a job whose finished run is reused."""
    from snndelay.app.records import RunSummary

    return job_row(job).with_summary(REUSED, RunSummary.read(Path(job.run_dir)))


def run_job(job: Job, should_stop: Optional[Callable[[], bool]] = None) -> SweepRow:
    """Train (or reuse, or continue) one job's run under its directory's lock; never raises
    an error: failures become a row with status "failed" and the error (traceback in the
    run's error.txt). should_stop: see runs.train_run (RunStopped passes through)."""
    from snndelay.app.rundir import atomic_write_text, clear_run_dir, directory_lock
    from snndelay.app.runs import train_run

    started = time.monotonic()
    run_dir = Path(job.run_dir)
    row = job_row(job)
    try:
        cfg = job.cfg if job.cfg is not None else compose(list(job.overrides))[1]
        row = _with_config(row, cfg)
        # Decided under the run's lock: no other command is writing into it meanwhile.
        with directory_lock(run_dir):
            plan = job_plan(run_dir, cfg)
            if plan == REUSE:
                return replace(reused_row(job), job_time_s=round(time.monotonic() - started, 3))
            if plan in (FRESH, RERUN):
                clear_run_dir(run_dir)
            # threads: cores / --jobs here; None: the CPUs of the SLURM task's allocation.
            summary = train_run(cfg, run_dir, list(job.overrides), resume=plan == RESUME,
                                threads=job.threads, locked=True,
                                should_stop=should_stop).summary
        row = row.with_summary(RERUN_STATUS if plan == RERUN else DONE, summary)
        (run_dir / "error.txt").unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a failing job must not stop the sweep
        row = replace(row, status=FAILED, error=one_line(exc) if isinstance(exc, UserError)
                      else f"{type(exc).__name__}: {one_line(exc)}")
        if not isinstance(exc, RunDirError):  # never write into a directory it refused
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            except OSError:
                pass
    return replace(row, job_time_s=round(time.monotonic() - started, 3))


# -- running a sweep --------------------------------------------------------------------------
def run_jobs(jobs: list[Job], launcher: LauncherConfig, n_jobs: int, sweep_dir: Path,
             on_done: Callable[[SweepRow], None] = lambda row: None,
             on_notice: Callable[[str], None] = lambda line: None) -> list[SweepRow]:
    """Run the jobs (run_job each) on the launcher (snndelay.app.launchers)."""
    return launchers.run_jobs(jobs, launcher, n_jobs, sweep_dir, run_job, on_done, on_notice)


@dataclass
class SweepPlan:
    """A sweep checked and ready: its jobs, the launcher, and the rows of finished jobs that
    are reused without running (on SLURM: without queueing a task)."""
    sweep_dir: Path
    overrides: list[str]
    jobs: list[Job]
    launcher: LauncherConfig
    n_jobs: int
    reused: list[SweepRow]

    @property
    def to_run(self) -> list[Job]:
        names = {r.job for r in self.reused}
        return [j for j in self.jobs if j.name not in names]


def plan_sweep(overrides: list[str], n_jobs: int, launcher_name: str, sweep_dir: Path
               ) -> SweepPlan:
    """Everything that can be wrong with a sweep, found before anything is written or
    submitted: the values, the launcher and what its scheduler would accept, every config and
    dataset, and every job directory already there (refused, never removed, when it is not
    what the sweep writes). Nothing is written; run_plan checks the directory again under
    its lock."""
    from snndelay.app.rundir import check_writable_dir
    from snndelay.app.trainer import check_data

    if not 1 <= n_jobs <= 1024:
        raise ConfigError(f"--jobs must be in [1, 1024], got {n_jobs}")
    check_writable_dir(sweep_dir, "sweep directory")
    train_ov, launch_ov = split_launcher_overrides(overrides)
    launch = load_launcher(launcher_name, launch_ov)
    job_list = make_jobs(train_ov, sweep_dir, job_threads(launch, n_jobs))
    # Compose every job's config before starting (once; the jobs carry it): a sweep whose
    # configs are all invalid is a user error; a single invalid combination is run (and
    # reported) like any failing job.
    job_list, errors = with_configs(job_list)
    if errors and len(errors) == len(job_list):
        raise ConfigError(errors[0])
    checked: list = []
    for job in job_list:  # every dataset the sweep uses is read and checked before any job
        if job.cfg is not None and job.cfg.dataset not in checked:
            check_data(job.cfg.dataset)
            checked.append(job.cfg.dataset)
        if job.cfg is not None:
            tracking.check_available(job.cfg.tracking)
    plan = SweepPlan(sweep_dir, overrides, job_list, launch, n_jobs, _reused(job_list))
    if plan.to_run:
        slurm.preflight(launch)
    return plan


def _reused(jobs: list[Job]) -> list[SweepRow]:
    """Rows of the jobs whose finished runs are reused (RunDirError for a refused directory;
    jobs of the same sweep directory that are still running: check_no_running_jobs)."""
    return [reused_row(j) for j in jobs
            if j.cfg is not None and job_plan(Path(j.run_dir), j.cfg) == REUSE]


def run_plan(plan: SweepPlan, on_done: Callable[[SweepRow], None] = lambda row: None,
             on_notice: Callable[[str], None] = lambda line: None) -> list[SweepRow]:
    """Run a planned sweep under its directory's lock: no jobs of an earlier sweep still
    queued or running there, its record, its reused rows, its jobs, its summary.csv."""
    if plan.sweep_dir.exists():
        slurm.check_no_running_jobs(plan.sweep_dir)
        plan.reused = _reused(plan.jobs)  # as it is now, under the lock
    write_sweep_record(plan.sweep_dir, plan.overrides, plan.launcher, plan.n_jobs, plan.jobs)
    plan.jobs = grouped(plan.jobs, plan.sweep_dir.name)
    for row in plan.reused:
        on_done(row)
    try:
        rows = list(plan.reused) + run_jobs(plan.to_run, plan.launcher, plan.n_jobs,
                                            plan.sweep_dir, on_done, on_notice)
    finally:
        closed: set[str] = set()
        for job in plan.jobs:
            if job.cfg is not None and job.cfg.tracking.group and job.cfg.name not in closed:
                closed.add(job.cfg.name)
                tracking.close_group(job.cfg.tracking, job.cfg.name)
    write_summary(rows, plan.sweep_dir / "summary.csv")
    return rows


# -- aggregation ------------------------------------------------------------------------------
def write_summary(rows: list[SweepRow], path: Path) -> None:
    from snndelay.app.rundir import atomic_write_text

    atomic_write_text(path, summary_csv(rows))


def default_sweep_dir(root: Path = Path("outputs/sweeps")) -> Path:
    """root/DATE/TIME (also the default of compare-delays, under outputs/compare)."""
    now = datetime.now()
    return root / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")


def write_sweep_record(sweep_dir: Path, overrides: list[str], launcher: LauncherConfig,
                       n_jobs: int, jobs: list[Job]) -> None:
    from snndelay.app.rundir import atomic_write_text

    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {"overrides": overrides, "launcher": asdict(launcher), "jobs": n_jobs,
              "job_names": [j.name for j in jobs],
              "started": datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(record, indent=2) + "\n")
