"""The Yin-Yang dataset (docs/model.md section 7), generated deterministically, and its encoding."""

from __future__ import annotations

import numpy as np
import torch

R_SMALL = 0.1
R_BIG = 0.5


def _which_class(x: float, y: float) -> int:
    """2 inside either dot, else 1 on the side the criterion of docs/model.md section 7 picks, 0
    otherwise."""
    d_right = np.hypot(x - 1.5 * R_BIG, y - R_BIG)
    d_left = np.hypot(x - 0.5 * R_BIG, y - R_BIG)
    if d_right < R_SMALL or d_left < R_SMALL:
        return 2
    one = d_right <= R_SMALL or R_SMALL < d_left <= 0.5 * R_BIG or (
        y > R_BIG and d_right > 0.5 * R_BIG)
    return 1 if one else 0


def yinyang(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [size, 4] = (x, y, 1 - x, 1 - y), labels [size]) from numpy RandomState(seed):
    per sample a class is drawn, then points in the big circle until one of that class."""
    rng = np.random.RandomState(seed)
    feats = np.empty((size, 4))
    labels = np.empty(size, dtype=np.int64)
    for n in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * R_BIG
            if np.hypot(x - R_BIG, y - R_BIG) > R_BIG:
                continue
            if _which_class(x, y) == goal:
                break
        feats[n] = (x, y, 1.0 - x, 1.0 - y)
        labels[n] = goal
    return feats, labels


def yinyang_spikes(feats: np.ndarray, t_early: float = 0.15, t_late: float = 2.0
                   ) -> torch.Tensor:
    """One input spike per value v in [0, 1] at t_early + (t_late - t_early) v (tau_s units)."""
    return torch.as_tensor(t_early + (t_late - t_early) * feats, dtype=torch.float64)


def encode(d, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spike times [n, 4], labels, features) of one split (dataset=yinyang)."""
    size = {"train": d.train_size, "val": d.val_size, "test": d.test_size}[split]
    seed = {"train": d.train_seed, "val": d.val_seed, "test": d.test_seed}[split]
    feats, labels = yinyang(size, seed)
    return yinyang_spikes(feats, d.t_early, d.t_late).numpy(), labels, feats
