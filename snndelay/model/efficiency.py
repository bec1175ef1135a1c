"""Efficiency figures that neuromorphic users compare, as NeuroBench defines them: activity
(spikes per sample, per layer: the inputs first, then every spiking layer), synaptic events
(effective accumulate operations: every presynaptic spike, the bias spike included, reaching
each of its layer's targets; a membrane readout processes the last hidden layer's spikes too)
and the parameter footprint (bytes of the trained tensors)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace


@dataclass
class Efficiency:
    spikes_per_sample: list[float] = field(default_factory=list)  # inputs, then layers
    synaptic_events_per_sample: float = 0.0
    footprint_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Efficiency:
        return cls([float(v) for v in raw.get("spikes_per_sample", [])],
                   float(raw.get("synaptic_events_per_sample", 0.0)),
                   int(raw.get("footprint_bytes", 0)))


def _finite(t: Any) -> Any:
    """The number of spikes (finite times) in t, numpy or torch."""
    return array_namespace(t).isfinite(t).sum()


def count_events(t_in: np.ndarray, times: list[np.ndarray], fan_in_rows: list[int],
                 fan_out: list[int]) -> tuple[list[float], float]:
    """(spike counts per layer, inputs first; synaptic events) of one batch. Layer k reads
    the spikes of layer k-1 (the inputs for k = 0) plus its bias rows (fan_in_rows[k] minus
    that layer's width, one spike each) and sends each to its fan_out[k] targets."""
    layers = [t_in, *times]
    spikes = [float(_finite(t)) for t in layers]
    n = t_in.shape[0]
    events = 0.0
    for k, (rows, out) in enumerate(zip(fan_in_rows, fan_out)):
        bias = rows - layers[k].shape[1]
        events += (spikes[k] + bias * n) * out
    return spikes, events
