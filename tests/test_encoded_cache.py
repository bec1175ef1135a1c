"""The on-disk cache of encoded SHD-format splits (snndelay/data/cache.py): a second process
loads what the first encoded without reading the recordings, and nothing stale or damaged is
ever trusted (another file content, other settings, a broken entry)."""

import numpy as np
import pytest
from shd_files import write_shd

from snndelay.config import compose
from snndelay.data import cache, encoding, shd


def _fresh_process():
    """Forget what this process cached in memory (as a new process would)."""
    encoding._CACHE.clear()
    cache._DIGESTS.clear()
    for memo in (shd.check_file, shd._file_classes):  # (a test may have replaced one)
        getattr(memo, "cache_clear", lambda: None)()


def _cfg(root, *extra):
    return compose(["experiment=shd_ms", f"dataset.root={root}", "dataset.val_size=6",
                    "dataset.channel_factor=10", "dataset.max_spikes=5", *extra])[1].dataset


@pytest.fixture
def files(tmp_path, monkeypatch):
    pytest.importorskip("tonic")
    monkeypatch.setenv("SNNDELAY_CACHE_DIR", str(tmp_path / "cache"))
    write_shd(tmp_path, "train", 30, 0, classes=10)
    write_shd(tmp_path, "test", 8, 1, classes=10)
    _fresh_process()
    yield tmp_path
    _fresh_process()


def _all_splits(d):
    return {s: encoding.load(d, s) for s in ("train", "val", "test")}


def _no_reading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the recordings were read although the cache holds them")

    monkeypatch.setattr(shd, "read_events", refuse)
    monkeypatch.setattr(shd, "check_file", refuse)


def test_a_second_process_loads_the_encoded_splits_without_reading_the_files(files,
                                                                             monkeypatch):
    d = _cfg(files)
    first = _all_splits(d)
    assert len(list((files / "cache").glob("shd-split-*.npz"))) == 3
    _fresh_process()
    _no_reading(monkeypatch)
    again = _all_splits(d)
    for s in first:
        assert np.array_equal(first[s].t_in.numpy(), again[s].t_in.numpy())
        assert np.array_equal(first[s].labels.numpy(), again[s].labels.numpy())
    from snndelay.data import n_classes

    assert n_classes(d) == 10  # the class count too comes from the cache


def test_other_settings_or_another_file_content_are_encoded_afresh(files, monkeypatch):
    base = encoding.load(_cfg(files), "train").t_in.numpy()
    _fresh_process()
    fewer = encoding.load(_cfg(files, "dataset.max_spikes=2"), "train").t_in.numpy()
    assert fewer.shape[2] == 2 and base.shape[2] == 5
    _fresh_process()
    write_shd(files, "train", 30, 7, classes=10)  # the same path, new recordings
    new = encoding.load(_cfg(files), "train").t_in.numpy()
    assert new.shape == base.shape and not np.array_equal(new, base)


def test_a_damaged_entry_is_rebuilt_not_trusted(files):
    d = _cfg(files)
    good = encoding.load(d, "test").t_in.numpy()
    for entry in (files / "cache").glob("shd-split-*.npz"):
        entry.write_bytes(b"not an npz file")
    _fresh_process()
    assert np.array_equal(encoding.load(d, "test").t_in.numpy(), good)
    assert all(np.load(e) is not None for e in (files / "cache").glob("shd-split-*.npz"))


def test_the_cache_can_be_switched_off_or_be_unwritable(files, monkeypatch):
    monkeypatch.setenv("SNNDELAY_CACHE_DIR", "off")
    encoding.load(_cfg(files), "test")
    assert not (files / "cache").exists()
    _fresh_process()
    blocked = files / "blocked"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("SNNDELAY_CACHE_DIR", str(blocked / "cache"))
    assert len(encoding.load(_cfg(files), "test").labels) == 8  # the run goes on


def test_a_missing_file_is_still_named_when_its_split_is_cached(files):
    d = _cfg(files)
    encoding.load(d, "test")
    _fresh_process()
    (files / "SHD" / "shd_test.h5.zip").unlink()
    from snndelay.data import DatasetMissing

    with pytest.raises(DatasetMissing, match="shd_test.h5.zip"):
        encoding.load(d, "test")
