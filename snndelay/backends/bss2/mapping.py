"""Model <-> BrainScaleS-2 mapping (docs/model.md section 8), shared by the emulator and the chip.

Pure numpy functions, no hardware access:
- weights: signed 6-bit on separate excitatory and inhibitory synapses, 30 hardware units per
  model unit, magnitude clipped at 63 (|w| <= 2.1, resolution 1/30);
- axonal delays: one pair of neuron circuits per delay, refractory setting r (integer in
  [50, 250]) gives delay_us = r / 8 + 2;
- time: 1 tau_s = 6 us; each sample of a batch gets a 30 tau_s window in one spike train;
- inputs replicated 5x, copies next to each other (delays shared by groups of rows: a
  consecutive group needs one delay circuit pair, a strided one a pair per row);
- placement of network neurons and delay circuit pairs within the chip's 512 circuits;
- threshold calibration from spike times, and the per-neuron weight scales that carry a network
  trained on one chip to another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from snndelay.engine.types import DelayKind, LayerParams
from snndelay.errors import MappingError

WEIGHT_SCALE = 30.0  # hardware units per model unit
WEIGHT_MAX = 63  # 6-bit magnitude
TAU_S_US = 6.0  # 1 tau_s on chip, in microseconds
SAMPLE_WINDOW = 30.0  # tau_s per sample in the serialised spike train
INPUT_REPLICAS = 5
R_MIN, R_MAX = 50, 250  # refractory settings that realise a delay
N_CIRCUITS = 512
CIRCUITS_PER_DELAY = 2


# -- weights ----------------------------------------------------------------------------------
def weights_to_hw(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(excitatory, inhibitory) integer matrices in 0..63 with w ~ (exc - inh) / 30."""
    q = np.clip(np.rint(np.asarray(w, dtype=np.float64) * WEIGHT_SCALE), -WEIGHT_MAX, WEIGHT_MAX)
    q = q.astype(np.int64)
    return np.maximum(q, 0).astype(np.uint8), np.maximum(-q, 0).astype(np.uint8)


def hw_to_weights(exc: np.ndarray, inh: np.ndarray) -> np.ndarray:
    """Model-unit weights of the integer matrices."""
    return (exc.astype(np.float64) - inh.astype(np.float64)) / WEIGHT_SCALE


def quantize_weights(w: np.ndarray) -> np.ndarray:
    """The weights the chip realises: rounded to 1/30, clipped to +-2.1."""
    return hw_to_weights(*weights_to_hw(w))


# -- delays -----------------------------------------------------------------------------------
def delay_to_refractory(d: np.ndarray, clip: bool = False) -> np.ndarray:
    """Refractory settings r (int) for axonal delays d in tau_s: r = 8 (6 d - 2), rounded.
    Out of [50, 250] (about 1.4 to 5.5 tau_s): MappingError, or clipped with clip=True."""
    r = np.rint(8.0 * (np.asarray(d, dtype=np.float64) * TAU_S_US - 2.0))
    if clip:
        r = np.clip(r, R_MIN, R_MAX)
    elif r.size and (r.min() < R_MIN or r.max() > R_MAX):
        lo, hi = refractory_to_delay(np.array([R_MIN, R_MAX]))
        raise MappingError(f"axonal delays must lie in [{lo:.3f}, {hi:.3f}] tau_s to be realised "
                           f"by refractory settings {R_MIN}..{R_MAX}; got "
                           f"{float(np.min(d)):.3f}..{float(np.max(d)):.3f}")
    return r.astype(np.int64)


def refractory_to_delay(r: np.ndarray) -> np.ndarray:
    """Delay in tau_s of refractory setting r: (r / 8 + 2) us / 6 us."""
    return (np.asarray(r, dtype=np.float64) / 8.0 + 2.0) / TAU_S_US


def quantize_delays(d: np.ndarray) -> np.ndarray:
    """The delays the chip realises (nearest refractory setting, clipped into range)."""
    return refractory_to_delay(delay_to_refractory(d, clip=True))


def quantize_params(params: list[LayerParams]) -> list[LayerParams]:
    """A network's layers as the chip realises them: quantised weights and axonal delays
    (tau_s); other delay kinds are refused."""
    out = []
    for layer in params:
        if layer.kind not in (DelayKind.NONE, DelayKind.AXONAL):
            raise MappingError(f"the chip realises axonal delays only, got {layer.kind.value}")
        out.append(replace(layer, weights=quantize_weights(layer.weights),
                           delays=None if layer.delays is None else quantize_delays(layer.delays)))
    return out


# -- inputs and time ----------------------------------------------------------------------------
def replicate_inputs(t_in: np.ndarray, copies: int = INPUT_REPLICAS) -> np.ndarray:
    """[B, N] -> [B, copies * N]: input i becomes rows copies*i .. copies*i + copies - 1 (so an
    axonal delay with group_size = copies is shared by the copies of one input)."""
    return np.repeat(np.asarray(t_in), copies, axis=1)


def to_hw_time(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype=np.float64) * TAU_S_US


def from_hw_time(t_us: np.ndarray) -> np.ndarray:
    return np.asarray(t_us, dtype=np.float64) / TAU_S_US


def serialize(t: np.ndarray, window: float = SAMPLE_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """A batch [B, N] of spike times (tau_s, +inf = none) as one spike train: (times_us,
    neuron ids), sorted by time; sample b's spikes are offset by b * window tau_s. Spikes at or
    after the end of their window cannot be represented: MappingError."""
    t = np.asarray(t, dtype=np.float64)
    fin = np.isfinite(t)
    if (t[fin] < 0).any() or (t[fin] >= window).any():
        raise MappingError(f"spike times must lie in [0, {window:g}) tau_s, the sample's window")
    b, n = np.nonzero(fin)
    times = to_hw_time(t[b, n] + b * window)
    order = np.argsort(times, kind="stable")
    return times[order], n[order].astype(np.int64)


def deserialize(times_us: np.ndarray, ids: np.ndarray, batch: int, n: int,
                window: float = SAMPLE_WINDOW) -> np.ndarray:
    """The first spike of every (sample, neuron) in a recorded spike train: [batch, n] tau_s
    relative to the sample's window, +inf where a neuron did not fire in it."""
    t = from_hw_time(times_us)
    sample = np.floor(t / window).astype(np.int64)
    keep = (sample >= 0) & (sample < batch) & (ids >= 0) & (ids < n)
    out = np.full((batch, n), np.inf)
    # minimum per (sample, neuron): first spike only
    np.minimum.at(out, (sample[keep], ids[keep]), t[keep] - sample[keep] * window)
    return out


# -- placement ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Circuit indices: neurons[k] for the neurons of layer k (hidden..output), delays[k] the
    circuit pairs of the axonal delays feeding layer k (empty without delays)."""

    neurons: list[list[int]]
    delays: list[list[tuple[int, int]]]
    used: int

    def to_dict(self) -> dict:
        return {"neurons": self.neurons, "delays": [[list(p) for p in d] for d in self.delays],
                "used": self.used, "available": N_CIRCUITS}


def check_realisable(delay_types: list, tau_mem: float = 1.0, tau_syn: float = 1.0) -> None:
    """Refuse what the chip cannot do, with the reason. Times and delays on the chip are in
    tau_s units (1 tau_s = 6 us), so the model must use tau_syn = 1, and the neurons are
    calibrated to tau_mem = tau_syn."""
    for k, name in enumerate(delay_types):
        try:
            kind = DelayKind(name)
        except ValueError:
            raise MappingError(f"layer {k}: unknown delay type {name!r}") from None
        if kind in (DelayKind.DENDRITIC, DelayKind.SYNAPTIC):
            raise MappingError(
                f"layer {k} uses {kind.value} delays, which BrainScaleS-2 cannot realise: a delay "
                "on chip is a pair of neuron circuits on the sending side, i.e. one axonal delay "
                "per presynaptic neuron (use delay=axonal or delay=none)")
    if tau_mem != 1.0 or tau_syn != 1.0:
        raise MappingError(f"the chip's neurons are calibrated to tau_mem = tau_syn = 1 (times "
                           f"in tau_s units, 1 tau_s = {TAU_S_US:g} us on chip); the network has "
                           f"tau_mem = {tau_mem:g}, tau_syn = {tau_syn:g}")


# -- threshold calibration ----------------------------------------------------------------------
# A chip reports spike times, not thresholds; but a neuron driven by PROBE_SOURCES inputs at t = 0,
# each at the largest weight, has u(t) = W t e^{-t} (tau_mem = tau_s, kernel k(s) = s e^{-s},
# docs/model.md section 1; W = PROBE_SOURCES * PROBE_WEIGHT), so its first spike t* gives its
# threshold theta = W t* e^{-t*}. u peaks at W / e = 3.86 (t = 1), above every threshold the
# noise model gives around 2.6.
PROBE_SOURCES = 5
PROBE_WEIGHT = WEIGHT_MAX / WEIGHT_SCALE  # exactly representable: 63 hardware units


def probe_weights(n: int) -> np.ndarray:
    """[PROBE_SOURCES, n] weights of the calibration probe into n neurons (inputs at t = 0)."""
    return np.full((PROBE_SOURCES, n), PROBE_WEIGHT)


def threshold_from_probe(t_spike: np.ndarray) -> np.ndarray:
    """Thresholds theta = W t* e^{-t*} of neurons that spiked at t* under the probe. MappingError
    if one stayed silent (threshold above the probe's peak W / e)."""
    t = np.asarray(t_spike, dtype=np.float64)
    if not np.isfinite(t).all():
        peak = PROBE_SOURCES * PROBE_WEIGHT / np.e
        raise MappingError(f"calibration: {int((~np.isfinite(t)).sum())} neuron(s) did not spike "
                           f"under the probe (threshold above {peak:.2f})")
    return PROBE_SOURCES * PROBE_WEIGHT * t * np.exp(-t)


def compensation_scales(theta_trained: np.ndarray, theta_target: np.ndarray) -> np.ndarray:
    """Per-neuron factors for the incoming weights on the target chip. The first crossing of
    sum_i w_i k(t - T_i) = theta depends only on w / theta (docs/model.md section 2), so weights
    scaled by theta_target / theta_trained give the trained chip's spike times, up to weight
    rounding and clipping."""
    return np.asarray(theta_target, dtype=np.float64) / np.asarray(theta_trained, dtype=np.float64)


def place(layer_sizes: list[int], n_delays: list[int]) -> Placement:
    """Assign circuits: network neurons first (layer by layer), then one pair per delay.
    layer_sizes: neurons per layer (hidden..output); n_delays[k]: axonal delays into layer k."""
    used = 0
    neurons = []
    for size in layer_sizes:
        neurons.append(list(range(used, used + size)))
        used += size
    delays = []
    for count in n_delays:
        delays.append([(used + 2 * i, used + 2 * i + 1) for i in range(count)])
        used += CIRCUITS_PER_DELAY * count
    if used > N_CIRCUITS:
        raise MappingError(f"the network needs {used} neuron circuits ({sum(layer_sizes)} neurons "
                           f"+ {CIRCUITS_PER_DELAY} x {sum(n_delays)} delays); the chip has "
                           f"{N_CIRCUITS}")
    return Placement(neurons, delays, used)
