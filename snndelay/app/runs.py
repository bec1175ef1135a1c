"""Runs: checkpoints, the training command and the evaluation command (run directories
themselves: snndelay.app.rundir)."""

from __future__ import annotations

import csv
import io
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import yaml

import snndelay
from snndelay.app import plots
from snndelay.app import threads as thread_policy
from snndelay.app.records import Checkpoint, EpochRow, RunSummary
from snndelay.app.rundir import (
    atomic_write,
    atomic_write_text,
    check_fresh_run_dir,
    clear_run_dir,
    directory_lock,
    load_run_config,
)
from snndelay.app.tracking import Tracker, check_available, open_tracker
from snndelay.app.trainer import EvalResult, Split, Trainer, build_network, check_data, evaluate, load_split
from snndelay.backends import make_backend
from snndelay.config import Config, resolve, to_yaml
from snndelay.engine import compiled
from snndelay.errors import ConfigError, NetworkSilent, RunDirError
from snndelay.model.network import Network
from snndelay.model.placement import NUMPY, resolve_device
from snndelay.spec import RunSpec


def atomic_torch_save(obj: dict, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(snndelay.__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _metrics_csv(rows: list[EpochRow]) -> str:
    buf = io.StringIO()
    if rows:
        dicts = [r.to_dict() for r in rows]
        writer = csv.DictWriter(buf, fieldnames=list(dicts[0]))
        writer.writeheader()
        writer.writerows(dicts)
    return buf.getvalue()


def load_checkpoint(run_dir: Path) -> Checkpoint:
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no checkpoint.pt to load")
    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")  # any device's run
    except Exception as exc:  # torch raises many types for damaged files; never its advice
        raise RunDirError(f"{path}: not a readable snndelay checkpoint "
                          f"({type(exc).__name__}); it is damaged or from another program") from None
    return Checkpoint.from_dict(raw, path)


def _does_not_fit(run_dir: Path, exc: Exception, hint: str = "") -> RunDirError:
    """The one message for a checkpoint whose tensors do not fit the run's config.yaml."""
    return RunDirError(f"{run_dir}: checkpoint.pt does not fit the network of its config.yaml"
                       f"{hint} ({str(exc).splitlines()[0][:120]})")


MODELS = ("last", "best")


def load_network(run_dir: Path, spec: RunSpec, model: str = "last") -> tuple[Network, int]:
    """(network, epoch) of a run: its parameters after the last epoch ("last"), or those of the
    epoch with the highest validation accuracy ("best", model selection on the validation set;
    its test accuracy is summary.json's test_accuracy_at_best_val)."""
    if model not in MODELS:
        raise ConfigError(f"--model must be last or best, got {model!r}")
    ckpt = load_checkpoint(run_dir)
    state, epoch = ((ckpt.model, ckpt.epoch) if model == "last"
                    else (ckpt.best_model, ckpt.best_epoch))
    if not state:  # written before the checkpoint kept it
        raise RunDirError(f"{run_dir}: the checkpoint holds no best-validation network")
    net = build_network(spec.network, spec.seeds.init)
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise _does_not_fit(run_dir, exc) from None
    return net, int(epoch or 0)


@dataclass
class RunResult:
    run_dir: Path
    summary: RunSummary
    rows: list[EpochRow]


def use_threads(spec: RunSpec, default: int | None = None) -> int:
    """Thread counts for this process (snndelay.app.threads): training.threads when set, else
    `default` (a sweep's share of the cores), else the CPUs this process may use."""
    ratio = spec.network.tau_mem / spec.network.tau_syn
    return thread_policy.configure(spec.training.threads or default,
                                   compiled_engine=compiled.available(ratio))


class RunStopped(BaseException):
    """The run was asked to stop (train_run's should_stop) and did so at the end of an epoch,
    with its checkpoint saved: resuming it gives the uninterrupted result. (A BaseException:
    nothing that handles errors may take it for a failure.)"""

    def __init__(self, epoch: int):
        super().__init__(epoch)
        self.epoch = epoch


class _SilentWatch:
    """Stops a run whose output layer stays silent for every validation sample with the
    reason, instead of reporting 0 %: after STUCK epochs in a row in which nothing woke it
    (no weight bump), or after SILENT silent epochs in a row whatever happens. (Silent
    epochs are ordinary at the start of a run while weight bumping raises the weights.)"""

    STUCK, SILENT = 5, 50

    def __init__(self) -> None:
        self.stuck, self.silent = 0, 0

    def check(self, row: EpochRow, run_dir: Path) -> None:
        silent = bool(row.silent) and row.silent[-1] >= 1.0
        self.silent = self.silent + 1 if silent else 0
        self.stuck = self.stuck + 1 if silent and not row.bumps else 0
        if self.stuck >= self.STUCK or self.silent >= self.SILENT:
            raise NetworkSilent(
                f"{run_dir}: epoch {row.epoch}: no output neuron spiked for any validation "
                f"sample ({self.silent} epochs in a row, {self.stuck} without a weight bump), "
                "so every accuracy would be 0 %; raise network.weight_mean, lower "
                "neuron.threshold or training.lr, or keep weight bumping on "
                "(training.max_missing_output < 1); the checkpoint is kept")


def train_run(cfg: Config, run_dir: Path, overrides: list[str], *, resume: bool = False,
              on_epoch: Callable[[EpochRow], None] | None = None, threads: int | None = None,
              locked: bool = False, should_stop: Callable[[], bool] | None = None,
              start_over: bool = False) -> RunResult:
    """Train (or continue) the run in run_dir and write every output file. threads: the
    thread count when training.threads is 0 (default: the CPUs this process may use).
    locked: the caller holds run_dir's lock already (a sweep job decides under it).
    should_stop: asked after every epoch; True saves a checkpoint and raises RunStopped.
    start_over: remove what a run killed before its first checkpoint left (never more). A new
    run starts only in an empty directory."""
    spec = resolve(cfg)
    resolve_device(spec.training.device)  # training.device=cuda without a GPU: one line
    n_threads = use_threads(spec, threads)
    check_data(spec.dataset)  # all splits, before any training time is spent
    check_available(cfg.tracking)
    if locked:
        return _train_locked(cfg, spec, run_dir, overrides, resume, on_epoch, n_threads,
                             should_stop, start_over)
    with directory_lock(run_dir):
        return _train_locked(cfg, spec, run_dir, overrides, resume, on_epoch, n_threads,
                             should_stop, start_over)


def _train_locked(cfg: Config, spec: RunSpec, run_dir: Path, overrides: list[str], resume: bool,
                  on_epoch: Callable[[EpochRow], None] | None, n_threads: int,
                  should_stop: Callable[[], bool] | None, start_over: bool) -> RunResult:
    trainer = Trainer(spec)
    if resume:
        ckpt = load_checkpoint(run_dir)
        try:
            trainer.restore(ckpt)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise _does_not_fit(run_dir, exc, " (was config.yaml edited?)") from None
        if load_run_config(run_dir) != cfg:  # extended (snndelay.app.plan): the new record
            (run_dir / "summary.json").unlink(missing_ok=True)  # rewritten when it ends
            atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
            atomic_write_text(run_dir / "overrides.yaml", yaml.safe_dump(list(overrides)))
    else:
        if start_over:
            clear_run_dir(run_dir)
        check_fresh_run_dir(run_dir)  # under the lock: no race
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(run_dir / "overrides.yaml", yaml.safe_dump(list(overrides)))
    epochs = spec.training.epochs
    if trainer.state.epoch > epochs:
        raise RunDirError(f"{run_dir}: the checkpoint is at epoch {trainer.state.epoch}, past "
                          f"training.epochs={epochs} of its config.yaml")
    tracker = open_tracker(cfg, run_dir, trainer.state.epoch)
    try:
        result = _epochs(trainer, spec, run_dir, on_epoch, should_stop, tracker, n_threads)
    except Exception:
        tracker.fail()
        raise
    except BaseException:  # stopped or interrupted: the checkpoint resumes it
        tracker.fail("KILLED")
        raise
    tracker.finish(result.summary, run_dir)
    return result


def _save(trainer: Trainer, run_dir: Path) -> None:
    """The checkpoint and metrics.csv of the epoch just ended (the resume point)."""
    atomic_torch_save(trainer.checkpoint().to_dict(), run_dir / "checkpoint.pt")
    atomic_write_text(run_dir / "metrics.csv", _metrics_csv(trainer.state.rows))


def _epochs(trainer: Trainer, spec: RunSpec, run_dir: Path,
            on_epoch: Callable[[EpochRow], None] | None, should_stop: Callable[[], bool] | None,
            tracker: Tracker, n_threads: int) -> RunResult:
    """The epochs left, then the test evaluation and every output file."""
    epochs = spec.training.epochs
    every = spec.training.checkpoint_every
    silent = _SilentWatch()
    while trainer.state.epoch < epochs:
        row = trainer.train_epoch()
        epoch = trainer.state.epoch
        saved = epoch % every == 0 or epoch == epochs
        if saved:
            _save(trainer, run_dir)
        tracker.epoch(row)
        if on_epoch is not None:
            on_epoch(row)
        # Asked after on_epoch (which may decide it, as tune's pruner does).
        if should_stop is not None and epoch < epochs and should_stop():
            if not saved:
                _save(trainer, run_dir)
            raise RunStopped(epoch)
        silent.check(row, run_dir)
    test_split = load_split(spec.dataset, "test")
    repeats = spec.backend.repeats()
    test = evaluate(trainer.net, test_split, spec, trainer.backend, repeats)
    best_net = build_network(spec.network, spec.seeds.init).place(trainer.placement)
    best_net.load_state_dict(trainer.state.best_model)
    best = evaluate(best_net, test_split, spec, trainer.backend, repeats)
    trainer.net.place(NUMPY)  # the reports and plots read numpy on the host
    rows = trainer.state.rows
    summary = RunSummary(
        experiment=spec.name, test_accuracy=test.accuracy, test_loss=test.loss,
        val_accuracy=rows[-1].val_acc, val_loss=rows[-1].val_loss,
        best_val_epoch=trainer.state.best_epoch,
        best_val_accuracy=rows[trainer.state.best_epoch - 1].val_acc,
        test_accuracy_at_best_val=best.accuracy, test_accuracy_draws=test.accuracy_draws,
        n_params=trainer.net.n_params(), epochs=trainer.state.epoch,
        wall_time_s=trainer.state.elapsed_s, seed=spec.training.seed, threads=n_threads,
        silent_fraction_test=test.silent,
        backend={**trainer.backend.info(),
                 **trainer.backend.realisation(trainer.net, test_split.t_in.numpy())},
        versions={"snndelay": snndelay.__version__, "torch": torch.__version__,
                  "python": platform.python_version()},
        git_commit=_git_commit(), efficiency=test.efficiency.to_dict())
    write_plots(trainer, test_split, test, run_dir)
    atomic_write_text(run_dir / "summary.json", summary.to_json())
    return RunResult(run_dir, summary, rows)


def write_plots(trainer: Trainer, split: Split, test: EvalResult, run_dir: Path) -> None:
    plots.learning_curves(trainer.state.rows, run_dir / "learning_curves.png")
    delays = {f"layer {k}": layer.delays() for k, layer in enumerate(trainer.net.layers)
              if layer.delays is not None}
    plots.delay_histograms(delays, run_dir / "delays.png")
    if trainer.spec.dataset.name == "yinyang":
        plots.yinyang_predictions(split.features, split.labels, test.predictions,
                                  run_dir / "yinyang_predictions.png")


def evaluate_run(run_dir: Path, split: str, repeats: int | None = None, model: str = "last",
                 backend: str | None = None, backend_overrides: Sequence[str] = ()
                 ) -> tuple[RunSpec, EvalResult, torch.Tensor, int]:
    """Reload a run's network (model: last or best, see load_network) and evaluate it;
    (run spec, result, confusion [true, predicted], epoch of the network). repeats: runs of the
    split averaged on a noisy backend (default backend.eval_repeats). backend (default: the
    run's own) and backend.KEY=VALUE overrides: run it elsewhere (config.with_backend); the
    result's `realisation` says what that backend changed (Backend.realisation)."""
    from snndelay.backends import backend_class
    from snndelay.config import with_backend

    cfg = load_run_config(run_dir)
    if backend is not None or backend_overrides:
        cfg = with_backend(cfg, backend, list(backend_overrides))
        backend_class(cfg.backend.name).ensure_available(cfg.backend)
    spec = resolve(cfg)
    use_threads(spec)
    net, epoch = load_network(run_dir, spec, model)
    data = load_split(spec.dataset, split)
    # On the run's backend by default (the emulated chip of its chip_seed, or the chip).
    runner = make_backend(spec, seed=spec.seeds.evaluate)
    res = evaluate(net, data, spec, runner,
                   spec.backend.repeats() if repeats is None else repeats)
    res.realisation = runner.realisation(net, data.t_in.numpy())
    # Every output neuron may win, also one whose class the split never shows.
    n_cls = max(net.sizes[-1], int(data.labels.max()) + 1)
    confusion = torch.zeros(n_cls, n_cls + 1, dtype=torch.long)  # last column: no spike
    pred = torch.where(res.predictions < 0, n_cls, res.predictions)
    confusion.index_put_((data.labels, pred), torch.ones_like(pred), accumulate=True)
    return spec, res, confusion, epoch
