"""Launchers: where a sweep's jobs run (joblib processes on this machine, or one SLURM job array
through submitit) and everything about a job that depends on where it runs: its threads, the
lock it holds on the sweep directory, signals, time limits and requeueing, and the scheduler's
errors. The sweep (snndelay.app.sweep) decides what a job is; this module only runs it.

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

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snndelay.app.tables import FAILED, SweepRow
from snndelay.config import config_dir
from snndelay.config.compose import _one_line
from snndelay.errors import ConfigError, LauncherError, RunDirError, UserError

if TYPE_CHECKING:
    from snndelay.app.sweep import Job

LAUNCHERS = ("local", "slurm")
CLUSTERS = ("slurm", "local", "debug")  # submitit executors
JOBS_LOCK = ".jobs.lock"  # shared-locked by every running job of a sweep directory
ACTIVE = Path(".submitit") / "active.json"  # the SLURM array ids last submitted from it

JobFn = Callable[["Job", Callable[[], bool]], SweepRow]  # (job, should_stop) -> row
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
        msg = _one_line(exc)
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


# -- the job's side ---------------------------------------------------------------------------
class JobRunner:
    """What a worker process or a SLURM task runs for one job: the job function under the sweep
    directory's shared jobs lock. In a SLURM task (requeue=True) SIGUSR2 (the time limit is
    near, or preemption) only asks the run to stop: it saves a checkpoint at the end of the
    epoch in progress and stops there, and the task requeues itself; the requeued task
    continues from that checkpoint. (submitit's own handler raises SystemExit wherever the
    signal lands; inside a compiled engine call that became a SystemError and a failed job.)"""

    def __init__(self, fn: JobFn, requeue: bool = False, max_requeues: int = 0) -> None:
        self.fn = fn
        self.requeue = requeue
        self.max_requeues = max_requeues

    def __call__(self, job: "Job") -> SweepRow:
        from snndelay.app.rundir import shared_lock
        from snndelay.app.runs import RunStopped

        if job.in_worker:
            _exit_with_parent()
        run_dir = Path(job.run_dir)
        lock: contextlib.AbstractContextManager[None]
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            lock = shared_lock(run_dir.parent / JOBS_LOCK)
        except (OSError, UserError):
            lock = contextlib.nullcontext()  # the job itself reports what is wrong there
        asked = threading.Event()
        with lock, _on_signal(signal.SIGUSR2, asked.set, self.requeue):
            try:
                row = self.fn(job, asked.is_set)
            except RunStopped as stop:
                row = self._requeue(job, stop.epoch)  # exits unless it cannot requeue
        if self.requeue:  # a SLURM task: its time counts from its process start
            row = replace(row, job_time_s=round(time.time() - _process_start(), 3))
        return row

    def _requeue(self, job: "Job", epoch: int) -> SweepRow:
        """Requeue this task (it stopped at `epoch`, checkpoint saved) and exit; a failed row
        when it was requeued max_requeues times already or scontrol refuses."""
        from snndelay.app.rundir import atomic_write_text
        from snndelay.app.sweep import job_row

        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        task = os.environ.get("SLURM_JOB_ID", "")
        if restarts < self.max_requeues and task:
            done = subprocess.run(["scontrol", "requeue", task], capture_output=True, text=True,
                                  timeout=60)
            if done.returncode == 0:
                print(f"snndelay: stopped at epoch {epoch} by SIGUSR2 (time limit or "
                      f"preemption), checkpoint saved; requeued ({restarts + 1} of "
                      f"launcher.max_requeues={self.max_requeues})", file=sys.stderr, flush=True)
                sys.exit(0)
            why = f"scontrol requeue {task} failed: {done.stderr.strip()[:200]}"
        else:
            why = (f"requeued {restarts} times already (launcher.max_requeues); raise "
                   "launcher.timeout_min")
        error = f"stopped at epoch {epoch} by its time limit or preemption; {why}"
        try:
            Path(job.run_dir).mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(job.run_dir) / "error.txt", error + "\n")
        except OSError:
            pass
        return replace(job_row(job), status=FAILED, error=error)


@contextmanager
def _on_signal(sig: int, action: Callable[[], None], active: bool) -> Iterator[None]:
    """While the block runs (and `active`), signal `sig` only calls action() (in the main
    thread; a handler that raises could land inside compiled code)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(sig, lambda signum, frame: action())
    try:
        yield
    finally:
        signal.signal(sig, old)


def _process_start() -> float:
    """When this process started (epoch seconds; /proc), or now where /proc cannot tell."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                    if ln.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


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


# -- before a sweep starts --------------------------------------------------------------------
def check_no_running_jobs(sweep_dir: Path) -> None:
    """Refuse a sweep directory while jobs of an earlier sweep run in it (they hold its jobs
    lock) or wait in a SLURM queue (the array ids of its last submission, asked of squeue)."""
    from snndelay.app.rundir import exclusive_free

    if not exclusive_free(sweep_dir / JOBS_LOCK):
        raise RunDirError(f"{sweep_dir}: jobs of an earlier sweep are still running in this "
                          "sweep directory; wait for them to finish, or cancel them")
    ids = _active_ids(sweep_dir)
    if ids and shutil.which("squeue"):
        listed = {task: st for task, st in (_squeue(ids) or {}).items() if st[0] not in _ENDED}
        if listed:
            raise RunDirError(f"{sweep_dir}: its SLURM jobs {', '.join(ids)} are still queued "
                              f"or running (squeue -j {','.join(ids)}); wait for them, or "
                              f"scancel {' '.join(ids)}")


def _active_ids(sweep_dir: Path) -> list[str]:
    try:
        raw = json.loads((sweep_dir / ACTIVE).read_text())
        return [str(i) for i in raw.get("job_ids", []) if str(i).isdigit()]
    except (OSError, ValueError, AttributeError):
        return []


def preflight(launcher: LauncherConfig) -> None:
    """Ask sbatch whether it would accept the array's tasks (`sbatch --test-only`, which
    submits nothing); a refusal is one line naming the setting. Only for a real cluster."""
    if not on_slurm(launcher):
        return
    if shutil.which("sbatch") is None:
        raise LauncherError("--launcher slurm: sbatch is not on PATH (no SLURM client on this "
                            "machine); run on a cluster's login node, or use --launcher local "
                            "or launcher.cluster=local")
    cmd = ["sbatch", "--test-only", f"--time={launcher.timeout_min}",
           f"--cpus-per-task={launcher.cpus_per_task}",
           f"--mem={max(1, round(launcher.mem_gb * 1024))}M", "--wrap=true", "--output=/dev/null"]
    if launcher.partition:
        cmd.append(f"--partition={launcher.partition}")
    if launcher.account:
        cmd.append(f"--account={launcher.account}")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise LauncherError("--launcher slurm: sbatch did not answer within 120 s (is the SLURM "
                            "controller up? `sinfo` tells)") from None
    if out.returncode != 0:
        raise sbatch_error(out.stderr, launcher)


def sbatch_error(text: str, launcher: LauncherConfig) -> UserError:
    """The one line for sbatch's refusal `text`, naming the launcher setting it concerns."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    said = next((ln for ln in lines if "error" in ln.lower() or "failure" in ln.lower()),
                lines[0] if lines else "no message")
    low = " ".join(lines).lower()
    if "account" in low:
        return ConfigError(f"launcher.account: SLURM refused {launcher.account!r} ({said})")
    if "partition" in low:
        return ConfigError(f"launcher.partition: SLURM has no usable partition "
                           f"{launcher.partition!r} ({said}); `sinfo -s` lists them")
    if "time limit" in low:
        return ConfigError(f"launcher.timeout_min: SLURM refused {launcher.timeout_min} "
                           f"minutes ({said})")
    if "node configuration" in low or "memory" in low or "cpu" in low:
        cpus, mem = _largest_node()
        largest = f"; the largest node has {cpus} CPUs and {mem:g} GB" if cpus else ""
        return ConfigError(f"launcher.cpus_per_task={launcher.cpus_per_task} / launcher.mem_gb="
                           f"{launcher.mem_gb:g}: no node of the partition has that many CPUs "
                           f"and that much memory ({said}){largest}")
    if "contact" in low or "connect" in low or "controller" in low:
        return LauncherError(f"--launcher slurm: the SLURM controller cannot be reached "
                             f"({said}); `sinfo` tells whether it is up")
    return LauncherError(f"--launcher slurm: sbatch refused the job array ({said})")


def _largest_node() -> tuple[int, float]:
    """(CPUs, memory in GB) of the largest node sinfo lists, (0, 0) if it cannot tell."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True,
                             text=True, timeout=30).stdout
        nodes = [(int(c), float(m.rstrip("+")) / 1024) for c, m in
                 (ln.split()[:2] for ln in out.splitlines() if len(ln.split()) >= 2)]
        return max(nodes) if nodes else (0, 0.0)
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0, 0.0


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
            _run_submitit(jobs, launcher, sweep_dir, fn, done, on_notice)
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
    from dataclasses import replace

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


def _executor(launcher: LauncherConfig, sweep_dir: Path) -> Any:
    import submitit

    ex = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster=launcher.cluster,
                               slurm_python=f"{shlex.quote(sys.executable)} -P")
    params: dict[str, Any] = dict(
        name=f"snndelay-{sweep_dir.name}", timeout_min=launcher.timeout_min,
        cpus_per_task=launcher.cpus_per_task, mem_gb=launcher.mem_gb,
        slurm_array_parallelism=launcher.array_parallelism,
        slurm_signal_delay_s=launcher.signal_delay_s,
        # the environment may not be exported to the task (--export=NONE clusters)
        slurm_setup=["export PYTHONSAFEPATH=1"])
    if launcher.partition:
        params["slurm_partition"] = launcher.partition
    if launcher.account:
        params["slurm_account"] = launcher.account
    if launcher.cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    return ex


def _run_submitit(jobs: list["Job"], launcher: LauncherConfig, sweep_dir: Path, fn: JobFn,
                  done: RowFn, on_notice: Callable[[str], None]) -> None:
    if not jobs:
        return
    ex = _executor(launcher, sweep_dir)
    runner = JobRunner(fn, requeue=on_slurm(launcher), max_requeues=launcher.max_requeues)
    stderr = io.StringIO()  # submitit prints sbatch's stderr itself; it becomes our one line
    try:
        with _safe_path(), contextlib.redirect_stderr(stderr):
            submitted = ex.map_array(runner, jobs)
    except Exception as exc:  # noqa: BLE001 - sbatch refused (submitit wraps its stderr)
        raise sbatch_error(f"{stderr.getvalue()}\n{exc}", launcher) from None
    slurm = on_slurm(launcher)
    if slurm:
        from snndelay.app.rundir import atomic_write_text

        ids = sorted({str(sj.job_id).split("_")[0] for sj in submitted})
        atomic_write_text(sweep_dir / ACTIVE, json.dumps({"job_ids": ids}) + "\n")
    try:
        if slurm:
            _wait_slurm(list(zip(submitted, jobs)), done, on_notice)
        else:
            import submitit

            by_id = {id(s): j for s, j in zip(submitted, jobs)}
            for sj in submitit.helpers.as_completed(submitted):
                done(_result_row(sj, by_id[id(sj)], ended=None))
    except BaseException:  # stopped: cancel what is still queued or running
        _cancel([sj for sj in submitted if not sj.done()], slurm)
        raise


# Final states squeue shows (with --states=all, until the controller forgets the job); a
# requeued task passes through PENDING / REQUEUED instead.
_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
          "OUT_OF_MEMORY", "TIMEOUT"}
# Pending reasons that need no attention (a task waits its turn).
_ORDINARY = {"None", "Priority", "Resources", "BeginTime", "JobArrayTaskLimit", "Dependency"}


def _wait_slurm(pairs: list[tuple[Any, "Job"]], done: RowFn, on_notice: Callable[[str], None],
                poll_s: float = 1.0, queue_every_s: float = 5.0) -> None:
    """Wait for the array's tasks: a task is done when its result file appears, or when squeue
    shows it in a final state or no longer lists it (twice, `queue_every_s` apart) without
    one: SLURM ended it (works without accounting, where submitit's sacct-based watcher would
    wait forever)."""
    left = dict(enumerate(pairs))
    missing: dict[int, int] = {}
    said: set[str] = set()
    last_queue = 0.0
    while left:
        for k, (sj, job) in list(left.items()):
            if sj.paths.result_pickle.exists():
                done(_result_row(sj, job, ended=None))
                del left[k]
        if left and time.monotonic() - last_queue >= queue_every_s:
            last_queue = time.monotonic()
            ids = sorted({str(sj.job_id).split("_")[0] for sj, _ in left.values()})
            listed = _squeue(ids)
            if listed is not None:
                for k, (sj, job) in list(left.items()):
                    entry = listed.get(str(sj.job_id))
                    ended = entry is None or entry[0] in _ENDED
                    if ended and not sj.paths.result_pickle.exists():
                        missing[k] = missing.get(k, 0) + 1
                        if missing[k] >= 2:
                            state = entry[0] if entry is not None else _final_state(sj)
                            done(_result_row(sj, job, ended=state))
                            del left[k]
                        continue
                    missing.pop(k, None)
                    if entry and entry[0] == "PENDING" and entry[1] not in _ORDINARY \
                            and entry[1] not in said:
                        said.add(entry[1])
                        on_notice(f"SLURM job {sj.job_id} is pending: {entry[1]} "
                                  f"(squeue -j {sj.job_id}; it may never start)")
        if left:
            time.sleep(poll_s)


def _squeue(ids: list[str]) -> Optional[dict[str, tuple[str, str]]]:
    """{task id: (state, reason)} of the listed array ids that squeue still shows; None when
    squeue cannot be asked (then nothing is concluded from it)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-j", ",".join(ids), "-o",
                              "%i|%T|%r"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:  # e.g. "Invalid job id specified" once every id has left the queue
        return {} if "invalid job id" in out.stderr.lower() else None
    listed = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            listed[parts[0]] = (parts[1], parts[2])
    return listed


_STEPD = re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+( DUE TO ([A-Z ]+?))? \*\*\*")


def _final_state(sj: Any) -> str:
    """SLURM's final state of a task: sacct's; without accounting, what slurmstepd wrote in
    the task's log when it ended the task, or whether the task had started at all."""
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", str(sj.job_id), "-o", "State"],
                             capture_output=True, text=True, timeout=60)
        state = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError, IndexError):
        state = ""
    if state:
        return state
    log = sj.stderr() or ""
    ends = [end for end in _STEPD.findall(log) if end[1] != "JOB REQUEUE"]
    if ends:
        return {"TIME LIMIT": "TIMEOUT", "": "CANCELLED"}.get(ends[-1][1], ends[-1][1])
    return ("killed while running" if log else "gone before it started") + \
        "; no accounting (sacct) to say more"


def _result_row(sj: Any, job: "Job", ended: Optional[str]) -> SweepRow:
    """The job's row from its result file, or a failed row (with error.txt in the run
    directory) for a task that failed outside the job function or that SLURM ended."""
    from snndelay.app.rundir import atomic_write_text
    from snndelay.app.sweep import job_row

    if ended is None:
        try:
            row = sj.result()
            if isinstance(row, SweepRow):
                return row
            detail = f"the job returned {type(row).__name__}, not a row"
        except Exception as exc:  # noqa: BLE001 - failed in submitit or before the job ran
            detail = str(exc)
        log = detail
        lines = [ln for ln in detail.strip().splitlines() if ln.strip()]
        error = f"SLURM job {sj.job_id} failed: {lines[-1].strip() if lines else 'no message'}"
    else:
        error = (f"SLURM job {sj.job_id} ended ({ended}) before it finished: cancelled, past "
                 f"its time limit, out of memory or its node failed; its log: {sj.paths.stderr}")
        log = sj.stderr() or ""
    row = replace(job_row(job), status=FAILED, error=error)
    err = Path(job.run_dir) / "error.txt"
    try:
        err.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(err, f"{error}\n\n{log[-20_000:]}\n")
    except OSError:
        pass
    return row


def _cancel(jobs: list[Any], slurm: bool) -> None:
    """Cancel submitted tasks: the whole array with one scancel on SLURM."""
    if slurm:
        ids = sorted({str(sj.job_id).split("_")[0] for sj in jobs})
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
        return
    for sj in jobs:
        sj.cancel(check=False)
