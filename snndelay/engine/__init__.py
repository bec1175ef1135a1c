"""The exact-gradient engine: pure functions over float64 tensors, no I/O.

first_spike_times     forward (closed form on sorted prefix sums) + exact spike-time backward
spike_times_with_grad given (e.g. measured) spike times, attach the same exact gradients
spike_time_grads      the backward itself as a plain function (tau_s units)
set_implementation    CPU loops: "auto" (numba when installed), "torch" or "numba"
lambertw0             principal-branch Lambert W in torch
"""

from snndelay.engine._impl import get_implementation, set_implementation
from snndelay.engine.backward import spike_time_grads
from snndelay.engine.kernels import KERNELS, Kernel, kernel_for
from snndelay.engine.lambertw import lambertw0
from snndelay.engine.layer import first_spike_times, spike_times_with_grad
from snndelay.engine.solver import solve_first_spikes

__all__ = [
    "KERNELS",
    "Kernel",
    "first_spike_times",
    "get_implementation",
    "set_implementation",
    "kernel_for",
    "lambertw0",
    "solve_first_spikes",
    "spike_time_grads",
    "spike_times_with_grad",
]
