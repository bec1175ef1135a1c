"""`snndelay export` / `snndelay import`: trained delay networks as NIR graphs (docs/model.md
section 10: the NIR mapping).

NIR (Neuromorphic Intermediate Representation, Pedersen et al., Nat. Commun. 2024) describes a
network as nodes (Input, Linear, Delay, CubaLIF, Output) and edges; edges into one node sum.
Per layer k the graph holds (N = inputs of the layer, M = its neurons):

  axonal     src -> delay{k} Delay[N] -> lin{k} Linear[M, N] -> lif{k}
  dendritic  src -> lin{k} -> delay{k} Delay[M] -> lif{k}
  none       src -> lin{k} -> lif{k}
  synaptic   exact fan-out: src -> fan{k} Linear[N*M, N] (0/1: each input copied once per
             target) -> delay{k} Delay[N*M] -> lin{k} Linear[M, N*M] (one weight per row) ->
             lif{k}; or, with buckets=K, K shared delay values: src -> delay{k}_{b} Delay[N]
             (all d_b) -> lin{k}_{b} Linear[M, N] (the weights of the synapses in bucket b)
             -> lif{k}, b = 0..K-1.
The bias spike is a second Input node "bias" [1] (one spike per sample at bias_time) feeding
every layer through its own Linear (and its delay where the layer's kind has one).

The neuron maps exactly onto CubaLIF (time unit X ms per model time unit): with I_NIR = I / tau_syn,
tau_syn = tau_s X, tau_mem = tau_m X, r = tau_m X, v_leak = 0, v_threshold = theta, w_in = 1.
What NIR cannot say goes into the graph's metadata: neurons fire once (only a neuron's first
spike exists; v_reset is a large negative number that approximates it), the prediction is the
output neuron that fires first, the input encoding and the bias spike's time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snndelay.config import Config, to_yaml
from snndelay.engine import DelayKind
from snndelay.errors import ConfigError, UserError
from snndelay.model.network import Network

FORMAT = "snndelay-nir/1"
V_RESET = -1.0e9  # x theta: after its spike a neuron stays far below threshold (fire once)
# Above this many float64 values the exact fan-out of synaptic delays is refused (about 1.6 GB
# in the file); above FANOUT_WARN it is written with a warning.
FANOUT_MAX = 200_000_000
FANOUT_WARN = 5_000_000
SEMANTICS = (
    "snndelay time-to-first-spike network. Neurons fire at most once: only each neuron's first "
    "spike exists and is passed on (v_reset approximates this; a reader must drop later "
    "spikes), except in layers whose metadata says max_spikes K > 1: there each spike resets "
    "the membrane to v_reset = 0 (synaptic current kept) and the first K spikes are passed on. "
    "The prediction is the output neuron that fires first (none: no prediction). "
    "Input 'input' carries one spike per channel at the encoded time (see metadata "
    "snndelay.encoding); input 'bias' carries one spike per sample at snndelay.bias_time. "
    "Times are in ms with snndelay.time_unit_ms ms per model time unit.")


class NirUnavailable(UserError, ImportError):
    """The optional nir package is not installed."""


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise NirUnavailable("export/import as NIR needs the nir package: "
                             "pip install 'snndelay[nir]'") from None
    return nir


@dataclass
class ExportReport:
    path: Path
    n_nodes: int
    synaptic: str  # "exact" or "buckets=K"
    fanout_values: int  # float values the exact fan-out wrote (0 without synaptic delays)
    warnings: list[str]


def _bucket(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres [K'], index of each delay's centre): K shared delay values by 1-D k-means
    (Lloyd's iterations from quantiles), K' <= K distinct centres."""
    flat = d.reshape(-1)
    distinct = np.unique(flat)
    if len(distinct) <= k:  # K bounded by the delays there are: exact, and no wasted work
        return distinct, np.searchsorted(distinct, flat).reshape(d.shape)
    centres = np.unique(np.quantile(flat, (np.arange(k) + 0.5) / k))
    for _ in range(50):
        idx = _nearest(flat, centres)
        sums = np.bincount(idx, weights=flat, minlength=len(centres))
        counts = np.bincount(idx, minlength=len(centres))
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.allclose(new, centres, rtol=0, atol=1e-15):
            break
        centres = np.sort(new)
    return centres, _nearest(flat, centres).reshape(d.shape)


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted centres for every x (O(n log K), no n x K array)."""
    right = np.clip(np.searchsorted(centres, x), 1, len(centres) - 1) if len(centres) > 1 \
        else np.zeros(len(x), dtype=np.int64)
    if len(centres) == 1:
        return right
    left = right - 1
    return np.where(np.abs(x - centres[left]) <= np.abs(centres[right] - x), left, right)


def bucketed(net: Network, k: int) -> Network:
    """A copy of net whose synaptic delays take K shared values per layer (what
    export(buckets=K) writes), for measuring the spike-time error it causes."""
    import copy

    out = copy.deepcopy(net)
    for layer in out.layers:
        if layer.kind is DelayKind.SYNAPTIC and layer.delays is not None:
            d = layer.delays.value()
            centres, idx = _bucket(d, k)
            set_delays(layer, centres[idx])
    return out


def set_delays(layer: Any, d: np.ndarray) -> None:
    """Overwrite a layer's delays with the values d (kind shape) through a clamp
    parametrisation (raw = d exactly)."""
    spec = replace(layer.delays.spec, positivity="clamp", shift=0.0, group_size=1)
    layer.delays.spec = spec
    with torch.no_grad():
        layer.delays.raw = torch.nn.Parameter(
            torch.from_numpy(np.ascontiguousarray(d, dtype=np.float64)).reshape(
                {DelayKind.AXONAL: (-1, 1), DelayKind.DENDRITIC: (1, -1)}.get(spec.type, d.shape)))


MAX_TIME_UNIT_MS = 1e6  # ms per model time unit: beyond 1000 s per tau_s no real neuron


def check_time_unit(time_unit_ms: float, what: str = "--time-unit-ms") -> float:
    """The time unit as a float, or ConfigError: finite, > 0, at most MAX_TIME_UNIT_MS."""
    try:
        x = float(time_unit_ms)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: must be a number of ms, got {time_unit_ms!r}") from None
    if not 0 < x <= MAX_TIME_UNIT_MS:  # also refuses nan and inf
        raise ConfigError(f"{what}: must be in (0, {MAX_TIME_UNIT_MS:g}] ms per model time unit "
                          f"(tau_s), got {time_unit_ms!r}")
    return x


def to_nir(net: Network, cfg: Config, *, time_unit_ms: float = 1.0, buckets: int | None = None
           ) -> tuple[Any, ExportReport]:
    """(the NIR graph of net, what was written). buckets: K shared values for synaptic delays
    instead of the exact fan-out."""
    if not net.readout.spiking:
        raise ConfigError(f"export: readout={net.readout.name} reads non-spiking output "
                          "integrators over a time window, which a NIR graph cannot express; "
                          "export a run trained with readout=first_spike")
    nir = _nir()
    x = check_time_unit(time_unit_ms)
    n = net.neuron
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([net.sizes[0]]))}
    edges: list[tuple[str, str]] = []
    has_bias = net.bias_time is not None
    if has_bias:
        nodes["bias"] = nir.Input(input_type=np.array([1]))
    layers_meta, warnings = [], []
    # The exact fan-out's size, known from the shapes: checked before anything is allocated.
    fanout = 0 if buckets is not None else sum(
        2 * ni * ni * m + ni * m for ni, m, p in
        ((net.sizes[k] + has_bias, net.sizes[k + 1], p) for k, p in enumerate(net.layer_params()))
        if p.kind is DelayKind.SYNAPTIC)
    if fanout > FANOUT_MAX:
        raise ConfigError(f"the exact encoding of the synaptic delays needs {fanout} values "
                          f"(> {FANOUT_MAX}); use --synaptic-buckets K")
    src = "input"
    for k, (layer, p) in enumerate(zip(net.layers, net.layer_params())):
        w = np.asarray(p.weights, dtype=np.float64)  # [N (+1 bias row), M]
        n_in, m = net.sizes[k], net.sizes[k + 1]
        d = None if p.delays is None else np.asarray(p.delays, dtype=np.float64) * x
        lif = f"lif{k}"
        # A multi-spike layer subtracts theta at the crossing, where u = theta: exactly a reset
        # to 0 with the synaptic current kept, CubaLIF's own reset (docs/model.md section 11).
        v_reset = 0.0 if net.max_spikes[k] > 1 else V_RESET * n.threshold
        nodes[lif] = nir.CubaLIF(
            tau_syn=np.full(m, n.tau_syn * x), tau_mem=np.full(m, n.tau_mem * x),
            r=np.full(m, n.tau_mem * x), v_leak=np.zeros(m), v_threshold=np.full(m, n.threshold),
            v_reset=np.full(m, v_reset), w_in=np.ones(m))
        encoding = p.kind.value
        # (source node, weight rows, name prefix): the layer's inputs, then the bias spike
        rows = [(src, slice(0, n_in), "")] + ([("bias", slice(n_in, n_in + 1), "bias_")]
                                               if has_bias else [])

        def wire(name: str, node: Any, source: str) -> str:
            nodes[name] = node
            edges.append((source, name))
            return name

        if p.kind is DelayKind.DENDRITIC:  # shifts everything neuron j receives, bias included
            assert d is not None
            nodes[f"delay{k}"] = nir.Delay(d.copy())
            edges.append((f"delay{k}", lif))
        for s, r, pre in rows:
            wp = w[r]
            if p.kind in (DelayKind.NONE, DelayKind.DENDRITIC):
                lin = wire(f"{pre}lin{k}", nir.Linear(wp.T.copy()), s)
                edges.append((lin, f"delay{k}" if p.kind is DelayKind.DENDRITIC else lif))
            elif p.kind is DelayKind.AXONAL:
                assert d is not None
                delay = wire(f"{pre}delay{k}", nir.Delay(d[r].copy()), s)
                edges.append((wire(f"{pre}lin{k}", nir.Linear(wp.T.copy()), delay), lif))
            elif buckets is None:  # synaptic, exact: one copy of input i per target j
                assert d is not None
                ni = wp.shape[0]
                fan = np.zeros((ni * m, ni))
                fan[np.arange(ni * m), np.repeat(np.arange(ni), m)] = 1.0  # row i*M + j <- i
                gather = np.zeros((m, ni * m))
                gather[np.tile(np.arange(m), ni), np.arange(ni * m)] = wp.reshape(-1)
                copies = wire(f"{pre}fan{k}", nir.Linear(fan), s)
                delay = wire(f"{pre}delay{k}", nir.Delay(d[r].reshape(-1).copy()), copies)
                edges.append((wire(f"{pre}lin{k}", nir.Linear(gather), delay), lif))
                encoding = "synaptic_fanout"
            else:  # synaptic, K shared delay values per layer
                assert d is not None
                centres, idx = _bucket(d, buckets)
                for b, c in enumerate(centres):
                    delay = wire(f"{pre}delay{k}_{b}", nir.Delay(np.full(wp.shape[0], c)), s)
                    masked = np.where(idx[r] == b, wp, 0.0).T.copy()
                    edges.append((wire(f"{pre}lin{k}_{b}", nir.Linear(masked), delay), lif))
                encoding = f"synaptic_buckets={len(centres)}"
        layers_meta.append({"kind": p.kind.value, "encoding": encoding, "inputs": n_in,
                            "neurons": m, "max_spikes": net.max_spikes[k]})
        src = lif
    nodes["output"] = nir.Output(output_type=np.array([net.sizes[-1]]))
    edges.append((src, "output"))
    if fanout > FANOUT_WARN:
        warnings.append(f"the exact fan-out of the synaptic delays writes {fanout} values "
                        f"({fanout * 8 / 1e6:.0f} MB before compression); --synaptic-buckets K "
                        "writes K shared delays per layer instead")
    meta = {
        "format": FORMAT, "time_unit_ms": x, "fire_once": True, "readout": "first_spike",
        "bias_time": net.bias_time, "neuron": {"tau_mem": n.tau_mem, "tau_syn": n.tau_syn,
                                               "threshold": n.threshold},
        "layers": layers_meta, "encoding": _encoding_meta(cfg), "config_yaml": to_yaml(cfg),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges,
                         metadata={"snndelay": json.dumps(meta), "semantics": SEMANTICS})
    report = ExportReport(Path(), len(nodes), "exact" if buckets is None else f"buckets={buckets}",
                          fanout, warnings)
    return graph, report


def _encoding_meta(cfg: Config) -> dict:
    d = cfg.dataset
    out: dict = {"dataset": d.name, "replicate": d.replicate}
    for key in ("t_early", "t_late"):
        if hasattr(d, key):
            out[key] = getattr(d, key)
    return out


def write_nir(net: Network, cfg: Config, path: Path, **kw: Any) -> ExportReport:
    import os
    import uuid

    nir = _nir()
    graph, report = to_nir(net, cfg, **kw)
    # h5py writes by name (it reads back while writing): a unique temporary file in the
    # target's directory, renamed over the target, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        nir.write(str(tmp), graph)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    report.path = path
    return report


def bucketing_effect(net: Network, dataset: Any, buckets: int) -> dict[str, float]:
    """What sharing synaptic delays among `buckets` values (bucketed) changes on the test set:
    mean and max |dt| of the output spikes, the fraction of output spikes that appear or
    vanish, and the accuracy before and after."""
    from snndelay.app.deploy import spike_deviation
    from snndelay.app.trainer import load_split
    from snndelay.model.losses import predict

    test = load_split(dataset, "test")
    t = test.t_in.numpy()
    exact, approx = net(t)[0], bucketed(net, buckets)(t)[0]
    dev = spike_deviation(approx, exact)[-1]
    acc = [float((predict(x[-1]) == test.labels.numpy()).mean()) for x in (exact, approx)]
    return {"mean_abs_dt": dev["mean_abs_dt"], "max_abs_dt": dev["max_abs_dt"],
            "spike_mismatch_fraction": dev["spike_mismatch_fraction"],
            "accuracy_exact": acc[0], "accuracy_bucketed": acc[1]}
