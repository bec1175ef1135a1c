"""Range and consistency checks that types alone cannot express: every number finite, ranges,
upper bounds where a value would exhaust the machine (snndelay.limits), then the resolved run
checked by its parts (delay sharing, the backend's own rules, the loss)."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

from snndelay import backends
from snndelay.config.resolve import hidden_sizes, resolve
from snndelay.config.schema import DEVICES, POSITIVITY, SCHEDULES, Config
from snndelay.engine.types import KERNEL_RATIOS
from snndelay.errors import ConfigError, need, need_int
from snndelay.limits import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_LR,
    MAX_MEMORY_GB,
    MAX_NEURONS,
    MAX_SEED,
    MAX_SYNAPSES,
    MAX_THRESHOLD,
    MAX_TIME,
    MAX_WEIGHT,
    WHY_TIME,
    WHY_WEIGHT,
)
from snndelay.model.sharing import DELAY_TYPES, GROUP_LAYOUTS, DelayKind
from snndelay.spec import RunSpec


def one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    need(value in allowed, key, f"must be one of {', '.join(allowed)}", value)


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


def _check_single_values(cfg: Config) -> None:
    one_of("delay.type", cfg.delay.type, DELAY_TYPES)
    one_of("delay.positivity", cfg.delay.positivity, POSITIVITY)
    one_of("delay.group_layout", cfg.delay.group_layout, GROUP_LAYOUTS)
    cfg.dataset.check()
    h = cfg.network.hidden
    ok = (isinstance(h, int) and not isinstance(h, bool)) or (isinstance(h, (list, tuple)) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in h))
    need(ok, "network.hidden", "must be an integer or a list of integers", h)
    need(all(1 <= x <= MAX_NEURONS for x in hidden_sizes(cfg)), "network.hidden",
         f"sizes must lie in [1, {MAX_NEURONS}]", h)
    need(cfg.network.bias_time is None or 0 <= cfg.network.bias_time <= MAX_TIME,
         "network.bias_time", f"must be in [0, {MAX_TIME:g}] tau_s or null ({WHY_TIME})",
         cfg.network.bias_time)
    n = cfg.neuron
    for key in ("tau_mem", "tau_syn"):
        need(0 < getattr(n, key) <= MAX_TIME, f"neuron.{key}",
             f"must be in (0, {MAX_TIME:g}]", getattr(n, key))
    ratios = ", ".join(f"{r:g}" for r in KERNEL_RATIOS)  # the engine's kernels
    need(any(abs(n.tau_mem / n.tau_syn - r) <= 1e-12 * r for r in KERNEL_RATIOS), "neuron.tau_mem",
         f"tau_mem / tau_syn must be one of {ratios} (closed-form spike times)", n.tau_mem)
    need(0 < n.threshold <= MAX_THRESHOLD, "neuron.threshold",
         f"must be in (0, {MAX_THRESHOLD:g}] (weights are bounded by {MAX_WEIGHT:g}: a higher "
         "threshold is never reached)", n.threshold)
    dl = cfg.delay
    need(0 < dl.scale <= MAX_TIME, "delay.scale", f"must be in (0, {MAX_TIME:g}] tau_s ({WHY_TIME})",
         dl.scale)
    need(0 <= dl.shift <= MAX_TIME, "delay.shift",
         f"must be in [0, {MAX_TIME:g}] tau_s (delays stay positive; {WHY_TIME})", dl.shift)
    need(abs(dl.init_mean) <= MAX_TIME, "delay.init_mean", f"must be in [-{MAX_TIME:g}, "
         f"{MAX_TIME:g}]", dl.init_mean)
    need(0 <= dl.init_std <= MAX_TIME, "delay.init_std", f"must be in [0, {MAX_TIME:g}]",
         dl.init_std)
    n_layers = len(hidden_sizes(cfg)) + 1
    need(dl.layers == "all" or (isinstance(dl.layers, (list, tuple)) and all(
        isinstance(k, int) and not isinstance(k, bool) and 0 <= k < n_layers
        for k in dl.layers)), "delay.layers",
        f"must be 'all' or a list of layer indices in 0..{n_layers - 1}", dl.layers)
    t = cfg.training
    need_int("training.epochs", t.epochs, 1, MAX_EPOCHS)
    need_int("training.seed", t.seed, 0, MAX_SEED)
    need_int("training.batch_size", t.batch_size, 1, MAX_BATCH)
    need_int("training.eval_batch_size", t.eval_batch_size, 1, MAX_BATCH)
    need_int("training.step_size", t.step_size, 1, MAX_EPOCHS)
    need(0 < t.gamma <= 1, "training.gamma", "must be in (0, 1]", t.gamma)
    one_of("training.schedule", t.schedule, SCHEDULES)
    need(0 <= t.weight_decay <= 1, "training.weight_decay", "must be in [0, 1]", t.weight_decay)
    for key in ("max_missing_hidden", "max_missing_output"):
        need(0 <= getattr(t, key) <= 1, f"training.{key}", "must be in [0, 1]", getattr(t, key))
    need(0 < t.bump <= MAX_WEIGHT, "training.bump", f"must be in (0, {MAX_WEIGHT:g}] "
         f"({WHY_WEIGHT})", t.bump)
    need(0 <= t.input_noise <= MAX_TIME, "training.input_noise",
         f"must be in [0, {MAX_TIME:g}] tau_s", t.input_noise)
    need(0 <= t.spike_dropout < 1, "training.spike_dropout", "must be in [0, 1)",
         t.spike_dropout)
    need(t.max_loss is None or t.max_loss > 0, "training.max_loss", "must be > 0 or null",
         t.max_loss)
    need(t.max_dw_norm is None or t.max_dw_norm > 0, "training.max_dw_norm",
         "must be > 0 or null", t.max_dw_norm)
    need_int("training.checkpoint_every", t.checkpoint_every, 1, MAX_EPOCHS)
    need_int("training.threads", t.threads, 0, 1024)
    one_of("training.device", t.device, DEVICES)
    need(isinstance(t.compiled, bool), "training.compiled", "must be true or false", t.compiled)
    need(t.max_memory_gb is None or 0 < t.max_memory_gb <= MAX_MEMORY_GB,
         "training.max_memory_gb", f"must be in (0, {MAX_MEMORY_GB:g}] GB or null",
         t.max_memory_gb)


def _check_layers(cfg: Config, spec: RunSpec) -> None:
    layers, t = spec.network.layers, cfg.training
    for key, raw, vals, lo in (
            ("network.weight_mean", cfg.network.weight_mean,
             [ly.weight_mean for ly in layers], -MAX_WEIGHT),
            ("network.weight_std", cfg.network.weight_std, [ly.weight_std for ly in layers], 0)):
        need(all(lo <= v <= MAX_WEIGHT for v in vals), key,
             f"must be in [{lo:g}, {MAX_WEIGHT:g}] ({WHY_WEIGHT})", raw)
    sizes = spec.network.sizes
    n_syn = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    need(n_syn <= MAX_SYNAPSES, "network.hidden",
         f"the network would have {n_syn} synapses, more than {MAX_SYNAPSES} (memory)",
         cfg.network.hidden)
    need(all(0 < ly.lr <= MAX_LR for ly in layers), "training.lr",
         f"must be in (0, {MAX_LR:g}] (Adam moves each weight by about lr per step; larger "
         "steps jump past every spiking state)", t.lr)
    need(all(0 <= ly.lr_delay <= MAX_LR for ly in layers), "training.lr_delay",
         f"must be in [0, {MAX_LR:g}] (Adam moves each delay by about lr_delay tau_s per "
         "step)", t.lr_delay)
    for k, ly in enumerate(layers):
        try:
            ly.delay.sharing(spec.network.rows(k), ly.n_out)
        except ValueError as exc:
            raise ConfigError(f"delay.group_layout: layer {k}: {exc} (delay.group_size "
                              f"{cfg.delay.group_size})") from None


def validate(cfg: Config) -> Config:
    """Check every value of a typed config (ConfigError, one line, naming the key)."""
    _check_finite(cfg, "")
    _check_single_values(cfg)
    spec = resolve(cfg)
    _check_layers(cfg, spec)
    backend = backends.backend_class(cfg.backend.name)
    t = cfg.training
    need(backend.runs_tensors or (t.device == "cpu" and t.compiled),
         "training.device" if t.device != "cpu" else "training.compiled",
         f"backend={cfg.backend.name} runs the compiled CPU path only (training.device=cpu "
         "training.compiled=true); the torch path and GPUs train backend=simulator",
         t.device if t.device != "cpu" else t.compiled)
    need(not t.spike_dropout or (backend.drops_spikes and len(spec.network.sizes) > 2),
         "training.spike_dropout",
         "drops the spikes of hidden layers: it needs a hidden layer and backend=simulator "
         f"(backend={cfg.backend.name}, {len(spec.network.sizes) - 2} hidden layers)",
         t.spike_dropout)
    backend.check(spec)
    if cfg.delay.type not in (DelayKind.AXONAL, DelayKind.DENDRITIC):
        need(all(ly.delay.group_size == 1 for ly in spec.network.layers), "delay.group_size",
             f"shared delays need delay=axonal or delay=dendritic (delay={cfg.delay.type} has "
             "no groups); set it to 1", cfg.delay.group_size)
    cfg.loss.check()
    cfg.readout.check()
    cfg.tracking.check()
    if cfg.loss.reads != cfg.readout.produces:
        from snndelay.model.losses import LOSS_SCHEMAS
        from snndelay.model.readouts import DESCRIBE

        fits = [n for n, s in LOSS_SCHEMAS.items() if s.reads == cfg.readout.produces]
        raise ConfigError(f"loss={cfg.loss.name} reads {DESCRIBE[cfg.loss.reads]}, but "
                          f"readout={cfg.readout.name} produces "
                          f"{DESCRIBE[cfg.readout.produces]}; use loss={' or loss='.join(fits)}")
    return cfg
