"""Behaviour fingerprint of every preset: train each configs/experiment preset for a few epochs
(seed 0, one thread) and print the SHA-256 of its metrics.csv, so that a refactoring can be
checked bit for bit against the code before it.

    python scripts/preset_metrics.py --out before.json            # on the old checkout
    python scripts/preset_metrics.py --out after.json --compare before.json

The spoken-digit presets read --shd-root DIR (SHD-format files under DIR/SHD, channel_factor 5;
skipped without it); the MNIST preset trains on small synthetic IDX files written here (a bar
whose row is the label), since no MNIST is on disk. Run it with PYTHONPATH pointing at the checkout to measure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _write_idx(path: Path, arr: np.ndarray) -> None:
    dims = struct.pack(">" + "I" * arr.ndim, *arr.shape)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 8, arr.ndim) + dims + arr.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, n_train: int = 600, n_test: int = 200) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        lab = rng.integers(0, 10, n)
        img = np.zeros((n, 28, 28), dtype=np.uint8)
        for k, y in enumerate(lab):
            img[k, 2 + 2 * y: 4 + 2 * y, 4:24] = 255
        _write_idx(root / f"{prefix}-images-idx3-ubyte", img)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", lab)


def _extra(name: str, tmp: Path, shd_root: Path | None) -> list[str] | None:
    if name.startswith("shd"):
        if shd_root is None or not (shd_root / "SHD" / "shd_train.h5").is_file():
            return None
        return [f"dataset.root={shd_root}", "dataset.channel_factor=5"]
    if name.startswith("mnist"):
        root = tmp / "mnist"
        root.mkdir(exist_ok=True)
        _fake_mnist(root)
        return [f"dataset.root={root}", "dataset.val_size=100"]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, help="a JSON of an earlier run to compare with")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="preset names (default: every preset)")
    ap.add_argument("--shd-root", type=Path,
                    help="a directory holding SHD/ (SHD-format spoken-digit files)")
    args = ap.parse_args()
    root = Path(os.environ.get("PYTHONPATH", ".").split(":")[0]).resolve()
    names = args.only or sorted(p.stem for p in (root / "configs" / "experiment").glob("*.yaml"))
    result: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for name in names:
            extra = _extra(name, tmp, args.shd_root)
            if extra is None:
                print(f"{name}: skipped (no --shd-root with SHD/ files)", flush=True)
                continue
            run = tmp / name
            cmd = [sys.executable, "-c", "from snndelay.cli import app; app()", "train",
                   f"experiment={name}", f"training.epochs={args.epochs}", "training.seed=0",
                   "training.threads=1", *extra, "--run-dir", str(run)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                result[name] = f"failed: {proc.stderr.strip().splitlines()[-1:]}"
            else:
                result[name] = _metrics_hash(run / "metrics.csv")
            print(f"{name}: {result[name]}", flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = [n for n in result if before.get(n) != result[n]]
        print("identical" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    return 0


def _metrics_hash(path: Path) -> str:
    """SHA-256 of metrics.csv without its time_s column (wall time differs run to run; files
    written before the column existed hash as they did)."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))
    if not rows or "time_s" not in rows[0]:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    cols = [c for c in rows[0] if c != "time_s"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
