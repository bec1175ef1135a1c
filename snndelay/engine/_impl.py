"""Which implementation runs the engine on CPU tensors: compiled numba loops when numba is
installed ("auto", the default), or the vectorised torch code that also serves every other
device. Both compute the same formulas; the tests run both."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

try:  # a numba that is missing or does not match the installed numpy means: torch only
    import numba  # noqa: F401

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - depends on the environment
    HAVE_NUMBA = False
IMPLEMENTATIONS = ("auto", "torch", "numba")
_choice = "auto"


def set_implementation(name: str) -> None:
    """Choose "auto" (numba on CPU when installed), "torch" or "numba" for CPU tensors."""
    global _choice
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, got {name!r}")
    if name == "numba" and not HAVE_NUMBA:
        raise ValueError("implementation 'numba' needs the numba package (pip install numba)")
    _choice = name


def get_implementation() -> str:
    return _choice


# Elements of a [C, M, N] work tensor per chunk of the torch path (solver, backward, readout):
# a few MB keeps the elementwise passes in a CPU's cache; a GPU wants chunks as large as its
# memory allows (using(), with a size from training.max_memory_gb or the device's free memory).
CHUNK_ELEMS = 1 << 18
_chunk_elems = CHUNK_ELEMS


def chunk_elems() -> int:
    """The torch path's work-tensor elements per chunk (results do not depend on it)."""
    return _chunk_elems


@contextmanager
def using(implementation: str | None = None, elems: int | None = None) -> Iterator[None]:
    """Run the engine with this implementation ("auto", "torch", "numba") and this many
    work-tensor elements per chunk for the enclosed calls (None: keep the current one)."""
    global _choice, _chunk_elems
    before = _choice, _chunk_elems
    if implementation is not None:
        set_implementation(implementation)
    if elems is not None:
        _chunk_elems = max(1, int(elems))
    try:
        yield
    finally:
        _choice, _chunk_elems = before


# Below this much work per call (samples x arrivals x receiving neurons; about 25 ms on one
# core) the compiled loops run on one thread while other processes compete for the CPUs. On an
# idle machine two threads save even on Yin-Yang's small layers (1.65x on a 150 x 4 -> 30
# layer), but next to busy processes a parallel region waits for its slowest thread, and a
# descheduled thread costs a whole scheduler slice: a Yin-Yang epoch (calls of about 1 ms) ran
# 3x slower next to one busy process and 8x next to two. snndelay.app.threads.CpuMonitor tells
# which case holds and sets the limit (measured: scripts/bench_contention.py, docs/results.md).
PARALLEL_MIN_WORK = 1_000_000
_parallel_min_work = PARALLEL_MIN_WORK


def set_parallel_min_work(work: int) -> None:
    """Work per call from which the compiled loops use every configured thread (0: always;
    PARALLEL_MIN_WORK, the default: only large layers)."""
    global _parallel_min_work
    _parallel_min_work = max(0, int(work))


@contextmanager
def threads_for(work: int) -> Iterator[int]:
    """Run the compiled loops of one call on as many threads as its work pays for: one below
    the current limit (set_parallel_min_work), else numba's configured count. Yields that count (the chunks of the
    forward loops; no sum runs across samples there, so results do not depend on it)."""
    n = numba.get_num_threads()
    if n == 1 or work >= _parallel_min_work:
        yield n
        return
    numba.set_num_threads(1)
    try:
        yield 1
    finally:
        numba.set_num_threads(n)


# The backward sums per-chunk gradient accumulators: a fixed number of chunks (independent of
# the thread count) keeps the summation order, so a run gives bit-identical gradients on any
# number of threads. 8 balances over 1, 2, 4 or 8 threads.
BACKWARD_CHUNKS = 8


def backward_chunks(batch: int) -> int:
    return max(1, min(batch, BACKWARD_CHUNKS))
