"""A non-spiking baseline for files in the SHD layout: logistic regression on binned spike counts.

Usage: python scripts/count_baseline.py ROOT [--channel-factor 5] [--bins 10] [--t-max-ms 1000]

ROOT holds SHD/shd_train.h5 and SHD/shd_test.h5 (the layout `dataset=shd` reads). Each sample
becomes a vector of spike counts per (merged channel, time bin) over [0, t_max); a multinomial
logistic regression (scikit-learn, standardised counts) is fitted on the training file and
scored on the test file. It tells what the time-resolved spike counts alone allow, for a
comparison with the spiking presets (docs/results.md, "Spoken digits").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def binned_counts(path: Path, channel_factor: int, bins: int, t_max_ms: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(counts [n, channels * bins], labels [n]) of one SHD-format file."""
    import h5py

    n_ch = -(-700 // channel_factor)
    with h5py.File(path, "r") as f:
        times, units = f["spikes/times"], f["spikes/units"]
        labels = np.asarray(f["labels"], dtype=np.int64)
        x = np.zeros((len(labels), n_ch, bins))
        for k in range(len(labels)):
            t_ms = np.asarray(times[k], dtype=np.float64) * 1e3
            ch = np.asarray(units[k], dtype=np.int64) // channel_factor
            keep = (t_ms < t_max_ms) & (ch < n_ch)
            b = np.minimum((t_ms[keep] / t_max_ms * bins).astype(np.int64), bins - 1)
            np.add.at(x[k], (ch[keep], b), 1.0)
    return x.reshape(len(labels), -1), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--channel-factor", type=int, default=5)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--t-max-ms", type=float, default=1000.0)
    ap.add_argument("--C", type=float, default=0.01, help="inverse L2 regularisation strength")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = args.root / "SHD"
    x_tr, y_tr = binned_counts(folder / "shd_train.h5", args.channel_factor, args.bins, args.t_max_ms)
    x_te, y_te = binned_counts(folder / "shd_test.h5", args.channel_factor, args.bins, args.t_max_ms)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=args.C))
    model.fit(x_tr, y_tr)
    print(f"logistic regression on spike counts ({x_tr.shape[1]} features: "
          f"{x_tr.shape[1] // args.bins} channels x {args.bins} bins of "
          f"{args.t_max_ms / args.bins:g} ms): train {100 * model.score(x_tr, y_tr):.1f} %, "
          f"test {100 * model.score(x_te, y_te):.1f} % ({len(y_tr)} / {len(y_te)} samples)")


if __name__ == "__main__":
    main()
