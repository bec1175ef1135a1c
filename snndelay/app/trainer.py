"""Training and evaluation of a configured network (docs/model.md sections 5 and 6)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from snndelay import data
from snndelay.app.records import Checkpoint, EpochRow
from snndelay.app.threads import CpuMonitor
from snndelay.backends import Backend, SimulatorBackend, make_backend
from snndelay.errors import TrainingDiverged
from snndelay.model.dropout import SpikeDropout
from snndelay.model.efficiency import Efficiency
from snndelay.model.losses import loss_fn
from snndelay.model.network import Network, first_spikes
from snndelay.model.optim import Adam, schedule_factor
from snndelay.model.placement import Placement, namespace, placement_for
from snndelay.spec import NetworkSpec, RunSpec


@dataclass
class Split:
    name: str
    t_in: torch.Tensor  # [n, N_in] spike times
    labels: torch.Tensor  # [n]
    features: torch.Tensor  # [n, F] raw values (for plots)
    # (t_in, labels) as a placement's arrays, moved there once (placed())
    _placed: dict[Placement, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    def placed(self, placement: Placement) -> tuple[Any, Any]:
        """(t_in, labels) as `placement`'s arrays (numpy, or tensors on its device)."""
        if placement not in self._placed:
            self._placed[placement] = (placement.arrays(self.t_in), placement.arrays(self.labels))
        return self._placed[placement]


def load_split(dataset: data.DatasetConfig, split: str) -> Split:
    """One split of the configured dataset, encoded once per process (off the hot path)."""
    enc = data.load(dataset, split)
    return Split(split, enc.t_in, enc.labels, enc.features)


def check_data(dataset: data.DatasetConfig) -> None:
    """Open, check and encode every split (train, val, test) before any training time is
    spent; a DataError or DatasetMissing names the file or key otherwise. Encodings are cached,
    so training reuses them."""
    for split in data.SPLITS:
        load_split(dataset, split)


def build_network(spec: NetworkSpec, seed: int) -> Network:
    """The network of a spec, its weights and delays drawn from `seed` (Seeds.init)."""
    ls = spec.layers
    return Network(spec.sizes, w_mean=[ly.weight_mean for ly in ls],
                   w_std=[ly.weight_std for ly in ls], delays=[ly.delay for ly in ls],
                   bias_time=spec.bias_time, tau_mem=spec.tau_mem, tau_syn=spec.tau_syn,
                   threshold=spec.threshold, max_spikes=spec.max_spikes, seed=seed,
                   readout=spec.readout)


@dataclass
class EvalResult:
    loss: float
    accuracy: float  # mean over the draws
    predictions: torch.Tensor  # first draw
    silent: list[float]  # fraction of silent (sample, neuron) pairs per layer, first draw
    outputs: torch.Tensor  # the readout's values (e.g. output first spikes), first draw
    accuracy_draws: list[float] = field(default_factory=list)  # one per run of the split
    # per layer: fraction of (sample, neuron) pairs that filled their spike buffer
    # (neuron.max_spikes; 0 for first-spike layers), first draw
    saturated: list[float] = field(default_factory=list)
    efficiency: Efficiency = field(default_factory=Efficiency)  # first draw
    # what the backend changed in realising the network (Backend.realisation); {} for none
    realisation: dict[str, float] = field(default_factory=dict)


@dataclass
class _Pass:
    loss: float
    predictions: np.ndarray
    silent: list[float]
    saturated: list[float]
    outputs: np.ndarray
    spikes: list[float]  # per layer, inputs first (summed over the split)
    events: float  # synaptic events (summed over the split)


def _evaluate_once(net: Network, split: Split, spec: RunSpec, backend: Backend) -> _Pass:
    """Mean loss, predictions, silent and saturated fractions per spiking layer, and the
    readout's values of one pass."""
    loss = loss_fn(spec.loss)
    bs = spec.training.eval_batch_size
    pl = net.placement
    t_all, labels = split.placed(pl)
    xp = namespace(t_all)
    losses, preds, outs = [], [], []
    silent = np.zeros(net.n_spiking)
    full = np.zeros(net.n_spiking)
    spikes, events = np.zeros(net.n_spiking + 1), 0.0
    for b0 in range(0, len(labels), bs):
        t_in = t_all[b0:b0 + bs]
        run = backend.run(net, t_in)
        times = run.times
        out, _ = net.outputs(t_in, times, run.params)
        losses.append(loss(out, labels[b0:b0 + bs])[0])
        preds.append(net.readout.predict(out))
        outs.append(out)
        counts, ev = net.event_counts(t_in, times)
        spikes += counts
        events += ev
        silent += [float(xp.isinf(first_spikes(t)).sum()) / t.shape[1] for t in times]
        full += [float(xp.isfinite(t[:, :, -1]).sum()) / t.shape[1] if t.ndim == 3 else 0.0
                 for t in times]
    n = len(labels)
    return _Pass(float(pl.host(xp.concat(losses)).mean()), pl.host(xp.concat(preds)),
                 (silent / n).tolist(), (full / n).tolist(), pl.host(xp.concat(outs)),
                 spikes.tolist(), events)


def evaluate(net: Network, split: Split, spec: RunSpec, backend: Backend | None = None,
             repeats: int = 1) -> EvalResult:
    """Loss, accuracy, predictions and silent fractions on a split; spike times from the
    backend (e.g. the emulated chip), or the ideal engine when None. A stochastic backend
    (trial-to-trial noise) runs the split `repeats` times: accuracy and loss are the means,
    accuracy_draws the single runs."""
    backend = backend or SimulatorBackend()
    n_runs = max(repeats, 1) if backend.stochastic else 1
    labels = split.labels.numpy()
    with net.placement.engine():
        runs = [_evaluate_once(net, split, spec, backend) for _ in range(n_runs)]
    accs = [float((r.predictions == labels).mean()) for r in runs]
    first = runs[0]
    return EvalResult(float(np.mean([r.loss for r in runs])), float(np.mean(accs)),
                      torch.from_numpy(first.predictions), first.silent,
                      torch.from_numpy(first.outputs), accs, first.saturated,
                      Efficiency([c / len(labels) for c in first.spikes],
                                 first.events / len(labels), net.footprint_bytes()))


@dataclass
class TrainState:
    """Everything a resumed run needs to continue exactly where it stopped."""

    epoch: int = 0
    bump_layer: int = -1  # layer bumped by the previous batch (-1: none)
    bump_value: float = 0.0
    elapsed_s: float = 0.0
    rows: list[EpochRow] = field(default_factory=list)
    best_epoch: int = 0  # epoch with the highest validation accuracy so far (first of ties)
    best_model: dict = field(default_factory=dict)  # its parameters


class Trainer:
    """Adam per layer (weights, delays), step schedule (StepLR), weight bumping, max_dw_norm
    (docs/model.md section 6)."""

    def __init__(self, spec: RunSpec):
        self.spec = spec
        t, seeds = spec.training, spec.seeds
        self.placement = placement_for(t.device, t.compiled, t.max_memory_gb)
        self.net = build_network(spec.network, seeds.init).place(self.placement)
        groups: list[tuple] = []
        for layer, ls in zip(self.net.layers, spec.network.layers):
            groups.append(([layer.weight], ls.lr, t.weight_decay))
            if layer.delays is not None:
                groups.append(([layer.delays.raw], ls.lr_delay))
        self.opt = Adam(groups)
        self.shuffle = torch.Generator().manual_seed(seeds.shuffle)
        # Training-time jitter on input spike times (augmentation against overfitting).
        self.noise_rng = np.random.default_rng(seeds.input_noise)
        self.loss = loss_fn(spec.loss)
        self.backend = make_backend(spec, seed=seeds.backend)
        self.max_dw = t.max_dw_norm
        self.max_missing = [ls.max_missing for ls in spec.network.layers]
        self.state = TrainState()
        self.cpu = CpuMonitor()
        self.train_split = load_split(spec.dataset, "train")
        self.val_split = load_split(spec.dataset, "val")

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        s = self.state
        return Checkpoint(epoch=s.epoch, model=self.net.state_dict(),
                          optimizer=self.opt.state_dict(), shuffle_rng=self.shuffle.get_state(),
                          noise_rng=dict(self.noise_rng.bit_generator.state),
                          bump_layer=s.bump_layer, bump_value=s.bump_value,
                          elapsed_s=s.elapsed_s, rows=[r.to_dict() for r in s.rows], best_epoch=s.best_epoch,
                          best_model=s.best_model, backend=self.backend.state_dict())

    def restore(self, ckpt: Checkpoint) -> None:
        self.net.load_state_dict(ckpt.model)
        self.opt.load_state_dict(ckpt.optimizer)
        self.shuffle.set_state(ckpt.shuffle_rng)
        if ckpt.noise_rng is not None:
            self.noise_rng.bit_generator.state = ckpt.noise_rng
        # A checkpoint written before the best-validation network was kept: its last network
        # is the best so far.
        best_epoch, best = (ckpt.best_epoch, ckpt.best_model) if ckpt.best_model else \
            (ckpt.epoch, ckpt.model)
        self.state = TrainState(ckpt.epoch, ckpt.bump_layer, ckpt.bump_value, ckpt.elapsed_s,
                                [EpochRow.from_dict(r) for r in ckpt.rows], best_epoch,
                                dict(best))
        self.backend.load_state_dict(ckpt.backend)

    # -- one epoch -------------------------------------------------------------------------
    def _bump(self, times: list[np.ndarray]) -> bool:
        """Weight bumping: at the first layer with too many silent (sample, neuron) pairs, add
        bump to the incoming weights of every neuron that missed a spike; True = skip step."""
        s = self.state
        for k, t in enumerate(times):
            xp = namespace(t)
            silent = xp.isinf(first_spikes(t))  # no spike at all
            if float(xp.mean(xp.astype(silent, xp.float64))) > self.max_missing[k]:
                s.bump_value = s.bump_value * 2 if s.bump_layer == k else self.spec.training.bump
                s.bump_layer = k
                missed = xp.any(silent, axis=0)
                with torch.no_grad():
                    self.net.layers[k].weight[:, torch.as_tensor(missed)] += s.bump_value
                return True
        s.bump_layer = -1
        return False

    def _check_finite(self) -> None:
        """Stop with one line when a step made a parameter NaN or infinite (before the
        checkpoint of this epoch is written, so the run keeps its last finite state)."""
        for name, p in self.net.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingDiverged(
                    f"training diverged in epoch {self.state.epoch + 1}: {name} became NaN or "
                    "infinite; lower training.lr / training.lr_delay or the weight "
                    "initialisation (network.weight_mean, network.weight_std)")

    def _check_loss(self, per_sample: np.ndarray, batch: int) -> None:
        """Stop with one line when a batch's loss is not finite or exploded (above
        training.max_loss): the gradients would be meaningless and the run would train on."""
        limit = self.spec.training.max_loss
        mean = float(per_sample.mean()) if per_sample.shape[0] else 0.0
        if math.isfinite(mean) and (limit is None or mean <= limit):
            return
        hint = ("lower training.lr or the weight initialisation (network.weight_mean, "
                "network.weight_std)")
        if self.spec.loss.hint():
            hint = f"{self.spec.loss.hint()}; or {hint}"
        raise TrainingDiverged(
            f"training loss {mean:.3g} in epoch {self.state.epoch + 1}, batch {batch}: "
            + ("not finite" if not math.isfinite(mean) else f"above training.max_loss={limit:g}")
            + f"; {hint}")

    def _jitter(self, t_in: Any) -> Any:
        """Training inputs t + N(0, input_noise^2), clipped at 0; silent inputs stay silent.
        (Drawn on the host, so that every placement trains on the same draws.)"""
        std = self.spec.training.input_noise
        if not std:
            return t_in
        noise = self.noise_rng.normal(0.0, std, tuple(t_in.shape))
        if isinstance(t_in, np.ndarray):
            return np.maximum(t_in + noise, 0.0)
        return torch.clamp(t_in + self.placement.arrays(noise), min=0.0)

    def _dropout(self, batch: int, n: int) -> SpikeDropout | None:
        """This batch's hidden spike dropout (training.spike_dropout; None when off), drawn
        from (seed, epoch, batch) alone: a resumed run drops what an uninterrupted one would."""
        p = self.spec.training.spike_dropout
        if not p:
            return None
        rng = np.random.default_rng([self.spec.seeds.dropout, self.state.epoch, batch])
        return SpikeDropout.draw(p, rng, n, self.net.sizes, self.net.max_spikes,
                                 self.placement.arrays)

    def train_epoch(self) -> EpochRow:
        self.cpu.adapt()  # small layers parallel only while no other process competes
        with self.placement.engine():
            return self._train_epoch()

    def _train_epoch(self) -> EpochRow:
        t0 = time.perf_counter()
        t = self.spec.training
        if t.schedule != "step":
            self.opt.scale(schedule_factor(t.schedule, self.state.epoch, t.epochs))
        elif self.state.epoch > 0 and self.state.epoch % t.step_size == 0:
            self.opt.decay(t.gamma)  # StepLR

        tr, pl = self.train_split, self.placement
        order = pl.arrays(torch.randperm(len(tr.labels), generator=self.shuffle))
        t_all, y_all = tr.placed(pl)
        if self.spec.dataset.augments():  # a fresh draw of the events' augmentation
            t_all = pl.arrays(data.augmented(self.spec.dataset, self.spec.seeds.augment,
                                             self.state.epoch))
        bs = t.batch_size
        loss_sum, correct, n_bumps = 0.0, 0, 0
        for b0 in range(0, len(order), bs):
            idx = order[b0:b0 + bs]
            y = y_all[idx]
            t_b = self._jitter(t_all[idx])
            # One step for every backend: it produces spike times (measured, for hardware) and
            # says which parameters it realised; the gradient is the engine's spike-time
            # backward at those times (straight-through, docs/model.md sections 4 and 8).
            with self.net.dropping(self._dropout(b0 // bs, len(idx))):
                run = self.backend.run(self.net, t_b, training=True)
                out, readout_state = self.net.outputs(t_b, run.times, run.params)
                per_sample, g_out = self.loss(out, y)
                self._check_loss(per_sample, b0 // bs + 1)
                loss_sum += float(per_sample.sum())
                correct += int((self.net.readout.predict(out) == y).sum())
                if self._bump(run.times):
                    n_bumps += 1
                    continue
                _, caches = self.net.forward(t_b, params=run.params, given=run.times)
                self.net.backward(caches, g_out / len(idx), self.max_dw, run.nominal_threshold,
                                  readout_state=readout_state)
            self.opt.step()
            self.net.project()
            self.backend.project(self.net)
        self._check_finite()
        val = evaluate(self.net, self.val_split, self.spec, self.backend)
        self.state.epoch += 1
        took = time.perf_counter() - t0
        self.state.elapsed_s += took
        row = EpochRow(self.state.epoch, loss_sum / len(order), correct / len(order), val.loss,
                       val.accuracy, self.opt.lrs[0], n_bumps, list(val.silent),
                       {k: v for k, v in enumerate(val.saturated) if self.net.max_spikes[k] > 1},
                       round(took, 4))
        s = self.state
        if not s.rows or val.accuracy > s.rows[s.best_epoch - 1].val_acc:
            s.best_epoch = s.epoch
            s.best_model = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        s.rows.append(row)
        return row
