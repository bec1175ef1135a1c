"""A small time-stepped interpreter of NIR graphs, written for the tests from NIR's documented
node equations (nir.CubaLIF, nir.Delay, nir.Linear), independent of snndelay's engine:

  CubaLIF  tau_syn dI/dt = -I + w_in S,  tau_mem dv/dt = (v_leak - v) + r I,
           spike when v > v_threshold, then v = v_reset
  Delay    y(t) = x(t - delay), elementwise
  Linear   y = W x
Forward Euler with step dt (ms); a spike is a delta of integral 1 in the step where it occurs.
Fire-once (the graph's metadata says so): a neuron's spikes after its first are dropped.
"""

from __future__ import annotations

import json

import numpy as np


def _order(graph) -> list[str]:
    """Topological order of the nodes (the exported graphs have no cycles)."""
    preds = {n: [a for a, b in graph.edges if b == n] for n in graph.nodes}
    done: list[str] = []
    while len(done) < len(graph.nodes):
        for n in graph.nodes:
            if n not in done and all(p in done for p in preds[n]):
                done.append(n)
    return done


def first_spikes(graph, inputs: dict[str, np.ndarray], dt: float, t_max: float) -> np.ndarray:
    """First spike time (ms) of every output neuron, [B, N_out] (+inf = none), for input spike
    times inputs[name] [B, N] in ms (+inf = no spike)."""
    meta = json.loads(str(graph.metadata["snndelay"]))
    assert meta["fire_once"]
    order = _order(graph)
    preds = {n: [a for a, b in graph.edges if b == n] for n in graph.nodes}
    batch = next(iter(inputs.values())).shape[0]
    steps = int(np.ceil(t_max / dt))
    in_step = {k: np.where(np.isfinite(v), np.floor(v / dt), -1).astype(np.int64)
               for k, v in inputs.items()}
    state: dict[str, dict] = {}
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "CubaLIF":
            m = node.v_threshold.shape[0]
            state[name] = {"i": np.zeros((batch, m)), "v": np.zeros((batch, m)),
                           "fired": np.zeros((batch, m), bool), "t": np.full((batch, m), np.inf)}
        elif kind == "Delay":
            lag = np.rint(np.asarray(node.delay) / dt).astype(np.int64)
            state[name] = {"lag": lag, "buf": np.zeros((int(lag.max()) + 1, batch, lag.size)),
                           "cols": np.arange(lag.size)}
    out_name = next(n for n in order if type(graph.nodes[n]).__name__ == "Output")
    for step in range(steps):
        val: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            kind = type(node).__name__
            x = sum(val[p] for p in preds[name]) if preds[name] else None
            if kind == "Input":
                val[name] = (in_step[name] == step).astype(np.float64)
            elif kind == "Linear":
                val[name] = x @ np.asarray(node.weight).T
            elif kind == "Delay":
                s = state[name]
                size = s["buf"].shape[0]
                # what enters now leaves lag steps later (slot (step + lag) mod size)
                for b_lag in np.unique(s["lag"]):
                    cols = s["cols"][s["lag"] == b_lag]
                    s["buf"][(step + b_lag) % size][:, cols] += x[:, cols]
                val[name] = s["buf"][step % size].copy()
                s["buf"][step % size] = 0.0
            elif kind == "CubaLIF":
                s = state[name]
                s["i"] += -dt / node.tau_syn * s["i"] + node.w_in * x / node.tau_syn
                s["v"] += dt / node.tau_mem * (node.v_leak - s["v"] + node.r * s["i"])
                z = (s["v"] > node.v_threshold) & ~s["fired"]
                s["v"] = np.where(z, node.v_reset, s["v"])
                s["t"] = np.where(z, (step + 1) * dt, s["t"])
                s["fired"] |= z
                val[name] = z.astype(np.float64)
            elif kind == "Output":
                val[name] = x
        if all(state[p]["fired"].all() for p in preds[out_name]):
            break
    return state[preds[out_name][0]]["t"]
