"""Backends produce spike times; the engine turns spike times into gradients.

A backend's run(net, t_in) returns the first spike time of every neuron of every layer
(measured, for hardware). Training evaluates the engine's spike-time backward at those times
with the parameters the backend realised (straight-through, docs/model.md sections 4 and 8), so the
simulator, the BrainScaleS-2 emulator and the chip share one training loop.
"""

from __future__ import annotations

from snndelay.backends.base import Backend, BackendRun, SimulatorBackend
from snndelay.engine.types import LayerParams
from snndelay.errors import BackendUnavailable

BACKENDS = ("simulator", "bss2_emulator", "bss2")


def ensure_available(name: str) -> None:
    """Raise BackendUnavailable at once (before any work) when the backend cannot run here."""
    if name == "bss2":
        from snndelay.backends.bss2.chip import _import_pynn

        _import_pynn()


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name` (imported on first use); its capabilities are class
    attributes (Backend.calibrates, Backend.seeded_chip)."""
    if name == "simulator":
        return SimulatorBackend
    if name == "bss2_emulator":
        from snndelay.backends.bss2.emulator import BSS2Emulator

        return BSS2Emulator
    if name == "bss2":
        from snndelay.backends.bss2.chip import BSS2Chip

        return BSS2Chip
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")


def make_backend(cfg, *, seed: int = 0, bundle: list[LayerParams] | None = None) -> Backend:
    """The configured backend (cfg.backend); seed drives its trial-to-trial noise. bundle: the
    layers of a deploy bundle (bss2_mapping.bundle_params), which a hardware backend runs
    instead of quantising the network."""
    return backend_class(cfg.backend.name).from_config(cfg, seed=seed, bundle=bundle)


__all__ = ["BACKENDS", "Backend", "BackendRun", "backend_class", "BackendUnavailable", "SimulatorBackend", "ensure_available",
           "make_backend"]
