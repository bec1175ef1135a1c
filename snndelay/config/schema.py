"""The config schemas: one dataclass per config group, the defaults written once here (the
YAML files in configs/ extend them and keep only what differs). Groups whose options have keys
of their own take the schema of the chosen option: datasets (snndelay.data), backends (each
backend class's Config), losses (snndelay.model.losses) and readouts (snndelay.model.readouts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from snndelay.backends.base import BackendConfig, SimulatorConfig
from snndelay.config.tracking import NoTrackingConfig, TrackingConfig
from snndelay.data import DatasetConfig, YinYangConfig
from snndelay.model.losses import LossConfig, ShiftMseConfig
from snndelay.model.readouts import FirstSpikeConfig, ReadoutConfig
from snndelay.model.sharing import CONSECUTIVE, DelayKind

POSITIVITY = ("sigmoid", "clamp")
SCHEDULES = ("step", "cosine", "onecycle")  # training.schedule (model/optim.py)
DEVICES = ("cpu", "cuda", "auto")  # training.device (model/placement.py)


@dataclass
class NetworkConfig:
    hidden: Any = field(default_factory=lambda: [30])  # int or list of ints
    weight_mean: Any = 1.0  # float or one per layer
    weight_std: Any = 1.0
    bias_time: Optional[float] = None  # a bias spike at this time into every layer


@dataclass
class NeuronConfig:
    tau_mem: float = 2.0  # tau_mem / tau_syn: a ratio with a kernel (engine/kernels.py)
    tau_syn: float = 1.0
    threshold: float = 1.0
    # Spikes a neuron may emit: 1 = time-to-first-spike; K > 1 = spike trains with a reset by
    # subtraction (docs/model.md section 11). One number for every layer, or one per layer
    # (the output layer is read out by its first spike either way).
    max_spikes: Any = 1


@dataclass
class DelayConfig:
    """d = shift + scale * sigmoid(p), p ~ N(init_mean, init_std) (docs/model.md section 3)."""

    type: str = DelayKind.SYNAPTIC.value
    layers: Any = "all"  # "all" or list of layer indices
    positivity: str = "sigmoid"  # or clamp (d >= shift after every step)
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25
    group_size: Any = 1  # > 1: groups of neurons share one axonal/dendritic delay; or one per layer
    group_layout: str = CONSECUTIVE  # or "strided": neuron i takes delay i mod (N / group_size)


@dataclass
class TrainingConfig:
    """docs/model.md section 6."""

    epochs: int = 300
    seed: int = 0
    batch_size: int = 150
    eval_batch_size: int = 200
    lr: Any = 0.01  # weights: float or one per layer
    lr_delay: Any = 0.003  # delays: likewise
    schedule: str = "step"  # step (StepLR: step_size, gamma), cosine or onecycle (per epoch)
    step_size: int = 20  # StepLR
    gamma: float = 0.95
    weight_decay: float = 0.0  # decoupled (AdamW) decay of the weights, not the delays
    max_missing_hidden: float = 0.3  # weight bumping thresholds (silent sample-neuron pairs)
    max_missing_output: float = 0.0
    bump: float = 5e-4  # first bump; doubles for consecutive bumps of the same layer
    max_dw_norm: Optional[float] = 0.2  # null disables
    input_noise: float = 0.0  # std (tau_s) of Gaussian jitter on training input times
    spike_dropout: float = 0.0  # P(a hidden spike is dropped) in training (model/dropout.py)
    max_loss: Optional[float] = 1.0e6  # a batch's mean loss above it stops the run (null: never)
    checkpoint_every: int = 1  # epochs between checkpoints (resume point)
    threads: int = 0  # 0: the CPUs this process may use (affinity, cgroup quota, *_NUM_THREADS)
    device: str = "cpu"  # cpu, cuda (a GPU; the engine's torch path) or auto (cuda when visible)
    compiled: bool = True  # CPU: the compiled loops (numba); false: the engine's torch path
    max_memory_gb: Optional[float] = None  # the torch path's work arrays (null: its default)


@dataclass
class Config:
    name: str = "custom"
    dataset: DatasetConfig = field(default_factory=YinYangConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    delay: DelayConfig = field(default_factory=DelayConfig)
    backend: BackendConfig = field(default_factory=SimulatorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: LossConfig = field(default_factory=ShiftMseConfig)
    readout: ReadoutConfig = field(default_factory=FirstSpikeConfig)
    tracking: TrackingConfig = field(default_factory=NoTrackingConfig)


# Groups with one schema for every option (configs/GROUP/*.yaml extend GROUP/_schema).
GROUP_SCHEMAS: dict[str, type] = {"network": NetworkConfig, "neuron": NeuronConfig,
                                  "delay": DelayConfig, "training": TrainingConfig}


def option_schemas() -> dict[str, dict[str, type]]:
    """The schema of every option of a group whose options have keys of their own: a run
    accepts exactly the keys of the option it chose (read when asked: a backend may be
    registered later)."""
    from snndelay import backends
    from snndelay.config.tracking import TRACKING_SCHEMAS
    from snndelay.data import REGISTRY as DATA_REGISTRY
    from snndelay.model.losses import LOSS_SCHEMAS
    from snndelay.model.readouts import READOUT_SCHEMAS

    return {"dataset": {name: info.schema for name, info in DATA_REGISTRY.items()},
            "backend": backends.schemas(), "loss": dict(LOSS_SCHEMAS),
            "readout": dict(READOUT_SCHEMAS), "tracking": dict(TRACKING_SCHEMAS)}
