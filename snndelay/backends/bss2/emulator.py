"""BrainScaleS-2 emulator: the mapped network with the chip's quantisation and noise model
(docs/model.md section 8), for everyone without a chip.

- weights rounded to 1/30 and clipped at +-63/30 (bss2/mapping.py), float shadow weights train;
- axonal delays realised by integer refractory settings (resolution 1/48 tau_s);
- neurons with tau_mem = tau_s and threshold theta (2.6 in the presets) plus a fixed-pattern
  offset per neuron N(0.13, 0.08) drawn once per emulated chip from chip_seed (the same seed is
  the same chip), and a trial-to-trial offset N(0, 0.04) per neuron redrawn for every batch;
- Gaussian jitter N(0, 0.01 tau_s) on every delayed spike;
- spikes after the sample's 30 tau_s window are not recorded;
- optionally (chip_variation = a in (0, 1]) every training batch runs on offsets
  (1 - a) * this chip's + a * a freshly drawn chip's (a = 1: a new chip per batch), so the
  network cannot fit one chip's offsets and transfers to another chip (hardware-aware
  simulation before deployment; validation and test stay on chip_seed). A physical chip
  cannot do this: it is an emulator-only training aid.
The returned times are what the chip would report; training takes the engine's gradients at
them, by default as the published hardware-aware simulation does (backend.backward=nominal:
float shadow parameters, closed-form slopes at the nominal threshold), or exactly for the
network that ran (backend.backward=realised: quantised parameters, the slope at each measured
crossing); Backend.result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from snndelay.backends.base import BackendRun, register
from snndelay.backends.bss2 import mapping as hw
from snndelay.backends.bss2.rules import ChipBackend, ChipRunConfig
from snndelay.engine.types import DelayKind, LayerParams, Neuron
from snndelay.errors import need, need_int
from snndelay.limits import MAX_SEED, MAX_TIME

if TYPE_CHECKING:
    from snndelay.model.network import Network
    from snndelay.spec import NetworkSpec, RunSpec


@dataclass(frozen=True)
class NoiseModel:
    fixed_mean: float = 0.13  # fixed-pattern threshold offset per neuron (drawn once per chip)
    fixed_std: float = 0.08
    trial_std: float = 0.04  # threshold offset per neuron, redrawn per batch
    jitter_std: float = 0.01  # tau_s, on every delayed spike

    @staticmethod
    def off() -> "NoiseModel":
        return NoiseModel(0.0, 0.0, 0.0, 0.0)


@dataclass
class EmulatorConfig(ChipRunConfig):
    name: str = "bss2_emulator"
    chip_seed: int = 0  # the emulated chip: its fixed-pattern threshold offsets
    noise: bool = True  # false: no threshold offsets, no trial noise, no jitter
    quantize: bool = True  # 6-bit weights, integer refractory settings
    fixed_mean: float = 0.13
    fixed_std: float = 0.08
    trial_std: float = 0.04
    jitter_std: float = 0.01
    chip_variation: float = 0.0  # training offsets (1-a) this chip + a a fresh one

    def check(self, network: NetworkSpec) -> None:
        super().check(network)
        need_int("backend.chip_seed", self.chip_seed, 0, MAX_SEED)
        theta = network.threshold
        # The emulated chip's thresholds are neuron.threshold + offsets: they must stay positive.
        need(abs(self.fixed_mean) < theta, "backend.fixed_mean",
             f"must lie within +-neuron.threshold ({theta:g}): the chip's thresholds are "
             "neuron.threshold + this offset and must stay positive", self.fixed_mean)
        for key in ("fixed_std", "trial_std"):
            need(0 <= getattr(self, key) <= theta, f"backend.{key}",
                 f"must be in [0, neuron.threshold = {theta:g}] (a threshold offset)",
                 getattr(self, key))
        need(0 <= self.jitter_std <= MAX_TIME, "backend.jitter_std",
             f"must be in [0, {MAX_TIME:g}] tau_s", self.jitter_std)
        need(0.0 <= self.chip_variation <= 1.0, "backend.chip_variation", "must be in [0, 1]",
             self.chip_variation)


@register
class BSS2Emulator(ChipBackend):
    """The emulated chip; with a deploy bundle it runs the bundle's integer weights and
    refractory settings (like the chip), otherwise it quantises the network batch by batch."""

    name = "bss2_emulator"
    Config = EmulatorConfig
    calibrates = True
    seeded_chip = True
    default_target = True

    def __init__(self, chip_seed: int = 0, noise: NoiseModel = NoiseModel(), *,
                 quantize: bool = True, seed: int = 0, chip_variation: float = 0.0,
                 bundle: list[LayerParams] | None = None, backward: str = "nominal"):
        self.chip_seed = int(chip_seed)
        self.backward = backward
        self.bundle = bundle
        self.noise = noise
        self.quantize = quantize
        self.chip_variation = float(chip_variation)
        self.rng = np.random.default_rng(seed)  # trial-to-trial noise and jitter
        self._fixed: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_spec(cls, spec: RunSpec, *, seed: int = 0, bundle: list[LayerParams] | None = None
                  ) -> "BSS2Emulator":
        b = spec.backend
        assert isinstance(b, EmulatorConfig)
        noise = NoiseModel(b.fixed_mean, b.fixed_std, b.trial_std, b.jitter_std) if b.noise \
            else NoiseModel.off()
        return cls(b.chip_seed, noise, quantize=b.quantize, seed=seed,
                   chip_variation=b.chip_variation, bundle=bundle, backward=b.backward)

    @property
    def stochastic(self) -> bool:
        return self.noise.trial_std > 0 or self.noise.jitter_std > 0

    def fixed_offsets(self, layer: int, n: int) -> np.ndarray:
        """The emulated chip's fixed-pattern threshold offsets of layer `layer` ([n]): a pure
        function of (chip_seed, layer, n), so the same chip is reproducible."""
        key = (layer, n)
        if key not in self._fixed:
            rng = np.random.default_rng([self.chip_seed, layer, n])
            self._fixed[key] = rng.normal(self.noise.fixed_mean, self.noise.fixed_std, n) \
                if (self.noise.fixed_mean or self.noise.fixed_std) else np.zeros(n)
        return self._fixed[key]

    def thresholds(self, layer: int, n: int, nominal: float, variation: float = 0.0
                   ) -> np.ndarray:
        """This batch's thresholds of layer `layer`: nominal + the chip's fixed-pattern offsets
        (mixed with a newly drawn chip's by `variation`, see chip_variation) + a fresh
        trial-to-trial offset per neuron (kept positive)."""
        offsets = self.fixed_offsets(layer, n)
        if variation > 0:
            fresh = self.rng.normal(self.noise.fixed_mean, self.noise.fixed_std, n)
            offsets = (1.0 - variation) * offsets + variation * fresh
        theta = nominal + offsets
        if self.noise.trial_std > 0:
            theta = theta + self.rng.normal(0.0, self.noise.trial_std, n)
        return np.maximum(theta, 1e-6)

    def realise(self, net: Network) -> list[LayerParams]:
        if self.bundle is not None:
            return self.bundle
        params = net.layer_params()
        if not self.quantize:
            hw.check_realisable([layer.kind for layer in params], net.tau_mem, net.tau_syn)
            return params
        return hw.quantize_params(params)

    def run(self, net: Network, t_in: np.ndarray, *, training: bool = False) -> BackendRun:
        from snndelay.engine.layer import solve_arrivals
        from snndelay.engine.prepare import arrivals, output_times

        hw.check_realisable([], net.tau_mem, net.tau_syn)  # times below are in tau_s units
        t = np.asarray(t_in, dtype=np.float64)
        params = self.realise(net)
        outs = []
        for k, layer in enumerate(params):
            arr = arrivals(t, layer)
            if layer.kind is DelayKind.AXONAL and self.noise.jitter_std > 0:
                arr.t = arr.t + self.rng.normal(0.0, self.noise.jitter_std, arr.t.shape)
            theta = self.thresholds(k, layer.n_out, layer.neuron.threshold,
                                    self.chip_variation if training else 0.0)
            out = output_times(solve_arrivals(arr, theta[None, :], layer.neuron), arr,
                               layer.neuron.tau_syn)
            out[out >= hw.SAMPLE_WINDOW] = np.inf  # outside the recorded window
            outs.append(out)
            t = out
        return self.result(net, outs, params)

    def measure_thresholds(self, net: Network, repeats: int = 20) -> list[np.ndarray]:
        """Each layer's thresholds as a chip would calibrate them: the probe of bss2/mapping.py run
        `repeats` times (fresh trial noise each) on this chip, inverted and averaged."""
        from snndelay.engine.layer import layer_forward

        t = np.zeros((1, hw.PROBE_SOURCES))
        out = []
        for k, layer in enumerate(net.layers):
            n = layer.weight.shape[1]
            probe = LayerParams(hw.probe_weights(n), neuron=Neuron(1.0, 1.0, net.threshold))
            est = []
            for _ in range(repeats):
                theta = self.thresholds(k, n, float(net.threshold))
                times, _ = layer_forward(t, probe, theta=theta[None, :])
                est.append(hw.threshold_from_probe(times[0]))
            out.append(np.mean(est, axis=0))
        return out

    def project(self, net) -> None:
        """Shadow weights stay within what 6 bits can express (+-63/30)."""
        import torch

        limit = hw.WEIGHT_MAX / hw.WEIGHT_SCALE
        with torch.no_grad():
            for layer in net.layers:
                layer.weight.clamp_(-limit, limit)

    def info(self) -> dict:
        return {"name": self.name, "chip_seed": self.chip_seed, "quantize": self.quantize,
                "noise": asdict(self.noise), "chip_variation": self.chip_variation,
                "backward": self.backward}

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
