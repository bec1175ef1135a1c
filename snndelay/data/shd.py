"""Spiking Heidelberg Digits through tonic (optional extra: pip install snndelay[shd]):
events become multi-spike inputs [n, channels, max_spikes] (docs/model.md section 7).

tonic downloads a dataset whose files it does not find, so the files are checked here first:
tonic's SHD expects ROOT/SHD/shd_train.h5 and shd_test.h5, each next to the zip it came from
(shd_train.h5.zip, shd_test.h5.zip). When any is missing, one line says which, and nothing is
downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from snndelay.data import cache
from snndelay.data.images import DatasetMissing, file_split_indices
from snndelay.errors import DataError

N_CHANNELS = 700
N_CLASSES = 20
MAX_CLASSES = 1_000  # labels of an SHD-format file (SHD: 20; SSC: 35)
MAX_EVENT_S = 1e4  # seconds: event times of a recording (SHD's are below 1.4 s)


def shd_expected_files(root: str | None, part: str) -> list[Path]:
    if not root:
        raise DatasetMissing("dataset.root: set it to the directory that holds SHD/ "
                             "(SHD/shd_train.h5, SHD/shd_test.h5 and their .zip files)")
    folder = Path(root).expanduser() / "SHD"
    return [folder / f"shd_{part}.h5", folder / f"shd_{part}.h5.zip"]


def _require(root: str | None, part: str) -> Path:
    """The h5 file of a part, after checking that tonic and both files tonic needs are there
    (DatasetMissing naming what is not; nothing is ever downloaded)."""
    h5, zipped = shd_expected_files(root, part)
    base = h5.parent.parent  # root, expanded
    if importlib.util.find_spec("tonic") is None:  # (found, not imported: a cached split needs none)
        raise DatasetMissing("dataset=shd needs tonic: pip install 'snndelay[shd]'")
    missing = [p for p in (h5, zipped) if not p.is_file()]
    if missing:
        raise DatasetMissing(
            f"dataset.root={base}: missing {', '.join(str(m) for m in missing)}; "
            f"tonic needs {h5.name} (the extracted file) and {zipped.name} (the archive it came "
            "from, from https://zenkelab.org/datasets/) in that folder and would otherwise "
            "download; snndelay never downloads")
    return h5


def _tonic_shd(root: str | None, part: str):
    import tonic

    h5 = _require(root, part)
    base = h5.parent.parent
    checked_classes(h5, part)  # (labels vs the classes: encoding)
    try:
        return tonic.datasets.SHD(save_to=str(base), train=part == "train")
    except Exception as exc:  # noqa: BLE001 - tonic checks and opens the file here
        raise DataError(f"{h5}: cannot be read as an SHD file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else 'damaged file'})"
                        ) from None


@functools.lru_cache(maxsize=16)
def _file_classes(path: str, mtime: float) -> int | None:
    try:
        return max(checked_classes(Path(path), "train")) + 1
    except Exception:  # noqa: BLE001 - unreadable here: the loader reports it with the reason
        return None


@functools.lru_cache(maxsize=16)
def check_file(path: str, mtime: float, part: str) -> tuple[int, ...]:
    """Read an SHD-format file once and check what the encoder relies on; DataError naming the
    file and the problem, else the sorted classes of its labels. Checked: the datasets
    spikes/times, spikes/units and labels, one entry per sample in each; event times finite,
    >= 0 and at most MAX_EVENT_S s; units integers in [0, 700); at least one event in the
    file; labels integers in [0, MAX_CLASSES); a training file with at least two classes."""
    import h5py

    def bad(problem: str) -> DataError:
        return DataError(f"{path}: {problem}")

    try:
        with h5py.File(path, "r") as f:
            for key in ("spikes/times", "spikes/units", "labels"):
                if key not in f:
                    raise bad(f"no dataset {key!r} (an SHD file has spikes/times, "
                              "spikes/units and labels)")
            labels = np.asarray(f["labels"])
            times, units = f["spikes/times"], f["spikes/units"]
            if labels.ndim != 1 or len(labels) == 0:
                raise bad(f"labels must be one integer per sample, got shape {labels.shape}")
            if len(times) != len(labels) or len(units) != len(labels):
                raise bad(f"{len(labels)} labels but {len(times)} spike-time and {len(units)} "
                          "unit lists")
            events = 0
            for k in range(len(labels)):
                t, u = np.asarray(times[k], dtype=np.float64), np.asarray(units[k])
                if t.shape != u.shape or t.ndim != 1:
                    raise bad(f"sample {k}: {t.size} event times but {u.size} units")
                if not np.isfinite(t).all() or (t < 0).any() or (t > MAX_EVENT_S).any():
                    raise bad(f"sample {k}: event times must be finite seconds in [0, "
                              f"{MAX_EVENT_S:g}] (found {t[~((t >= 0) & (t <= MAX_EVENT_S))][:1]})")
                if u.size and (not np.issubdtype(u.dtype, np.integer) or u.min() < 0
                               or u.max() >= N_CHANNELS):
                    raise bad(f"sample {k}: units must be integer channels in [0, {N_CHANNELS})")
                events += t.size
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many types for a damaged file
        raise bad(f"cannot be read as an SHD file ({type(exc).__name__})") from None
    if events == 0:
        raise bad("holds no events at all")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 \
            or labels.max() >= MAX_CLASSES:
        raise bad(f"labels must be integers in [0, {MAX_CLASSES}), found "
                  f"{labels.min()}..{labels.max()}")
    found = tuple(int(c) for c in np.unique(labels))
    if part == "train" and len(found) < 2:
        raise bad(f"every label is {found[0]}: a classifier needs at least two classes")
    return found


def classes(d) -> int:
    """Output neurons for an SHD-format dataset: dataset.n_classes when set, else the largest
    label of the training file plus one (SHD: 20; spoken-digit files in SHD format: 10); SHD's
    20 when the file cannot be read yet (loading it then names the problem)."""
    if d.n_classes is not None:
        return int(d.n_classes)
    if not d.root:
        return N_CLASSES
    h5 = shd_expected_files(d.root, "train")[0]
    try:
        found = _file_classes(str(h5), h5.stat().st_mtime)
    except OSError:
        found = None
    return N_CLASSES if found is None else found


def checked_classes(path: Path, part: str) -> tuple[int, ...]:
    """check_file's result, from the on-disk cache when this content passed it before
    (data/cache.py; a file that fails is checked, and reported, every time)."""
    name = cache.key("shd-check", [path], part)
    hit = cache.load(name)
    if hit is not None and "classes" in hit:
        return tuple(int(c) for c in hit["classes"])
    found = check_file(str(path), path.stat().st_mtime, part)
    cache.save(name, {"classes": np.asarray(found, dtype=np.int64)})
    return found


def encode_events(times_s: np.ndarray, units: np.ndarray, *, channel_factor: int = 1,
                  max_spikes: int = 1, tau_s_ms: float = 5.0, t_max_ms: float | None = None
                  ) -> np.ndarray:
    """One sample's events -> [700 / channel_factor, max_spikes] spike times in tau_s units
    (+inf padding): channels merged in groups of channel_factor, the first max_spikes spikes of
    each merged channel kept (optionally only those before t_max_ms)."""
    n_ch = -(-N_CHANNELS // channel_factor)
    out = np.full((n_ch, max_spikes), np.inf)
    t_ms = np.asarray(times_s, dtype=np.float64) * 1e3
    ch = np.asarray(units, dtype=np.int64) // channel_factor
    keep = (ch >= 0) & (ch < n_ch)
    if t_max_ms is not None:
        keep &= t_ms < t_max_ms
    t_ms, ch = t_ms[keep], ch[keep]
    order = np.lexsort((t_ms, ch))  # by channel, then time
    t_ms, ch = t_ms[order], ch[order]
    start = np.searchsorted(ch, np.arange(n_ch))
    rank = np.arange(len(ch)) - start[ch]  # position of each spike within its channel
    first = rank < max_spikes
    out[ch[first], rank[first]] = t_ms[first] / tau_s_ms
    return out


def read_events(split: str, root: str | None, sizes: dict[str, int], seed: int
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """(each sample's events (tonic's structured arrays: t in us, x the unit), labels [n]) of
    one split; val is a seeded part of the training file, disjoint from train."""
    part = "test" if split == "test" else "train"
    ds = _tonic_shd(root, part)
    h5 = shd_expected_files(root, part)[0]
    samples, labels = [], []
    try:  # tonic/h5py raise OSError, KeyError, ValueError ... on a damaged or foreign file
        for i in file_split_indices(split, len(ds), sizes, seed):
            events, target = ds[int(i)]
            samples.append(events)
            labels.append(int(target))
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is a data error
        raise DataError(f"{h5}: cannot be read as an SHD file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else 'damaged file'})"
                        ) from None
    return samples, np.asarray(labels, dtype=np.int64)


def _encode_all(d, samples: list[np.ndarray]) -> np.ndarray:
    if not samples:
        return np.full((0, -(-N_CHANNELS // d.channel_factor), d.max_spikes), np.inf)
    return np.stack([encode_events(ev["t"] / 1e6, ev["x"], channel_factor=d.channel_factor,
                                   max_spikes=d.max_spikes, tau_s_ms=d.tau_s_ms,
                                   t_max_ms=d.t_max_ms) for ev in samples])


def _sizes(d) -> dict[str, int]:
    return {"train": d.train_size, "val": d.val_size, "test": d.test_size}


def encode(d, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spike times [n, channels, max_spikes], labels, no features) of one split; read and
    encoded once per file content and encoding settings (the on-disk cache, data/cache.py)."""
    h5 = _require(d.root, "test" if split == "test" else "train")
    name = cache.key("shd-split", [h5], (split, sorted(_sizes(d).items()), d.split_seed,
                                         d.channel_factor, d.max_spikes, d.tau_s_ms, d.t_max_ms))
    hit = cache.load(name)
    if hit is not None and {"t_in", "labels"} <= hit.keys():
        return hit["t_in"], hit["labels"], np.zeros((len(hit["labels"]), 0))
    samples, labels = read_events(split, d.root, _sizes(d), d.split_seed)
    t_in = _encode_all(d, samples)
    cache.save(name, {"t_in": t_in, "labels": labels})
    return t_in, labels, np.zeros((len(labels), 0))


# The training split's events, kept while a run augments them (one entry per file and split).
_TRAIN_EVENTS: dict[tuple, list[np.ndarray]] = {}


@contextmanager
def _numpy_seeded(seed: np.random.SeedSequence) -> Iterator[None]:
    """tonic's transforms draw from numpy's global generator: seed it for them and give the
    caller's state back afterwards (nothing else's draws change)."""
    state = np.random.get_state()
    np.random.seed(seed.generate_state(1)[0])
    try:
        yield
    finally:
        np.random.set_state(state)


def augment_events(events: np.ndarray, d, rng: np.random.Generator) -> np.ndarray:
    """One sample's events after the configured augmentation: TimeJitter (std
    time_jitter_ms), TimeSkew (c ~ U[1 - s, 1 + s]), DropEvent (that fraction of the events), all tonic's,
    and a shift of every event by k ~ U{-n..n} merged channels (events moved past either
    end are dropped). Times stay >= 0."""
    from tonic import functional as tf

    ev = events.copy()
    if d.time_jitter_ms:
        ev = tf.time_jitter_numpy(ev, std=d.time_jitter_ms * 1e3, clip_negative=True)
    if d.time_skew:
        ev = tf.time_skew_numpy(ev, coefficient=(1 - d.time_skew, 1 + d.time_skew))
    if d.drop_event:
        ev = tf.drop_event_numpy(ev, drop_probability=d.drop_event)
    if d.channel_shift:
        k = int(rng.integers(-d.channel_shift, d.channel_shift + 1)) * d.channel_factor
        x = ev["x"].astype(np.int64) + k
        ev = ev[(x >= 0) & (x < N_CHANNELS)]
        ev["x"] += k
    return ev


def augment(d, seed: np.random.SeedSequence) -> np.ndarray:
    """The training split's spike times [n, channels, max_spikes] with one draw of the
    augmentation per sample (seeded: the same seed, the same inputs)."""
    key = (d.root, tuple(sorted(_sizes(d).items())), d.split_seed)
    if key not in _TRAIN_EVENTS:
        _TRAIN_EVENTS.clear()
        _TRAIN_EVENTS[key] = read_events("train", d.root, _sizes(d), d.split_seed)[0]
    rng = np.random.default_rng(seed)
    with _numpy_seeded(seed):
        return _encode_all(d, [augment_events(ev, d, rng) for ev in _TRAIN_EVENTS[key]])
