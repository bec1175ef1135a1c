"""Datasets and their spike-time encodings (docs/model.md section 7). A dataset is a config
group (configs/dataset/); load(cfg.dataset, split) returns encoded tensors, computed once per
process.

yinyang  generated (golden values of docs/model.md), 4 values -> one spike each
digits   scikit-learn's bundled 8x8 digits, pixel latency code
mnist    IDX files under dataset.root, optional resizing, pixel latency code
shd      Spiking Heidelberg Digits through tonic, events -> [n, channels, max_spikes]

This module itself is light (names, sizes): the config checks import it without loading torch
or the readers; load() and the encoders are imported on first use.
"""

from __future__ import annotations

from typing import Any

DATASETS = ("yinyang", "digits", "mnist", "shd")
N_CLASSES = {"yinyang": 3, "digits": 10, "mnist": 10, "shd": 20}
SPLITS = ("train", "val", "test")
SIZE_KEYS = {"train": "dataset.train_size", "val": "dataset.val_size",
             "test": "dataset.test_size"}


def n_inputs(d: Any) -> int:
    """Input channels the network sees (after replication)."""
    if d.name == "mnist":
        base = (d.resize or 28) ** 2
    else:
        base = {"yinyang": 4, "digits": 64, "shd": -(-700 // max(1, d.channel_factor))}[d.name]
    return base * d.replicate


def n_classes(d: Any) -> int:
    return N_CLASSES[d.name]


# (The Yin-Yang generator is snndelay.data.yinyang.yinyang: its name is also its module's.)
_LAZY = {"Encoded": "encoding", "load": "encoding", "DatasetMissing": "images",
         "pixel_spikes": "images", "yinyang_spikes": "yinyang"}


def __getattr__(name: str) -> Any:
    """The heavy parts (torch, the file readers) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"snndelay.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'snndelay.data' has no attribute {name!r}")


__all__ = ["DATASETS", "N_CLASSES", "SIZE_KEYS", "SPLITS", "DatasetMissing", "Encoded", "load",
           "n_classes", "n_inputs", "pixel_spikes", "yinyang_spikes"]
