"""The scheduler's side of a launcher (snndelay.app.launchers): sbatch's refusals found before
anything is submitted, jobs of an earlier sweep still queued or running, the submitit job array,
waiting for its tasks (without SLURM accounting), and the row of a task SLURM ended."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from snndelay.app.tables import FAILED, SweepRow
from snndelay.errors import ConfigError, LauncherError, RunDirError, UserError

if TYPE_CHECKING:
    from snndelay.app.jobs import Job

from snndelay.app.jobrunner import JOBS_LOCK, JobFn, JobRunner
from snndelay.app.launchers import ACTIVE, LauncherConfig, RowFn, _safe_path, on_slurm


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


def run_submitit(jobs: list["Job"], launcher: LauncherConfig, sweep_dir: Path, fn: JobFn,
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

