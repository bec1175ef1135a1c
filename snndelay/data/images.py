"""Image datasets: scikit-learn's bundled 8x8 digits and MNIST from IDX files (docs/model.md
section 7: pixel latency encoding, bright pixels early)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from snndelay.errors import DataError, DatasetMissing

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def pixel_spikes(p: np.ndarray, t_early: float = 0.15, t_late: float = 2.0,
                 drop_dark: bool = True) -> np.ndarray:
    """Latency code of intensities p in [0, 1]: t = t_early + (t_late - t_early) (1 - p), so
    bright pixels spike early; with drop_dark, pixels at the latest time (p = 0) stay silent."""
    t = t_early + (t_late - t_early) * (1.0 - np.asarray(p, dtype=np.float64))
    if drop_dark:
        t = np.where(p <= 0.0, np.inf, t)
    return t


def _allocate(total: int, counts: np.ndarray) -> np.ndarray:
    """Split `total` over classes in proportion to counts, exactly (largest remainders)."""
    quota = total * counts / counts.sum()
    k = np.floor(quota).astype(np.int64)
    k[np.argsort(-(quota - k), kind="stable")[: total - k.sum()]] += 1
    return np.minimum(k, counts)


def stratified_split(labels: np.ndarray, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets with the class proportions of `labels`: val and test get exactly
    their sizes, train the rest (capped at sizes['train'])."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    k_val = _allocate(sizes["val"], counts)
    k_test = _allocate(sizes["test"], counts - k_val)
    out: dict[str, list[int]] = {"val": [], "test": [], "train": []}
    for c, kv, kt in zip(classes, k_val, k_test):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out["val"] += idx[:kv].tolist()
        out["test"] += idx[kv:kv + kt].tolist()
        out["train"] += idx[kv + kt:].tolist()
    res = {k: rng.permutation(np.array(v, dtype=np.int64)) for k, v in out.items()}
    res["train"] = res["train"][: sizes["train"]]
    return res


def file_split_indices(split: str, n: int, sizes: dict[str, int], seed: int) -> np.ndarray:
    """Indices into a dataset's train file (n samples) or test file for `split`: test is the
    first sizes['test'] of the test file; val is a seeded random sizes['val'] of the train file
    and train the rest of it (capped at sizes['train']), disjoint from val."""
    if split == "test":
        return np.arange(min(sizes["test"], n))
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: sizes["val"]] if split == "val" else perm[sizes["val"]:][: sizes["train"]]


def digits(split: str, sizes: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(intensities [n, 64] in [0, 1], labels [n]) of scikit-learn's 8x8 digits (1797 images,
    bundled with scikit-learn: no download), fixed stratified split by seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    idx = stratified_split(data.target, sizes, seed)[split]
    return data.data[idx] / 16.0, data.target[idx].astype(np.int64)


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic 0x0000 08 NDIM, big-endian sizes, uint8 data)."""
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) != 4 or header[0] != 0 or header[1] != 0 or header[2] != 0x08:
                raise DataError(f"{path}: not an unsigned-byte IDX file (wrong magic number)")
            ndim = header[3]
            dims = f.read(4 * ndim)
            if len(dims) != 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(dims[4 * k:4 * k + 4], "big") for k in range(ndim))
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except (OSError, EOFError, zlib.error) as exc:  # a corrupted or truncated gzip stream
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'damaged file'})") from None
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def _find(root: Path, name: str) -> Path | None:
    for cand in (root / name, root / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def mnist_files(root: str | None, part: str) -> tuple[Path, Path]:
    """Paths of the (images, labels) IDX files of `part` (train or test) under root, plain or
    gzipped; DatasetMissing names every expected file when any is missing."""
    if not root:
        raise DatasetMissing("dataset.root: set it to the directory holding the MNIST IDX files "
                             "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                             "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")
    base = Path(root).expanduser()
    found = [_find(base, n) for n in MNIST_FILES[part]]
    if found[0] is None or found[1] is None:
        missing = [n for n, f in zip(MNIST_FILES[part], found) if f is None]
        raise DatasetMissing(f"dataset.root={base}: missing {', '.join(missing)} (plain or .gz); "
                             "expected the four MNIST IDX files there "
                             f"({', '.join(n for p in MNIST_FILES.values() for n in p)}); "
                             "snndelay never downloads")
    return found[0], found[1]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """[n, H, W] intensities -> [n, size, size] by area averaging (anti-aliased)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float64))[:, None]
    return F.adaptive_avg_pool2d(x, size)[:, 0].numpy()


def mnist(split: str, root: str | None, sizes: dict[str, int], seed: int,
          resize: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(intensities [n, 784] or [n, resize^2] in [0, 1], labels) from the IDX files; val is a
    seeded random part of the training files, disjoint from train."""
    part = "test" if split == "test" else "train"
    img_path, lab_path = mnist_files(root, part)
    images, labels = read_idx(img_path), read_idx(lab_path).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{img_path}: expected [n, rows, cols] images matching {lab_path}")
    idx = file_split_indices(split, len(labels), sizes, seed)
    x = images[idx].astype(np.float64) / 255.0
    if resize:
        x = resize_images(x, resize)
    return x.reshape(len(idx), int(np.prod(x.shape[1:]))), labels[idx]


def _sizes(d) -> dict[str, int]:
    return {"train": d.train_size, "val": d.val_size, "test": d.test_size}


def encode_digits(d, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spike times [n, 64], labels, intensities) of one split (dataset=digits)."""
    feats, labels = digits(split, _sizes(d), d.split_seed)
    return pixel_spikes(feats, d.t_early, d.t_late, d.drop_dark), labels, feats


def encode_mnist(d, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spike times [n, pixels], labels, intensities) of one split (dataset=mnist)."""
    feats, labels = mnist(split, d.root, _sizes(d), d.split_seed, d.resize)
    return pixel_spikes(feats, d.t_early, d.t_late, d.drop_dark), labels, feats
