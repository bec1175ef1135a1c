"""The backend interface, its config schema, the registry of backends, and the ideal
simulator.

A backend is a Backend subclass with a `name`, a config schema `Config` (a BackendConfig
dataclass: the keys of configs/backend/NAME.yaml, checked by its own check()), its
capabilities as class attributes, and check(spec) for what it can run. register() adds it;
every list of backends (config options, `deploy --backend`) derives from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from snndelay.engine import LayerParams

if TYPE_CHECKING:
    from snndelay.model.network import Network
    from snndelay.spec import NetworkSpec, RunSpec


@dataclass
class BackendConfig:
    """The keys every backend has; a backend's own schema extends it."""

    name: str = "simulator"

    def check(self, network: NetworkSpec) -> None:
        """Range checks of this backend's own keys (ConfigError naming the key)."""

    def repeats(self) -> int:
        """Runs of a split averaged by a final test or `evaluate` (trial noise)."""
        return 1

    def for_backend(self, schema: type[BackendConfig], **changes: Any) -> BackendConfig:
        """This config as another backend's: the keys both schemas have keep their values,
        the rest take the other schema's defaults, then `changes`."""
        other = {f.name for f in fields(schema)}
        kept = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in other and f.name != "name"}
        return schema(**{**kept, **changes})


REGISTRY: dict[str, type[Backend]] = {}
B = TypeVar("B", bound="type[Backend]")


def register(cls: B) -> B:
    """Add a backend class to the registry (by its name); returns it (a class decorator)."""
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class BackendRun:
    """What a backend returns for a batch: the first spike time of every neuron of every layer
    (times[k]: [B, N_k], tau_s units, +inf = no spike) and the layers the gradient is taken
    with: training takes the engine's backward at those times with those parameters (the
    realised ones, e.g. quantised, or the network's own float ones). nominal_threshold: None
    takes each slope u'(t*) at the measured crossing (exact for the realised network); a value
    takes it by the closed form at that threshold, as the published hardware backward does
    (docs/model.md sections 4 and 8)."""

    times: list[np.ndarray]
    params: list[LayerParams]
    nominal_threshold: float | None = None


class Backend:
    """Produces spike times for a network; holds whatever the hardware needs between batches.

    Capabilities (class attributes) say what callers may ask of it, so that no caller needs
    to know a backend by its name: `calibrates` (measure_thresholds runs the calibration
    probe), `seeded_chip` (an emulated chip identified by backend.chip_seed), `deploys` (a
    target of `snndelay deploy --hw`), `default_target` (deploy's default target),
    `runs_bundle` (a deploy runs the bundle file rather than the network)."""

    name = "backend"
    Config: ClassVar[type[BackendConfig]] = BackendConfig
    calibrates = False
    seeded_chip = False
    deploys = False
    default_target = False
    # Whether a deploy runs the BrainScaleS-2 bundle file (the chip's integers) or, False, the
    # trained network itself (a PyNN simulator realises it as it is, up to its delay grid).
    runs_bundle = True
    # Whether it runs a network placed on a device or on the torch path (training.device,
    # training.compiled=false; model/placement.py); others take numpy arrays.
    runs_tensors = False
    # Whether it runs the network's own forward, so that training.spike_dropout's masks act.
    drops_spikes = False
    # Which backward training takes at this backend's spike times (backend.backward):
    # "realised" or "nominal" (see BackendRun and result()).
    backward = "realised"
    bundle: list[LayerParams] | None = None  # a deploy bundle fixes what runs (no shadow weights)

    @property
    def stochastic(self) -> bool:
        """True where two runs of the same batch can differ (trial-to-trial noise): evaluation
        then averages several runs of a split."""
        return False

    @classmethod
    def check(cls, spec: RunSpec) -> None:
        """Refuse (ConfigError, one line) a run this backend cannot run: its own keys, then
        what it can realise of the network."""
        spec.backend.check(spec.network)

    @classmethod
    def ensure_available(cls, cfg: BackendConfig | None = None) -> None:
        """Raise BackendUnavailable at once (before any work) when it cannot run here (with
        cfg, this backend's config: e.g. the simulator it names)."""

    @classmethod
    def from_spec(cls, spec: RunSpec, *, seed: int = 0,
                  bundle: list[LayerParams] | None = None) -> Backend:
        """The backend of spec.backend; seed drives trial-to-trial noise, bundle (the layers of
        a deploy bundle) fixes what a hardware backend runs. The simulator needs neither."""
        return cls()

    def realise(self, net: Network) -> list[LayerParams]:
        """The layers as this backend realises them (default: the network's own)."""
        return net.layer_params()

    def run(self, net: Network, t_in: np.ndarray, *, training: bool = False) -> BackendRun:
        """Spike times of every layer for inputs t_in; training: the batch is a training batch
        (an emulator may vary its chip then)."""
        raise NotImplementedError

    def result(self, net: Network, times: list[np.ndarray], realised: list[LayerParams]
               ) -> BackendRun:
        """A run's spike times with what the gradient is taken with: "realised" the realised
        parameters and the slope at each measured crossing (the exact gradient of the network
        that ran); "nominal" the network's own float parameters and the closed-form slope at
        the nominal threshold (the published hardware-aware simulation and chip-in-the-loop
        training; docs/model.md section 8). A deploy bundle's run is always "realised": it has
        no shadow parameters."""
        if self.backward == "nominal" and self.bundle is None:
            return BackendRun(times, net.layer_params(), float(net.threshold))
        return BackendRun(times, realised)

    def measure_thresholds(self, net: Network, repeats: int = 20) -> list[np.ndarray]:
        """Each layer's per-neuron thresholds as this backend realises them, measured from spike
        times with the calibration probe of bss2/mapping.py (mean over `repeats` runs)."""
        raise NotImplementedError(f"backend {self.name} cannot measure its thresholds")

    def project(self, net: Network) -> None:
        """Keep the trained parameters within what the backend can realise (after a step)."""

    def info(self) -> dict:
        """What a run records about the backend (name, emulated chip, ...)."""
        return {"name": self.name}

    def realisation(self, net: Network, t_in: np.ndarray) -> dict[str, float]:
        """What realising the network on this backend changed that it was not asked to (e.g.
        delays moved onto a simulator's grid), measured on inputs t_in by the engine: named
        figures for reports ({} when it realises the network as given, or by design, as the
        chip's quantisation)."""
        return {}

    @staticmethod
    def describe_realisation(figures: dict[str, float]) -> str:
        """One line for a report of realisation() figures ('' when there are none)."""
        return ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in figures.items())

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class SimulatorConfig(BackendConfig):
    name: str = "simulator"


@register
class SimulatorBackend(Backend):
    """The ideal engine: exact spike times of the nominal model."""

    name = "simulator"
    Config = SimulatorConfig
    calibrates = True  # trivially: its thresholds are the nominal ones
    runs_tensors = True
    drops_spikes = True

    def measure_thresholds(self, net: Network, repeats: int = 20) -> list[np.ndarray]:
        return [np.full(layer.weight.shape[1], float(net.threshold)) for layer in net.layers]

    def run(self, net: Network, t_in: np.ndarray, *, training: bool = False) -> BackendRun:
        params = self.realise(net)
        return BackendRun(net.forward(t_in, params=params)[0], params)
