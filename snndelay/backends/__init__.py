"""Backends produce spike times; the engine turns spike times into gradients.

A backend's run(net, t_in) returns the first spike time of every neuron of every layer
(measured, for hardware). Training evaluates the engine's spike-time backward at those times
with the parameters the backend realised (straight-through, docs/model.md sections 4 and 8), so the
simulator, the BrainScaleS-2 emulator and the chip share one training loop.

Each backend owns its config schema and its rules (base.Backend); the list of backends is the
registry (base.REGISTRY), filled by the classes themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The built-in backends register themselves on import.
import snndelay.backends.bss2.chip  # noqa: F401
import snndelay.backends.bss2.emulator  # noqa: F401
import snndelay.backends.pynn  # noqa: F401
from snndelay.backends.base import (
    REGISTRY,
    Backend,
    BackendConfig,
    BackendRun,
    SimulatorBackend,
    register,
)
from snndelay.engine.types import LayerParams
from snndelay.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from snndelay.spec import RunSpec


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name`; its capabilities are class attributes."""
    if name not in REGISTRY:
        raise ConfigError(f"backend: no backend {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def schemas() -> dict[str, type[BackendConfig]]:
    """Each backend's config schema, by name (the backend config group's options)."""
    return {name: cls.Config for name, cls in REGISTRY.items()}


def deploy_targets() -> tuple[str, ...]:
    return tuple(name for name, cls in REGISTRY.items() if cls.deploys)


def default_deploy_target() -> str:
    return next(name for name, cls in REGISTRY.items() if cls.default_target)


def deploy_target(name: str | None) -> type[Backend]:
    """The class of the deploy target `name` (None: the default target); ConfigError naming
    the targets for a backend that does not deploy."""
    name = name or default_deploy_target()
    if name not in REGISTRY or not REGISTRY[name].deploys:
        raise ConfigError(f"--backend must be one of {', '.join(deploy_targets())}, "
                          f"got {name!r}")
    return REGISTRY[name]


def make_backend(spec: RunSpec, *, seed: int = 0, bundle: list[LayerParams] | None = None
                 ) -> Backend:
    """The configured backend (spec.backend); seed drives its trial-to-trial noise. bundle: the
    layers of a deploy bundle (bss2.bundle.bundle_params), which a hardware backend runs
    instead of quantising the network."""
    return backend_class(spec.backend.name).from_spec(spec, seed=seed, bundle=bundle)


__all__ = ["Backend", "BackendConfig", "BackendRun", "BackendUnavailable", "REGISTRY",
           "SimulatorBackend", "backend_class", "default_deploy_target", "deploy_target",
           "deploy_targets",
           "make_backend", "register", "schemas"]
