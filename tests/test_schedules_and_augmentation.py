"""Learning-rate schedules and weight decay against torch's own schedulers and AdamW, and the
event augmentation of SHD-format training data (seeded, reproducible, what each transform
does), with their configuration checks (docs/model.md sections 6 and 7)."""

import math

import numpy as np
import pytest
import torch
from runfiles import uninterrupted_and_resumed
from shd_files import write_shd
from typer.testing import CliRunner

from snndelay.cli import app
from snndelay.config import compose
from snndelay.model.optim import Adam, schedule_factor

runner = CliRunner()


def _torch_factors(make, epochs):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("epochs", [10, 23, 40])
def test_cosine_and_onecycle_follow_torchs_schedulers(epochs):
    lr_s = torch.optim.lr_scheduler
    cos = _torch_factors(lambda o: lr_s.CosineAnnealingLR(o, T_max=epochs), epochs)
    one = _torch_factors(lambda o: lr_s.OneCycleLR(o, max_lr=1.0, total_steps=epochs), epochs)
    for e in range(epochs):
        assert schedule_factor("cosine", e, epochs) == pytest.approx(cos[e], abs=1e-12)
        assert schedule_factor("onecycle", e, epochs) == pytest.approx(one[e], abs=1e-12)


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_onecycle_of_a_few_epochs_stays_finite_and_ends_low(epochs):
    f = [schedule_factor("onecycle", e, epochs) for e in range(epochs)]
    assert all(math.isfinite(x) and 0 < x <= 1 for x in f)
    assert f[-1] == pytest.approx(1 / 25e4) or epochs == 1


def test_weight_decay_matches_torchs_adamw():
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    d0 = torch.randn(4, generator=gen, dtype=torch.float64)
    ours_w, ours_d = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(d0.clone())
    ref_w, ref_d = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(d0.clone())
    opt = Adam([([ours_w], 0.01, 0.1), ([ours_d], 0.02)])
    ref = torch.optim.AdamW([{"params": [ref_w], "lr": 0.01, "weight_decay": 0.1},
                             {"params": [ref_d], "lr": 0.02, "weight_decay": 0.0}])
    for _ in range(5):
        g_w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        g_d = torch.randn(4, generator=gen, dtype=torch.float64)
        ours_w.grad, ref_w.grad, ours_d.grad, ref_d.grad = g_w, g_w.clone(), g_d, g_d.clone()
        opt.step()
        ref.step()
    assert torch.allclose(ours_w, ref_w, atol=1e-14) and torch.allclose(ours_d, ref_d, atol=1e-14)
    assert not torch.allclose(ours_w, w0)


@pytest.mark.parametrize("arg,key", [("training.schedule=linear", "training.schedule"),
                                     ("training.weight_decay=-0.1", "training.weight_decay"),
                                     ("dataset.time_skew=1.5", "dataset.time_skew"),
                                     ("dataset.drop_event=1", "dataset.drop_event"),
                                     ("dataset.channel_shift=-1", "dataset.channel_shift")])
def test_bad_schedule_decay_and_augmentation_settings_exit_2_naming_the_key(arg, key, tmp_path):
    extra = ["experiment=shd_ms", f"dataset.root={tmp_path}"] if arg.startswith("dataset") else []
    res = runner.invoke(app, ["train", *extra, arg, "training.epochs=1"])
    assert res.exit_code == 2, res.output
    assert key in res.output and len(res.output.strip().splitlines()) == 1


def _shd_cfg(tmp_path, *extra):
    pytest.importorskip("tonic")
    if not (tmp_path / "SHD").exists():
        write_shd(tmp_path, "train", 30, 0, classes=10)
        write_shd(tmp_path, "test", 8, 1, classes=10)
    return compose(["experiment=shd_ms", f"dataset.root={tmp_path}", "dataset.val_size=6",
                    "dataset.channel_factor=10", "dataset.max_spikes=50",
                    "dataset.tau_s_ms=10", *extra])[1].dataset


def test_augmentation_is_a_function_of_seed_and_epoch_and_changes_the_inputs(tmp_path):
    from snndelay import data

    d = _shd_cfg(tmp_path, "dataset.time_jitter_ms=3", "dataset.time_skew=0.1",
                 "dataset.channel_shift=1", "dataset.drop_event=0.1")
    assert d.augments()
    base = data.load(d, "train").t_in.numpy()
    state = np.random.get_state()[1].copy()
    a, b = data.augmented(d, 4, 0).numpy(), data.augmented(d, 4, 0).numpy()
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global draws untouched
    assert np.array_equal(a, b) and a.shape == base.shape
    assert not np.array_equal(a, data.augmented(d, 4, 1).numpy())
    assert not np.array_equal(a, data.augmented(d, 5, 0).numpy())
    assert not np.array_equal(a, base) and (a[np.isfinite(a)] >= 0).all()
    assert not _shd_cfg(tmp_path).augments()


def test_each_transform_does_what_it_says(tmp_path):
    from snndelay import data

    base = data.load(_shd_cfg(tmp_path), "train").t_in.numpy()
    n = np.isfinite(base).sum()
    dropped = data.augmented(_shd_cfg(tmp_path, "dataset.drop_event=0.25"), 0, 0).numpy()
    assert 0.7 < np.isfinite(dropped).sum() / n < 0.8  # a quarter of the events, of every sample
    skewed = data.augmented(_shd_cfg(tmp_path, "dataset.time_skew=0.2"), 0, 0).numpy()
    ratio = np.nanmax(np.where(np.isfinite(skewed), skewed, np.nan), axis=(1, 2)) / \
        np.nanmax(np.where(np.isfinite(base), base, np.nan), axis=(1, 2))
    assert ((ratio > 0.79) & (ratio < 1.21)).all() and ratio.std() > 0.01  # one c per sample
    shifted = data.augmented(_shd_cfg(tmp_path, "dataset.channel_shift=2"), 0, 0).numpy()
    per_sample = []
    for s, b in zip(shifted, base):  # each sample: its channels moved by one k in -2..2
        ks = [k for k in range(-2, 3) if np.array_equal(
            np.isfinite(np.roll(b, k, axis=0))[2:-2], np.isfinite(s)[2:-2])]
        per_sample.append(len(ks) > 0)
    assert all(per_sample)
    jittered = data.augmented(_shd_cfg(tmp_path, "dataset.time_jitter_ms=2"), 0, 0).numpy()
    assert np.isfinite(jittered).sum() >= 0.95 * n
    assert not np.array_equal(jittered, base)


def test_training_with_augmentation_and_a_cosine_schedule_resumes_exactly(tmp_path):
    pytest.importorskip("tonic")
    _shd_cfg(tmp_path)
    args = ["experiment=shd_ms", f"dataset.root={tmp_path}", "dataset.val_size=6",
            "dataset.channel_factor=10", "dataset.max_spikes=3", "network.hidden=[12]",
            "dataset.time_jitter_ms=5", "dataset.drop_event=0.1", "training.schedule=cosine",
            "training.weight_decay=0.01", "training.epochs=3"]
    a, b = uninterrupted_and_resumed(args, tmp_path)
    assert a == b and len(a) == 3
    lrs = [float(r["lr"]) for r in a]
    assert lrs[0] > lrs[1] > lrs[2] > 0
