"""Where a run trains (model/placement.py): the engine's torch path on CPU tensors
(training.compiled=false, the code a GPU runs) against the compiled numpy path, chunked steps
against unchunked ones, the device option's refusals, and runs that load on any device. The
CUDA tests run only where torch sees a GPU (scripts/gpu_check.sh)."""

import math

import numpy as np
import pytest
import torch
from runfiles import metrics
from shd_files import write_shd
from typer.testing import CliRunner

from snndelay.app.runs import evaluate_run, load_network
from snndelay.app.trainer import Trainer
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.model.placement import NUMPY, Placement, placement_for

runner = CliRunner()
YY = ["dataset.train_size=600", "dataset.val_size=200", "dataset.test_size=200"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")


def _numbers(run):
    return [{k: float(v) for k, v in row.items()} for row in metrics(run)]


def _close(a, b, tol):
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=tol, abs_tol=tol), (k, ra[k], rb[k])


def _train(tmp_path, name, args):
    res = runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / name)])
    assert res.exit_code == 0, res.output
    return _numbers(tmp_path / name)


def _shd(tmp_path):
    pytest.importorskip("tonic")
    write_shd(tmp_path, "train", 40, 0, classes=10)
    write_shd(tmp_path, "test", 10, 1, classes=10)
    return ["experiment=shd_ms", f"dataset.root={tmp_path}", "dataset.val_size=8",
            "dataset.channel_factor=10", "dataset.max_spikes=4", "network.hidden=[16]",
            "training.batch_size=8", "training.epochs=2"]


@pytest.mark.parametrize("experiment", ["yinyang_h30_ws", "yinyang_h30_wd"])
def test_the_torch_path_trains_yinyang_as_the_compiled_path_does(tmp_path, experiment):
    """2 epochs of a Yin-Yang preset: every metric of the torch path (training.compiled=false,
    the code that runs on a GPU) equals the compiled path's to 1e-9 (the same formulas in
    another order of float64 operations), test accuracy included."""
    args = [f"experiment={experiment}", *YY, "training.epochs=2"]
    compiled = _train(tmp_path, "compiled", args)
    torch_path = _train(tmp_path, "torch", [*args, "training.compiled=false"])
    _close(compiled, torch_path, 1e-9)
    summaries = [evaluate_run(tmp_path / n, "test")[1] for n in ("compiled", "torch")]
    assert summaries[0].accuracy == summaries[1].accuracy
    assert math.isclose(summaries[0].loss, summaries[1].loss, rel_tol=1e-9)


def test_the_torch_path_trains_shd_ms_as_the_compiled_path_does(tmp_path):
    """2 epochs of shd_ms (spike trains into the max-voltage readout, synaptic delays) on small
    SHD-format files: the same metrics to 1e-9 on both paths."""
    args = _shd(tmp_path)
    _close(_train(tmp_path, "compiled", args),
           _train(tmp_path, "torch", [*args, "training.compiled=false"]), 1e-9)


def _one_epoch_params(args, placement):
    spec = resolve(compose(args)[1])
    trainer = Trainer(spec)
    trainer.placement = placement
    trainer.net.place(placement)
    row = trainer.train_epoch()
    return row, {k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()}


def test_a_chunked_step_equals_the_unchunked_one(tmp_path):
    """The torch path split into chunks of 7 work elements (a few samples per chunk, the
    arrival arrays never whole) trains an epoch to the same parameters and metrics as one
    chunk holding everything, to 1e-12."""
    args = _shd(tmp_path) + ["training.epochs=1"]
    cpu = torch.device("cpu")
    row_a, p_a = _one_epoch_params(args, Placement(cpu, 7))
    row_b, p_b = _one_epoch_params(args, Placement(cpu, 1 << 40))
    for k in p_a:
        scale = max(1.0, float(p_b[k].abs().max()))
        assert float((p_a[k] - p_b[k]).abs().max()) <= 1e-12 * scale, k
    assert math.isclose(row_a.train_loss, row_b.train_loss, rel_tol=1e-12)
    assert row_a.val_acc == row_b.val_acc


def test_max_memory_gb_sizes_the_chunks():
    """training.max_memory_gb is the torch path's chunk budget; the compiled CPU path needs
    none (NUMPY)."""
    small = placement_for("cpu", False, 1e-6)
    large = placement_for("cpu", False, 1.0)
    assert small.chunk_elems is not None and large.chunk_elems is not None
    assert abs(large.chunk_elems / small.chunk_elems / 1e6 - 1) < 0.1
    assert placement_for("cpu", True, 1.0) is NUMPY
    assert placement_for("cpu", False, None).chunk_elems is None  # the engine's default


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_device_cuda_without_a_gpu_is_one_line_exit_2(tmp_path):
    res = runner.invoke(app, ["train", "training.device=cuda", *YY, "training.epochs=1",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "training.device=cuda" in lines[0] and "cpu" in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_device_auto_without_a_gpu_trains_on_the_compiled_cpu_path(tmp_path):
    a = _train(tmp_path, "auto", ["training.device=auto", *YY, "training.epochs=1"])
    b = _train(tmp_path, "cpu", [*YY, "training.epochs=1"])
    assert a == b


@pytest.mark.parametrize("arg,key", [("training.device=gpu", "training.device"),
                                     ("training.compiled=maybe", "training.compiled"),
                                     ("training.max_memory_gb=0", "training.max_memory_gb")])
def test_bad_device_settings_exit_2_naming_the_key(tmp_path, arg, key):
    res = runner.invoke(app, ["train", arg, "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and key in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_hardware_backend_refuses_the_torch_path(tmp_path):
    res = runner.invoke(app, ["train", "experiment=yinyang_bss2_w", "training.compiled=false",
                              "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "training.compiled" in res.output and "backend=simulator" in res.output


def test_a_run_trained_on_the_torch_path_loads_and_resumes_on_the_compiled_path(tmp_path):
    """The checkpoint holds plain tensors (mapped to the CPU when read): the compiled path
    evaluates it and a resume continues it."""
    args = ["experiment=yinyang_h5_ws", *YY, "training.epochs=1", "training.compiled=false"]
    _train(tmp_path, "r", args)
    spec = resolve(compose(args)[1])
    net, epoch = load_network(tmp_path / "r", spec)
    assert epoch == 1 and net.placement is NUMPY
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "r"), "training.epochs=2"])
    assert res.exit_code == 0, res.output
    assert len(metrics(tmp_path / "r")) == 2


def test_the_torch_path_keeps_parameters_and_arrays_as_tensors():
    """On a placement's device the layers the engine sees are tensors there, and so are the
    spike times, the readout's values, the losses and the gradients (nothing is copied to
    numpy inside a step)."""
    from snndelay.model.losses import cross_entropy_grad

    spec = resolve(compose(["experiment=shd_ms", "network.hidden=[6]", "dataset.channel_factor=1"]
                           )[1])
    from snndelay.app.trainer import build_network

    cpu = torch.device("cpu")
    net = build_network(spec.network, 0).place(Placement(cpu))
    params = net.layer_params()
    assert all(isinstance(p.weights, torch.Tensor) for p in params)
    assert all(isinstance(p.delays, torch.Tensor) for p in params)
    t_in = torch.rand(5, spec.network.sizes[0], dtype=torch.float64) * 5
    with net.placement.engine():
        times, caches = net.forward(t_in)
        out, state = net.outputs(t_in, times)
        per, g = cross_entropy_grad(out, torch.tensor([0, 1, 2, 3, 4]))
        net.backward(caches, g / 5, readout_state=state)
    assert all(isinstance(t, torch.Tensor) for t in [*times, out, per, g])
    assert all(p.grad is not None and p.grad.device == cpu for p in net.parameters())
    numpy_net = build_network(spec.network, 0)
    with numpy_net.placement.engine():
        times_np, _ = numpy_net.forward(t_in.numpy())
        out_np, _ = numpy_net.outputs(t_in.numpy(), times_np)
    assert np.allclose(out.numpy(), out_np, rtol=1e-10, atol=1e-12)


@CUDA
@pytest.mark.parametrize("experiment", ["yinyang_h30_ws", "shd_ms"])
def test_cuda_training_matches_the_compiled_cpu_path(tmp_path, experiment):
    """training.device=cuda: 2 epochs give the compiled CPU path's metrics to 1e-9."""
    args = (_shd(tmp_path) if experiment == "shd_ms"
            else [f"experiment={experiment}", *YY, "training.epochs=2"])
    _close(_train(tmp_path, "cpu", args), _train(tmp_path, "cuda", [*args, "training.device=cuda"]),
           1e-9)


@CUDA
def test_a_cuda_run_keeps_its_step_on_the_gpu_and_loads_on_the_cpu(tmp_path):
    args = ["experiment=yinyang_h5_ws", *YY, "training.epochs=1", "training.device=cuda"]
    spec = resolve(compose(args)[1])
    trainer = Trainer(spec)
    assert trainer.placement.device is not None and trainer.placement.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.net.parameters())
    trainer.train_epoch()
    assert all(p.device.type == "cuda" for p in trainer.net.parameters())
    _train(tmp_path, "r", args)
    net, _ = load_network(tmp_path / "r", spec)
    assert all(p.device.type == "cpu" for p in net.parameters())


def test_spike_dropout_drops_the_same_spikes_on_both_paths(tmp_path):
    """The masks are drawn on the host and placed: 2 epochs with training.spike_dropout give
    the same metrics on the torch path as on the compiled path (1e-9)."""
    args = ["experiment=yinyang_h30_ws", *YY, "training.epochs=2", "training.spike_dropout=0.2"]
    _close(_train(tmp_path, "compiled", args),
           _train(tmp_path, "torch", [*args, "training.compiled=false"]), 1e-9)
