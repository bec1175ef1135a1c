"""Small SHD-format files written by the tests (the layout of the Spiking Heidelberg Digits)."""

import zipfile

import numpy as np
import pytest


def write_shd(root, part, n, seed, zip_too=True, classes=20):
    """n samples with labels 0..classes-1 whose label-dependent channels fire early; returns
    the labels."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(seed)
    folder = root / "SHD"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shd_{part}.h5"
    labels = rng.integers(0, classes, n)
    labels[0] = classes - 1  # the file shows its highest class (the class count is read from it)
    with h5py.File(path, "w") as f:
        vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        times = f.create_dataset("spikes/times", (n,), dtype=vf)
        units = f.create_dataset("spikes/units", (n,), dtype=vu)
        for k in range(n):
            m = rng.integers(50, 200)
            # label-dependent channels fire early
            u = np.concatenate([rng.integers(0, 700, m - 20), 30 * labels[k] + np.arange(20)])
            t = np.concatenate([rng.uniform(0.1, 0.9, m - 20), rng.uniform(0.0, 0.05, 20)])
            times[k], units[k] = t.astype(np.float32), u.astype(np.uint16)
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array([f"d{k}".encode() for k in range(20)]))
        f.create_dataset("extra/speaker", data=rng.integers(0, 10, n).astype(np.uint16))
    if zip_too:
        with zipfile.ZipFile(str(path) + ".zip", "w") as z:
            z.write(path, path.name)
    return labels
