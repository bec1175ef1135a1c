"""Encoded splits: load(cfg.dataset, split) reads, checks and encodes one split once per
process (docs/model.md section 7)."""

from __future__ import annotations

from dataclasses import astuple
from typing import NamedTuple

import numpy as np
import torch

from snndelay.data import REGISTRY, SIZE_KEYS, n_classes, n_inputs
from snndelay.errors import DataError


class Encoded(NamedTuple):
    t_in: torch.Tensor  # [n, N] or [n, N, S] spike times (tau_s), +inf = no spike
    labels: torch.Tensor  # [n] int64
    features: torch.Tensor  # [n, F] raw values (Yin-Yang: for the prediction plot)


_CACHE: dict[tuple, Encoded] = {}


def load(d, split: str) -> Encoded:
    """Encode one split once per process (off the hot path); later calls reuse it. A split
    that cannot be read, is empty or has labels outside the dataset's classes is a DataError
    naming the file or the key to change."""
    key = (astuple(d), split)
    if key not in _CACHE:
        _CACHE[key] = _check(d, split, _encode(d, split))
    return _CACHE[key]


def _check(d, split: str, enc: Encoded) -> Encoded:
    n = len(enc.labels)
    root = getattr(d, "root", None)
    where = f"dataset={d.name}" + (f" (dataset.root={root})" if root else "")
    if n == 0:
        hint = (f"dataset.val_size={d.val_size} leaves no training samples; lower it"
                if split == "train" and hasattr(d, "root") else
                f"check the files and {SIZE_KEYS[split]}")
        raise DataError(f"{where}: the {split} split is empty ({hint})")
    if enc.t_in.shape[0] != n:
        raise DataError(f"{where}: the {split} split has {enc.t_in.shape[0]} inputs but {n} labels")
    if enc.t_in.shape[1] != n_inputs(d):  # e.g. test images of another size than training's
        raise DataError(f"{where}: the {split} split encodes to {enc.t_in.shape[1]} input "
                        f"channels, the network has {n_inputs(d)} (files of different image "
                        "sizes?)")
    labels = enc.labels
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes(d):
        raise DataError(f"{where}: the {split} split has labels {int(labels.min())}.."
                        f"{int(labels.max())}; {d.name} has classes 0..{n_classes(d) - 1}")
    if torch.isnan(enc.t_in).any():
        raise DataError(f"{where}: the {split} split encodes to NaN spike times")
    return enc


def _encode(d, split: str) -> Encoded:
    t, labels, feats = REGISTRY[d.name].encode(d, split)
    return Encoded(_times(d, t), torch.as_tensor(labels, dtype=torch.int64),
                   torch.as_tensor(feats))


def _times(d, t: np.ndarray) -> torch.Tensor:
    if d.replicate > 1:  # copy k of input i is row replicate * i + k (shares i's axonal delay)
        t = np.repeat(t, d.replicate, axis=1)
    return torch.from_numpy(np.ascontiguousarray(t, dtype=np.float64))


def augmented(d, seed: int, epoch: int) -> torch.Tensor:
    """The training split's spike times with a fresh draw of the dataset's event augmentation
    (the samples and their order as load(d, "train")), a function of (seed, epoch) alone, so
    a resumed run draws what an uninterrupted one would."""
    t = REGISTRY[d.name].augment(d, np.random.SeedSequence([seed, epoch]))
    return _times(d, t)
