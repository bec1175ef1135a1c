"""Datasets and their spike-time encodings (docs/model.md section 7).

Every dataset describes itself in one DatasetInfo: its configuration schema (the keys a run
with dataset=NAME accepts, with their defaults), its input channels and classes, the files it
reads, and its encoder. Adding a dataset means adding one schema, one encoder and one entry in
REGISTRY; configs/dataset/NAME.yaml selects it.

yinyang  generated (golden values of docs/model.md), 4 values -> one spike each
digits   scikit-learn's bundled 8x8 digits, pixel latency code
mnist    IDX files under dataset.root, optional resizing, pixel latency code
shd      Spiking Heidelberg Digits through tonic, events -> [n, channels, max_spikes]

This module itself is light (schemas, names, sizes): the config checks import it without
loading torch or the readers; load() and the encoders are imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from snndelay.errors import need, need_int
from snndelay.limits import MAX_SEED, MAX_TIME

SPLITS = ("train", "val", "test")
SIZE_KEYS = {"train": "dataset.train_size", "val": "dataset.val_size",
             "test": "dataset.test_size"}
MAX_SAMPLES = 10_000_000  # per split
MAX_REPLICATE = 100
MAX_SPIKES_PER_CHANNEL = 10_000
N_SHD_CHANNELS = 700


# -- configuration schemas: the keys every dataset has, then each dataset's own -------------
@dataclass
class DatasetConfig:
    name: str = "yinyang"
    train_size: int = 5000  # samples per split (at most what the files hold)
    val_size: int = 1000
    test_size: int = 1000
    replicate: int = 1  # copies of every input channel (BrainScaleS-2: 5, for drive)

    def check(self) -> None:
        for key in ("train_size", "val_size", "test_size"):
            need_int(f"dataset.{key}", getattr(self, key), 1, MAX_SAMPLES)
        need_int("dataset.replicate", self.replicate, 1, MAX_REPLICATE)

    def augments(self) -> bool:
        """Whether the training split is drawn afresh every epoch (event augmentation)."""
        return False


@dataclass
class _Latency:
    t_early: float = 0.15  # spike time of value 0 (Yin-Yang) or of the brightest pixel (images)
    t_late: float = 2.0  # spike time of value 1 (Yin-Yang) or of a dark pixel (images)

    def _check_latency(self) -> None:
        need(0 <= self.t_early < self.t_late <= MAX_TIME, "dataset.t_early",
             f"must satisfy 0 <= t_early < t_late <= {MAX_TIME:g} (tau_s)",
             (self.t_early, self.t_late))


@dataclass
class YinYangConfig(_Latency, DatasetConfig):
    """Yin-Yang: generated from seeds, 4 values per sample, one input spike each."""

    name: str = "yinyang"
    train_seed: int = 42  # generator seeds of the three splits
    val_seed: int = 41
    test_seed: int = 40

    def check(self) -> None:
        super().check()
        self._check_latency()
        for key in ("train_seed", "val_seed", "test_seed"):
            need_int(f"dataset.{key}", getattr(self, key), 0, MAX_SEED)


@dataclass
class DigitsConfig(_Latency, DatasetConfig):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), fixed stratified split."""

    name: str = "digits"
    train_size: int = 1077
    val_size: int = 360
    test_size: int = 360
    split_seed: int = 0
    drop_dark: bool = True  # pixels of intensity 0 send no spike

    def check(self) -> None:
        super().check()
        self._check_latency()
        need_int("dataset.split_seed", self.split_seed, 0, MAX_SEED)


@dataclass
class MnistConfig(_Latency, DatasetConfig):
    """MNIST from the IDX files in root (plain or .gz); val: a seeded part of train."""

    name: str = "mnist"
    root: Optional[str] = None  # directory of the files; never downloaded
    train_size: int = 55000
    val_size: int = 5000
    test_size: int = 10000
    split_seed: int = 0
    resize: Optional[int] = None  # resize to resize x resize (e.g. 16)
    drop_dark: bool = True

    def check(self) -> None:
        super().check()
        self._check_latency()
        need_int("dataset.split_seed", self.split_seed, 0, MAX_SEED)
        need(self.resize is None or (isinstance(self.resize, int) and 1 <= self.resize <= 28),
             "dataset.resize", "must be an integer in [1, 28] or null", self.resize)


@dataclass
class ShdConfig(DatasetConfig):
    """Spiking Heidelberg Digits (tonic) from root: events -> [n, 700 / channel_factor,
    max_spikes] spike times in tau_s."""

    name: str = "shd"
    root: Optional[str] = None  # holds SHD/shd_train.h5, SHD/shd_test.h5 (and their .zip)
    train_size: int = 100000  # all of the training file but the validation part
    val_size: int = 800
    test_size: int = 100000
    split_seed: int = 0
    channel_factor: int = 5  # merge this many neighbouring channels (700 -> 140)
    max_spikes: int = 8  # spikes kept per (merged) channel
    tau_s_ms: float = 10.0  # tau_s in ms (event times become tau_s units)
    t_max_ms: Optional[float] = 1000.0  # ignore events after this time
    n_classes: Optional[int] = None  # null: from the labels of the training file (SHD: 20)
    # Event augmentation of the training split, drawn afresh every epoch (seeded; tonic's
    # transforms, docs/model.md section 7); 0 switches each off.
    time_jitter_ms: float = 0.0  # std of Gaussian jitter on every event time (TimeJitter)
    time_skew: float = 0.0  # every time of a sample scaled by c ~ U[1 - s, 1 + s] (TimeSkew)
    channel_shift: int = 0  # all events of a sample moved by k ~ U{-n..n} merged channels
    drop_event: float = 0.0  # fraction of each sample's events dropped at random (DropEvent)

    def check(self) -> None:
        super().check()
        need_int("dataset.split_seed", self.split_seed, 0, MAX_SEED)
        need_int("dataset.channel_factor", self.channel_factor, 1, 700)
        need_int("dataset.max_spikes", self.max_spikes, 1, MAX_SPIKES_PER_CHANNEL)
        need(self.tau_s_ms > 0, "dataset.tau_s_ms", "must be > 0", self.tau_s_ms)
        need(self.t_max_ms is None or self.t_max_ms > 0, "dataset.t_max_ms",
             "must be > 0 or null", self.t_max_ms)
        if self.n_classes is not None:
            need_int("dataset.n_classes", self.n_classes, 2, 100_000)
        need(0 <= self.time_jitter_ms <= 1e4, "dataset.time_jitter_ms", "must be in [0, 1e4] ms",
             self.time_jitter_ms)
        need(0 <= self.time_skew < 1, "dataset.time_skew", "must be in [0, 1)", self.time_skew)
        need_int("dataset.channel_shift", self.channel_shift, 0, N_SHD_CHANNELS)
        need(0 <= self.drop_event < 1, "dataset.drop_event", "must be in [0, 1)",
             self.drop_event)

    def augments(self) -> bool:
        return bool(self.time_jitter_ms or self.time_skew or self.channel_shift
                    or self.drop_event)


# -- what each dataset is ----------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's description: schema, input channels (before replication), classes (a
    number, or "module:function" (d) -> int for datasets whose files say), the files it reads
    (for users; "" when generated or bundled), and its encoder "module:function" (d, split) ->
    (spike times, labels, features); functions are imported on first use."""

    name: str
    schema: type[DatasetConfig]
    channels: Callable[[Any], int]
    n_classes: int | str
    files: str
    encoder: str
    augmenter: str = ""  # "module:function" (d, seed) -> a fresh training split's spike times


    def classes(self, d: Any) -> int:
        if isinstance(self.n_classes, int):
            return self.n_classes
        return int(_call(self.n_classes, d))

    def encode(self, d: Any, split: str) -> tuple[Any, Any, Any]:
        return _call(self.encoder, d, split)

    def augment(self, d: Any, seed: Any) -> Any:
        return _call(self.augmenter, d, seed)


def _call(where: str, *args: Any) -> Any:
    module, func = where.split(":")
    return getattr(importlib.import_module(f"snndelay.data.{module}"), func)(*args)


REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("yinyang", YinYangConfig, lambda d: 4, 3, "", "yinyang:encode"),
    DatasetInfo("digits", DigitsConfig, lambda d: 64, 10, "", "images:encode_digits"),
    DatasetInfo("mnist", MnistConfig, lambda d: (d.resize or 28) ** 2, 10,
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                "t10k-labels-idx1-ubyte (plain or .gz) in dataset.root", "images:encode_mnist"),
    DatasetInfo("shd", ShdConfig, lambda d: -(-700 // max(1, d.channel_factor)), "shd:classes",
                "SHD/shd_train.h5 and SHD/shd_test.h5 (with their .zip files) in dataset.root",
                "shd:encode", "shd:augment"),
)}
DATASETS = tuple(REGISTRY)


def info(name: str) -> DatasetInfo:
    return REGISTRY[name]


def n_inputs(d: Any) -> int:
    """Input channels the network sees (after replication)."""
    return REGISTRY[d.name].channels(d) * d.replicate


def n_classes(d: Any) -> int:
    """Output neurons: the dataset's classes (for SHD-format files: dataset.n_classes, else
    read from the training file's labels)."""
    return REGISTRY[d.name].classes(d)


# (The Yin-Yang generator is snndelay.data.yinyang.yinyang: its name is also its module's.)
_LAZY = {"Encoded": "encoding", "load": "encoding", "augmented": "encoding",
         "DatasetMissing": "images",
         "pixel_spikes": "images", "yinyang_spikes": "yinyang"}


def __getattr__(name: str) -> Any:
    """The heavy parts (torch, the file readers) on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"snndelay.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'snndelay.data' has no attribute {name!r}")


__all__ = ["DATASETS", "REGISTRY", "SIZE_KEYS", "SPLITS", "DatasetConfig", "DatasetInfo",
           "DatasetMissing", "DigitsConfig", "Encoded", "MnistConfig", "ShdConfig",
           "YinYangConfig", "augmented", "info", "load", "n_classes", "n_inputs", "pixel_spikes",
           "yinyang_spikes"]
