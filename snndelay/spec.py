"""The run specification: a composed config resolved once into typed, checked parts.

`config.resolve(cfg)` turns the Hydra config (per-layer values given as one number or a list,
a delay type with a list of delayed layers, one seed) into a RunSpec: one LayerSpec per layer
(size, delay kind and sharing, weight init, learning rates, max spikes, bumping threshold),
the neuron, the training settings, named seeds and the chosen dataset, backend and loss
schemas. Network, backend, data and trainer are built from its parts; nothing below the
application reads a Config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from snndelay.model.readouts import FirstSpikeConfig, ReadoutConfig
from snndelay.model.sharing import DelayKind, DelaySharing, DelaySpec

if TYPE_CHECKING:
    from snndelay.backends.base import BackendConfig
    from snndelay.data import DatasetConfig
    from snndelay.model.losses import LossConfig


@dataclass(frozen=True)
class LayerSpec:
    """One layer: n_in inputs (without the bias row) -> n_out neurons."""

    n_in: int
    n_out: int
    delay: DelaySpec
    weight_mean: float
    weight_std: float
    lr: float
    lr_delay: float
    max_spikes: int  # 1: first spike; K > 1: spike trains (docs/model.md section 11)
    max_missing: float  # weight bumping: largest silent fraction of (sample, neuron) pairs


@dataclass(frozen=True)
class NetworkSpec:
    layers: tuple[LayerSpec, ...]
    tau_mem: float
    tau_syn: float
    threshold: float
    bias_time: float | None
    readout: ReadoutConfig = field(default_factory=FirstSpikeConfig)  # model/readouts.py

    @property
    def sizes(self) -> list[int]:
        """[inputs, hidden..., outputs]."""
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def kinds(self) -> list[DelayKind]:
        return [layer.delay.type for layer in self.layers]

    @property
    def max_spikes(self) -> list[int]:
        return [layer.max_spikes for layer in self.layers]

    def rows(self, k: int) -> int:
        """Presynaptic rows of layer k: its inputs and the bias row."""
        return self.layers[k].n_in + (self.bias_time is not None)

    def sharing(self) -> list[DelaySharing]:
        """Each layer's delay sharing (model/sharing.py)."""
        return [layer.delay.sharing(self.rows(k), layer.n_out)
                for k, layer in enumerate(self.layers)]


@dataclass(frozen=True)
class Seeds:
    """Every random stream of a run, derived from training.seed once and named."""

    init: int  # weights and delays
    shuffle: int  # the order of training samples
    backend: int  # a backend's trial noise during training
    input_noise: int  # training-time jitter on input spike times
    evaluate: int  # a backend's trial noise when `snndelay evaluate` reruns a split
    augment: int = 0  # event augmentation of the training split (with the epoch)
    dropout: int = 0  # hidden spike dropout (with the epoch and the batch)
    calibration_trained: int = 20_000  # deploy: probing the chip the run trained on
    calibration_target: int = 20_001  # deploy: probing the target chip
    deploy_repeats: int = 10_000  # deploy: repeat r runs with seed deploy_repeats + r

    @classmethod
    def of(cls, seed: int) -> Seeds:
        # The offsets are those of every earlier version: runs stay reproducible.
        return cls(init=seed, shuffle=seed + 1, backend=seed + 2, input_noise=seed + 3,
                   evaluate=seed + 3, augment=seed + 4, dropout=seed + 5)


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    seed: int
    batch_size: int
    eval_batch_size: int
    step_size: int
    gamma: float
    schedule: str
    weight_decay: float
    bump: float
    max_dw_norm: float  # inf: no clipping
    input_noise: float
    spike_dropout: float
    max_loss: float | None
    checkpoint_every: int
    threads: int
    device: str = "cpu"  # cpu, cuda or auto (resolved where the run starts: model/placement.py)
    compiled: bool = True
    max_memory_gb: float | None = None


@dataclass(frozen=True)
class RunSpec:
    name: str
    network: NetworkSpec
    training: TrainSpec
    seeds: Seeds
    dataset: DatasetConfig
    backend: BackendConfig
    loss: LossConfig

    def with_backend(self, backend: BackendConfig) -> RunSpec:
        """The same run on another backend (deploy and evaluation on a target)."""
        return replace(self, backend=backend)
