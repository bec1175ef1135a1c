"""Nothing lost, nothing silently wrong: outputs never replace what snndelay did not make, and
every file it reads is validated first. One test per kind of defect (export over a run's own
files, damaged SHD-format files, NIR graphs that do not match their metadata, export bounds,
multi-spike deploys, damaged checkpoints, unbounded values and silent networks, late errors,
misleading messages), then a hypothesis test per file kind (checkpoint, config.yaml, NIR, MNIST
IDX, SHD h5) that draws damaged files and checks: exit 2, one line, and no file outside the
command's own output created, modified or removed (a hash of the directory tree)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shd_files import write_shd
from test_datasets import _fake_mnist, _write_idx
from test_fail_safe import _break, _one_line_exit_2
from typer.testing import CliRunner

from snndelay.app.runs import atomic_torch_save
from snndelay.cli import app

runner = CliRunner()
SMALL = ["experiment=yinyang_h5_ws", "dataset.train_size=60", "dataset.val_size=30",
         "dataset.test_size=30", "training.batch_size=30"]
DAMAGE = settings(max_examples=12, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])


def _tree(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (the .lock files aside: taking a
    lock may create one)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    res = runner.invoke(app, ["train", *SMALL, "training.epochs=2", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "network.nir"
    res = runner.invoke(app, ["export", str(trained), "--out", str(path)])
    assert res.exit_code == 0, res.output
    return path


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and p.name != ".lock":
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


# -- 1. outputs never replace what snndelay did not make --------------------------------------
@pytest.mark.parametrize("name", ["checkpoint.pt", "config.yaml", "summary.json"])
def test_export_never_writes_over_a_file_of_a_run(trained, tmp_path, name):
    run = _copy_run(trained, tmp_path / "run")
    before = _tree(run)
    for extra in ([], ["--force"]):
        line = _one_line_exit_2(runner.invoke(app, ["export", str(run), "--out",
                                                    str(run / name), *extra]))
        assert "belongs to the run directory" in line
    assert _tree(run) == before
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0


def test_export_refuses_non_regular_files_and_needs_force_for_an_existing_file(trained,
                                                                             tmp_path):
    fifo, folder, link = tmp_path / "pipe", tmp_path / "folder", tmp_path / "link"
    os.mkfifo(fifo)
    folder.mkdir()
    link.symlink_to(tmp_path / "target.nir")
    for path in (fifo, folder, link):
        line = _one_line_exit_2(runner.invoke(app, ["export", str(trained), "--out", str(path),
                                                    "--force"]))
        assert "not a regular file" in line
    assert not (tmp_path / "target.nir").exists() and fifo.exists() and folder.is_dir()
    mine = tmp_path / "mine.nir"
    mine.write_text("my notes\n")
    assert "--force" in _one_line_exit_2(runner.invoke(app, ["export", str(trained), "--out",
                                                             str(mine)]))
    assert mine.read_text() == "my notes\n"
    assert runner.invoke(app, ["export", str(trained), "--out", str(mine), "--force"]
                         ).exit_code == 0
    assert mine.read_bytes()[:4] == b"\x89HDF"  # replaced by the graph, as asked


def test_train_never_writes_into_a_directory_holding_other_files(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my: own config\n")
    line = _one_line_exit_2(runner.invoke(app, ["train", *SMALL, "--run-dir", str(folder)]))
    assert "already holds config.yaml" in line
    assert (folder / "config.yaml").read_text() == "my: own config\n"


@pytest.mark.parametrize("args", [
    ["train", *SMALL, "--run-dir", "/proc/snndelay-test/run"],
    ["sweep", *SMALL, "--sweep-dir", "/proc/snndelay-test/sweep"],
])
def test_unwritable_output_paths_are_one_line(args):
    assert "cannot be created" in _one_line_exit_2(runner.invoke(app, args))


def test_export_to_an_unwritable_path_is_one_line(trained):
    line = _one_line_exit_2(runner.invoke(app, ["export", str(trained), "--out",
                                                "/proc/snndelay-test/x.nir"]))
    assert "cannot be created" in line


def test_compare_delays_never_writes_over_a_users_comparison_files(tmp_path):
    (tmp_path / "comparison.md").write_text("my own table\n")
    line = _one_line_exit_2(runner.invoke(app, ["compare-delays", *SMALL, "--hidden", "3",
                                                "--seeds", "1", "--out", str(tmp_path)]))
    assert "comparison.md: exists" in line
    assert (tmp_path / "comparison.md").read_text() == "my own table\n"
    assert not (tmp_path / "runs").exists()


# -- 3. damaged SHD-format files ---------------------------------------------------------------
def _edit_shd(root: Path, part: str, edit) -> None:
    import h5py

    with h5py.File(root / "SHD" / f"shd_{part}.h5", "r+") as f:
        edit(f)


def _set_sample(key, value):
    """The first event of sample 0 gets `value` (the lists keep their lengths)."""
    def edit(f):
        events = np.array(f[key][0], dtype=np.float64)
        events[0] = value
        f[key][0] = events.astype(f[key].dtype.metadata["vlen"])
    return edit


def _set_labels(values):
    def edit(f):
        labels = f["labels"][...]
        del f["labels"]
        f.create_dataset("labels", data=values(labels).astype(np.uint32))
    return edit


def _all_samples(key, make):
    def edit(f):
        for k in range(len(f[key])):
            f[key][k] = make(len(f[key][k])).astype(f[key].dtype.metadata["vlen"])
    return edit


SHD_DAMAGE = {
    "nan_time": (_set_sample("spikes/times", np.nan), "event times must be finite"),
    "inf_time": (_set_sample("spikes/times", np.inf), "event times must be finite"),
    "negative_time": (_set_sample("spikes/times", -0.5), "event times must be finite"),
    "units_out_of_range": (_all_samples("spikes/units", lambda n: np.full(n, 900)),
                           "units must be integer channels"),
    "no_events": (_all_samples("spikes/times", lambda n: np.zeros(0)), "event times but"),
    "huge_label": (_set_labels(lambda y: np.where(np.arange(len(y)) == 0, 60000, y)),
                   "labels must be integers in [0, 1000)"),
    "one_class": (_set_labels(lambda y: np.zeros_like(y)), "at least two classes"),
}


@pytest.mark.parametrize("damage", sorted(SHD_DAMAGE))
def test_damaged_shd_files_are_one_line_before_training(tmp_path, damage):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 40, 0, classes=10)
    write_shd(tmp_path, "test", 20, 1, classes=10)
    edit, fragment = SHD_DAMAGE[damage]
    _edit_shd(tmp_path, "train", edit)
    line = _one_line_exit_2(runner.invoke(app, [
        "train", "experiment=shd_ws", f"dataset.root={tmp_path}", "dataset.val_size=4",
        "training.epochs=1", "--run-dir", str(tmp_path / "run")]))
    assert "shd_train.h5" in line and fragment in line
    assert not (tmp_path / "run").exists()


# -- 4. NIR import validates the graph ---------------------------------------------------------
def _edit_nir(src: Path, dst: Path, edit) -> Path:
    import nir

    graph = nir.read(str(src))
    edit(graph)
    nir.write(str(dst), graph)
    return dst


def _meta_edit(change):
    def edit(g):
        meta = json.loads(g.metadata["snndelay"])
        change(meta)
        g.metadata["snndelay"] = json.dumps(meta)
    return edit


def _plain_lif(node):
    import nir

    return nir.LIF(tau=node.tau_mem, r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold)


def _first_linear(g):
    return next(n for name, n in g.nodes.items() if name.startswith("lin"))


def _first_delay(g):
    return next(n for name, n in g.nodes.items() if name.startswith("delay"))


NIR_DAMAGE = {
    "bad_json": (lambda g: g.metadata.update(snndelay="{not json"), "does not hold"),
    "missing_key": (_meta_edit(lambda m: m.pop("layers")), "does not hold"),
    "time_unit_zero": (_meta_edit(lambda m: m.update(time_unit_ms=0)), "time_unit_ms"),
    "one_layer_listed": (_meta_edit(lambda m: m.update(layers=m["layers"][:1])), "layers"),
    "threshold_edited": (lambda g: g.nodes["lif0"].v_threshold.__setitem__(0, 7.0),
                         "v_threshold"),
    "edge_removed": (lambda g: g.edges.pop(), "match its metadata"),
    "node_type_changed": (lambda g: g.nodes.update(lif1=_plain_lif(g.nodes["lif1"])), "lif1"),
    "nan_weight": (lambda g: _first_linear(g).weight.__setitem__((0, 0), np.nan), "finite"),
    "negative_delay": (lambda g: _first_delay(g).delay.__setitem__(0, -1.0), ">= 0"),
}


@pytest.mark.parametrize("damage", sorted(NIR_DAMAGE))
def test_nir_import_refuses_a_graph_that_is_not_what_it_claims(exported, tmp_path, damage):
    pytest.importorskip("nir")
    edit, fragment = NIR_DAMAGE[damage]
    path = _edit_nir(exported, tmp_path / "edited.nir", edit)
    line = _one_line_exit_2(runner.invoke(app, ["import", str(path), "--run-dir",
                                                str(tmp_path / "imp")]))
    assert fragment in line
    assert not (tmp_path / "imp").exists()


def test_bad_json_file_and_a_good_round_trip(exported, tmp_path):
    pytest.importorskip("nir")
    junk = tmp_path / "junk.nir"
    junk.write_text('{"not": "hdf5"}')
    assert "not a readable NIR file" in _one_line_exit_2(runner.invoke(
        app, ["import", str(junk), "--run-dir", str(tmp_path / "a")]))
    assert runner.invoke(app, ["import", str(exported), "--run-dir", str(tmp_path / "b")]
                         ).exit_code == 0


# -- 5. export bounds -----------------------------------------------------------------------------
def test_synaptic_buckets_are_bounded_by_the_distinct_delays(trained, tmp_path):
    pytest.importorskip("nir")
    import nir

    start = time.monotonic()
    res = runner.invoke(app, ["export", str(trained), "--synaptic-buckets", "10000", "--out",
                              str(tmp_path / "b.nir")])
    assert res.exit_code == 0, res.output
    assert time.monotonic() - start < 60
    graph = nir.read(str(tmp_path / "b.nir"))
    meta = json.loads(graph.metadata["snndelay"])
    n_delays = [int(layer["encoding"].split("=")[1]) for layer in meta["layers"]]
    assert all(1 <= k <= 4 * 5 + 5 * 3 + 8 for k in n_delays)  # not 10000 per layer


def test_a_huge_exact_fanout_is_refused_before_it_is_allocated(trained, monkeypatch):
    from snndelay.app import export

    def no_alloc(*a, **k):
        raise AssertionError("allocated before the size check")

    monkeypatch.setattr(export, "FANOUT_MAX", 10)
    monkeypatch.setattr(export.np, "zeros", no_alloc)
    assert "--synaptic-buckets" in _one_line_exit_2(runner.invoke(app, ["export", str(trained),
                                                                        "--out", "/tmp/x.nir"]))


# -- 6. multi-spike runs never reach the chip ----------------------------------------------------
def test_deploy_refuses_a_multi_spike_run_before_writing_a_bundle(tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_wa", "backend=simulator",
                              "neuron.max_spikes=[3,1]", "training.epochs=1",
                              "dataset.train_size=60", "dataset.val_size=30",
                              "dataset.test_size=30", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    assert "neuron.max_spikes" in _one_line_exit_2(runner.invoke(app, ["deploy", str(run)]))
    assert not (run / "deploy").exists()


# -- 7. damaged or older checkpoints ------------------------------------------------------------
def _edit_checkpoint(run: Path, change) -> None:
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    change(ckpt)
    atomic_torch_save(ckpt, run / "checkpoint.pt")


def test_nan_weights_and_a_negative_epoch_are_refused(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "nan")
    _edit_checkpoint(run, lambda c: c["model"][next(iter(c["model"]))].fill_(float("nan")))
    assert "NaN or infinite" in _one_line_exit_2(runner.invoke(app, ["evaluate", str(run)]))
    run = _copy_run(trained, tmp_path / "neg")
    _edit_checkpoint(run, lambda c: c.update(epoch=-3))
    assert "epoch -3" in _one_line_exit_2(runner.invoke(app, ["train", "--resume", str(run)]))


def test_an_older_checkpoint_without_best_model_resumes(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "old")
    cfg = (run / "config.yaml").read_text().replace("epochs: 2", "epochs: 3")
    (run / "config.yaml").write_text(cfg)
    _edit_checkpoint(run, lambda c: (c.pop("best_model"), c.pop("best_epoch")))
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_a_lock_that_is_a_directory_and_an_alias_bomb_are_one_line(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "lockdir")
    (run / ".lock").mkdir()
    assert ".lock" in _one_line_exit_2(runner.invoke(app, ["deploy", str(run)]))
    run = _copy_run(trained, tmp_path / "bomb")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    (run / "config.yaml").write_text(bomb)
    start = time.monotonic()
    assert "alias" in _one_line_exit_2(runner.invoke(app, ["evaluate", str(run)]))
    assert time.monotonic() - start < 10


# -- 8. unbounded values and silent networks --------------------------------------------------
@pytest.mark.parametrize("override,key", [
    (["training.lr=1e300"], "training.lr"),
    (["network.weight_mean=-1e300"], "network.weight_mean"),
    (["neuron.threshold=1e300"], "neuron.threshold"),
    (["delay.shift=1e300"], "delay.shift"),
    (["backend=bss2_emulator", "backend.fixed_mean=1e300"], "backend.fixed_mean"),
    (["backend=bss2_emulator", "backend.fixed_mean=-5"], "backend.fixed_mean"),
])
def test_values_the_model_cannot_represent_are_refused(tmp_path, override, key):
    line = _one_line_exit_2(runner.invoke(app, ["train", *SMALL, *override, "--run-dir",
                                                str(tmp_path / "run")]))
    assert line.startswith(f"error: {key}: must")
    assert not (tmp_path / "run").exists()


def test_a_network_silent_everywhere_stops_with_the_reason(tmp_path):
    res = runner.invoke(app, ["train", *SMALL, "network.weight_mean=-100",
                              "training.max_missing_output=1", "training.max_missing_hidden=1",
                              "training.epochs=20", "--run-dir", str(tmp_path / "run")])
    line = _one_line_exit_2(res)
    assert "no output neuron spiked" in line and "epoch 5" in line and "without a weight bump" \
        in line
    assert not (tmp_path / "run" / "summary.json").exists()


# -- 9. late errors -------------------------------------------------------------------------------
def test_mnist_test_images_of_another_size_are_found_before_training(tmp_path):
    _fake_mnist(tmp_path, gz=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((40, 20, 20), dtype=np.uint8),
               False)
    line = _one_line_exit_2(runner.invoke(app, [
        "train", "experiment=mnist_784_350_10", f"dataset.root={tmp_path}",
        "dataset.val_size=20", "training.epochs=1", "--run-dir", str(tmp_path / "run")]))
    assert "400 input channels, the network has 784" in line
    assert not (tmp_path / "run").exists()


# -- 10. messages ---------------------------------------------------------------------------------
def test_keys_of_other_backends_and_a_negative_tolerance_say_what_is_meant():
    line = _one_line_exit_2(runner.invoke(app, ["train", "backend.backward=realised"]))
    assert "applies to backend=bss2, bss2_emulator" in line
    line = _one_line_exit_2(runner.invoke(app, ["train", "backend.chip_variation=0.1"]))
    assert "applies to backend=bss2_emulator" in line
    assert "--tolerance" in _one_line_exit_2(runner.invoke(app, ["selfcheck", "--tolerance",
                                                                 "-1"]))


# -- hypothesis: damaged files of every kind ------------------------------------------------------
_FRESH: list[Path] = []


def _fresh() -> Path:
    """A new directory per example (the encoders cache by config, the SHD check by file),
    removed when the module's tests end."""
    _FRESH.append(Path(tempfile.mkdtemp(prefix="snndelay-damage-")))
    return _FRESH[-1]


@pytest.fixture(scope="module", autouse=True)
def _remove_fresh_dirs():
    yield
    for path in _FRESH:
        shutil.rmtree(path, ignore_errors=True)


def _assert_refused_and_untouched(root: Path, args: list[str], created: Path | None = None):
    before = _tree(root)
    _one_line_exit_2(runner.invoke(app, args))
    assert _tree(root) == before
    if created is not None:
        assert not created.exists()


def _truncated(raw: bytes, at: float) -> bytes:
    return raw[: int(len(raw) * at)]


CKPT_EDITS = st.sampled_from([
    ("epoch", -3), ("epoch", "seven"), ("epoch", None), ("best_epoch", 10 ** 6),
    ("bump_layer", -5), ("elapsed_s", float("nan")), ("format", 99), ("model", [1, 2]),
    ("rows", [{"epoch": k} for k in range(50)]),
])


@DAMAGE
@given(edit=st.one_of(CKPT_EDITS.map(lambda e: ("field", e)),
                      st.floats(0.0, 0.95).map(lambda a: ("truncate", a)),
                      st.sampled_from(["nan", "inf", "drop_model"]).map(lambda t: ("tensor", t))))
def test_damaged_checkpoints_are_refused_and_change_nothing(trained, edit):
    root = _fresh()
    run = _copy_run(trained, root / "run")
    kind, what = edit
    path = run / "checkpoint.pt"
    if kind == "truncate":
        path.write_bytes(_truncated(path.read_bytes(), what))
    else:
        ckpt = torch.load(path, weights_only=True)
        if kind == "field":
            ckpt[what[0]] = what[1]
        elif what == "drop_model":
            del ckpt["model"]
        else:
            ckpt["model"][next(iter(ckpt["model"]))].view(-1)[0] = float(what)
        atomic_torch_save(ckpt, path)
    _assert_refused_and_untouched(root, ["evaluate", str(run)])


CONFIG_TEXTS = st.sampled_from([
    "a: &a [1, 1]\nb: [*a, *a]\n", "training: {lr: abc}\n", "training: {lr: .nan}\n",
    "training: {lr: 1.0e+300}\n", "neuron: {threshold: -1}\n", "- just\n- a list\n",
    "future_key: 1\n", "network: {hidden: [100000, 100000]}\n", "delay: {shift: 1.0e+300}\n",
    "name: [unclosed\n", "\x00\x01\x02binary\n",
])


@DAMAGE
@given(text=CONFIG_TEXTS, keep=st.booleans())
def test_damaged_config_yaml_is_refused_and_changes_nothing(trained, text, keep):
    root = _fresh()
    run = _copy_run(trained, root / "run")
    path = run / "config.yaml"
    # Either the damage alone, or the damage merged into the real config (its last key wins).
    path.write_text(path.read_text() + text if keep and not text.startswith("-") else text)
    _assert_refused_and_untouched(root, ["evaluate", str(run)])


@DAMAGE
@given(damage=st.sampled_from(sorted(NIR_DAMAGE)) | st.floats(0.05, 0.9))
def test_damaged_nir_files_are_refused_and_change_nothing(exported, damage):
    pytest.importorskip("nir")
    root = _fresh()
    path = root / "g.nir"
    if isinstance(damage, float):
        path.write_bytes(_truncated(exported.read_bytes(), damage))
    else:
        _edit_nir(exported, path, NIR_DAMAGE[damage][0])
    _assert_refused_and_untouched(root, ["import", str(path), "--run-dir", str(root / "imp")],
                                  created=root / "imp")


MNIST_DAMAGE = st.sampled_from(["truncated", "magic", "header", "label_11", "count",
                                "test_size", "ndim"])


@DAMAGE
@given(damage=MNIST_DAMAGE, file=st.sampled_from(["train", "t10k"]))
def test_damaged_mnist_files_are_refused_and_change_nothing(damage, file):
    root = _fresh()
    _fake_mnist(root, gz=False, n_train=60, n_test=20)
    images, labels = root / f"{file}-images-idx3-ubyte", root / f"{file}-labels-idx1-ubyte"
    if damage in ("truncated", "magic", "header"):
        _break(images, damage)
    elif damage == "label_11":
        lab = np.frombuffer(labels.read_bytes()[8:], dtype=np.uint8).copy()
        lab[0] = 11
        _write_idx(labels, lab, False)
    elif damage == "count":
        _write_idx(labels, np.zeros(7, dtype=np.uint8), False)
    elif damage == "test_size":
        n = 60 if file == "train" else 20
        _write_idx(images, np.zeros((n, 20, 20), dtype=np.uint8), False)
    else:
        _write_idx(images, np.zeros((60 if file == "train" else 20, 784), dtype=np.uint8), False)
    _assert_refused_and_untouched(root, [
        "train", "experiment=mnist_784_350_10", f"dataset.root={root}", "dataset.val_size=10",
        "training.epochs=1", "--run-dir", str(root / "run")], created=root / "run")


@DAMAGE
@given(damage=st.sampled_from(sorted(SHD_DAMAGE)) | st.sampled_from(["truncate", "no_labels"]),
       part=st.sampled_from(["train", "test"]))
def test_damaged_shd_files_are_refused_and_change_nothing(damage, part):
    pytest.importorskip("tonic")
    root = _fresh()
    write_shd(root, "train", 30, 0, classes=10)
    write_shd(root, "test", 12, 1, classes=10)
    path = root / "SHD" / f"shd_{part}.h5"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "no_labels":
        _edit_shd(root, part, lambda f: f.__delitem__("labels"))
    elif damage == "one_class" and part == "test":
        _edit_shd(root, part, _set_labels(lambda y: np.full_like(y, 15)))  # not a training class
    else:
        _edit_shd(root, part, SHD_DAMAGE[damage][0])
    _assert_refused_and_untouched(root, [
        "train", "experiment=shd_ws", f"dataset.root={root}", "dataset.val_size=4",
        "training.epochs=1", "--run-dir", str(root / "run")], created=root / "run")
