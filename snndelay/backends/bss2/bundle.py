"""A deploy bundle (docs/model.md section 8): integer weight matrices (excitatory and
inhibitory, 0..63), one refractory setting per delay circuit pair, the placement of neurons and
delay circuit pairs, the time scaling and the network's configuration, in bundle.npz (arrays)
and bundle.json (BundleMeta). Made from a network, checked against the chip's limits, and read
back as the layers the chip runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snndelay.backends.bss2 import mapping as hw
from snndelay.engine.types import DelayKind, LayerParams, Neuron
from snndelay.errors import MappingError
from snndelay.model.sharing import CONSECUTIVE, DelaySharing

if TYPE_CHECKING:
    from snndelay.model.network import Network

BUNDLE_FORMAT = "snndelay-bss2-bundle/2"  # /1: delay_group_sizes = rows per circuit pair
Arrays = dict[str, np.ndarray]


@dataclass
class BundleMeta:
    """bundle.json: the network's shape, delay sharing and neuron, the chip's constants the
    integers mean something under, the placement, and how the bundle was made."""

    experiment: str
    sizes: list[int]
    delay_types: list[str]
    delay_group_sizes: list[int]  # shared delays (DelaySharing): group size per layer
    bias_time: float | None
    threshold: float
    input_replicas: int
    placement: dict[str, Any]
    config_yaml: str
    delay_group_layouts: list[str] = field(default_factory=list)  # empty: consecutive (/1)
    calibration: dict[str, Any] | None = None  # what the weights were compensated for
    network: dict[str, Any] | None = None  # which of the run's networks: {model, epoch}
    format: str = BUNDLE_FORMAT
    weight_scale: float = hw.WEIGHT_SCALE
    weight_max: int = hw.WEIGHT_MAX
    tau_s_us: float = hw.TAU_S_US
    sample_window_tau_s: float = hw.SAMPLE_WINDOW
    refractory_range: list[int] = field(default_factory=lambda: [hw.R_MIN, hw.R_MAX])
    delay_us: str = "r / 8 + 2"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BundleMeta:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def sharing(self, k: int) -> DelaySharing:
        """Layer k's delay sharing. A /1 bundle (no layouts) recorded the rows per delay
        circuit pair as its group size: a consecutive group of that size."""
        layouts = self.delay_group_layouts or [CONSECUTIVE] * (len(self.sizes) - 1)
        return DelaySharing(DelayKind(self.delay_types[k]),
                            self.sizes[k] + (self.bias_time is not None), self.sizes[k + 1],
                            int(self.delay_group_sizes[k]), layouts[k])


def make_bundle(net: Network, *, experiment: str, input_replicas: int, config_yaml: str,
                calibration: dict[str, Any] | None = None,
                network: dict[str, Any] | None = None) -> tuple[Arrays, BundleMeta]:
    """(arrays for bundle.npz, metadata for bundle.json) of a network; MappingError if the chip
    cannot realise it. calibration: what the weights were compensated for; network: which of
    the run's networks this is ({model, epoch}); both recorded as is."""
    kinds = [kind.value for kind in net.delay_kinds()]
    hw.check_realisable(kinds, net.tau_mem, net.tau_syn)
    arrays: Arrays = {}
    sharing: list[DelaySharing | None] = []
    for k, layer in enumerate(net.layers):
        exc, inh = hw.weights_to_hw(layer.weight.detach().numpy())
        arrays[f"layer{k}_exc"], arrays[f"layer{k}_inh"] = exc, inh
        if layer.delays is not None:
            # one refractory setting per delay circuit pair (DelaySharing.circuit_values)
            d = layer.delays.circuit_values()  # tau_s (tau_syn = 1 on the chip)
            arrays[f"layer{k}_refractory"] = hw.delay_to_refractory(d)
            sharing.append(layer.delays.sharing)
        else:
            sharing.append(None)
    placement = hw.place(net.sizes[1:], [0 if sh is None else sh.circuits for sh in sharing])
    meta = BundleMeta(
        experiment=experiment, sizes=list(net.sizes), delay_types=kinds,
        delay_group_sizes=[1 if sh is None else sh.group for sh in sharing],
        bias_time=net.bias_time, threshold=float(net.threshold), input_replicas=input_replicas,
        placement=placement.to_dict(), config_yaml=config_yaml,
        delay_group_layouts=[CONSECUTIVE if sh is None else sh.layout for sh in sharing],
        calibration=calibration, network=network)
    return arrays, meta


def validate_bundle(arrays: Arrays, meta: BundleMeta) -> None:
    """Check a bundle against the chip's limits (MappingError naming what is wrong)."""
    for k in range(len(meta.sizes) - 1):
        for part in ("exc", "inh"):
            m = arrays[f"layer{k}_{part}"]
            if m.dtype != np.uint8 or m.size and int(m.max()) > hw.WEIGHT_MAX:
                raise MappingError(f"layer{k}_{part}: weights must be integers 0..{hw.WEIGHT_MAX}")
        if ((arrays[f"layer{k}_exc"] > 0) & (arrays[f"layer{k}_inh"] > 0)).any():
            raise MappingError(f"layer {k}: a synapse is both excitatory and inhibitory")
        r = arrays.get(f"layer{k}_refractory")
        if r is not None and r.size and (r.min() < hw.R_MIN or r.max() > hw.R_MAX):
            raise MappingError(f"layer {k}: refractory settings must lie in "
                               f"{hw.R_MIN}..{hw.R_MAX}")
    hw.check_realisable(meta.delay_types)
    if meta.placement["used"] > hw.N_CIRCUITS:
        raise MappingError(f"placement uses {meta.placement['used']} circuits of "
                           f"{hw.N_CIRCUITS}")


def write_bundle(out_dir: Path, arrays: Arrays, meta: BundleMeta) -> None:
    from snndelay.app.rundir import atomic_write, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "bundle.npz",
                 lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # stub: **kwds bool
    atomic_write_text(out_dir / "bundle.json", json.dumps(meta.to_dict(), indent=2) + "\n")


def load_bundle(out_dir: Path) -> tuple[Arrays, BundleMeta]:
    with np.load(out_dir / "bundle.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, BundleMeta.from_dict(json.loads((out_dir / "bundle.json").read_text()))


def bundle_params(arrays: Arrays, meta: BundleMeta) -> list[LayerParams]:
    """The layers that a deploy bundle realises, in model units (weights, per-input axonal
    delays in tau_s): what the chip runs."""
    out = []
    neuron = Neuron(1.0, 1.0, float(meta.threshold))
    for k, kind in enumerate(meta.delay_types):
        w = hw.hw_to_weights(arrays[f"layer{k}_exc"], arrays[f"layer{k}_inh"])
        d = None
        if DelayKind(kind) is DelayKind.AXONAL:
            per_circuit = hw.refractory_to_delay(arrays[f"layer{k}_refractory"])
            d = meta.sharing(k).from_circuits(per_circuit)
        out.append(LayerParams(w, DelayKind(kind), d, meta.bias_time, neuron))
    return out
