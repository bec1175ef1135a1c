"""backend=pynn against the engine on trained runs: per layer, |t_sim - t_engine| (median, max,
tau_s) against the engine on the trained network and on the realised one (delays on the
grid), spikes present in one only, and test accuracy both ways. Prints one JSON object per
run and simulator.

    python scripts/pynn_parity.py RUN_DIR [RUN_DIR ...] [--simulator nest|brian2]
        [--resolution-ms 0.01] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from snndelay.app.rundir import load_run_config
from snndelay.app.runs import load_network
from snndelay.app.trainer import load_split
from snndelay.backends import make_backend
from snndelay.config import resolve, with_backend
from snndelay.model.losses import predict


def compare(a: list[np.ndarray], b: list[np.ndarray]) -> list[dict]:
    rows = []
    for x, y in zip(a, b):
        both = np.isfinite(x) & np.isfinite(y)
        d = np.abs(x[both] - y[both])
        rows.append({"median_abs_dt": float(np.median(d)) if d.size else None,
                     "max_abs_dt": float(d.max()) if d.size else None,
                     "pairs": int(both.sum()),
                     "one_only": int((np.isfinite(x) != np.isfinite(y)).sum())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--simulator", default="nest")
    ap.add_argument("--resolution-ms", type=float, default=0.01)
    ap.add_argument("--samples", type=int, default=0, help="first N test samples (0: all)")
    args = ap.parse_args()
    for run in args.runs:
        cfg = with_backend(load_run_config(run), "pynn", [
            f"backend.simulator={args.simulator}", f"backend.resolution_ms={args.resolution_ms}",
            "backend.batch_size=1000"])
        spec = resolve(cfg)
        net, epoch = load_network(run, spec, "last")
        test = load_split(spec.dataset, "test")
        n = args.samples or len(test.labels)
        t_in, labels = test.t_in.numpy()[:n], test.labels.numpy()[:n]
        backend = make_backend(spec)
        t0 = time.perf_counter()
        sim = backend.run(net, t_in).times
        took = time.perf_counter() - t0
        exact = net.forward(t_in)[0]
        realised = net.forward(t_in, params=backend.realise(net))[0]

        def acc(times: list[np.ndarray]) -> float:
            return float((predict(times[-1]) == labels).mean())

        print(json.dumps({
            "run": str(run), "experiment": spec.name, "simulator": args.simulator,
            "resolution_ms": args.resolution_ms, "samples": n, "seconds": round(took, 1),
            "vs_engine_trained": compare(sim, exact), "vs_engine_realised": compare(sim, realised),
            "accuracy_simulator": acc(sim), "accuracy_engine": acc(exact),
            "realisation": backend.realisation(net, t_in)}), flush=True)


if __name__ == "__main__":
    main()
