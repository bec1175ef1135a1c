"""What the output layer costs per training batch of shd_ms: a first-spike output layer against
the voltage readouts (docs/model.md section 12), on the same hidden spike trains.

Usage: python scripts/bench_readout.py [ROOT] [--repeats 5] [--batches 10] [--threads 1]

ROOT holds SHD/ (SHD-format files, read with channel_factor 5). The network is shd_ms at its
initialisation (seed 0); per batch of 32 training words it times the hidden layer's forward +
backward (spike trains of up to 8 spikes) and, on its spikes, the output layer's forward +
backward as a first-spike layer (shd_ms_fs), as max_voltage and as mean_voltage. It prints
the median over repeats of the per-batch times and the readout's share of hidden + output:
what the readout adds to an epoch is its time minus the first-spike layer's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a directory holding SHD/")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import numba

    from snndelay import data
    from snndelay.app.trainer import build_network
    from snndelay.config import compose, resolve
    from snndelay.engine import layer_backward, layer_forward, readout_backward, readout_forward

    numba.set_num_threads(args.threads)
    spec = resolve(compose(["experiment=shd_ms", f"dataset.root={args.root}",
                            "dataset.channel_factor=5"])[1])
    net = build_network(spec.network, 0)
    hidden, out = net.layer_params()
    t_all = data.load(spec.dataset, "train").t_in.numpy()
    batches = [t_all[32 * k:32 * (k + 1)] for k in range(args.batches)]
    rng = np.random.default_rng(0)

    def hidden_pass(t: np.ndarray) -> np.ndarray:
        h, cache = layer_forward(t, hidden)
        layer_backward(cache, rng.normal(size=h.shape))
        return h

    trains = [hidden_pass(t) for t in batches]  # compiles, and the inputs of the output layer
    fs_out = build_network(resolve(compose(["experiment=shd_ms_fs", f"dataset.root={args.root}",
                                            "dataset.channel_factor=5"])[1]).network,
                           0).layer_params()[1]

    def first_spike(h: np.ndarray) -> None:
        t, cache = layer_forward(h, fs_out)
        g = np.zeros(t.shape)
        g[np.isfinite(t)] = 1.0
        layer_backward(cache, g)

    def voltage(mode: str):
        def run(h: np.ndarray) -> None:
            z, cache = readout_forward(h, out, mode=mode, t_end=spec.network.readout.t_end)
            readout_backward(cache, np.ones(z.shape))
        return run

    cases = {"hidden layer (spike trains)": lambda t: hidden_pass(t),
             "first-spike output layer": first_spike,
             "max_voltage readout": voltage("max"), "mean_voltage readout": voltage("mean")}
    for fn, inputs in ((cases["first-spike output layer"], trains),
                       (cases["max_voltage readout"], trains),
                       (cases["mean_voltage readout"], trains)):
        fn(inputs[0])  # compile
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so that a busy machine slows every case alike
        for name, fn in cases.items():
            inputs = batches if name.startswith("hidden") else trains
            t0 = time.perf_counter()
            for x in inputs:
                fn(x)
            times[name].append((time.perf_counter() - t0) / len(inputs))
    med = {name: statistics.median(v) for name, v in times.items()}
    h = med["hidden layer (spike trains)"]
    spikes = float(np.mean([np.isfinite(x).sum(-1).mean() for x in trains]))
    print(f"shd_ms at initialisation, batches of 32, {spikes:.2f} hidden spikes per neuron, "
          f"{args.threads} thread(s), median of {args.repeats}:")
    for name, v in med.items():
        share = "" if name.startswith("hidden") else f"  ({100 * v / (h + v):.1f} % of hidden + it)"
        print(f"  {name:30s} {1e3 * v:8.2f} ms per batch{share}")
    fs = med["first-spike output layer"]
    for name in ("max_voltage readout", "mean_voltage readout"):
        print(f"  {name} instead of the first-spike layer: "
              f"{100 * (med[name] - fs) / (h + fs):+.1f} % of the batch's layer time")


if __name__ == "__main__":
    main()
