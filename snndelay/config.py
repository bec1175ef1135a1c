"""Typed configuration: Hydra composes configs/, these schemas check every value.

A bad value gives a ConfigError whose message is one line naming the key and what is allowed;
the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snndelay.backends import BACKENDS
from snndelay.data import MAX_SEED, MAX_TIME, DatasetConfig, YinYangConfig, n_classes, n_inputs
from snndelay.data import REGISTRY as DATA_REGISTRY
from snndelay.errors import ConfigError, need, need_int
from snndelay.model.sharing import DELAY_TYPES, GROUP_LAYOUTS, DelayKind, DelaySharing

POSITIVITY = ("sigmoid", "clamp")


@dataclass
class NetworkConfig:
    hidden: Any = field(default_factory=lambda: [30])  # int or list of ints
    weight_mean: Any = 1.0  # float or one per layer
    weight_std: Any = 1.0
    bias_time: Optional[float] = None


@dataclass
class NeuronConfig:
    tau_mem: float = 2.0
    tau_syn: float = 1.0
    threshold: float = 1.0
    # Spikes a neuron may emit: 1 = time-to-first-spike; K > 1 = spike trains with a reset by
    # subtraction (docs/model.md section 11). One number for every layer, or one per layer
    # (the output layer is read out by its first spike either way).
    max_spikes: Any = 1


@dataclass
class DelayConfig:
    type: str = DelayKind.SYNAPTIC.value
    layers: Any = "all"  # "all" or list of layer indices
    positivity: str = "sigmoid"
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25
    group_size: Any = 1  # int, or one per layer
    group_layout: str = "consecutive"  # or "strided": neuron i takes delay i mod (N / group_size)


@dataclass
class BackendConfig:
    name: str = "simulator"
    # BrainScaleS-2 backends (docs/model.md section 8); the simulator ignores these.
    chip_seed: int = 0  # the emulated chip: its fixed-pattern threshold offsets
    noise: bool = True  # false: no threshold offsets, no trial noise, no jitter
    quantize: bool = True  # 6-bit weights, integer refractory settings
    fixed_mean: float = 0.13
    fixed_std: float = 0.08
    trial_std: float = 0.04
    jitter_std: float = 0.01
    chip_variation: float = 0.0  # emulator: training offsets (1-a) this chip + a a fresh one
    eval_repeats: int = 10  # final test/evaluate runs averaged where trial noise makes runs differ
    # training's backward at the chip's spike times: "nominal" (float shadow parameters,
    # closed-form slope at the nominal threshold, as published) or "realised" (exact for the
    # network that ran: quantised parameters, slope at the measured crossing)
    backward: str = "nominal"


@dataclass
class TrainingConfig:
    epochs: int = 300
    seed: int = 0
    batch_size: int = 150
    eval_batch_size: int = 200
    lr: Any = 0.01  # float or one per layer
    lr_delay: Any = 0.003
    step_size: int = 20
    gamma: float = 0.95
    max_missing_hidden: float = 0.3
    max_missing_output: float = 0.0
    bump: float = 5e-4
    max_dw_norm: Optional[float] = 0.2
    input_noise: float = 0.0  # std (tau_s) of Gaussian jitter on training input times
    max_loss: Optional[float] = 1.0e6  # a batch's mean loss above it stops the run (null: never)
    checkpoint_every: int = 1
    threads: int = 0  # 0: the CPUs this process may use (affinity, cgroup quota, *_NUM_THREADS)


@dataclass
class LossConfig:
    name: str = "shift_mse"

    def kwargs(self) -> dict[str, float]:
        """The loss function's keyword parameters (every key but the name)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def check(self) -> None:
        pass


@dataclass
class ShiftMseConfig(LossConfig):
    name: str = "shift_mse"
    dt: float = 0.2  # target gap between label and other outputs (0.3 on hardware)

    def check(self) -> None:
        need(0 <= self.dt <= MAX_TIME, "loss.dt", f"must be in [0, {MAX_TIME:g}] tau_s", self.dt)


@dataclass
class TtfsCeConfig(LossConfig):
    name: str = "ttfs_ce"
    xi: float = 0.2  # softmax temperature of -t
    alpha: float = 0.005  # weight of the early-label regulariser alpha exp(t_label / beta)
    beta: float = 1.0

    def check(self) -> None:
        need(0 < self.xi <= MAX_TIME, "loss.xi", f"must be in (0, {MAX_TIME:g}] tau_s", self.xi)
        need(0 <= self.alpha <= MAX_WEIGHT, "loss.alpha", f"must be in [0, {MAX_WEIGHT:g}]",
             self.alpha)
        need(0 < self.beta <= MAX_TIME, "loss.beta", f"must be in (0, {MAX_TIME:g}] tau_s",
             self.beta)


# The schema of every option of a group whose options have keys of their own: a run accepts
# exactly the keys of the option it chose. The YAML files in configs/ extend these schemas
# (defaults live here, once); Hydra learns them through its ConfigStore (compose()).
SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {name: info.schema for name, info in DATA_REGISTRY.items()},
    "loss": {"shift_mse": ShiftMseConfig, "ttfs_ce": TtfsCeConfig},
}
LOSS_NAMES = tuple(SCHEMAS["loss"])


@dataclass
class Config:
    name: str = "custom"
    dataset: DatasetConfig = field(default_factory=YinYangConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    delay: DelayConfig = field(default_factory=DelayConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: LossConfig = field(default_factory=ShiftMseConfig)

    # Derived views, checked by validate().
    def hidden_sizes(self) -> list[int]:
        h = self.network.hidden
        return [h] if isinstance(h, int) else list(h)

    def n_layers(self) -> int:
        return len(self.hidden_sizes()) + 1

    def per_layer(self, key: str, value: Any) -> list[float]:
        n = self.n_layers()
        vals = [value] * n if isinstance(value, (int, float)) else value
        ok = isinstance(vals, (list, tuple)) and len(vals) == n and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if not ok:
            raise ConfigError(f"{key}: give one number or a list of {n} numbers (one per layer), "
                              f"got {value!r}")
        return [float(v) for v in vals]

    def max_spikes(self) -> list[int]:
        vals = self.per_layer("neuron.max_spikes", self.neuron.max_spikes)
        if any(v != int(v) or not 1 <= v <= MAX_SPIKES for v in vals):
            raise ConfigError(f"neuron.max_spikes: must be integers in [1, {MAX_SPIKES}] (one, "
                              f"or one per layer), got {self.neuron.max_spikes!r}")
        return [int(v) for v in vals]

    def group_sizes(self) -> list[int]:
        vals = self.per_layer("delay.group_size", self.delay.group_size)
        if any(not math.isfinite(v) or v != int(v) or not 1 <= v <= MAX_NEURONS for v in vals):
            raise ConfigError(f"delay.group_size: must be integers in [1, {MAX_NEURONS}], "
                              f"got {self.delay.group_size!r}")
        return [int(v) for v in vals]

    def n_inputs(self) -> int:
        return n_inputs(self.dataset)

    def n_classes(self) -> int:
        return n_classes(self.dataset)

    def delay_layers(self) -> list[int]:
        layers = self.delay.layers
        return list(range(self.n_layers())) if layers == "all" else [int(k) for k in layers]

    def delay_kinds(self) -> list[DelayKind]:
        """The delay kind of each layer (NONE where delay.layers leaves it out)."""
        delayed = set(self.delay_layers())
        return [DelayKind(self.delay.type) if k in delayed else DelayKind.NONE
                for k in range(self.n_layers())]

    def layer_sizes(self) -> list[int]:
        """[inputs, hidden..., classes]."""
        return [self.n_inputs()] + self.hidden_sizes() + [self.n_classes()]


def config_dir() -> Path:
    """Where the Hydra config groups are: SNNDELAY_CONFIG_DIR when set; else the configs
    installed inside the package (a wheel install: snndelay/configs); else the top-level
    configs/ of the source checkout (an editable install, where users edit them)."""
    env = os.environ.get("SNNDELAY_CONFIG_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if (installed / "config.yaml").is_file() else here.parent / "configs"


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    need(value in allowed, key, f"must be one of {', '.join(allowed)}", value)


# Upper bounds on values that would exhaust the machine before anything useful happens. They
# sit far above every preset (MNIST 784-350-10: 0.3 M synapses; SHD 140-128-20) but stop
# typos such as network.hidden=100000000 (8.5 GB of weights) with one line.
MAX_NEURONS = 100_000  # per layer
MAX_SYNAPSES = 20_000_000  # all layers; float64 weights + delays + Adam's two moments: ~1.3 GB
MAX_BATCH = 100_000
MAX_EPOCHS = 1_000_000
MAX_REPEATS = 10_000  # backend.eval_repeats
BACKWARDS = ("nominal", "realised")  # backend.backward
MAX_SPIKES = 1_000  # neuron.max_spikes: the spike buffer per neuron and sample
# Upper bounds on finite values the model cannot represent (times in tau_s, weights and
# thresholds in the same unit as the membrane): past them every neuron fires at its first input
# or never, exponentials of the closed forms overflow, and a run reports 0 % with no reason.
MAX_LR = 10.0  # Adam moves a parameter by about lr per step
MAX_WEIGHT = 1e4  # weight_mean, weight_std, bump: per input spike, in membrane units
MAX_THRESHOLD = 1e4  # neuron.threshold (membrane units)
# MAX_TIME (tau_s, snndelay.data): also bounds time constants, delays, the bias spike, jitter
WHY_TIME = "longer than any input window by orders of magnitude"
WHY_WEIGHT = "beyond that a neuron fires at its first input spike or never"


def _check_finite(node: Any, prefix: str) -> None:
    """Every number anywhere in the config must be finite: nan and inf slip through range
    checks (nan compares False) and end as NaN parameters or an endless loop."""
    for f in fields(node):
        value, key = getattr(node, f.name), f"{prefix}{f.name}"
        if is_dataclass(value):
            _check_finite(value, f"{key}.")
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")


def validate(cfg: Config) -> Config:
    """Range and consistency checks that types alone cannot express: every number finite,
    ranges, upper bounds where a value would exhaust the machine, and values that cannot
    apply to the chosen options."""
    _check_finite(cfg, "")
    _one_of("backend.name", cfg.backend.name, BACKENDS)
    _one_of("delay.type", cfg.delay.type, DELAY_TYPES)
    _one_of("delay.positivity", cfg.delay.positivity, POSITIVITY)
    cfg.dataset.check()
    h = cfg.network.hidden
    ok = (isinstance(h, int) and not isinstance(h, bool)) or (isinstance(h, (list, tuple)) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in h))
    need(ok, "network.hidden", "must be an integer or a list of integers", h)
    need(all(1 <= x <= MAX_NEURONS for x in cfg.hidden_sizes()), "network.hidden",
          f"sizes must lie in [1, {MAX_NEURONS}]", h)
    for key in ("weight_mean", "weight_std"):
        vals = cfg.per_layer(f"network.{key}", getattr(cfg.network, key))
        lo = 0 if key == "weight_std" else -MAX_WEIGHT
        need(all(lo <= v <= MAX_WEIGHT for v in vals), f"network.{key}",
             f"must be in [{lo:g}, {MAX_WEIGHT:g}] ({WHY_WEIGHT})", getattr(cfg.network, key))
    need(cfg.network.bias_time is None or 0 <= cfg.network.bias_time <= MAX_TIME,
         "network.bias_time", f"must be in [0, {MAX_TIME:g}] tau_s or null ({WHY_TIME})",
         cfg.network.bias_time)
    n = cfg.neuron
    for key in ("tau_mem", "tau_syn"):
        need(0 < getattr(n, key) <= MAX_TIME, f"neuron.{key}",
             f"must be in (0, {MAX_TIME:g}]", getattr(n, key))
    ratio = n.tau_mem / n.tau_syn
    need(abs(ratio - 1) < 1e-12 or abs(ratio - 2) < 1e-12, "neuron.tau_mem",
          "tau_mem / tau_syn must be 1 or 2 (closed-form spike times)", n.tau_mem)
    need(0 < n.threshold <= MAX_THRESHOLD, "neuron.threshold",
         f"must be in (0, {MAX_THRESHOLD:g}] (weights are bounded by {MAX_WEIGHT:g}: a higher "
         "threshold is never reached)", n.threshold)
    cfg.max_spikes()  # checks the per-layer values
    dl = cfg.delay
    need(0 < dl.scale <= MAX_TIME, "delay.scale", f"must be in (0, {MAX_TIME:g}] tau_s ({WHY_TIME})",
         dl.scale)
    need(0 <= dl.shift <= MAX_TIME, "delay.shift",
         f"must be in [0, {MAX_TIME:g}] tau_s (delays stay positive; {WHY_TIME})", dl.shift)
    need(abs(dl.init_mean) <= MAX_TIME, "delay.init_mean", f"must be in [-{MAX_TIME:g}, "
         f"{MAX_TIME:g}]", dl.init_mean)
    need(0 <= dl.init_std <= MAX_TIME, "delay.init_std", f"must be in [0, {MAX_TIME:g}]",
         dl.init_std)
    groups = cfg.group_sizes()
    need(dl.layers == "all" or (isinstance(dl.layers, (list, tuple)) and all(
        isinstance(k, int) and not isinstance(k, bool) and 0 <= k < cfg.n_layers()
        for k in dl.layers)), "delay.layers",
        f"must be 'all' or a list of layer indices in 0..{cfg.n_layers() - 1}", dl.layers)
    sizes = cfg.layer_sizes()
    n_syn = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    need(n_syn <= MAX_SYNAPSES, "network.hidden",
          f"the network would have {n_syn} synapses, more than {MAX_SYNAPSES} (memory)", h)
    t = cfg.training
    need_int("training.epochs", t.epochs, 1, MAX_EPOCHS)
    need_int("training.seed", t.seed, 0, MAX_SEED)
    need_int("training.batch_size", t.batch_size, 1, MAX_BATCH)
    need_int("training.eval_batch_size", t.eval_batch_size, 1, MAX_BATCH)
    need(all(0 < v <= MAX_LR for v in cfg.per_layer("training.lr", t.lr)), "training.lr",
         f"must be in (0, {MAX_LR:g}] (Adam moves each weight by about lr per step; larger "
         "steps jump past every spiking state)", t.lr)
    need(all(0 <= v <= MAX_LR for v in cfg.per_layer("training.lr_delay", t.lr_delay)),
         "training.lr_delay", f"must be in [0, {MAX_LR:g}] (Adam moves each delay by about "
         "lr_delay tau_s per step)", t.lr_delay)
    need_int("training.step_size", t.step_size, 1, MAX_EPOCHS)
    need(0 < t.gamma <= 1, "training.gamma", "must be in (0, 1]", t.gamma)
    for key in ("max_missing_hidden", "max_missing_output"):
        need(0 <= getattr(t, key) <= 1, f"training.{key}", "must be in [0, 1]", getattr(t, key))
    need(0 < t.bump <= MAX_WEIGHT, "training.bump", f"must be in (0, {MAX_WEIGHT:g}] "
         f"({WHY_WEIGHT})", t.bump)
    need(0 <= t.input_noise <= MAX_TIME, "training.input_noise",
         f"must be in [0, {MAX_TIME:g}] tau_s", t.input_noise)
    need(t.max_loss is None or t.max_loss > 0, "training.max_loss", "must be > 0 or null",
         t.max_loss)
    need(t.max_dw_norm is None or t.max_dw_norm > 0, "training.max_dw_norm",
          "must be > 0 or null", t.max_dw_norm)
    need_int("training.checkpoint_every", t.checkpoint_every, 1, MAX_EPOCHS)
    need_int("training.threads", t.threads, 0, 1024)
    b = cfg.backend
    need_int("backend.chip_seed", b.chip_seed, 0, MAX_SEED)
    # The emulated chip's thresholds are neuron.threshold + offsets: they must stay positive.
    need(abs(b.fixed_mean) < n.threshold, "backend.fixed_mean",
         f"must lie within +-neuron.threshold ({n.threshold:g}): the chip's thresholds are "
         "neuron.threshold + this offset and must stay positive", b.fixed_mean)
    for key in ("fixed_std", "trial_std"):
        need(0 <= getattr(b, key) <= n.threshold, f"backend.{key}",
             f"must be in [0, neuron.threshold = {n.threshold:g}] (a threshold offset)",
             getattr(b, key))
    need(0 <= b.jitter_std <= MAX_TIME, "backend.jitter_std", f"must be in [0, {MAX_TIME:g}] "
         "tau_s", b.jitter_std)
    need_int("backend.eval_repeats", b.eval_repeats, 1, MAX_REPEATS)
    need(b.backward in BACKWARDS, "backend.backward", f"must be one of {', '.join(BACKWARDS)}",
         b.backward)
    need(0.0 <= b.chip_variation <= 1.0, "backend.chip_variation", "must be in [0, 1]",
          b.chip_variation)
    need(not b.chip_variation or b.name == "bss2_emulator", "backend.chip_variation",
          "only the emulator can change its chip (backend=bss2_emulator)", b.chip_variation)
    if b.name in ("bss2_emulator", "bss2"):
        check_first_spike_only(cfg, b.name)
        _check_bss2(cfg)
    need(dl.group_layout in GROUP_LAYOUTS, "delay.group_layout",
         f"must be one of {', '.join(GROUP_LAYOUTS)}", dl.group_layout)
    delay_sharing(cfg)  # each layer's groups can exist
    if dl.type not in (DelayKind.AXONAL, DelayKind.DENDRITIC):
        need(all(g == 1 for g in groups), "delay.group_size",
              f"shared delays need delay=axonal or delay=dendritic (delay={dl.type} has no "
              "groups); set it to 1", dl.group_size)
    cfg.loss.check()
    return cfg


def check_first_spike_only(cfg: Config, backend: str) -> None:
    """The BrainScaleS-2 backends (training on them, and deploying to them) run
    time-to-first-spike neurons only."""
    need(max(cfg.max_spikes()) == 1, "neuron.max_spikes",
         f"backend={backend} runs time-to-first-spike neurons only (the chip's neurons are "
         "read out by their first spike and its refractory reset is not a reset by "
         "subtraction); set it to 1 or use backend=simulator", cfg.neuron.max_spikes)


def delay_sharing(cfg: Config) -> list[DelaySharing]:
    """Each layer's delay sharing (model/sharing.py); a ConfigError when one cannot exist."""
    sizes, bias = cfg.layer_sizes(), cfg.network.bias_time is not None
    out = []
    for k, (kind, g) in enumerate(zip(cfg.delay_kinds(), cfg.group_sizes())):
        try:
            out.append(DelaySharing(kind, sizes[k] + bias, sizes[k + 1], g,
                                    cfg.delay.group_layout))
        except ValueError as exc:
            raise ConfigError(f"delay.group_layout: layer {k}: {exc} (delay.group_size "
                              f"{cfg.delay.group_size})") from None
    return out


def _check_bss2(cfg: Config) -> None:
    """What the chip cannot realise is refused with the reason (bss2_mapping)."""
    from snndelay.backends.bss2.mapping import MappingError, check_realisable, place

    try:
        check_realisable(cfg.delay_kinds(), cfg.neuron.tau_mem, cfg.neuron.tau_syn)
        place(cfg.layer_sizes()[1:], [sh.circuits for sh in delay_sharing(cfg)])
    except MappingError as exc:
        raise ConfigError(f"backend={cfg.backend.name}: {exc}") from None


def _one_line(exc: Exception) -> str:
    text = str(exc)
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        return f"{group}: no option {option!r}; available: {', '.join(options)}"
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown:
        key = unknown.group(1)
        group = key.split(".", 1)[0]
        if "." in key and (config_dir() / group).is_dir():
            leaf = key.split(".")[1]
            users = sorted(p.stem for p in (config_dir() / group).glob("*.yaml")
                           if re.search(rf"(?m)^{re.escape(leaf)}\s*:", p.read_text()))
            if users:  # a key of the schema that only some options use
                return (f"{key}: the chosen {group} option does not use it; it applies to "
                        f"{group}={', '.join(users)}")
            return (f"{key}: not a key of the chosen {group} option "
                    f"(`snndelay train --cfg {group}=OPTION` lists its keys)")
        return f"{key}: unknown key (`snndelay train --cfg` lists the keys)"
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        return f"{key}: {msg}" if key else msg
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _chosen(raw: Any, group: str) -> str:
    """The option a raw config chose for `group` (its name key), or the default's."""
    node: Any = raw.get(group) if hasattr(raw, "get") else None
    name = node.get("name") if hasattr(node, "get") else None
    return str(name) if name is not None else str(getattr(Config(), group).name)


def _typed_base(raw: Any) -> DictConfig:
    """The structured Config with the schema of each chosen option in place."""
    base = OmegaConf.structured(Config)
    for group, schemas in SCHEMAS.items():
        name = _chosen(raw, group)
        _one_of(f"{group}.name", name, tuple(schemas))
        setattr(base, group, OmegaConf.structured(schemas[name]))
    return base


def from_dictconfig(raw: DictConfig | dict) -> Config:
    """Type-check a composed (or saved) config against the schema of every chosen option,
    then validate()."""
    try:
        merged = OmegaConf.merge(_typed_base(raw), raw)
        cfg = OmegaConf.to_object(merged)
        assert isinstance(cfg, Config)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        group = key.split(".", 1)[0]
        if group in SCHEMAS and "not in" in str(exc):
            name = _chosen(raw, group)
            keys = [f.name for f in fields(SCHEMAS[group][name])]
            raise ConfigError(f"{key}: not a key of {group}={name} (its keys: "
                              f"{', '.join(keys)})") from None
        raise ConfigError(_one_line(exc)) from None
    return validate(cfg)


def without_foreign_keys(raw: dict) -> dict:
    """A saved config with the keys its chosen options do not have removed: runs written
    before each option had its own schema saved every option's keys in one section."""
    out = dict(raw)
    for group, schemas in SCHEMAS.items():
        node = out.get(group)
        if isinstance(node, dict):
            name = _chosen(out, group)
            if name in schemas:
                keys = {f.name for f in fields(schemas[name])}
                out[group] = {k: v for k, v in node.items() if k in keys}
    return out


@functools.cache
def _register_schemas() -> None:
    """Tell Hydra the schemas (once per process), so that configs/GROUP/NAME.yaml can extend
    _schema_NAME."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            cs.store(group=group, name=f"_schema_{name}", node=schema)


def compose(overrides: list[str]) -> tuple[DictConfig, Config]:
    """Compose configs/ with Hydra's own override grammar; (raw config, checked Config)."""
    path = config_dir()
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"config directory {path} has no config.yaml "
                          "(set SNNDELAY_CONFIG_DIR to the project's configs/)")
    stamp = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*.yaml")))
    raw = copy.deepcopy(_hydra_compose(str(path), tuple(overrides), stamp))
    return raw, from_dictconfig(raw)


@functools.lru_cache(maxsize=256)
def _hydra_compose(path: str, overrides: tuple[str, ...], stamp: tuple) -> DictConfig:
    """Hydra's composition, remembered per (config files and their times, overrides): a sweep
    or a test composes the same configs many times, at about 0.2 s each."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    _register_schemas()
    try:
        with initialize_config_dir(config_dir=path, version_base=None):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # Hydra's internals reject some malformed overrides (e.g. "=3") with plain errors.
        raise ConfigError(f"cannot apply the overrides {' '.join(overrides)}: "
                          f"{_one_line(exc)}") from None


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
