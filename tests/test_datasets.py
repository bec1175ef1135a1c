"""Datasets beyond Yin-Yang: digits, MNIST from IDX files (plain and gzipped), SHD through
tonic from an HDF5 file written here; encodings, splits, missing-file errors, short runs."""

import gzip

import numpy as np
import pytest
import torch
from shd_files import write_shd
from typer.testing import CliRunner

from snndelay import data
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.data.images import DatasetMissing, read_idx, stratified_split
from snndelay.data.shd import encode_events
from snndelay.errors import ConfigError

runner = CliRunner()


def _dataset(overrides):
    return compose(overrides)[1].dataset


# -- encodings --------------------------------------------------------------------------------
def test_pixel_code_bright_is_early_and_dark_is_silent():
    p = np.array([[1.0, 0.5, 0.0]])
    np.testing.assert_allclose(data.pixel_spikes(p)[0, :2], [0.15, 0.15 + 1.85 * 0.5])
    assert data.pixel_spikes(p)[0, 2] == np.inf
    assert data.pixel_spikes(p, drop_dark=False)[0, 2] == pytest.approx(2.0)
    t = data.pixel_spikes(np.array([[0.9, 0.1]]))
    assert t[0, 0] < t[0, 1]  # brighter spikes earlier


def test_event_encoding_keeps_the_first_spikes_of_each_merged_channel():
    times = np.array([0.030, 0.010, 0.020, 0.005, 0.500])  # seconds
    units = np.array([0, 1, 1, 699, 3])
    out = encode_events(times, units, channel_factor=2, max_spikes=2, tau_s_ms=5.0)
    assert out.shape == (350, 2)
    np.testing.assert_allclose(out[0], [2.0, 4.0])  # channels 0 and 1 merged: 10 ms, 20 ms
    assert out[1, 0] == pytest.approx(100.0) and out[1, 1] == np.inf  # channel 3, 500 ms
    assert out[349, 0] == pytest.approx(1.0)
    assert np.isinf(out[2:349]).all()
    cut = encode_events(times, units, channel_factor=2, max_spikes=2, tau_s_ms=5.0, t_max_ms=100)
    assert np.isinf(cut[1]).all()


# -- digits -----------------------------------------------------------------------------------
def test_digits_split_is_stratified_disjoint_and_seeded():
    d = _dataset(["experiment=digits_ws"])
    splits = {s: data.load(d, s) for s in ("train", "val", "test")}
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [1077, 360, 360]
    assert splits["train"].t_in.shape == (1077, 64)
    for s in splits.values():
        counts = np.bincount(s.labels.numpy(), minlength=10)
        assert counts.min() >= 0.08 * len(s.labels) and counts.max() <= 0.12 * len(s.labels)
    labels = np.arange(1797) % 10
    a = stratified_split(labels, {"train": 10_000, "val": 360, "test": 360}, seed=0)
    assert not (set(a["train"]) & set(a["val"]) or set(a["train"]) & set(a["test"])
                or set(a["val"]) & set(a["test"]))
    b = stratified_split(labels, {"train": 10_000, "val": 360, "test": 360}, seed=1)
    assert not np.array_equal(a["val"], b["val"])
    cfg = compose(["experiment=digits_ws"])[1]
    assert (resolve(cfg).network.sizes[0], resolve(cfg).network.sizes[-1]) == (64, 10)
    for preset in ("digits_ws", "digits_w"):  # the measured results need the input jitter
        assert compose([f"experiment={preset}"])[1].training.input_noise == 0.2


def test_digits_short_training_run(tmp_path):
    res = runner.invoke(app, ["train", "experiment=digits_ws", "training.epochs=2",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "summary.json").is_file()
    assert not (tmp_path / "r" / "yinyang_predictions.png").exists()


# -- MNIST ------------------------------------------------------------------------------------
def _write_idx(path, array, gz):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _fake_mnist(root, gz, n_train=120, n_test=40):
    rng = np.random.default_rng(0)
    labels = {"train": rng.integers(0, 10, n_train), "test": rng.integers(0, 10, n_test)}
    for part, (img_name, lab_name) in data.images.MNIST_FILES.items():
        lab = labels[part]
        img = np.zeros((len(lab), 28, 28), dtype=np.uint8)
        for k, y in enumerate(lab):  # a bright bar whose row depends on the label
            img[k, 2 + 2 * y: 4 + 2 * y, 4:24] = 255
        _write_idx(root / img_name, img, gz)
        _write_idx(root / lab_name, lab, gz)
    return labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files_plain_and_gzipped(tmp_path, gz):
    labels = _fake_mnist(tmp_path, gz)
    suffix = ".gz" if gz else ""
    imgs = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert imgs.shape == (120, 28, 28) and imgs.dtype == np.uint8
    d = _dataset(["experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
                  "dataset.val_size=20"])
    test, train, val = (data.load(d, s) for s in ("test", "train", "val"))
    assert test.t_in.shape == (40, 784)
    np.testing.assert_array_equal(test.labels.numpy(), labels["test"])
    assert len(train.labels) == 100 and len(val.labels) == 20
    # bright bar: early spikes; background: silent
    row = 2 + 2 * int(test.labels[0])
    assert test.t_in[0].reshape(28, 28)[row, 10] == pytest.approx(0.15)
    assert torch.isinf(test.t_in[0].reshape(28, 28)[0, 0])
    small = data.load(_dataset(["experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
                                "dataset.resize=16"]), "test")
    assert small.t_in.shape == (40, 256)
    assert resolve(compose(["experiment=mnist_784_350_10", "dataset.resize=16"])[1]).network.sizes[0] == 256


def test_mnist_missing_files_give_one_line_naming_them(tmp_path):
    with pytest.raises(DatasetMissing, match="train-images-idx3-ubyte"):
        data.load(_dataset(["dataset=mnist", f"dataset.root={tmp_path}"]), "train")
    res = runner.invoke(app, ["train", "experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "t10k" in res.output or "train-labels" in res.output
    assert "never downloads" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "experiment=mnist_784_350_10"])
    assert res.exit_code == 2 and "dataset.root" in res.output


def test_mnist_short_training_run(tmp_path):
    _fake_mnist(tmp_path, gz=True)
    res = runner.invoke(app, ["train", "experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
                              "dataset.val_size=20", "dataset.resize=8", "network.hidden=[20]",
                              "training.epochs=2", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output


# -- SHD --------------------------------------------------------------------------------------
def test_shd_through_tonic_gives_multi_spike_inputs(tmp_path):
    pytest.importorskip("tonic")
    train_labels = write_shd(tmp_path, "train", 30, 0)
    test_labels = write_shd(tmp_path, "test", 12, 1)
    d = _dataset(["experiment=shd_ws", f"dataset.root={tmp_path}", "dataset.val_size=6",
                  "dataset.max_spikes=3"])
    test, train, val = (data.load(d, s) for s in ("test", "train", "val"))
    assert test.t_in.shape == (12, 140, 3) and len(train.labels) == 24 and len(val.labels) == 6
    np.testing.assert_array_equal(test.labels.numpy(), test_labels)
    assert set(train.labels.tolist()) <= set(train_labels.tolist())
    fin = test.t_in[torch.isfinite(test.t_in)]
    assert fin.min() >= 0 and fin.max() <= 100.0  # 1 s at tau_s = 10 ms
    assert (test.t_in[:, :, 1:][torch.isfinite(test.t_in[:, :, 1:])] >=
            0).all()  # later spikes of a channel follow its first
    assert bool((test.t_in[..., 1] >= test.t_in[..., 0]).all())


def test_shd_missing_files_say_which_instead_of_downloading(tmp_path):
    pytest.importorskip("tonic")
    with pytest.raises(DatasetMissing, match="shd_train.h5"):
        data.load(_dataset(["dataset=shd", f"dataset.root={tmp_path}"]), "train")
    write_shd(tmp_path, "train", 5, 0, zip_too=False)  # the .h5 alone: tonic would download
    with pytest.raises(DatasetMissing, match=r"shd_train\.h5\.zip"):
        data.load(_dataset(["dataset=shd", f"dataset.root={tmp_path}"]), "train")


def test_shd_short_training_run(tmp_path):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 40, 0)
    write_shd(tmp_path, "test", 10, 1)
    res = runner.invoke(app, ["train", "experiment=shd_ws", f"dataset.root={tmp_path}",
                              "dataset.val_size=8", "dataset.max_spikes=2",
                              "dataset.channel_factor=10", "network.hidden=[16]",
                              "training.epochs=2", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output


def test_every_dataset_describes_itself_and_has_its_config_option():
    from pathlib import Path

    from snndelay.data import REGISTRY

    options = {p.stem for p in (Path(__file__).parent.parent / "configs" / "dataset").glob("*.yaml")}
    assert options == set(REGISTRY)
    for name, info in REGISTRY.items():
        cfg = compose([f"dataset={name}"])[1]
        assert type(cfg.dataset) is info.schema and cfg.dataset.name == name
        assert resolve(cfg).network.sizes[-1] == info.classes(cfg.dataset) and resolve(cfg).network.sizes[0] == info.channels(cfg.dataset)


@pytest.mark.parametrize("overrides,where", [
    (["dataset.channel_factor=3"], "the chosen dataset option does not use it; it applies to "
     "dataset=shd"),
    (["dataset=shd", "dataset.train_seed=3"], "the chosen dataset option does not use it; it "
     "applies to dataset=yinyang"),
    (["loss=ttfs_ce", "loss.dt=0.3"], "the chosen loss option does not use it; it applies to "
     "loss=shift_mse"),
])
def test_an_option_accepts_only_its_own_keys(overrides, where):
    with pytest.raises(ConfigError, match=where):
        compose(overrides)


def test_saved_config_with_another_datasets_key_is_refused_unless_it_is_an_old_run(tmp_path):
    import yaml

    from snndelay.app.rundir import load_run_config
    from snndelay.config import from_dictconfig, to_yaml

    raw = yaml.safe_load(to_yaml(compose([])[1]))
    raw["dataset"]["channel_factor"] = 1  # what every run saved before per-dataset schemas
    raw["loss"]["xi"] = 0.2
    with pytest.raises(ConfigError, match="dataset.channel_factor: not a key of dataset=yinyang"):
        from_dictconfig(raw)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    assert load_run_config(tmp_path) == compose([])[1]
