"""The engine's torch path (training.compiled=false, the code a GPU runs) against the compiled
CPU path over a few epochs of a preset, and, as the yardstick of what training itself does
with rounding-level differences, the compiled path against itself with every initial
parameter moved by one part in 1e13.

Prints, per epoch, the largest relative difference of any metric and of any parameter for
both pairs, and the first steps' parameter differences (how a rounding-level difference
grows). Usage:

    python scripts/path_parity.py experiment=shd_ms dataset.root=DIR \
        --epochs 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from snndelay.app.trainer import Trainer
from snndelay.config import compose, resolve
from snndelay.model.placement import placement_for


def _trainer(overrides: list[str], epochs: int, device: str, compiled: bool,
             nudge: float = 0.0) -> Trainer:
    spec = resolve(compose([*overrides, f"training.epochs={epochs}",
                            f"training.device={device}",
                            f"training.compiled={str(compiled).lower()}"])[1])
    trainer = Trainer(spec)
    if nudge:
        with torch.no_grad():
            for p in trainer.net.parameters():
                p.mul_(1.0 + nudge)
    return trainer


def _param_diff(a: Trainer, b: Trainer) -> float:
    return max(float(((p.detach() - q.detach().to(p.device)).abs().max()
                       / p.detach().abs().max().clamp(min=1e-300))
                     .cpu()) for p, q in zip(a.net.parameters(), b.net.parameters()))


def _row_diff(a: object, b: object) -> float:
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    return max(abs(getattr(a, k) - getattr(b, k)) / max(abs(getattr(a, k)), 1e-300)
               for k in keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="where the torch path runs (cpu, cuda)")
    ap.add_argument("--nudge", type=float, default=1e-13)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    placement_for(args.device, False, None)  # refuses a missing GPU at once
    runs = {"compiled": _trainer(args.overrides, args.epochs, "cpu", True),
            "torch": _trainer(args.overrides, args.epochs, args.device, False),
            "compiled, nudged": _trainer(args.overrides, args.epochs, "cpu", True, args.nudge)}
    out: dict[str, list] = {"epochs": []}
    for epoch in range(args.epochs):
        rows, took = {}, {}
        for name, tr in runs.items():
            t0 = time.perf_counter()
            rows[name] = tr.train_epoch()
            took[name] = time.perf_counter() - t0
        ref = runs["compiled"]
        line = {"epoch": epoch + 1,
                "torch_vs_compiled_metrics": _row_diff(rows["compiled"], rows["torch"]),
                "torch_vs_compiled_params": _param_diff(ref, runs["torch"]),
                "nudged_vs_compiled_metrics": _row_diff(rows["compiled"],
                                                        rows["compiled, nudged"]),
                "nudged_vs_compiled_params": _param_diff(ref, runs["compiled, nudged"]),
                "seconds": took,
                "val_acc": {k: r.val_acc for k, r in rows.items()}}
        out["epochs"].append(line)
        print(json.dumps(line), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
