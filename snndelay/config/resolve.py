"""A checked Config resolved once into the run specification (snndelay.spec): per-layer values
expanded, delay kinds per layer, the class count and sizes from the dataset, named seeds."""

from __future__ import annotations

import math
from typing import Any

from snndelay.config.schema import Config
from snndelay.data import n_classes, n_inputs
from snndelay.errors import ConfigError
from snndelay.limits import MAX_NEURONS, MAX_SPIKES
from snndelay.model.sharing import DelayKind, DelaySpec
from snndelay.spec import LayerSpec, NetworkSpec, RunSpec, Seeds, TrainSpec


def hidden_sizes(cfg: Config) -> list[int]:
    h = cfg.network.hidden
    return [h] if isinstance(h, int) else list(h)


def per_layer(key: str, value: Any, n: int) -> list[float]:
    """One number for every layer, or a list of n numbers (ConfigError otherwise)."""
    vals = [value] * n if isinstance(value, (int, float)) else value
    ok = isinstance(vals, (list, tuple)) and len(vals) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
    if not ok:
        raise ConfigError(f"{key}: give one number or a list of {n} numbers (one per layer), "
                          f"got {value!r}")
    return [float(v) for v in vals]


def _integers(key: str, value: Any, n: int, hi: int) -> list[int]:
    vals = per_layer(key, value, n)
    if any(not math.isfinite(v) or v != int(v) or not 1 <= v <= hi for v in vals):
        raise ConfigError(f"{key}: must be integers in [1, {hi}] (one, or one per layer), "
                          f"got {value!r}")
    return [int(v) for v in vals]


def delay_kinds(cfg: Config, n: int) -> list[DelayKind]:
    """The delay kind of each of n layers (NONE where delay.layers leaves a layer out)."""
    layers = cfg.delay.layers
    delayed = set(range(n)) if layers == "all" else {int(k) for k in layers}
    return [DelayKind(cfg.delay.type) if k in delayed else DelayKind.NONE for k in range(n)]


def resolve(cfg: Config) -> RunSpec:
    """The run specification of a config whose single values validate() has checked; raises
    ConfigError for per-layer values of the wrong shape."""
    sizes = [n_inputs(cfg.dataset)] + hidden_sizes(cfg) + [n_classes(cfg.dataset)]
    n = len(sizes) - 1
    t, dl = cfg.training, cfg.delay
    w_mean = per_layer("network.weight_mean", cfg.network.weight_mean, n)
    w_std = per_layer("network.weight_std", cfg.network.weight_std, n)
    lr = per_layer("training.lr", t.lr, n)
    lr_d = per_layer("training.lr_delay", t.lr_delay, n)
    spikes = _integers("neuron.max_spikes", cfg.neuron.max_spikes, n, MAX_SPIKES)
    groups = _integers("delay.group_size", dl.group_size, n, MAX_NEURONS)
    missing = [t.max_missing_hidden] * (n - 1) + [t.max_missing_output]
    layers = tuple(
        LayerSpec(sizes[k], sizes[k + 1],
                  DelaySpec(kind, dl.positivity, dl.shift, dl.scale, dl.init_mean, dl.init_std,
                            groups[k], dl.group_layout),
                  w_mean[k], w_std[k], lr[k], lr_d[k], spikes[k], missing[k])
        for k, kind in enumerate(delay_kinds(cfg, n)))
    nr = cfg.neuron
    network = NetworkSpec(layers, float(nr.tau_mem), float(nr.tau_syn), float(nr.threshold),
                          cfg.network.bias_time, cfg.readout)
    training = TrainSpec(
        epochs=t.epochs, seed=t.seed, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        step_size=t.step_size, gamma=t.gamma, schedule=t.schedule,
        weight_decay=t.weight_decay, bump=t.bump,
        max_dw_norm=math.inf if t.max_dw_norm is None else float(t.max_dw_norm),
        input_noise=t.input_noise, spike_dropout=float(t.spike_dropout), max_loss=t.max_loss,
        checkpoint_every=t.checkpoint_every,
        threads=t.threads, device=t.device, compiled=bool(t.compiled),
        max_memory_gb=None if t.max_memory_gb is None else float(t.max_memory_gb))
    return RunSpec(cfg.name, network, training, Seeds.of(t.seed), cfg.dataset, cfg.backend,
                   cfg.loss)
