"""Bad input never costs training time, never leaves stale or mixed results, and is one line
with exit code 2: config values, data files, run directories, sweeps, processes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from shd_files import write_shd
from test_datasets import _fake_mnist, _write_idx
from typer.testing import CliRunner

from snndelay import errors
from snndelay.app.rundir import atomic_write_text, directory_lock
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.engine import first_spike_times

runner = CliRunner()
SMALL = ["experiment=yinyang_h5_ws", "dataset.train_size=60", "dataset.val_size=30",
         "dataset.test_size=30", "training.batch_size=30"]


def _one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "weights_only" not in res.output
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Any epoch of training fails the test: errors must come before training time."""
    def fail(self):
        raise AssertionError("training started before the error was found")

    monkeypatch.setattr("snndelay.app.trainer.Trainer.train_epoch", fail)


# -- config values ----------------------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("network.weight_mean=nan", "network.weight_mean"),
    ("network.weight_std=inf", "network.weight_std"),
    ("neuron.threshold=inf", "neuron.threshold"),
    ("training.lr=inf", "training.lr"),
    ("training.lr_delay=inf", "training.lr_delay"),
    ("training.lr=[0.01,nan]", "training.lr"),
    ("loss.dt=inf", "loss.dt"),
    ("dataset.t_late=inf", "dataset.t_late"),
    ("network.bias_time=nan", "network.bias_time"),
    ("training.input_noise=inf", "training.input_noise"),
    ("delay.init_std=inf", "delay.init_std"),
    ("delay.scale=inf", "delay.scale"),
    ("delay.init_mean=nan", "delay.init_mean"),
    ("network.hidden=true", "network.hidden"),
    ("network.hidden=100000000", "network.hidden"),
    ("network.hidden=[5000,5000]", "network.hidden"),  # 25 M synapses
    ("delay.group_size=3", "delay.group_size"),  # synaptic delays have no groups
    ("dataset.train_seed=-1", "dataset.train_seed"),
    ("training.seed=-1", "training.seed"),
    ("training.epochs=100000000000", "training.epochs"),
    ("training.batch_size=0", "training.batch_size"),
    ("=3", "=3"),
])
def test_bad_values_are_one_line_before_anything(override, key, no_training):
    line = _one_line_exit_2(runner.invoke(app, ["train", override, "--cfg"]))
    assert key in line


@pytest.mark.parametrize("override, key", [
    ("backend.fixed_mean=nan", "backend.fixed_mean"),
    ("backend.trial_std=inf", "backend.trial_std"),
    ("backend.chip_seed=-1", "backend.chip_seed"),
    ("backend.backward=exact", "backend.backward"),
    ("delay.group_layout=diagonal", "delay.group_layout"),
    ("network.bias_time=0.9", "delay.group_layout"),  # 21 input rows: not 5 strided groups
])
def test_bad_emulator_values_are_one_line(override, key):
    line = _one_line_exit_2(runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", override,
                                                "--cfg"]))
    assert key in line


def test_keys_of_another_option_say_so_and_replicate_is_accepted():
    line = _one_line_exit_2(runner.invoke(app, ["train", "dataset.split_seed=-1", "--cfg"]))
    assert "the chosen dataset option does not use it; it applies to dataset=digits, mnist, shd" \
        in line
    assert resolve(compose(["dataset.replicate=2"])[1]).network.sizes[0] == 8


CONFIG_KEYS = sorted(
    f"{group}.{key}" for group, node in compose([])[0].items() if hasattr(node, "items")
    for key in node)
VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-1", "0", "true", "null", "[]", "[1,2]",
                     "abc", "'x'", "1e400", "99999999999999999999", "[nan]", "{a: 1}"]),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(-5, 50), max_size=4).map(lambda v: "[" + ",".join(map(str, v)) + "]"))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), VALUES), min_size=1, max_size=3))
def test_random_overrides_only_ever_raise_the_user_error(pairs):
    try:
        compose([f"{k}={v}" for k, v in pairs])
    except errors.UserError:
        pass


# -- data files ---------------------------------------------------------------------------------
def _mnist_train(tmp_path, *extra):
    return runner.invoke(app, ["train", "experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
                               "dataset.val_size=20", "training.epochs=1", *extra,
                               "--run-dir", str(tmp_path / "run")])


def _break(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "magic":
        path.write_bytes(b"\x01\x02" + raw[2:])
    elif how == "header":
        path.write_bytes(raw[:6])


@pytest.mark.parametrize("name, how, fragment", [
    ("t10k-images-idx3-ubyte", "truncated", "t10k-images"),  # the test split, read first
    ("t10k-labels-idx1-ubyte", "magic", "wrong magic"),
    ("train-images-idx3-ubyte", "header", "truncated IDX header"),
])
def test_broken_mnist_files_are_found_before_training(tmp_path, name, how, fragment,
                                                      no_training):
    _fake_mnist(tmp_path, gz=False)
    _break(tmp_path / name, how)
    line = _one_line_exit_2(_mnist_train(tmp_path))
    assert fragment in line
    assert not (tmp_path / "run").exists()


def test_corrupted_gzip_and_missing_test_file_are_one_line(tmp_path, no_training):
    _fake_mnist(tmp_path, gz=True)
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-40])  # truncated gzip stream: EOFError inside gzip
    assert "train-images-idx3-ubyte.gz: cannot be read" in _one_line_exit_2(_mnist_train(tmp_path))
    _fake_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "t10k-labels" in _one_line_exit_2(_mnist_train(tmp_path))


def test_labels_out_of_range_count_mismatch_and_empty_splits(tmp_path, no_training):
    labels = _fake_mnist(tmp_path, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(len(labels["test"]), 12), False)
    assert "classes 0..9" in _one_line_exit_2(_mnist_train(tmp_path))
    _fake_mnist(tmp_path, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels["test"][:-1], False)
    assert "matching" in _one_line_exit_2(_mnist_train(tmp_path))
    _fake_mnist(tmp_path, gz=False)
    line = _one_line_exit_2(_mnist_train(tmp_path, "dataset.val_size=500"))
    assert "train split is empty" in line and "dataset.val_size" in line
    _fake_mnist(tmp_path, gz=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28)), False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(0), False)
    assert "test split is empty" in _one_line_exit_2(_mnist_train(tmp_path))


def test_a_file_that_is_not_hdf5_is_one_line(tmp_path, no_training):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 20, 0)
    write_shd(tmp_path, "test", 8, 1)
    (tmp_path / "SHD" / "shd_test.h5").write_bytes(b"this is no HDF5 file" * 10)
    line = _one_line_exit_2(runner.invoke(app, [
        "train", "experiment=shd_ws", f"dataset.root={tmp_path}", "dataset.val_size=4",
        "training.epochs=1", "--run-dir", str(tmp_path / "run")]))
    assert "shd_test.h5: cannot be read as an SHD file" in line


# -- run directories ----------------------------------------------------------------------------
def test_a_locked_run_directory_is_refused(tmp_path, no_training):
    run = tmp_path / "run"
    with directory_lock(run):
        line = _one_line_exit_2(runner.invoke(app, ["train", *SMALL, "--run-dir", str(run)]))
    assert "another snndelay command is using" in line
    assert not (run / "config.yaml").exists()


def test_concurrent_writers_never_share_a_temporary_name(tmp_path, monkeypatch):
    names = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (names.append(Path(a).name), real_replace(a, b)))
    atomic_write_text(tmp_path / "x.txt", "a")
    atomic_write_text(tmp_path / "x.txt", "b")
    assert len(set(names)) == 2 and str(os.getpid()) in names[0]
    assert (tmp_path / "x.txt").read_text() == "b" and sorted(os.listdir(tmp_path)) == ["x.txt"]


def test_run_dir_at_or_under_a_file_is_one_line(tmp_path, no_training):
    (tmp_path / "f").write_text("x")
    for target in (tmp_path / "f", tmp_path / "f" / "run"):
        assert "is a file" in _one_line_exit_2(
            runner.invoke(app, ["train", *SMALL, "--run-dir", str(target)]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=2", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    return run


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_checkpoints_are_one_line_everywhere(trained, tmp_path, damage):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "overrides.yaml", "metrics.csv"):
        (run / name).write_bytes((trained / name).read_bytes())
    raw = (trained / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes({"garbage": b"\x80\x02garbage" * 20,
                                         "truncated": raw[: len(raw) // 3], "empty": b""}[damage])
    for args in (["evaluate", str(run)], ["train", "--resume", str(run)],
                 ["deploy", str(run)]):
        line = _one_line_exit_2(runner.invoke(app, args))
        assert "checkpoint" in line


@pytest.mark.parametrize("text, fragment", [("", "holds no config mapping"),
                                            ("name: [unclosed", "cannot be read as YAML"),
                                            ("training:\n  lr: -1\n", "training.lr")])
def test_damaged_config_yaml_is_one_line(trained, tmp_path, text, fragment):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((trained / "checkpoint.pt").read_bytes())
    (run / "config.yaml").write_text(text)
    for args in (["evaluate", str(run)], ["train", "--resume", str(run)]):
        assert fragment in _one_line_exit_2(runner.invoke(app, args))


def test_config_edited_so_the_checkpoint_no_longer_fits(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((trained / "checkpoint.pt").read_bytes())
    cfg = (trained / "config.yaml").read_text().replace("- 5", "- 7")
    assert cfg != (trained / "config.yaml").read_text()
    (run / "config.yaml").write_text(cfg)
    for args in (["evaluate", str(run)], ["train", "--resume", str(run)]):
        assert "does not fit" in _one_line_exit_2(runner.invoke(app, args))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "overrides.yaml"):
        (run / name).write_bytes((trained / name).read_bytes())
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert "starting it over" in res.stderr
    first = json.loads((trained / "summary.json").read_text())
    again = json.loads((run / "summary.json").read_text())
    assert again["test_accuracy"] == first["test_accuracy"] and again["epochs"] == 2


def test_paths_with_brackets_are_printed_as_text(tmp_path):
    run = tmp_path / "[bold]run[x]"
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=1", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    assert "[bold]run[x]" in " ".join(res.output.split()).replace(" ", "")


def test_deploy_chip_seed_must_not_be_negative(trained):
    assert "--chip-seed" in _one_line_exit_2(
        runner.invoke(app, ["deploy", str(trained), "--hw", "--chip-seed", "-1"]))


@pytest.mark.parametrize("command", ["evaluate", "deploy"])
@pytest.mark.parametrize("repeats", ["0", "100000000"])
def test_repeats_are_bounded(trained, command, repeats):
    assert "--repeats" in _one_line_exit_2(
        runner.invoke(app, [command, str(trained), "--repeats", repeats]))


# -- sweeps -------------------------------------------------------------------------------------
def test_a_changed_non_swept_override_is_never_reused(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["sweep", *SMALL, "training.seed=0,1", "--sweep-dir", str(sweep)]
    first = runner.invoke(app, [*args, "training.epochs=1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, [*args, "training.epochs=1"])
    assert again.output.count("reused") == 2
    changed = runner.invoke(app, [*args, "training.epochs=2"])
    assert changed.exit_code == 0, changed.output
    assert "reused" not in changed.output and changed.output.count("rerun") == 2
    for seed in (0, 1):
        summary = json.loads((sweep / f"training.seed={seed}" / "summary.json").read_text())
        assert summary["epochs"] == 2


def test_a_locked_sweep_directory_is_refused(tmp_path):
    with directory_lock(tmp_path / "sweep", "sweep directory"):
        line = _one_line_exit_2(runner.invoke(app, ["sweep", *SMALL, "training.seed=0,1",
                                                    "--sweep-dir", str(tmp_path / "sweep")]))
    assert "another snndelay command" in line


def test_a_sweep_with_a_data_error_trains_nothing(tmp_path, no_training):
    line = _one_line_exit_2(runner.invoke(app, [
        "sweep", "experiment=mnist_784_350_10", f"dataset.root={tmp_path}", "training.seed=0,1",
        "--sweep-dir", str(tmp_path / "sweep")]))
    assert "train-images" in line or "t10k" in line


def test_compare_delays_exit_code_says_a_job_failed(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("snndelay.app.runs.train_run", broken)
    res = runner.invoke(app, ["compare-delays", *SMALL, "--hidden", "3", "--seeds", "1",
                              "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 1 and "boom" in res.output


def _descendants(pid: int) -> set[int]:
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent_of[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_a_sigtermed_sweep_leaves_no_live_worker(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [str(Path(sys.executable).parent / "snndelay"), "sweep", *SMALL, "dataset.train_size=3000",
           "training.epochs=200", "training.seed=0,1", "--jobs", "2", "--sweep-dir", str(sweep)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until both jobs are training (metrics written)
            if len(list(sweep.glob("*/metrics.csv"))) == 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the jobs did not start")
        workers = _descendants(proc.pid)
        assert workers
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        stopped = time.monotonic()
        while any(_alive(p) for p in workers) and time.monotonic() - stopped < 5:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "workers still alive 5 s after the sweep"
        assert proc.returncode == 128 + signal.SIGTERM and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()


# -- the engine ---------------------------------------------------------------------------------
def test_engine_refuses_negative_delays_and_input_times():
    t = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    w = torch.full((2, 3), 3.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="delays must be >= 0"):
        first_spike_times(t, w, -torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="times >= 0"):
        first_spike_times(-t, w)
    assert torch.isfinite(first_spike_times(t, w)).any()


def test_gzip_helper_is_real_gzip(tmp_path):  # guards the corrupted-gzip case above
    _write_idx(tmp_path / "x", np.zeros((2, 2)), True)
    with gzip.open(tmp_path / "x.gz", "rb") as f:
        assert f.read(4) == bytes([0, 0, 8, 2])
