"""Which implementation runs the engine on CPU tensors: compiled numba loops when numba is
installed ("auto", the default), or the vectorised torch code that also serves every other
device. Both compute the same formulas; the tests run both."""

from __future__ import annotations

import torch

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


def use_numba(t: torch.Tensor, ratio: float) -> bool:
    """True when this call should run the compiled CPU loops."""
    return (_choice != "torch" and HAVE_NUMBA and t.device.type == "cpu"
            and ratio in (1.0, 2.0))


def numba_threads(batch: int) -> int:
    """Chunks for the forward loops: one per thread (no sum across samples, so the result
    does not depend on the split)."""
    return max(1, min(batch, numba.get_num_threads()))


# The backward sums per-chunk gradient accumulators: a fixed number of chunks (independent of
# the thread count) keeps the summation order, so a run gives bit-identical gradients on any
# number of threads. 8 balances over 1, 2, 4 or 8 threads.
BACKWARD_CHUNKS = 8


def backward_chunks(batch: int) -> int:
    return max(1, min(batch, BACKWARD_CHUNKS))
