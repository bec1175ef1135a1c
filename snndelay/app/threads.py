"""How many threads a run uses, and for what.

Two thread pools live in one process: numba's (the engine's compiled loops) and torch's
intra-op pool. On a machine where other processes also run, a pool whose threads wait for each
other at every parallel region loses a whole scheduler slice whenever one of its threads is
descheduled; two pools that spin in turn make it worse. So:

- the thread count comes from the CPUs this process may really use (its affinity mask, a
  cgroup CPU quota, OMP_NUM_THREADS / NUMBA_NUM_THREADS when set), or `training.threads`;
- numba gets that many threads; torch gets one thread whenever the compiled engine does the
  heavy work (training's numpy layer chain: torch only updates small parameter tensors), and the
  same count otherwise (the vectorised torch engine);
- while other processes use this process's CPUs (CpuMonitor, measured every epoch from
  /proc/stat), the engine runs a layer's loops on one thread unless the layer is large enough
  for the parallel loops to pay (snndelay.engine._impl.PARALLEL_MIN_WORK); on idle CPUs every
  layer uses all threads.

Results do not depend on the thread count (the backward sums fixed chunks in a fixed order).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 cpu.max or v1 cfs files), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """The CPUs this process may use: affinity mask, cgroup quota (rounded up), the
    OMP_NUM_THREADS / NUMBA_NUM_THREADS limits when the user set them, and in a SLURM job its
    SLURM_CPUS_PER_TASK."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    # Inside a SLURM job: the CPUs of its allocation (where the task plugin sets no affinity
    # mask, the mask still shows the whole node).
    limits = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS") + (
        ("SLURM_CPUS_PER_TASK",) if os.environ.get("SLURM_JOB_ID") else ())
    for var in limits:
        try:
            n = min(n, int(os.environ[var]))
        except (KeyError, ValueError):
            pass
    return max(1, n)


def configure(threads: int | None = None, *, compiled_engine: bool = True) -> int:
    """Set numba's and torch's thread counts for a run; returns the count used. threads=None
    (or 0): available_cpus(). compiled_engine: the numba loops do the heavy work, so torch
    keeps one thread."""
    import torch

    n = available_cpus() if not threads else max(1, int(threads))
    try:
        import numba

        n_numba = max(1, min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        numba.set_num_threads(n_numba)
    except ImportError:  # pragma: no cover - numba is a dependency, but optional at run time
        compiled_engine = False
    torch.set_num_threads(1 if compiled_engine else n)
    return n


class CpuMonitor:
    """Whether other processes use the CPUs this process may run on, from /proc/stat (busy
    time of those CPUs) minus this process's own CPU time, over windows of at least
    `window_s`. adapt() sets the engine's parallel work limit accordingly; where /proc/stat
    cannot be read the conservative limit stays."""

    # Other processes using at least this many cores' worth of our CPUs: contended.
    BUSY_CORES = 0.5

    def __init__(self, window_s: float = 0.5):
        self.window_s = window_s
        self.contended = True  # until measured: small layers on one thread
        self._cpus = self._allowed_cpus()
        self._last = self._sample()

    @staticmethod
    def _allowed_cpus() -> set[str]:
        try:
            return {f"cpu{i}" for i in os.sched_getaffinity(0)}
        except (AttributeError, OSError):
            return set()

    def _sample(self) -> tuple[float, float, float] | None:
        """(busy seconds of our CPUs, this process's CPU seconds, monotonic time)."""
        try:
            lines = Path("/proc/stat").read_text().splitlines()
            tick = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, AttributeError):
            return None
        busy = 0
        for line in lines:
            parts = line.split()
            if parts and parts[0] in self._cpus and len(parts) >= 9:
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, parts[1:9])
                busy += user + nice + system + irq + softirq + steal
        own = os.times()
        return busy / tick, own.user + own.system, time.monotonic()

    def others_busy_cores(self) -> float | None:
        """Cores' worth of our CPUs that other processes used since the window started; None
        while the window is shorter than window_s (or /proc/stat is unreadable)."""
        now = self._sample()
        if now is None or self._last is None:
            return None
        wall = now[2] - self._last[2]
        if wall < self.window_s:
            return None
        busy = (now[0] - self._last[0]) - (now[1] - self._last[1])
        self._last = now
        return max(0.0, busy / wall)

    def adapt(self) -> bool:
        """Measure (when a window is complete) and set the engine's parallel limit; returns
        whether the CPUs are contended."""
        from snndelay.engine import _impl

        others = self.others_busy_cores()
        if others is not None:
            self.contended = others >= self.BUSY_CORES
        _impl.set_parallel_min_work(_impl.PARALLEL_MIN_WORK if self.contended else 0)
        return self.contended


def _module_cache() -> Path:
    """numba's cache beside the compiled loops' module (where it writes when it can)."""
    import importlib.util

    spec = importlib.util.find_spec("snndelay.engine._numba_kernels")
    return Path(spec.origin).parent / "__pycache__" if spec and spec.origin else Path(os.devnull)


def kernels_cached() -> bool:
    """Whether numba has cached the engine's compiled loops (its index files beside the
    module, or under NUMBA_CACHE_DIR): if not, the first run compiles them (about a minute)."""
    roots = [_module_cache()]
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.insert(0, Path(os.environ["NUMBA_CACHE_DIR"]))
    return any(next(root.rglob("_numba_kernels.forward*.nbi"), None) is not None
               for root in roots if root.is_dir())
