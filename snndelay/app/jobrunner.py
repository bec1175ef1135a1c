"""The job's side of a launcher (snndelay.app.launchers): a job runs under a shared lock on its
sweep directory's JOBS_LOCK; SIGUSR2 (SLURM's warning before a time limit or preemption) only
asks the run to stop at the end of its epoch, and the task then requeues itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from snndelay.app.tables import FAILED, SweepRow
from snndelay.errors import UserError

if TYPE_CHECKING:
    from snndelay.app.jobs import Job

JOBS_LOCK = ".jobs.lock"  # shared-locked by every running job of a sweep directory
JobFn = Callable[["Job", Callable[[], bool]], SweepRow]  # (job, should_stop) -> row


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


