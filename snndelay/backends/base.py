"""The backend interface and the ideal simulator."""

from __future__ import annotations

import numpy as np


class Backend:
    """Produces spike times for a network; holds whatever the hardware needs between batches."""

    name = "backend"
    # True where two runs of the same batch can differ (trial-to-trial noise): evaluation then
    # averages several runs of a split.
    @property
    def stochastic(self) -> bool:
        return False

    def run(self, net, t_in: np.ndarray, *, training: bool = False,
            params: list | None = None) -> list[np.ndarray]:
        """First spike times [B, N_k] of every layer k (+inf = no spike), tau_s units.
        training: the batch is a training batch (an emulator may vary its chip then);
        params: realised_params(net) when the caller already has them."""
        raise NotImplementedError

    def realised_params(self, net) -> list | None:
        """The (weights, delay kind, delays) per layer that run() used, when they differ from
        the network's own (quantisation); None: the network's parameters."""
        return None

    def measure_thresholds(self, net, repeats: int = 20) -> list[np.ndarray]:
        """Each layer's per-neuron thresholds as this backend realises them, measured from spike
        times with the calibration probe of bss2_mapping (mean over `repeats` runs)."""
        raise NotImplementedError(f"backend {self.name} cannot measure its thresholds")

    def project(self, net) -> None:
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

    def measure_thresholds(self, net, repeats: int = 20) -> list[np.ndarray]:
        return [np.full(layer.weight.shape[1], float(net.threshold)) for layer in net.layers]

    def run(self, net, t_in: np.ndarray, *, training: bool = False,
            params: list | None = None) -> list[np.ndarray]:
        if net.fused_ok():
            return net.forward_fused(np.asarray(t_in, dtype=np.float64))[0]
        import torch

        with torch.no_grad():
            return [t.numpy() for t in net(torch.as_tensor(t_in, dtype=torch.float64))]
