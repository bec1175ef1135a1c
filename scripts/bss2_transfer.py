"""Chip-to-chip transfer of BrainScaleS-2 runs on the emulator.

Usage: python scripts/bss2_transfer.py SWEEP_OR_RUN_DIR... [--repeats 5] [--fresh-chip 1]

For every run directory (a run, or every run below a sweep directory) trained on the
bss2_emulator: test accuracy on the training chip and on a fresh emulated chip, each the mean
over `repeats` draws of the trial noise, always under the standard noise model of docs/model.md
section 8 (whatever noise the run was trained with). A run that trained with extra noise is
thus judged on the chip it would meet. The fresh chip is evaluated twice: as trained, and
calibrated (each neuron's weights scaled by its threshold ratio between the two chips, measured
from spike times: what `snndelay deploy --hw` does by default). Prints a markdown table with the
drop per run.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from snndelay.app.deploy import calibrated
from snndelay.app.rundir import load_run_config
from snndelay.app.runs import load_network
from snndelay.app.trainer import load_split
from snndelay.backends import make_backend
from snndelay.backends.bss2.emulator import EmulatorConfig
from snndelay.config import resolve
from snndelay.model.losses import predict


def chip(cfg, chip_seed: int, seed: int):
    """Emulated chip `chip_seed` under the standard noise model (trial noise from `seed`)."""
    std = EmulatorConfig()
    backend_cfg = replace(cfg.backend, chip_seed=chip_seed, noise=True, fixed_mean=std.fixed_mean,
                          fixed_std=std.fixed_std, trial_std=std.trial_std,
                          jitter_std=std.jitter_std, chip_variation=0.0)
    return make_backend(resolve(replace(cfg, backend=backend_cfg)), seed=seed)


def chip_accuracy(cfg, net, chip_seed: int, repeats: int) -> float:
    """Mean test accuracy over `repeats` trial-noise draws on emulated chip `chip_seed`."""
    test = load_split(cfg.dataset, "test")
    x, y = test.t_in.numpy(), test.labels.numpy()
    accs = [(predict(chip(cfg, chip_seed, 10_000 + r).run(net, x).times[-1]) == y).mean()
            for r in range(repeats)]
    return float(np.mean(accs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fresh-chip", type=int, default=None,
                    help="emulated chip to transfer to (default: the training chip + 1)")
    args = ap.parse_args()
    runs = sorted({p.parent for d in args.dirs for p in d.rglob("checkpoint.pt")})
    print("| run | trained chip (%) | fresh chip (%) | drop (points) | fresh chip, calibrated (%) "
          "| drop (points) |")
    print("|---|---|---|---|---|---|")
    drops: dict[str, list[tuple[float, float]]] = {}  # per experiment: (as trained, calibrated)
    for run in runs:
        cfg = load_run_config(run)
        if cfg.backend.name != "bss2_emulator":
            continue
        net, _ = load_network(run, cfg)
        own = cfg.backend.chip_seed
        fresh = own + 1 if args.fresh_chip is None else args.fresh_chip
        a, b = (chip_accuracy(cfg, net, c, args.repeats) for c in (own, fresh))
        comp, _ = calibrated(net, chip(cfg, own, 20_000), chip(cfg, fresh, 20_001))
        c = chip_accuracy(cfg, comp, fresh, args.repeats)
        drops.setdefault(cfg.name, []).append((100 * (a - b), 100 * (a - c)))
        print(f"| {run.name} | {100 * a:.1f} | {100 * b:.1f} | {100 * (a - b):.1f} | "
              f"{100 * c:.1f} | {100 * (a - c):.1f} |", flush=True)
    print()
    for name, pairs in drops.items():
        for k, how in enumerate(("as trained", "calibrated")):
            d = [p[k] for p in pairs]
            print(f"{name}, {how}: median drop {np.median(d):.1f} points; within 2 points: "
                  f"{sum(x <= 2.0 for x in d)} of {len(d)}")


if __name__ == "__main__":
    main()
