"""The BrainScaleS-2 chip through its PyNN interface (pynn_brainscales), imported lazily.

Thin on purpose: every number it writes or reads comes from bss2/mapping.py (weights, refractory
settings, time scaling, serialisation, placement), which the tests cover, and its PyNN calls
(spike sources, one projection per sign, reading the recorded spikes) are those of
backends/pynn_net.py, which backend=pynn runs on NEST and Brian2 in the tests. The chip's own
part (HXNeuron, the serialised batch) cannot be exercised without the chip and its software
stack; it has not run against a chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from snndelay.backends.base import BackendConfig, BackendRun, register
from snndelay.backends.bss2 import mapping as hw
from snndelay.backends.bss2.rules import ChipBackend, ChipRunConfig
from snndelay.backends.pynn_net import recorded_spikes, signed_projections, spike_sources
from snndelay.engine.types import LayerParams
from snndelay.errors import BackendUnavailable

if TYPE_CHECKING:
    from snndelay.model.network import Network
    from snndelay.spec import RunSpec

HOW_TO_GET_ACCESS = (
    "backend=bss2 needs the BrainScaleS-2 software stack (pynn_brainscales) and a chip, "
    "available through the EBRAINS research infrastructure (https://ebrains.eu, BrainScaleS-2 "
    "service); without them, backend=bss2_emulator runs the same workflow on the emulator")


def _import_pynn():
    try:
        import pynn_brainscales.brainscales2 as pynn
    except ImportError:
        raise BackendUnavailable(HOW_TO_GET_ACCESS) from None
    return pynn


@dataclass
class ChipConfig(ChipRunConfig):
    name: str = "bss2"


@register
class BSS2Chip(ChipBackend):
    """Runs a batch as one serialised spike train on the chip and reads back the first spike
    of every neuron; the emulator's mapping, without its noise model (the chip has its own)."""

    name = "bss2"
    Config = ChipConfig

    @property
    def stochastic(self) -> bool:
        return True  # analog neurons: every run of a batch differs a little

    def __init__(self, bundle: list[LayerParams] | None = None, backward: str = "nominal"):
        self.pynn = _import_pynn()
        self.backward = backward
        # A deploy bundle fixes what runs (its integer weights and refractory settings);
        # without one (chip-in-the-loop training) the network is quantised batch by batch.
        self.bundle = bundle

    @classmethod
    def ensure_available(cls, cfg: BackendConfig | None = None) -> None:
        _import_pynn()

    @classmethod
    def from_spec(cls, spec: RunSpec, *, seed: int = 0, bundle: list[LayerParams] | None = None
                  ) -> "BSS2Chip":
        b = spec.backend
        assert isinstance(b, ChipConfig)
        return cls(bundle, b.backward)

    def realise(self, net: Network) -> list[LayerParams]:
        if self.bundle is not None:
            return self.bundle
        return hw.quantize_params(net.layer_params())

    def run(self, net: Network, t_in: np.ndarray, *,
            training: bool = False) -> BackendRun:  # pragma: no cover - needs a chip
        """Layer by layer, one chip run per layer and batch: the layer's inputs as spike
        sources, its neurons with excitatory and inhibitory projections of the 6-bit weights.
        Axonal delays shift the sources' spike times by the realised delays (refractory
        settings r) on the host: with one layer per run this equals the delay circuit pairs,
        minus their own timing noise."""
        from snndelay.engine.prepare import arrivals

        pynn = self.pynn
        batch = t_in.shape[0]
        hw.check_realisable([], net.tau_mem, net.tau_syn)  # times below are in tau_s units
        t = np.asarray(t_in, dtype=np.float64)
        outs = []
        params = self.realise(net)
        for layer in params:
            w = layer.weights
            t = arrivals(t, layer).t  # bias spike appended, axonal delays added (tau_s)
            times_us, ids = hw.serialize(np.where(t < hw.SAMPLE_WINDOW, t, np.inf))
            pynn.setup()
            sources = spike_sources(pynn, pynn.cells, [
                (times_us[ids == i] / 1000.0).tolist() for i in range(t.shape[1])])
            neurons = pynn.Population(w.shape[1], pynn.cells.HXNeuron())
            neurons.record(["spikes"])
            exc, inh = hw.weights_to_hw(w)
            signed_projections(pynn, sources, neurons, exc, inh, lambda m: (
                pynn.AllToAllConnector(), {"synapse_type": pynn.standardmodels.synapses
                                           .StaticSynapse(weight=m.astype(float))}))
            pynn.run(hw.to_hw_time(batch * hw.SAMPLE_WINDOW) / 1000.0)
            rec_t, rec_id = recorded_spikes(neurons, 1000.0)  # ms -> us
            pynn.end()
            t = hw.deserialize(rec_t, rec_id.astype(np.int64), batch, w.shape[1])
            outs.append(t)
        return self.result(net, outs, params)
