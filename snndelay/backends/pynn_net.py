"""A first-spike network as a PyNN script: what the `pynn` backend runs on NEST or Brian2, and
the pieces the BrainScaleS-2 chip adapter shares with it (spike sources from spike times,
signed weights as an excitatory and an inhibitory projection, first spikes read back).

Every sample of a batch is its own copy of the network (populations of B x N neurons,
block-diagonal connections): neurons fire once (a refractory period longer than the run) and
start each sample at rest, which one serialised spike train through one network would not
give. Times: model units x time_unit_ms. Weights: with unit capacitance (1 nF) and the
threshold in mV, du/dt' = I / C in mV/ms, so a model weight w (du/ds = -g u + I in units of
tau_s, docs/model.md section 1) is a current jump of w / (tau_s * time_unit_ms) nA.
A synapse's delay is the layer's delay of that synapse (axonal, dendritic or synaptic,
docs/model.md section 3) plus one simulator step (the smallest delay a simulator accepts),
so layer k's recorded spikes come (k + 1) steps late; that shift is removed on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from snndelay.engine.types import DelayKind, LayerParams


def synapse_delays(layer: LayerParams) -> np.ndarray:
    """Each synapse's delay [N_rows, N_out] (model units) of the layer's kind."""
    rows, out = layer.weights.shape
    if layer.kind is DelayKind.NONE:
        return np.zeros((rows, out))
    d = np.asarray(layer.delays, dtype=np.float64)
    if layer.kind is DelayKind.AXONAL:
        return np.repeat(d[:, None], out, axis=1)
    if layer.kind is DelayKind.DENDRITIC:
        return np.repeat(d[None, :], rows, axis=0)
    return d


def spike_source_lists(t: np.ndarray, unit_ms: float, offset: float = 0.0) -> list[list[float]]:
    """Spike times [B, N] (model units, +inf = none) as one list per source (sample-major:
    source b * N + i), in ms, shifted by offset model units."""
    flat = (np.asarray(t, dtype=np.float64) + offset).reshape(-1)
    return [[float(v * unit_ms)] if np.isfinite(v) else [] for v in flat]


def signed_connections(w: np.ndarray, d_ms: np.ndarray, batch: int, pre_offset: int = 0,
                       rows: slice | None = None) -> tuple[list[tuple], list[tuple]]:
    """(excitatory, inhibitory) connection lists (pre, post, |weight|, delay) of a block-
    diagonal projection: sample b's row i to its neuron j. Zero weights are left out."""
    rows = rows or slice(0, w.shape[0])
    w, d_ms = w[rows], d_ms[rows]
    n_rows, n_out = w.shape
    i, j = np.nonzero(w)
    exc: list[tuple] = []
    inh: list[tuple] = []
    for b in range(batch):
        for a, c in zip(i, j):
            conn = (pre_offset + b * n_rows + int(a), b * n_out + int(c), abs(float(w[a, c])),
                    float(d_ms[a, c]))
            (exc if w[a, c] > 0 else inh).append(conn)
    return exc, inh


def spike_sources(sim: Any, cell_types: Any, times_ms: list[list[float]]) -> Any:
    """A population of spike sources, source i firing at times_ms[i] (ms). cell_types: where
    the simulator's SpikeSourceArray lives (the PyNN module; pynn_brainscales: its .cells)."""
    return sim.Population(len(times_ms), cell_types.SpikeSourceArray(spike_times=times_ms))


def signed_projections(sim: Any, pre: Any, post: Any, excitatory: Any, inhibitory: Any,
                       connector: Callable[[Any], tuple[Any, dict]]) -> None:
    """One projection per sign onto the cells' excitatory and inhibitory receptors (PyNN's
    weights are magnitudes per receptor); connector(part) -> (PyNN connector, projection
    keywords) of one sign's part, and a part that is None or empty is left out."""
    for part, receptor in ((excitatory, "excitatory"), (inhibitory, "inhibitory")):
        if part is None or len(part) == 0:
            continue
        conn, kwargs = connector(part)
        sim.Projection(pre, post, conn, receptor_type=receptor, **kwargs)


def recorded_spikes(population: Any, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Every spike a population recorded: (times in the simulator's unit x scale, neuron index
    in the population), in the order of the neurons' spike trains."""
    trains = population.get_data("spikes", clear=True).segments[-1].spiketrains
    times, ids = [np.zeros(0)], [np.zeros(0, dtype=np.int64)]
    for k, train in enumerate(trains):
        values = np.asarray(train.magnitude, dtype=np.float64) * scale
        times.append(values)
        ids.append(np.full(values.size, int(train.annotations.get("source_index", k))))
    return np.concatenate(times), np.concatenate(ids)


def first_spikes(population: Any, batch: int, n: int, unit_ms: float) -> np.ndarray:
    """The first recorded spike of every neuron of a B x N population: [B, N] model units."""
    times, ids = recorded_spikes(population, 1.0 / unit_ms)
    out = np.full(batch * n, np.inf)
    np.minimum.at(out, ids, times)
    return out.reshape(batch, n)


@dataclass(frozen=True)
class Simulator:
    """What differs between simulators: the module, the cell and how weights are signed."""

    sim: Any
    cell: Callable[[LayerParams], Any]  # the cell type of a layer
    # PyNN current-based cells sum both receptors' currents: inhibitory weights are -|w|
    # (the BrainScaleS-2 chip takes magnitudes per receptor)
    inhibitory_sign: float
    setup: dict
    membrane: str = "v"  # the cell's membrane variable (NEST's native cells: V_m)


def run_network(s: Simulator, params: list[LayerParams], t_in: np.ndarray, unit_ms: float,
                step_ms: float, horizon: float) -> list[np.ndarray]:
    """First spike times [B, N_k] (model units) of every layer for inputs t_in [B, N_in], all
    samples of the batch in one simulator run."""
    sim = s.sim
    batch = t_in.shape[0]
    step = step_ms / unit_ms  # model units
    sim.setup(timestep=step_ms, min_delay=step_ms, **s.setup)
    pre = spike_sources(sim, sim, spike_source_lists(t_in, unit_ms))
    pops, end = [], float(np.max(t_in[np.isfinite(t_in)], initial=0.0))
    for k, layer in enumerate(params):
        n_in = pre.size // batch
        rows, n_out = layer.weights.shape
        tau_s = layer.neuron.tau_syn
        w_na = np.asarray(layer.weights, dtype=np.float64) / (tau_s * unit_ms)
        d = synapse_delays(layer)
        d_ms = np.round((d + step) / step) * step_ms  # on the grid (realise rounded d)
        post = sim.Population(batch * n_out, s.cell(layer))
        post.initialize(**{s.membrane: 0.0})  # at rest (the model's u = 0)
        post.record("spikes")
        sources = [(pre, slice(0, n_in))]
        if layer.bias_time is not None:  # one bias source per sample, shifted as its layer
            bias = np.full((batch, 1), layer.bias_time)
            sources.append((spike_sources(sim, sim, spike_source_lists(
                bias, unit_ms, offset=k * step)), slice(n_in, rows)))
        for src, part in sources:
            exc, inh = signed_connections(w_na, d_ms, batch, rows=part)
            inh = [(a, b, s.inhibitory_sign * w, dl) for a, b, w, dl in inh]
            signed_projections(sim, src, post, exc, inh, lambda c: (sim.FromListConnector(
                c, column_names=["weight", "delay"]), {}))
        end += float(np.max(d, initial=0.0)) + step + horizon
        pops.append((post, n_out))
        pre = post
    sim.run(float(np.ceil(end / step)) * step_ms)  # a whole number of steps
    out = [first_spikes(p, batch, n, unit_ms) - (k + 1) * step for k, (p, n) in enumerate(pops)]
    sim.end()
    return out
