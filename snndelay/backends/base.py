"""The backend interface and the ideal simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from snndelay.engine import LayerParams

if TYPE_CHECKING:
    from snndelay.model.network import Network


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
    probe), `seeded_chip` (an emulated chip identified by backend.chip_seed)."""

    name = "backend"
    calibrates = False
    seeded_chip = False
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
    def from_config(cls, cfg: Any, *, seed: int = 0,
                    bundle: list[LayerParams] | None = None) -> Backend:
        """The backend of cfg.backend; seed drives trial-to-trial noise, bundle (the layers of
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
        times with the calibration probe of bss2_mapping (mean over `repeats` runs)."""
        raise NotImplementedError(f"backend {self.name} cannot measure its thresholds")

    def project(self, net: Network) -> None:
        """Keep the trained parameters within what the backend can realise (after a step)."""

    def info(self) -> dict:
        """What a run records about the backend (name, emulated chip, ...)."""
        return {"name": self.name}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SimulatorBackend(Backend):
    """The ideal engine: exact spike times of the nominal model."""

    name = "simulator"
    calibrates = True  # trivially: its thresholds are the nominal ones

    def measure_thresholds(self, net: Network, repeats: int = 20) -> list[np.ndarray]:
        return [np.full(layer.weight.shape[1], float(net.threshold)) for layer in net.layers]

    def run(self, net: Network, t_in: np.ndarray, *, training: bool = False) -> BackendRun:
        params = self.realise(net)
        return BackendRun(net.forward(t_in, params=params)[0], params)
