"""Readouts: how the output layer's activity becomes the values a loss reads and a class is
predicted from (docs/model.md sections 5 and 12). One home for the concept: the network runs
the spiking layers and hands their spike times here; the trainer, evaluation and the losses
only see `outputs`, `backward` and `predict`.

- `first_spike` (the default of every preset): the output layer spikes; its first spike per
  neuron is read (times; the earliest wins).
- `max_voltage` / `mean_voltage`: the output layer is a set of non-spiking leaky integrators
  of the same kernel; the maximum (or the mean) of each membrane over [0, t_end] is read
  (values; the largest wins), with exact gradients (engine/readout.py).

Adding a readout: a schema here (a ReadoutConfig subclass, registered in READOUT_SCHEMAS),
its option file configs/readout/NAME.yaml, and, if it is new math, the engine function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from array_api_compat import array_namespace as namespace
from array_api_compat import device

from snndelay.errors import need
from snndelay.limits import MAX_TIME

TIMES, VALUES = "times", "values"  # what a readout produces (and a loss reads)
DESCRIBE = {TIMES: "output spike times", VALUES: "membrane values"}


def first_spikes(t: np.ndarray) -> np.ndarray:
    """A layer's first spike per neuron [B, N]: its spike times, or the first column of its
    spike trains [B, N, K] (sorted; docs/model.md section 5)."""
    return t[:, :, 0] if t.ndim == 3 else t


@dataclass
class ReadoutConfig:
    """A readout's schema (configs/readout/NAME.yaml extends it) and its behaviour."""

    name: str = "first_spike"
    # The output layer spikes (its neurons are solved like the hidden ones; a chip can run it).
    spiking: ClassVar[bool] = True
    produces: ClassVar[str] = TIMES  # TIMES: smaller wins; VALUES: larger wins

    def check(self) -> None:
        pass

    def outputs(self, t_in: np.ndarray, times: list[np.ndarray], params: list[Any]
                ) -> tuple[np.ndarray, Any]:
        """(the values the loss reads [B, N_out], the state backward needs) from the network's
        inputs, the spike times of its spiking layers and every layer's LayerParams."""
        raise NotImplementedError

    def backward(self, state: Any, g: np.ndarray
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None] | None]:
        """(dL/d(the last spiking layer's spike times, or the inputs without one), the
        readout layer's (dL/dweights, dL/ddelays) when it is not a spiking layer, else None)
        from dL/d(outputs)."""
        raise NotImplementedError

    def predict(self, values: Any) -> Any:
        """The predicted class per sample; -1 when nothing was read (always wrong). numpy in,
        numpy out; torch in, torch out."""
        from snndelay.model.losses import predict

        return predict(values)


@dataclass
class FirstSpikeConfig(ReadoutConfig):
    name: str = "first_spike"

    def outputs(self, t_in: np.ndarray, times: list[np.ndarray], params: list[Any]
                ) -> tuple[np.ndarray, Any]:
        return first_spikes(times[-1]), times[-1].shape

    def backward(self, state: Any, g: np.ndarray
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None] | None]:
        if len(state) == 3 and g.ndim == 2:  # spike trains: only their first spikes were read
            xp = namespace(g)
            rest = xp.zeros(tuple(state[:2]) + (state[2] - 1,), dtype=g.dtype, device=device(g))
            g = xp.concat([g[:, :, None], rest], axis=2)
        return g, None


@dataclass
class VoltageReadoutConfig(ReadoutConfig):
    """Non-spiking integrators u_k(t) = sum_i w_ik k(t - T_ik) read over [0, t_end]."""

    name: str = "max_voltage"
    t_end: float = 50.0  # the read window [0, t_end] in tau_s (cover the inputs' span)
    spiking: ClassVar[bool] = False
    produces: ClassVar[str] = VALUES
    mode: ClassVar[str] = "max"

    def check(self) -> None:
        need(0 < self.t_end <= MAX_TIME, "readout.t_end",
             f"must be in (0, {MAX_TIME:g}] tau_s (the window the membrane is read over)",
             self.t_end)

    def outputs(self, t_in: np.ndarray, times: list[np.ndarray], params: list[Any]
                ) -> tuple[np.ndarray, Any]:
        from snndelay.engine import readout_forward

        return readout_forward(times[-1] if times else t_in, params[-1], mode=self.mode,
                               t_end=self.t_end)

    def backward(self, state: Any, g: np.ndarray
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None] | None]:
        from snndelay.engine import readout_backward

        g_t, g_w, g_d = readout_backward(state, g)
        return g_t, (g_w, g_d)

    def predict(self, values: Any) -> Any:
        return values.argmax(1)


@dataclass
class MaxVoltageConfig(VoltageReadoutConfig):
    name: str = "max_voltage"
    mode: ClassVar[str] = "max"


@dataclass
class MeanVoltageConfig(VoltageReadoutConfig):
    name: str = "mean_voltage"
    mode: ClassVar[str] = "mean"


READOUT_SCHEMAS: dict[str, type[ReadoutConfig]] = {
    "first_spike": FirstSpikeConfig, "max_voltage": MaxVoltageConfig,
    "mean_voltage": MeanVoltageConfig}
