"""Thread use that fits the machine: the CPU count a process may use, and the contention
monitor that keeps small layers on one thread while other processes compete."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from snndelay.app import threads
from snndelay.engine import _impl


def test_available_cpus_respects_the_environment_limits(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    free = threads.available_cpus()
    assert 1 <= free <= (len(__import__("os").sched_getaffinity(0)))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.available_cpus() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # ignored, not a crash
    assert threads.available_cpus() == free


def test_a_busy_process_is_seen_and_small_layers_go_single_threaded(monkeypatch):
    monkeypatch.setattr(_impl, "_parallel_min_work", 0)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        mon = threads.CpuMonitor(window_s=0.4)
        time.sleep(0.6)
        busy = mon.others_busy_cores()
        assert busy is not None and busy >= 0.5, busy
        mon._last = None  # a window without a measurement keeps the last verdict
        assert mon.adapt() is True
        assert _impl._parallel_min_work == _impl.PARALLEL_MIN_WORK
    finally:
        spinner.kill()
        spinner.wait()


def test_an_idle_verdict_lets_every_layer_use_all_threads(monkeypatch):
    mon = threads.CpuMonitor(window_s=0.0)
    monkeypatch.setattr(mon, "others_busy_cores", lambda: 0.0)
    assert mon.adapt() is False and _impl._parallel_min_work == 0
    monkeypatch.setattr(mon, "others_busy_cores", lambda: 1.0)
    assert mon.adapt() is True and _impl._parallel_min_work == _impl.PARALLEL_MIN_WORK


@pytest.mark.parametrize("value", ["-1", "2000", "1.5"])
def test_training_threads_is_checked(value):
    from snndelay.config import compose
    from snndelay.errors import ConfigError

    with pytest.raises(ConfigError, match="training.threads"):
        compose([f"training.threads={value}"])
