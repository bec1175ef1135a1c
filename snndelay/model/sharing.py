"""Delay kinds and delay sharing (docs/model.md section 3): the one home of how shared delays
map to the neurons that use them, for the network, the deploy bundle, the chip mapping and the
config check.

A layer's delays are axonal (one per presynaptic row, incl. the bias row), dendritic (one per
postsynaptic neuron) or synaptic (one per synapse). With group size g > 1 an axonal
(dendritic) delay is shared by g rows (neurons):
- "consecutive": neurons i g .. i g + g - 1 share delay i (ceil(N / g) delays);
- "strided": neuron i takes delay i mod (N / g) (N must be a multiple of g); the layout of the
  published hardware configurations, where the g copies of an input sit next to each other
  and each sees a different delay.
On the chip an axonal delay is a delay circuit pair: a consecutive group's rows are copies of
one source and share one pair; a strided group's rows are different sources, one pair each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from snndelay.engine.types import DELAY_TYPES, DelayKind


def _is_tensor(x: Any) -> bool:
    """A torch tensor (told without importing torch: this module serves the config checks)."""
    return type(x).__module__.split(".")[0] == "torch"

CONSECUTIVE, STRIDED = "consecutive", "strided"
GROUP_LAYOUTS = (CONSECUTIVE, STRIDED)


@dataclass(frozen=True)
class DelaySharing:
    """How the delays of one connection [rows = N_in (+ bias), cols = N_out] are shared. A
    group size on a synaptic (or no) delay shares nothing (the config refuses it)."""

    kind: DelayKind
    rows: int
    cols: int
    group: int = 1
    layout: str = CONSECUTIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DelayKind(self.kind))
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why this sharing cannot exist (None when it can)."""
        if self.layout not in GROUP_LAYOUTS:
            return f"the group layout must be one of {', '.join(GROUP_LAYOUTS)}, got {self.layout!r}"
        if self.group < 1:
            return f"the group size must be >= 1, got {self.group}"
        if self.strided and self.neurons % self.group:
            return (f"strided groups need the {self.neurons} delayed neurons (inputs incl. bias "
                    "for axonal, outputs for dendritic) to be a multiple of the group size "
                    f"{self.group}")
        return None

    @property
    def shared(self) -> bool:
        return self.group > 1 and self.kind in (DelayKind.AXONAL, DelayKind.DENDRITIC)

    @property
    def strided(self) -> bool:
        return self.shared and self.layout == STRIDED

    @property
    def neurons(self) -> int:
        """The neurons whose delays are shared: rows (axonal) or columns (dendritic)."""
        return self.rows if self.kind is DelayKind.AXONAL else self.cols

    @property
    def distinct(self) -> int:
        """Trainable delays: ceil(N / g) for a shared kind, rows x cols synaptic, 0 none."""
        if self.kind is DelayKind.NONE:
            return 0
        if self.kind is DelayKind.SYNAPTIC:
            return self.rows * self.cols
        return math.ceil(self.neurons / self.group)

    @property
    def raw_shape(self) -> tuple[int, int]:
        """The trainable parameter's shape: [distinct, 1] axonal, [1, distinct] dendritic,
        [rows, cols] synaptic."""
        if self.kind is DelayKind.AXONAL:
            return (self.distinct, 1)
        if self.kind is DelayKind.DENDRITIC:
            return (1, self.distinct)
        return (self.rows, self.cols)

    @property
    def rows_per_circuit(self) -> int:
        """Rows that share one delay circuit pair on the chip (axonal): a consecutive group's g,
        one for a strided group (its members are different sources)."""
        return 1 if self.strided else self.group

    @property
    def circuits(self) -> int:
        """Delay circuit pairs an axonal layer needs on the chip (0 for other kinds)."""
        if self.kind is not DelayKind.AXONAL:
            return 0
        return math.ceil(self.rows / self.rows_per_circuit)

    def expand(self, distinct: Any) -> Any:
        """Per-neuron delays [N] from the distinct ones (flattened); synaptic: [rows, cols].
        numpy (or anything array-like) in, numpy out; a torch tensor in, a tensor out."""
        d = distinct if _is_tensor(distinct) else np.asarray(distinct)
        if self.kind is DelayKind.SYNAPTIC:
            return d.reshape(self.rows, self.cols)
        d = d.reshape(-1)
        if not self.shared:
            return d
        # neuron n takes distinct delay n mod distinct (strided) or n // group (consecutive)
        n = np.arange(self.neurons)
        idx = n % self.distinct if self.strided else n // self.group
        if _is_tensor(d):
            import torch

            return d[torch.from_numpy(idx).to(d.device)]
        return d[idx]

    def reduce(self, per_neuron: Any) -> Any:
        """The adjoint of expand: a gradient per neuron summed into one per distinct delay, in
        raw_shape (numpy, or a tensor for a tensor)."""
        g = per_neuron if _is_tensor(per_neuron) else np.asarray(per_neuron)
        if self.strided:
            g = g.reshape(self.group, self.distinct).sum(0)
        elif self.shared:
            size = self.distinct * self.group
            flat: Any = g.reshape(-1)
            padded = flat.new_zeros(size) if _is_tensor(g) else np.zeros(size)
            padded[: flat.shape[0]] = flat
            g = padded.reshape(self.distinct, self.group).sum(1)
        return g.reshape(self.raw_shape)

    def circuit_values(self, distinct: np.ndarray) -> np.ndarray:
        """One delay per delay circuit pair (axonal): the distinct delays of a consecutive
        layout, one per row for a strided one."""
        return self.expand(distinct).reshape(-1) if self.strided else np.asarray(distinct).reshape(-1)

    def from_circuits(self, per_circuit: np.ndarray) -> np.ndarray:
        """Per-row delays from one value per delay circuit pair (a deploy bundle)."""
        return np.repeat(np.asarray(per_circuit).reshape(-1), self.rows_per_circuit)[: self.rows]


@dataclass(frozen=True)
class DelaySpec:
    """How one layer's delays are parametrised. d = shift + scale * sigmoid(p) ("sigmoid") or
    d = p kept >= shift by clamping after each step ("clamp"); p ~ N(init_mean, init_std) and,
    for "clamp", starts at shift + scale * sigmoid(p). group_size and group_layout: shared
    delays (DelaySharing)."""

    type: DelayKind = DelayKind.NONE
    positivity: str = "sigmoid"
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25
    group_size: int = 1
    group_layout: str = CONSECUTIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", DelayKind(self.type))

    def sharing(self, rows: int, cols: int) -> DelaySharing:
        """This spec's sharing on a connection of rows x cols (ValueError if impossible)."""
        return DelaySharing(self.type, rows, cols, self.group_size, self.group_layout)


__all__ = ["CONSECUTIVE", "DELAY_TYPES", "DelayKind", "DelaySharing", "DelaySpec", "GROUP_LAYOUTS",
           "STRIDED"]
