"""Where a run's arrays live: numpy arrays into the engine's compiled CPU loops (the default),
or torch tensors on a device (a GPU, or the CPU) through the engine's vectorised torch path.

The network, the readouts, the losses and the trainer are written once over either array type
(the array API namespace of their inputs, array_api_compat): a Placement says which one a run
uses, moves data there once and brings results back. On a device the whole training step
stays there; only per-batch scalars (the loss guard, weight bumping's silent fractions) and
the epoch's metrics come back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from array_api_compat import array_namespace

from snndelay.engine import _impl
from snndelay.errors import ConfigError

# Bytes of work memory per element of the torch path's [C, M, N] chunk tensors (the solver's
# and the backward's live float64 temporaries: a forward and backward of shd_ms's hidden layer
# peaked at 184-186 bytes per element, measured by peak RSS on the CPU).
WORK_BYTES_PER_ELEM = 192
# Of a GPU's free memory, the share its chunks may take (the rest: data, caches, the allocator).
GPU_MEMORY_SHARE = 0.5


namespace = array_namespace  # (arrays) -> their array API namespace: numpy's or torch's


@dataclass(frozen=True)
class Placement:
    """device None: numpy arrays, compiled loops where the kernel has them (today's path);
    else torch tensors on `device`, the torch path. chunk_elems: the torch path's work-tensor
    elements per chunk (None: the engine's default)."""

    device: torch.device | None = None
    chunk_elems: int | None = None

    @property
    def tensors(self) -> bool:
        return self.device is not None

    def arrays(self, x: Any) -> Any:
        """x (a tensor or array) as this placement's array type, float64 kept as it is."""
        if self.device is None:
            return self.host(x)
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
        return t.detach().to(self.device)

    @staticmethod
    def host(x: Any) -> np.ndarray:
        """x as a numpy array on the host (a copy from the device where it is not there)."""
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    def param(self, p: torch.Tensor) -> Any:
        """A parameter's current value as the engine reads it (numpy views on the CPU path)."""
        return p.detach() if self.tensors else p.detach().numpy()

    def grad(self, g: Any, like: torch.Tensor) -> torch.Tensor:
        """A gradient as a tensor for `like`'s .grad."""
        if isinstance(g, torch.Tensor):
            return g.contiguous().to(like.device)
        return torch.from_numpy(np.ascontiguousarray(g))

    def engine(self) -> AbstractContextManager[None]:
        """The engine settings of this placement for a block of calls (the torch path for
        tensors, also on the CPU, where the compiled loops would otherwise take CPU tensors)."""
        return _impl.using("torch" if self.tensors else None, self.chunk_elems)


NUMPY = Placement()


def resolve_device(name: str) -> torch.device:
    """training.device as a torch device: cpu, cuda (ConfigError when no GPU is visible) or
    auto (cuda when visible, else cpu)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device=cuda: no CUDA GPU is visible to torch here "
                          f"(torch {torch.__version__}, "
                          f"{'CPU-only build' if torch.version.cuda is None else 'CUDA build'}); "
                          "use training.device=cpu or training.device=auto")
    return torch.device(name)


def placement_for(device: str, compiled: bool, max_memory_gb: float | None) -> Placement:
    """The placement of a run's training options: the compiled numpy path for cpu with
    compiled loops, else tensors on the device with chunks sized to max_memory_gb (default:
    the engine's cache-sized chunks on the CPU, GPU_MEMORY_SHARE of a GPU's free memory)."""
    dev = resolve_device(device)
    if dev.type == "cpu" and compiled:
        return NUMPY
    budget = None if max_memory_gb is None else max_memory_gb * 1e9
    if budget is None and dev.type == "cuda":
        budget = torch.cuda.mem_get_info(dev)[0] * GPU_MEMORY_SHARE
    return Placement(dev, None if budget is None else max(1, int(budget / WORK_BYTES_PER_ELEM)))
