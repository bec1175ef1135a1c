"""`snndelay import`: a NIR graph written by `snndelay export` read back into a network and its
config; the graph is rebuilt from its metadata and compared node by node with a re-export, so
that a graph edited or damaged since is refused (docs/model.md section 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snndelay.app.export import FORMAT, _nir, check_time_unit, set_delays, to_nir  # noqa: E402
from snndelay.config import Config, from_dictconfig, resolve
from snndelay.engine import DelayKind
from snndelay.errors import ConfigError
from snndelay.model.network import Network


def from_nir(graph: Any) -> tuple[Network, Config]:
    """The snndelay network (and the config it was trained with) of a graph written by
    to_nir; delays become clamp-parametrised values (raw = delay), so the network computes the
    exported spike times. ConfigError if the graph is not one snndelay wrote, or if it is not
    exactly what its metadata says (an edited node, edge, threshold or value): the network is
    exported again and compared with the graph, node by node."""
    raw = graph.metadata.get("snndelay") if isinstance(graph.metadata, dict) else None
    if raw is None:
        raise ConfigError("not a graph written by `snndelay export` (no snndelay metadata)")
    try:
        meta = json.loads(str(raw))
        if not isinstance(meta, dict):
            raise ValueError("the snndelay metadata is not a mapping")
        if meta.get("format") != FORMAT:
            raise ConfigError(f"unknown snndelay NIR format {meta.get('format')!r}")
        net, cfg, x, buckets = _network_of(graph, meta)
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}" if str(exc) else \
            type(exc).__name__
        raise ConfigError(f"the graph does not hold the network its snndelay metadata "
                          f"describes ({what})") from None
    _same_graph(graph, to_nir(net, cfg, time_unit_ms=x, buckets=buckets)[0])
    return net, cfg


def _same_graph(got: Any, want: Any) -> None:
    """ConfigError naming the first node, edge or value where got differs from want."""
    if set(got.nodes) != set(want.nodes):
        extra, missing = sorted(set(got.nodes) - set(want.nodes)), sorted(set(want.nodes) -
                                                                          set(got.nodes))
        raise ConfigError(f"the graph's nodes do not match its metadata (unexpected: "
                          f"{extra[:3]}, missing: {missing[:3]})")
    if sorted(map(tuple, got.edges)) != sorted(map(tuple, want.edges)):
        raise ConfigError("the graph's edges do not match its metadata (edited edges?)")
    for name, node in want.nodes.items():
        other = got.nodes[name]
        if type(other).__name__ != type(node).__name__:
            raise ConfigError(f"node {name}: a {type(other).__name__}, the metadata says "
                              f"{type(node).__name__}")
        for key, value in vars(node).items():
            if not isinstance(value, np.ndarray) or key in ("metadata",):
                continue
            theirs = np.asarray(vars(other).get(key))
            if theirs.shape != value.shape or not np.allclose(
                    theirs.astype(np.float64), value.astype(np.float64), rtol=1e-9, atol=1e-12):
                raise ConfigError(f"node {name}: {key} differs from what the metadata's network "
                                  "gives (edited values?)")


def _network_of(graph: Any, meta: dict) -> tuple[Network, Config, float, int | None]:
    """(network, config, time unit, buckets) rebuilt from the metadata and the graph's arrays;
    every array finite and every delay >= 0."""
    from snndelay.app.rundir import read_yaml

    x = check_time_unit(meta["time_unit_ms"], "the graph's time_unit_ms")
    cfg_raw = read_yaml(meta["config_yaml"])
    if not isinstance(cfg_raw, dict) or not isinstance(cfg_raw.get("delay"), dict):
        raise ConfigError("the graph's config_yaml is not a snndelay config")
    kinds = [DelayKind(layer["kind"]) for layer in meta["layers"]]
    cfg_raw["delay"].update(positivity="clamp", shift=0.0, group_size=1)
    cfg = from_dictconfig(cfg_raw)
    spec = resolve(cfg).network
    if kinds != spec.kinds or len(meta["layers"]) != len(spec.layers):
        raise ConfigError(f"the graph's metadata lists {len(kinds)} layers of kinds "
                          f"{[k.value for k in kinds]}, its config "
                          f"{[k.value for k in spec.kinds]}")
    from snndelay.app.trainer import build_network

    net = build_network(spec, cfg.training.seed)
    nodes = graph.nodes
    has_bias = meta["bias_time"] is not None
    buckets = [int(info["encoding"].split("=")[1]) for info in meta["layers"]
               if str(info["encoding"]).startswith("synaptic_buckets=")]
    for k, (layer, info, kind) in enumerate(zip(net.layers, meta["layers"], kinds)):
        if (info["inputs"], info["neurons"]) != (net.sizes[k], net.sizes[k + 1]):
            raise ConfigError(f"layer {k}: the metadata says {info['inputs']} -> "
                              f"{info['neurons']} neurons, its config {net.sizes[k]} -> "
                              f"{net.sizes[k + 1]}")
        n_in, m = info["inputs"], info["neurons"]
        w = np.zeros((n_in + has_bias, m))
        d: np.ndarray | None = None
        enc = info["encoding"]
        pres = [("", slice(0, n_in))] + ([("bias_", slice(n_in, n_in + 1))] if has_bias else [])
        if enc in ("none", "axonal", "dendritic"):
            for pre, rows in pres:
                w[rows] = np.asarray(nodes[f"{pre}lin{k}"].weight).T
            if enc == "axonal":
                d = np.concatenate([np.asarray(nodes[f"{pre}delay{k}"].delay)
                                    for pre, _ in pres]) / x
            elif enc == "dendritic":
                d = np.asarray(nodes[f"delay{k}"].delay) / x
        elif enc == "synaptic_fanout":
            d = np.zeros_like(w)
            for pre, rows in pres:
                ni = rows.stop - rows.start
                lin = np.asarray(nodes[f"{pre}lin{k}"].weight)  # [M, ni*M]
                w[rows] = lin[np.tile(np.arange(m), ni), np.arange(ni * m)].reshape(ni, m)
                d[rows] = np.asarray(nodes[f"{pre}delay{k}"].delay).reshape(ni, m) / x
        elif enc.startswith("synaptic_buckets="):
            d = np.zeros_like(w)
            for b in range(int(enc.split("=")[1])):
                for pre, rows in pres:
                    wb = np.asarray(nodes[f"{pre}lin{k}_{b}"].weight).T
                    mask = wb != 0
                    w[rows] += wb
                    d[rows] = np.where(mask, float(nodes[f"{pre}delay{k}_{b}"].delay[0]) / x,
                                       d[rows])
        else:
            raise ConfigError(f"layer {k}: unknown encoding {enc!r}")
        if not np.isfinite(w).all():
            raise ConfigError(f"layer {k}: weights must be finite")
        if d is not None and (not np.isfinite(d).all() or (d < 0).any()):
            raise ConfigError(f"layer {k}: delays must be finite and >= 0")
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
        if layer.delays is not None and d is not None:
            set_delays(layer, d)
    return net, cfg, x, (max(buckets) if buckets else None)


def read_nir(path: Path) -> tuple[Network, Config]:
    """from_nir of a .nir file (ConfigError naming the file if it cannot be read)."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    nir = _nir()
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py/nir raise many types for a damaged or foreign file
        raise ConfigError(f"{path}: not a readable NIR file ({type(exc).__name__})") from None
    try:
        return from_nir(graph)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def import_run(nir_file: Path, run_dir: Path) -> Network:
    """Write the network of a NIR graph as a run directory (config.yaml, checkpoint.pt at
    epoch 0, no training state) that `snndelay evaluate` reads; only into a new or empty
    directory."""
    from snndelay.app.records import Checkpoint
    from snndelay.app.rundir import (
        atomic_write_text,
        check_fresh_run_dir,
        check_writable_dir,
        directory_lock,
    )
    from snndelay.app.runs import atomic_torch_save
    from snndelay.config import to_yaml

    check_writable_dir(run_dir)
    check_fresh_run_dir(run_dir)
    net, cfg = read_nir(nir_file)
    with directory_lock(run_dir):
        check_fresh_run_dir(run_dir)  # again, under the lock
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        ckpt = Checkpoint(epoch=0, model=net.state_dict(), optimizer={}, shuffle_rng=None,
                          noise_rng=None, bump_layer=-1, bump_value=0.0, elapsed_s=0.0, rows=[],
                          best_epoch=0, best_model={})
        atomic_torch_save(ckpt.to_dict(), run_dir / "checkpoint.pt")
    return net
