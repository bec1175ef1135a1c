"""`snndelay export` / `import` as NIR: round trips to 1e-9 for every delay kind, and the
exported semantics checked by a time-stepped NIR interpreter written in the tests."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from snndelay.app.trainer import Trainer, load_split
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.model.losses import predict

nir = pytest.importorskip("nir")
from snndelay.app.export import bucketed, to_nir, write_nir  # noqa: E402
from snndelay.app.nir_import import read_nir  # noqa: E402

runner = CliRunner()
PRESETS = {"none": "yinyang_h30_w", "axonal": "yinyang_h30_wa", "dendritic": "yinyang_h30_wd",
           "synaptic": "yinyang_h30_ws"}
_TRAINED: dict = {}


def _trained(kind: str, bias: bool = False, epochs: int = 4, train_size: int = 500):
    # (exactness of the round trip does not depend on training; the interpreter checks
    # compare predictions, which want networks whose outputs are not all near-ties)
    """A Yin-Yang network of the kind's preset after a few short epochs (cached per session)."""
    key = (kind, bias, epochs, train_size)
    if key not in _TRAINED:
        cfg = compose([f"experiment={PRESETS[kind]}", f"dataset.train_size={train_size}",
                       f"training.epochs={epochs}"]
                      + (["network.bias_time=0.9"] if bias else []))[1]
        trainer = Trainer(resolve(cfg))
        for _ in range(cfg.training.epochs):
            trainer.train_epoch()
        _TRAINED[key] = (trainer.net, cfg)
    return _TRAINED[key]


# every kind without bias, synaptic (the fan-out) with it; the other bias cases are slow
ROUND_TRIPS = [(k, False) for k in PRESETS] + [("synaptic", True)] + [
    pytest.param(k, True, marks=pytest.mark.slow) for k in ("none", "axonal", "dendritic")]


@pytest.mark.parametrize("kind,bias", ROUND_TRIPS)
def test_export_import_reproduces_spike_times_and_accuracy(kind, bias, tmp_path):
    net, cfg = _trained(kind, bias)
    test = load_split(cfg.dataset, "test")
    t = test.t_in.numpy()
    write_nir(net, cfg, tmp_path / "n.nir", time_unit_ms=5.0)
    back, cfg_back = read_nir(tmp_path / "n.nir")
    ref, got = net(t)[0], back(t)[0]
    for a, b in zip(ref, got):
        assert np.array_equal(np.isinf(a), np.isinf(b))
        fin = np.isfinite(a)
        assert np.abs(a[fin] - b[fin]).max(initial=0.0) <= 1e-9
    y = test.labels.numpy()
    assert (predict(ref[-1]) == y).mean() == (predict(got[-1]) == y).mean()
    assert cfg_back.dataset == cfg.dataset


def _interpreted(net, cfg, graph, n: int, dt_tau: float, x_ms: float):
    test = load_split(cfg.dataset, "test")
    t = test.t_in.numpy()[:n]
    inputs = {"input": t * x_ms}
    if net.bias_time is not None:
        inputs["bias"] = np.full((n, 1), net.bias_time * x_ms)
    ref = net(t)[0][-1]
    t_max = float(np.nanmax(np.where(np.isfinite(ref), ref, np.nan))) + 1.0
    got = _first_spikes(graph, inputs, dt_tau * x_ms, t_max * x_ms) / x_ms
    return ref, got, test.labels.numpy()[:n]


def _first_spikes(graph, inputs, dt, t_max):
    from nir_interpreter import first_spikes

    return first_spikes(graph, inputs, dt, t_max)


def _check_interpreter(kind: str, bias: bool, n: int, epochs: int = 8,
                       train_size: int = 1000, dt: float = 1e-3) -> None:
    net, cfg = _trained(kind, bias, epochs, train_size)
    graph, _ = to_nir(net, cfg, time_unit_ms=5.0)
    ref, got, y = _interpreted(net, cfg, graph, n, dt, 5.0)
    both = np.isfinite(ref) & np.isfinite(got)
    assert both.mean() > 0.95 * np.isfinite(ref).mean()
    err = np.abs(ref[both] - got[both])
    assert np.median(err) < 3 * dt and np.quantile(err, 0.99) < 10 * dt, (np.median(err), err.max())
    acc_ref, acc_got = ((predict(x) == y).mean() for x in (ref, got))
    assert abs(acc_ref - acc_got) <= 0.005 + 1.0 / n


def test_exported_semantics_match_a_time_stepped_nir_interpreter():
    """One kind in the default run (synaptic with bias: the fan-out and the bias input), at a
    coarser step; the slow tests run every kind at dt = 1e-3 tau_s on the whole test set."""
    _check_interpreter("synaptic", True, 100, epochs=4, train_size=500, dt=4e-3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PRESETS))
def test_exported_semantics_match_the_interpreter_on_the_test_set(kind):
    """Trained networks (60 epochs, 5000 samples): fewer near-ties between output neurons than
    in the short runs above, whose spike times the interpreter shifts by about dt."""
    _check_interpreter(kind, False, 1000, epochs=60, train_size=5000)


@pytest.mark.slow
def test_bucketed_synaptic_delays_converge_to_the_exact_ones(tmp_path):
    net, cfg = _trained("synaptic", epochs=8, train_size=1000)
    t = load_split(cfg.dataset, "test").t_in.numpy()[:300]
    ref = net(t)[0][-1]
    errs = []
    for k in (2, 16, 128):
        out = bucketed(net, k)(t)[0][-1]
        both = np.isfinite(out) & np.isfinite(ref)
        errs.append(np.abs(out[both] - ref[both]).mean())
        write_nir(net, cfg, tmp_path / f"b{k}.nir", buckets=k)
        back = read_nir(tmp_path / f"b{k}.nir")[0](t)[0][-1]
        np.testing.assert_allclose(back[np.isfinite(back)], out[np.isfinite(out)], atol=1e-9)
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("nir") / "run"
    res = runner.invoke(app, ["train", "training.epochs=1", "dataset.train_size=100",
                              "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    return run


def test_export_and_import_commands_round_trip_through_evaluate(tmp_path, tiny_run):
    run = tiny_run
    res = runner.invoke(app, ["export", str(run), "--time-unit-ms", "2.5"])
    assert res.exit_code == 0, res.output
    path = run / "export" / "network.nir"
    graph = nir.read(str(path))
    meta = json.loads(str(graph.metadata["snndelay"]))
    assert meta["time_unit_ms"] == 2.5 and meta["fire_once"] and meta["readout"] == "first_spike"
    assert "fire at most once" in str(graph.metadata["semantics"])
    assert "fire once" in res.output
    lif = graph.nodes["lif0"]
    assert np.allclose(lif.tau_syn, 2.5) and np.allclose(lif.tau_mem, 5.0)  # tau_s = 1, tau_m = 2
    res = runner.invoke(app, ["import", str(path), "--run-dir", str(tmp_path / "imp")])
    assert res.exit_code == 0, res.output
    a = runner.invoke(app, ["evaluate", str(run)]).output
    b = runner.invoke(app, ["evaluate", str(tmp_path / "imp")]).output
    def accuracy(out):  # the imported run has no epochs of its own
        return [line.split("split:")[1] for line in out.splitlines() if "accuracy" in line]

    assert accuracy(a) and accuracy(a) == accuracy(b)


@pytest.mark.parametrize("args,message", [
    (["--format", "onnx"], "--format must be nir"),
    (["--synaptic-buckets", "0"], "--synaptic-buckets must be in"),
    (["--time-unit-ms", "0"], "--time-unit-ms: must be in (0, "),
    (["--time-unit-ms", "inf"], "--time-unit-ms: must be in (0, "),
    (["--time-unit-ms", "nan"], "--time-unit-ms: must be in (0, "),
])
def test_export_refuses_bad_options_with_one_line(args, message, tiny_run):
    res = runner.invoke(app, ["export", str(tiny_run), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_large_exact_fanout_warns_and_huge_one_is_refused(monkeypatch, tmp_path):
    from snndelay.app import export

    net, cfg = _trained("synaptic")
    monkeypatch.setattr(export, "FANOUT_WARN", 10)
    assert "--synaptic-buckets" in to_nir(net, cfg)[1].warnings[0]
    monkeypatch.setattr(export, "FANOUT_MAX", 10)
    with pytest.raises(Exception, match="use --synaptic-buckets"):
        to_nir(net, cfg)
    assert not to_nir(net, cfg, buckets=4)[1].warnings


def test_without_the_nir_package_the_command_says_how_to_install_it(monkeypatch, tiny_run):
    import builtins

    real = builtins.__import__

    def no_nir(name, *a, **k):
        if name == "nir":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_nir)
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(tiny_run / "x.nir")])
    assert res.exit_code == 2 and "pip install 'snndelay[nir]'" in res.output


@pytest.mark.slow
def test_snntorch_runs_a_delay_free_export_with_the_same_predictions():
    """snnTorch's NIR import (with nirtorch) of a weights-only network. Two adaptations a reader
    must make, both stated in the export's metadata and docs/model.md section 10: snnTorch
    reads a spike as one count per time step (its importer requires r = tau_mem / dt, dt = 1e-4
    of the graph's time unit), and neurons fire once (later spikes are dropped here by a
    forward hook)."""
    snn = pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    net, cfg = _trained("none", epochs=30, train_size=5000)
    graph, _ = to_nir(net, cfg, time_unit_ms=0.1)  # dt = 1e-4 -> 1e-3 tau_s per step
    dt, x = 1e-4, 0.1
    for node in graph.nodes.values():
        if isinstance(node, nir.CubaLIF):
            node.r = node.tau_mem / dt
    model = import_from_nir(graph)
    fired: dict = {}

    def fire_once(mod, inp, out):
        spk = out[0] if isinstance(out, tuple) else out
        prev = fired.get(id(mod))
        keep = spk if prev is None else spk * (1 - prev)
        fired[id(mod)] = keep if prev is None else torch.clamp(prev + keep, max=1)
        return (keep, *out[1:]) if isinstance(out, tuple) else keep

    for mod in model.modules():
        if isinstance(mod, snn.Synaptic):
            mod.register_forward_hook(fire_once)
    test = load_split(cfg.dataset, "test")
    t, y = test.t_in.numpy()[:400], test.labels.numpy()[:400]
    ref = net(t)[0][-1]
    steps = int((np.max(ref[np.isfinite(ref)]) + 1.0) * x / dt)
    step_of = np.where(np.isfinite(t), np.floor(t * x / dt), -1)
    first, state = np.full(ref.shape, np.inf), None
    with torch.no_grad():
        for s in range(steps):
            out, state = model(torch.from_numpy((step_of == s).astype(np.float32)), state)
            first = np.where((out.numpy() > 0) & np.isinf(first), (s + 1) * dt / x, first)
    acc_ref, acc_snn = ((predict(v) == y).mean() for v in (ref, first))
    assert abs(acc_ref - acc_snn) <= 0.01, (acc_ref, acc_snn)
    both = np.isfinite(first) & np.isfinite(ref)
    assert np.median(np.abs(first[both] - ref[both])) < 5e-3
