"""Training time per epoch on the datasets beyond Yin-Yang.

Usage: python scripts/bench_datasets.py [--mnist-epochs 1] [--digits-epochs 5]

- digits_ws (64-64-10, synaptic delays, 1077 training images);
- the 784-350-10 MNIST network (mnist_784_350_10, no delays, and the same with synaptic
  delays) on synthetic data of MNIST size: 60000 + 10000 random 28x28 images with about 19 %
  lit pixels (as in MNIST), written as IDX files to a temporary directory. Exact gradients at
  MNIST scale; the published event-based code cannot train this size.
Reports seconds per epoch (training loop incl. validation) from summary.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from snndelay.app.records import RunSummary


def write_synthetic_mnist(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        lit = rng.random((n, 20, 20)) < 0.3  # ~19 % of all 784 pixels, in the centre
        images[:, 4:24, 4:24] = np.where(lit, rng.integers(64, 256, (n, 20, 20)), 0)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for name, arr in ((f"{prefix}-images-idx3-ubyte", images),
                          (f"{prefix}-labels-idx1-ubyte", labels)):
            header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(
                int(s).to_bytes(4, "big") for s in arr.shape)
            (root / name).write_bytes(header + arr.tobytes())


def run(args: list[str], out: Path) -> dict:
    subprocess.run(["snndelay", "train", *args, "--run-dir", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    s = RunSummary.read(out)
    return {"epochs": s.epochs, "s_per_epoch": s.wall_time_s / s.epochs,
            "test_accuracy": s.test_accuracy, "n_params": s.n_params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-epochs", type=int, default=1)
    ap.add_argument("--digits-epochs", type=int, default=5)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows.append(("digits_ws", run(["experiment=digits_ws", f"training.epochs={a.digits_epochs}"],
                                      tmp / "digits")))
        (tmp / "mnist").mkdir()
        write_synthetic_mnist(tmp / "mnist")
        for name, extra in (("mnist_784_350_10 (synthetic)", []),
                            ("mnist_784_350_10 + synaptic delays (synthetic)",
                             ["delay=synaptic", "training.lr_delay=0.001"])):
            rows.append((name, run(["experiment=mnist_784_350_10", f"dataset.root={tmp / 'mnist'}",
                                    f"training.epochs={a.mnist_epochs}", *extra],
                                   tmp / name.split()[0] / str(len(rows)))))
    print("| run | parameters | epochs | s per epoch |")
    print("|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['n_params']} | {r['epochs']} | {r['s_per_epoch']:.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
