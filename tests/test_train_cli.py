"""`snndelay train` / `evaluate` end to end on a small budget: outputs, resume, errors."""

import json

import numpy as np
import pytest
import torch
from runfiles import metrics
from typer.testing import CliRunner

from snndelay.app.runs import atomic_torch_save, train_run
from snndelay.app.trainer import Trainer
from snndelay.cli import app
from snndelay.config import compose, resolve

runner = CliRunner()
SMALL = ["dataset.train_size=300", "dataset.val_size=100", "dataset.test_size=100",
         "training.batch_size=50"]
FILES = ["config.yaml", "overrides.yaml", "metrics.csv", "summary.json", "checkpoint.pt",
         "learning_curves.png", "delays.png", "yinyang_predictions.png"]


def _train(tmp_path, name, *extra):
    run = tmp_path / name
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=3", *extra, "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    return run


def _flat(output: str) -> str:
    """CLI output with rich's line wrapping (80 columns off a terminal) undone."""
    return " ".join(output.split())


def _metrics(run):
    return metrics(run)


def test_train_writes_every_output_and_evaluate_reloads_it(tmp_path):
    run = _train(tmp_path, "run", "experiment=yinyang_h30_wa")
    for name in FILES:
        assert (run / name).is_file(), name
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "silent_layer0"):
        assert key in rows[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_params"] == 244 and summary["seed"] == 0
    assert 0.3 < summary["test_accuracy"] <= 1.0
    for key in ("val_accuracy", "wall_time_s", "versions", "git_commit"):
        assert key in summary
    rows = _metrics(run)
    best = max(range(3), key=lambda k: (float(rows[k]["val_acc"]), -k))
    assert summary["best_val_epoch"] == best + 1
    assert summary["best_val_accuracy"] == float(rows[best]["val_acc"])
    assert 0.3 < summary["test_accuracy_at_best_val"] <= 1.0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and "optimizer" in ckpt and "shuffle_rng" in ckpt
    res = runner.invoke(app, ["evaluate", str(run), "--split", "test"])
    assert res.exit_code == 0, res.output
    assert f"{100 * summary['test_accuracy']:.2f} %" in _flat(res.output)
    assert "confusion matrix" in res.output and "silent" in res.output


@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    a, b = _train(tmp_path, "a"), _train(tmp_path, "b")
    c = _train(tmp_path, "c", "training.seed=1")
    assert _metrics(a) == _metrics(b)
    assert _metrics(a) != _metrics(c)


@pytest.mark.parametrize("extra", [[], pytest.param(["training.input_noise=0.1"],
                                                   marks=pytest.mark.slow)])
def test_resume_ends_with_the_metrics_of_an_uninterrupted_run(tmp_path, extra):
    full = _train(tmp_path, "full", "training.epochs=4", *extra)
    _, cfg = compose(SMALL + ["training.epochs=4"] + extra)
    part = tmp_path / "part"

    def stop_after_two(row):
        if row.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, part, SMALL + ["training.epochs=4"] + extra, on_epoch=stop_after_two)
    assert not (part / "summary.json").exists()
    assert torch.load(part / "checkpoint.pt", weights_only=True)["epoch"] == 2
    res = runner.invoke(app, ["train", "--resume", str(part)])
    assert res.exit_code == 0, res.output
    assert _metrics(part) == _metrics(full)
    s_full = json.loads((full / "summary.json").read_text())
    s_part = json.loads((part / "summary.json").read_text())
    assert s_part["test_accuracy"] == s_full["test_accuracy"]


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"half")  # half a file written, then the disk is full
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_torch_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


@pytest.mark.parametrize("args, key", [
    (["training.epochs=abc"], "training.epochs"),
    (["neuron.tau_mem=-2"], "neuron.tau_mem"),
    (["training.lr=-0.1"], "training.lr"),
    (["network.hidden=0"], "network.hidden"),
    (["delay=sideways"], "delay"),
    (["dataset=imagenet"], "dataset"),
    (["no_such_key=1"], "no_such_key"),
    (["neuron.tau_mem=3.0"], "neuron.tau_mem"),
    (["network.hidden=[10,5]", "training.lr=abc"], "training.lr"),
    (["training.lr=[0.1,0.2,0.3]"], "training.lr"),
    (["training.input_noise=-0.1"], "training.input_noise"),
    (["backend=bss2_emulator", "backend.eval_repeats=0"], "backend.eval_repeats"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, key):
    res = runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_input_noise_jitters_finite_training_inputs_only(tmp_path):
    _, cfg = compose(SMALL + ["training.input_noise=0.3"])
    trainer = Trainer(resolve(cfg))
    t = np.full((2000, 3), 1.0)
    t[:, 2] = np.inf
    t[0, 0] = 0.01
    out = trainer._jitter(t)
    assert np.isinf(out[:, 2]).all() and (out[:, :2] >= 0).all()
    assert abs(np.std(out[1:, 0]) - 0.3) < 0.02 and abs(np.mean(out[1:, 0]) - 1.0) < 0.02
    _, plain = compose(SMALL)
    assert Trainer(resolve(plain))._jitter(t) is t  # off by default: the inputs are untouched
    a = _train(tmp_path, "plain")
    b = _train(tmp_path, "noisy", "training.input_noise=0.3")
    assert _metrics(a) != _metrics(b)


def test_cfg_prints_the_composed_config(tmp_path):
    res = runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "training.seed=7", "--cfg"])
    assert res.exit_code == 0
    assert "name: yinyang_h5_ws" in res.output and "seed: 7" in res.output
    assert "hidden:\n  - 5" in res.output


@pytest.mark.parametrize("preset, delay, lr, lr_delay", [
    ("yinyang_h30_w", "none", 0.02, 0.0), ("yinyang_h30_wa", "axonal", 0.005, 0.005),
    ("yinyang_h30_wd", "dendritic", 0.005, 0.005), ("yinyang_h30_ws", "synaptic", 0.01, 0.003),
    ("yinyang_h5_ws", "synaptic", 0.015, 0.01), ("fastdeep_yinyang", "none", 0.005, 0.0)])
def test_every_preset_composes(preset, delay, lr, lr_delay):
    _, cfg = compose([f"experiment={preset}"])
    assert cfg.name == preset and cfg.delay.type == delay
    assert cfg.training.lr == lr and cfg.training.lr_delay == lr_delay
    assert cfg.training.epochs == 300 and cfg.training.batch_size == 150


def test_default_is_h30_ws_and_overrides_beat_the_preset():
    _, cfg = compose([])
    assert cfg.name == "yinyang_h30_ws"
    _, cfg = compose(["experiment=yinyang_h30_wa", "delay=dendritic", "training.lr=0.001"])
    assert cfg.delay.type == "dendritic" and cfg.training.lr == 0.001


def test_evaluate_best_reloads_the_network_of_the_best_validation_epoch(tmp_path):
    # a large learning rate: validation accuracy peaks before the last epoch
    run = _train(tmp_path, "run", "experiment=yinyang_h30_wa", "training.epochs=5",
                 "training.lr=0.2")
    summary = json.loads((run / "summary.json").read_text())
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert summary["best_val_epoch"] < 5
    assert summary["best_val_accuracy"] != summary["val_accuracy"]
    assert any(not torch.equal(ckpt["model"][k], ckpt["best_model"][k]) for k in ckpt["model"])
    res = runner.invoke(app, ["evaluate", str(run), "--model", "best"])
    assert res.exit_code == 0, res.output
    # the network train_run evaluated for test_accuracy_at_best_val, reloaded from the file
    out = _flat(res.output)
    assert f"epoch {summary['best_val_epoch']}, best" in out
    assert f"accuracy {100 * summary['test_accuracy_at_best_val']:.2f} %" in out
    res = runner.invoke(app, ["evaluate", str(run), "--split", "val", "--model", "best"])
    assert f"accuracy {100 * summary['best_val_accuracy']:.2f} %" in _flat(res.output)
    res = runner.invoke(app, ["evaluate", str(run), "--model", "first"])
    assert res.exit_code == 2 and "--model must be last or best" in _flat(res.output)
    assert "Traceback" not in res.output
    del ckpt["best_model"]  # a checkpoint written before it was kept
    atomic_torch_save(ckpt, run / "checkpoint.pt")
    res = runner.invoke(app, ["evaluate", str(run), "--model", "best"])
    assert res.exit_code == 2 and "no best-validation network" in _flat(res.output)
