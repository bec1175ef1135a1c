"""A conventional reference for files in the SHD layout: a GRU on binned spike counts.

Usage: python scripts/gru_reference.py ROOT [--seeds 0 1 2] [--epochs 30] [--bin-ms 10]
       [--hidden 128] [--val-size 300] [--channel-factor 5] [--t-max-ms 1000] [--threads 1]

ROOT holds SHD/shd_train.h5 and SHD/shd_test.h5 (the layout `dataset=shd` reads). Each sample
becomes spike counts per (merged channel, time bin of bin_ms) over [0, t_max), log(1 + count);
a one-layer GRU reads the bins in order and a linear layer maps each step's state to class
scores, read by their maximum over time (--pool; or the last state, or the mean) (Adam, lr
3e-3, halved every 10 epochs, batch 32). val_size samples of the training file (seeded by the run's
seed) are held out as validation, as `dataset.val_size` does for the spiking presets; the
test accuracy is the one after the last epoch (no selection on the test file). It tells what
a conventional network makes of the same spikes (docs/results.md, "Spoken digits").
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from count_baseline import binned_counts


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class GruClassifier(torch.nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int, pool: str):
        super().__init__()
        self.gru = torch.nn.GRU(n_in, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, n_out)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, last = self.gru(x)
        if self.pool == "last":
            return self.out(last[0])
        return self.out(seq).amax(1) if self.pool == "max" else self.out(seq).mean(1)


def run(x: np.ndarray, y: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, *, seed: int,
        epochs: int, hidden: int, val_size: int, pool: str, lr: float) -> dict[str, float]:
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(y))
    val, tr = order[:val_size], order[val_size:]
    to_t = lambda a: torch.from_numpy(np.log1p(a)).float()  # noqa: E731
    xs, ys = to_t(x[tr]), torch.from_numpy(y[tr])
    xv, yv = to_t(x[val]), torch.from_numpy(y[val])
    xt, yt = to_t(x_te), torch.from_numpy(y_te)
    model = GruClassifier(x.shape[2], hidden, int(y.max()) + 1, pool)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10, 0.5)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(ys)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            opt.step()
        sched.step()
    per_epoch = (time.perf_counter() - t0) / epochs
    model.eval()
    return {"val": _accuracy(model, xv, yv), "test": _accuracy(model, xt, yt),
            "s_per_epoch": per_epoch,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--bin-ms", type=float, default=10.0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--val-size", type=int, default=300)
    ap.add_argument("--channel-factor", type=int, default=5)
    ap.add_argument("--t-max-ms", type=float, default=1000.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool", choices=("last", "max", "mean"), default="max",
                    help="what the classifier reads: the last state, or the maximum / mean "
                         "over time of the per-step outputs")
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bins = int(round(args.t_max_ms / args.bin_ms))
    folder = args.root / "SHD"
    shape = lambda a: a.reshape(len(a), -1, bins).transpose(0, 2, 1).copy()  # noqa: E731
    x, y = binned_counts(folder / "shd_train.h5", args.channel_factor, bins, args.t_max_ms)
    x_te, y_te = binned_counts(folder / "shd_test.h5", args.channel_factor, bins, args.t_max_ms)
    x, x_te = shape(x), shape(x_te)
    tests = []
    for seed in args.seeds:
        r = run(x, y, x_te, y_te, seed=seed, epochs=args.epochs, hidden=args.hidden,
                val_size=args.val_size, pool=args.pool, lr=args.lr)
        tests.append(r["test"])
        print(f"seed {seed}: val {100 * r['val']:.2f} %, test {100 * r['test']:.2f} % "
              f"(GRU {args.hidden}, {r['parameters']} parameters, {bins} bins of "
              f"{args.bin_ms:g} ms, {args.pool} of the outputs, lr {args.lr:g}, {args.epochs} "
              f"epochs, {r['s_per_epoch']:.1f} s per epoch)",
              flush=True)
    print(f"median test accuracy: {100 * statistics.median(tests):.2f} %")


if __name__ == "__main__":
    main()
