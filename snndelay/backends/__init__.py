"""Backends produce spike times; the engine turns spike times into gradients.

A backend's run(net, t_in) returns the first spike time of every neuron of every layer
(measured, for hardware). Training evaluates the engine's spike-time backward at those times
with the parameters the backend realised (straight-through, docs/model.md sections 4 and 8), so the
simulator, the BrainScaleS-2 emulator and the chip share one training loop.
"""

from __future__ import annotations

from snndelay.backends.base import Backend, SimulatorBackend
from snndelay.errors import BackendUnavailable

BACKENDS = ("simulator", "bss2_emulator", "bss2")


def ensure_available(name: str) -> None:
    """Raise BackendUnavailable at once (before any work) when the backend cannot run here."""
    if name == "bss2":
        from snndelay.backends.bss2_chip import _import_pynn

        _import_pynn()


def make_backend(cfg, *, seed: int = 0) -> Backend:
    """The configured backend (cfg.backend); seed drives its trial-to-trial noise."""
    name = cfg.backend.name
    if name == "simulator":
        return SimulatorBackend()
    if name == "bss2_emulator":
        from snndelay.backends.emulator import BSS2Emulator

        return BSS2Emulator.from_config(cfg, seed=seed)
    if name == "bss2":
        from snndelay.backends.bss2_chip import BSS2Chip

        return BSS2Chip.from_config(cfg)
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "SimulatorBackend", "ensure_available",
           "make_backend"]
