"""Typed layer description shared by the engine, the network, the backends and deploy.

A layer is its weights, one delay kind with its delays, an optional bias spike and the neuron
constants (docs/model.md sections 1 and 3). Arrays are numpy arrays or torch tensors; the
engine's functions accept either and return the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

# tau_mem / tau_syn of the PSP kernels with closed-form spike times (engine/kernels.py, which
# checks that KERNELS has exactly these): light, for the configuration checks.
KERNEL_RATIOS = (1.0, 2.0)


class DelayKind(str, Enum):
    """Where a layer's delays sit (docs/model.md section 3); the value is the config string."""

    NONE = "none"
    AXONAL = "axonal"  # one per sending neuron: delays [N_in]
    DENDRITIC = "dendritic"  # one per receiving neuron: delays [N_out]
    SYNAPTIC = "synaptic"  # one per synapse: delays [N_in, N_out]

    def __str__(self) -> str:
        return self.value

    def broadcast_shape(self, n_in: int, n_out: int) -> tuple[int, int] | None:
        """The shape of this kind's delays as first_spike_times takes them (broadcastable to
        [N_in, N_out]); None for NONE."""
        return {DelayKind.NONE: None, DelayKind.AXONAL: (n_in, 1),
                DelayKind.DENDRITIC: (1, n_out), DelayKind.SYNAPTIC: (n_in, n_out)}[self]


DELAY_TYPES = tuple(k.value for k in DelayKind)


@dataclass(frozen=True)
class Neuron:
    """LIF constants: membrane and synaptic time constants (their ratio must be 1 or 2 for the
    closed forms, docs/model.md section 2), the firing threshold, and how many spikes a neuron
    may emit: 1 = time-to-first-spike (the layer's output is [B, N_out]); K > 1 = a spike
    train [B, N_out, K] with a reset by subtraction of theta after each spike (section 11)."""

    tau_mem: float = 2.0
    tau_syn: float = 1.0
    threshold: float = 1.0
    max_spikes: int = 1

    @property
    def ratio(self) -> float:
        return self.tau_mem / self.tau_syn


@dataclass(frozen=True)
class LayerParams:
    """One layer as the engine sees it, in model units (times in units of neuron.tau_syn's
    time unit, like the input spike times).

    weights [N_rows, N_out], where N_rows = N_in (+1 for the bias spike's row, last);
    delays in the kind's shape: axonal [N_rows], dendritic [N_out], synaptic [N_rows, N_out],
    None for DelayKind.NONE; bias_time: the time of one extra input spike per sample (None:
    no bias)."""

    weights: Any
    kind: DelayKind = DelayKind.NONE
    delays: Any = None
    bias_time: float | None = None
    neuron: Neuron = Neuron()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DelayKind(self.kind))
        if (self.kind is DelayKind.NONE) != (self.delays is None):
            raise ValueError(f"{self.kind.value} delays: "
                             + ("give no delay values" if self.kind is DelayKind.NONE
                                else "need their values, got None"))

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[1])
