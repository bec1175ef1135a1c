"""The exact-gradient engine: pure functions over float64 tensors, no I/O.

first_spike_times     forward (closed form on sorted prefix sums) + exact spike-time backward
spike_trains          the same for neurons that fire repeatedly (reset by subtraction)
spike_times_with_grad given (e.g. measured) spike times, attach the same exact gradients
layer_forward         the same on a typed LayerParams (numpy or torch, no autograd), with
layer_backward        its hand-chained backward: what networks and backends use
arrivals              the one arrival preparation (bias, scaling, delays, multi-spike inputs)
voltage_readout       non-spiking integrators read out by their membrane's max or mean
readout_forward       the same on a LayerParams, with readout_backward (section 12)
spike_time_grads      the backward itself as a plain function (tau_s units)
set_implementation    CPU loops: "auto" (numba when installed), "torch" or "numba"
using                 the same, and the torch path's chunk size, for a block of calls
lambertw0             principal-branch Lambert W in torch

Names load on first use, so that the light parts (engine.types: DelayKind, LayerParams) can
be imported by the configuration checks without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DELAY_TYPES": "types", "DelayKind": "types", "LayerParams": "types", "Neuron": "types",
    "Arrivals": "prepare", "arrivals": "prepare",
    "LayerCache": "layer", "first_spike_times": "layer", "layer_backward": "layer",
    "layer_forward": "layer", "solve_arrivals": "layer", "spike_times_with_grad": "layer",
    "spike_trains": "layer", "solve_spike_trains": "solver",
    "get_implementation": "_impl", "set_implementation": "_impl", "using": "_impl",
    "chunk_elems": "_impl",
    "spike_time_grads": "backward", "KERNELS": "kernels", "Kernel": "kernels",
    "kernel_for": "kernels", "voltage_readout": "readout", "readout_forward": "readout",
    "readout_backward": "readout", "ReadoutCache": "readout", "READOUT_MODES": "readout", "lambertw0": "lambertw", "solve_first_spikes": "solver",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"snndelay.engine.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'snndelay.engine' has no attribute {name!r}")


__all__ = sorted(_WHERE)
