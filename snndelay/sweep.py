"""Sweeps: Hydra sweep overrides expanded into jobs, run on joblib (local processes) or
submitit (SLURM, or submitit's local/debug executors), aggregated into summary.csv.

Every job is an ordinary run directory (as `snndelay train` writes) under the sweep directory,
named after its swept values. A job's identity is its full resolved config: running a sweep
into the same directory again reuses a finished job and continues an interrupted one only when
the config it ran with equals the job's; otherwise (a changed non-swept override, a failed or
foreign run) it trains the job anew. A failing job never stops the others.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import statistics
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snndelay.config import Config, _one_line, compose, config_dir
from snndelay.errors import ConfigError, UserError

SEED_KEY = "training.seed"
MAX_JOBS = 100_000  # a sweep's jobs (each is a run directory)
LAUNCHERS = ("local", "slurm")
CLUSTERS = ("slurm", "local", "debug")  # submitit executors
SUMMARY_FIELDS = ("job", "status", "swept", "overrides", "experiment", "delay", "hidden", "seed",
                  "test_accuracy", "val_accuracy", "test_accuracy_at_best_val", "n_params",
                  "wall_time_s", "error", "run_dir")


# -- expansion -------------------------------------------------------------------------------
def expand(overrides: list[str]) -> list[tuple[list[str], list[str]]]:
    """Cartesian product of the sweep overrides (a,b,c and range(...)) parsed by Hydra's own
    override parser. Returns one (all overrides, swept overrides) pair per job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:  # one at a time, so that an error names its override
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as exc:
            raise ConfigError(f"cannot parse the override {line!r}: {_one_line(exc)}") from None
    axes: list[list[tuple[str, bool]]] = []
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            axes.append([(o.input_line or "", False)])
            continue
        if not o.is_discrete_sweep():
            raise ConfigError(f"{key}: only discrete sweeps can be expanded (a,b,c or "
                              f"range(start,stop[,step])), got {o.input_line!r}")
        try:
            values = list(itertools.islice(o.sweep_string_iterator(), MAX_JOBS + 1))
        except HydraException:
            raise ConfigError(f"{key}: glob() sweeps are not supported; list the options "
                              "(a,b,c)") from None
        if not values:
            raise ConfigError(f"{key}: the sweep {o.input_line!r} has no values")
        axes.append([(f"{key}={v}", True) for v in values])
    n_jobs = math.prod(len(a) for a in axes)
    if n_jobs > MAX_JOBS:
        raise ConfigError(f"the sweep has more than {MAX_JOBS} jobs (each a run directory); "
                          "sweep fewer values at once")
    return [([s for s, _ in combo], [s for s, swept in combo if swept])
            for combo in itertools.product(*axes)]


def job_name(swept: list[str]) -> str:
    """A directory name from the swept values, e.g. experiment=yinyang_h30_wa,training.seed=3."""
    name = ",".join(swept) or "job"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)[:200]


@dataclass(frozen=True)
class Job:
    name: str
    overrides: tuple[str, ...]
    run_dir: str
    threads: int = 1
    swept: tuple[str, ...] = ()  # the overrides that vary across the sweep
    cfg: Optional[Config] = None  # composed already (see with_configs), else by the job
    in_worker: bool = False  # runs in a worker process: exit when the sweep process is gone


def make_jobs(overrides: list[str], sweep_dir: Path, threads: int = 1) -> list[Job]:
    jobs: list[Job] = []
    seen: set[str] = set()
    for full, swept in expand(overrides):
        name = job_name(swept)
        if name in seen:  # two values that differ only in characters a path cannot hold
            name = f"{name}_{len(seen)}"
        seen.add(name)
        jobs.append(Job(name, tuple(full), str(sweep_dir / name), threads, tuple(swept)))
    return jobs


def with_configs(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """Compose every job's config once, up front: (jobs carrying their config, the errors of
    those that do not compose; those jobs run without one and fail with that error)."""
    out, errors = [], []
    for job in jobs:
        try:
            out.append(replace(job, cfg=compose(list(job.overrides))[1]))
        except ConfigError as exc:
            errors.append(str(exc))
            out.append(job)
    return out, errors


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
        msg = _one_line(exc)
        raise ConfigError(msg if msg.startswith("launcher.") else f"launcher.{msg}") from None
    cfg.name = name
    if cfg.cluster not in CLUSTERS:
        raise ConfigError(f"launcher.cluster: must be one of {', '.join(CLUSTERS)}, "
                          f"got {cfg.cluster!r}")
    for key in ("timeout_min", "cpus_per_task", "array_parallelism"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"launcher.{key}: must be >= 1, got {getattr(cfg, key)!r}")
    return cfg


def split_launcher_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(training overrides, launcher.* overrides)."""
    launch = [o for o in overrides if o.startswith("launcher.")]
    return [o for o in overrides if not o.startswith("launcher.")], launch


# -- one job (runs in a worker process) -------------------------------------------------------
def _hidden(cfg) -> str:
    return ",".join(str(h) for h in cfg.hidden_sizes())


def _job_row(job: Job) -> dict:
    """A summary row for the job with what is known before it runs."""
    row: dict = {k: "" for k in SUMMARY_FIELDS}
    row.update(job=job.name, swept=" ".join(job.swept), overrides=" ".join(job.overrides),
               run_dir=job.run_dir)
    return row


def run_job(job: Job) -> dict:
    """Train (or reuse, or continue) one job's run; never raises: failures become a row with
    status "failed" and the error (full traceback in the run's error.txt)."""
    from snndelay.records import RunSummary
    from snndelay.rundir import atomic_write_text, load_run_config
    from snndelay.runs import train_run

    if job.in_worker:
        _exit_with_parent()
    run_dir = Path(job.run_dir)
    row = _job_row(job)
    try:
        cfg = job.cfg if job.cfg is not None else compose(list(job.overrides))[1]
        row.update(experiment=cfg.name, delay=cfg.delay.type, hidden=_hidden(cfg),
                   seed=cfg.training.seed)
        # A job is its full resolved config: a run directory is reused (finished) or continued
        # (checkpoint) only when the config it was trained with equals this job's.
        same = False
        if run_dir.is_dir():
            try:
                same = load_run_config(run_dir) == cfg
            except UserError:
                same = False
        done = run_dir / "summary.json"
        if same and done.is_file():
            summary, row["status"] = RunSummary.read(run_dir), "reused"
        else:
            resume = same and (run_dir / "checkpoint.pt").is_file()
            status = "done"
            if not resume and run_dir.exists():  # failed, changed or foreign: start over
                status = "rerun" if done.is_file() else "done"  # finished with another config
                shutil.rmtree(run_dir)
            # Parallel jobs share the cores: job.threads each, unless training.threads is set.
            summary = train_run(cfg, run_dir, list(job.overrides), resume=resume,
                                threads=job.threads).summary
            row["status"] = status
        (run_dir / "error.txt").unlink(missing_ok=True)
        for key in ("test_accuracy", "val_accuracy", "test_accuracy_at_best_val", "n_params",
                    "wall_time_s"):
            row[key] = getattr(summary, key)
    except Exception as exc:  # noqa: BLE001 - a failing job must not stop the sweep
        row["status"] = "failed"
        row["error"] = _one_line(exc) if isinstance(exc, UserError) else \
            f"{type(exc).__name__}: {_one_line(exc)}"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        except OSError:
            pass
    return row


# -- running a list of jobs -------------------------------------------------------------------
def run_jobs(jobs: list[Job], launcher: LauncherConfig, n_jobs: int, sweep_dir: Path,
             on_done: Callable[[dict], None] = lambda row: None) -> list[dict]:
    """Run the jobs: joblib processes (local, n_jobs at once) or a submitit job array."""
    rows: list[dict] = []
    with _stop_on_signals():
        if launcher.name == "local":
            _run_local(jobs, n_jobs, rows, on_done)
        else:
            _run_submitit(jobs, launcher, sweep_dir, rows, on_done)
    return rows


class Stopped(KeyboardInterrupt):
    """The sweep was stopped by a signal (SIGINT, SIGTERM); its workers were stopped too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM (what `timeout` and schedulers send) and SIGINT raise Stopped in the main
    thread, so that the runners below stop their workers instead of leaving them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Stopped(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _run_local(jobs: list[Job], n_jobs: int, rows: list[dict],
               on_done: Callable[[dict], None]) -> None:
    from joblib import Parallel, delayed

    if n_jobs == 1:  # in this process: no worker start-up, same code path
        for job in jobs:
            row = run_job(job)
            rows.append(row)
            on_done(row)
        return
    workers = [replace(j, in_worker=True) for j in jobs]
    try:
        for row in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(run_job)(j) for j in workers):
            rows.append(row)
            on_done(row)
    except BaseException:
        _kill_workers()
        raise


def _kill_workers() -> None:
    """Terminate joblib's worker processes now (a job in flight is abandoned; its run keeps
    its last checkpoint, so rerunning the sweep continues it)."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


_WATCHING_PARENT = False


def _exit_with_parent() -> None:
    """In a worker process: exit as soon as the sweep process that started it is gone (even
    after SIGKILL, which it cannot pass on), instead of training on for nobody."""
    global _WATCHING_PARENT
    if _WATCHING_PARENT:
        return
    _WATCHING_PARENT = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="snndelay-parent-watch", daemon=True).start()


def _run_submitit(jobs: list[Job], launcher: LauncherConfig, sweep_dir: Path, rows: list[dict],
                  on_done: Callable[[dict], None]) -> None:

    import submitit

    ex = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster=launcher.cluster)
    params = dict(name=f"snndelay-{sweep_dir.name}", timeout_min=launcher.timeout_min,
                  cpus_per_task=launcher.cpus_per_task, mem_gb=launcher.mem_gb,
                  slurm_array_parallelism=launcher.array_parallelism)
    if launcher.partition:
        params["slurm_partition"] = launcher.partition
    if launcher.account:
        params["slurm_account"] = launcher.account
    ex.update_parameters(**params)
    submitted = ex.map_array(run_job, jobs)
    by_id = {id(s): j for s, j in zip(submitted, jobs)}
    try:
        for sj in submitit.helpers.as_completed(submitted):
            try:
                row = sj.result()
            except Exception as exc:  # noqa: BLE001 - the job died (node failure, time limit)
                row = _job_row(by_id[id(sj)])
                row.update(status="failed", error=f"{type(exc).__name__}: {_one_line(exc)}")
            rows.append(row)
            on_done(row)
    except BaseException:  # stopped: cancel what is still queued or running on the cluster
        for sj in submitted:
            if not sj.done():
                sj.cancel(check=False)
        raise


# -- aggregation ------------------------------------------------------------------------------
def write_summary(rows: list[dict], path: Path) -> None:
    from snndelay.rundir import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_FIELDS))
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["job"]):
        writer.writerow({k: row.get(k, "") for k in SUMMARY_FIELDS})
    atomic_write_text(path, buf.getvalue())


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stats(values: list[float]) -> dict:
    """n, median, interquartile range (inclusive quartiles), mean, std (sample) of values."""
    n = len(values)
    if n == 0:
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan, "mean": math.nan,
                "std": math.nan}
    q1, med, q3 = (statistics.quantiles(values, n=4, method="inclusive") if n > 1
                   else [values[0]] * 3)
    return {"n": n, "median": med, "q1": q1, "q3": q3, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if n > 1 else 0.0}


def group_key(swept: str) -> str:
    """A job's swept overrides without the seed: jobs that differ only in seed form a group."""
    return " ".join(o for o in swept.split() if not o.startswith(f"{SEED_KEY}=")) or "(all)"


def groups(rows: list[dict]) -> list[dict]:
    """One entry per group: its swept overrides, statistics of test accuracy, failed count."""
    out: dict[str, dict] = {}
    for row in rows:
        key = group_key(row.get("swept", ""))
        g = out.setdefault(key, {"group": key, "acc": [], "failed": 0})
        if row["status"] == "failed" or row.get("test_accuracy") in ("", None):
            g["failed"] += 1
        else:
            g["acc"].append(float(row["test_accuracy"]))
    return [{**g, **stats(g["acc"])} for g in out.values()]


def default_sweep_dir(root: Path = Path("outputs/sweeps")) -> Path:
    """root/DATE/TIME (also the default of compare-delays, under outputs/compare)."""
    now = datetime.now()
    return root / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")


def write_sweep_record(sweep_dir: Path, overrides: list[str], launcher: LauncherConfig,
                       n_jobs: int, jobs: list[Job]) -> None:
    from snndelay.rundir import atomic_write_text

    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {"overrides": overrides, "launcher": asdict(launcher), "jobs": n_jobs,
              "job_names": [j.name for j in jobs],
              "started": datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(record, indent=2) + "\n")


def threads_per_job(n_jobs: int) -> int:
    from snndelay.threads import available_cpus

    return max(1, available_cpus() // max(1, n_jobs))
