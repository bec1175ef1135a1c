"""What the BrainScaleS-2 backends (emulator and chip) share: the config keys of a chip run and
the rules of what a chip can run (docs/model.md section 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from snndelay.backends.base import Backend, BackendConfig
from snndelay.backends.bss2.mapping import MappingError, check_realisable, place
from snndelay.errors import ConfigError, need, need_int
from snndelay.limits import MAX_REPEATS

if TYPE_CHECKING:
    from snndelay.spec import NetworkSpec, RunSpec

# The gradient at the chip's spike times: "nominal" (float shadow parameters, closed-form slope
# at the nominal threshold, as published) or "realised" (exact for the network that ran:
# quantised parameters, slope at the measured crossing); Backend.result.
BACKWARDS = ("nominal", "realised")


@dataclass
class ChipRunConfig(BackendConfig):
    """Keys of every BrainScaleS-2 backend."""

    eval_repeats: int = 10  # final test/evaluate runs averaged (trial noise makes runs differ)
    backward: str = "nominal"

    def check(self, network: NetworkSpec) -> None:
        need_int("backend.eval_repeats", self.eval_repeats, 1, MAX_REPEATS)
        need(self.backward in BACKWARDS, "backend.backward",
             f"must be one of {', '.join(BACKWARDS)}", self.backward)

    def repeats(self) -> int:
        return self.eval_repeats


CHIP_RESET = ("the chip's neurons are read out by their first spike and its refractory reset "
              "is not a reset by subtraction")


def check_first_spike_only(network: NetworkSpec, backend: str, why: str = CHIP_RESET) -> None:
    """Neurons read out by their first spike (training on a chip or a PyNN simulator and
    deploying to it), whose reset is not a reset by subtraction (`why` says whose)."""
    need(network.readout.spiking, "readout",
         f"backend={backend} reads its output neurons by their spikes (no membrane readout "
         "during a run); use readout=first_spike or backend=simulator", network.readout.name)
    need(max(network.max_spikes) == 1, "neuron.max_spikes",
         f"backend={backend} runs time-to-first-spike neurons only ({why}); set it to 1 or "
         "use backend=simulator", network.max_spikes)


class ChipBackend(Backend):
    """The rules every BrainScaleS-2 backend applies before a run."""

    deploys = True

    @classmethod
    def check(cls, spec: RunSpec) -> None:
        super().check(spec)
        net = spec.network
        check_first_spike_only(net, cls.name)
        try:
            check_realisable(net.kinds, net.tau_mem, net.tau_syn)
            place(net.sizes[1:], [sh.circuits for sh in net.sharing()])
        except MappingError as exc:
            raise ConfigError(f"backend={cls.name}: {exc}") from None
