"""Exported NIR semantics against an independent time-stepped interpreter (tests/
nir_interpreter.py), on the Yin-Yang test set, for one trained network per delay kind.

Usage: python scripts/nir_check.py [--epochs 300] [--dt 1e-3] [--out outputs/nir_check]
Trains (or reuses) one run per delay kind's preset under --out, exports it and prints, per kind,
the median and 99th percentile of |t_interpreter - t_engine| of the output spikes and both test
accuracies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from nir_interpreter import first_spikes  # noqa: E402

from snndelay.app.export import to_nir  # noqa: E402
from snndelay.app.rundir import load_run_config  # noqa: E402
from snndelay.app.runs import load_network, train_run  # noqa: E402
from snndelay.app.trainer import load_split  # noqa: E402
from snndelay.config import (
    compose,  # noqa: E402
    )
from snndelay.model.losses import predict  # noqa: E402

PRESETS = {"none": "yinyang_h30_w", "axonal": "yinyang_h30_wa", "dendritic": "yinyang_h30_wd",
           "synaptic": "yinyang_h30_ws"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--dt", type=float, default=1e-3, help="interpreter step (tau_s)")
    ap.add_argument("--out", type=Path, default=Path("outputs/nir_check"))
    args = ap.parse_args()
    print("| delay | median abs dt (tau_s) | 99th pct (tau_s) | spikes kept (%) | engine acc (%) "
          "| interpreter acc (%) |\n|---|---|---|---|---|---|")
    for kind, preset in PRESETS.items():
        run = args.out / preset
        ov = [f"experiment={preset}", f"training.epochs={args.epochs}"]
        if not (run / "summary.json").is_file():
            train_run(compose(ov)[1], run, ov)
        cfg = load_run_config(run)
        net, _ = load_network(run, cfg)
        test = load_split(cfg.dataset, "test")
        t, y = test.t_in.numpy(), test.labels.numpy()
        ref = net(t)[0][-1]
        graph, _ = to_nir(net, cfg, time_unit_ms=1.0)
        inputs = {"input": t}
        if net.bias_time is not None:
            inputs["bias"] = np.full((len(y), 1), net.bias_time)
        t_max = float(np.max(ref[np.isfinite(ref)])) + 1.0
        got = first_spikes(graph, inputs, args.dt, t_max)
        both = np.isfinite(ref) & np.isfinite(got)
        err = np.abs(ref[both] - got[both])
        acc = [100 * float((predict(x) == y).mean()) for x in (ref, got)]
        print(f"| {kind} | {np.median(err):.1e} | {np.quantile(err, 0.99):.1e} | "
              f"{100 * both.sum() / np.isfinite(ref).sum():.1f} | {acc[0]:.1f} | {acc[1]:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
