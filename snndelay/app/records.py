"""Typed run records: a row of metrics.csv (EpochRow), what a run's summary.json holds
(RunSummary) and what its checkpoint.pt holds (Checkpoint, with a format version). Runs write
them; sweeps, compare-delays, deploy and the scripts read them through these types instead of
free dictionaries."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from snndelay.errors import RunDirError


@dataclass
class EpochRow:
    """One epoch: training loss and accuracy (of the batches as they were trained), validation
    loss and accuracy, the learning rate of the first group, the weight bumps, and per layer
    the silent fraction of (validation sample, neuron) pairs and, for a spike-train layer,
    the fraction that filled its spike buffer."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    bumps: int
    silent: list[float] = field(default_factory=list)
    saturated: dict[int, float] = field(default_factory=dict)  # layer -> fraction (trains)
    time_s: float = 0.0  # the epoch's wall time, its validation included (0: an older run)

    def to_dict(self) -> dict[str, float]:
        """The metrics.csv row: silent_layerK and saturated_layerK columns."""
        out: dict[str, float] = {"epoch": self.epoch, "train_loss": self.train_loss,
                                 "train_acc": self.train_acc, "val_loss": self.val_loss,
                                 "val_acc": self.val_acc, "lr": self.lr, "bumps": self.bumps,
                                 "time_s": self.time_s}
        out.update({f"silent_layer{k}": v for k, v in enumerate(self.silent)})
        out.update({f"saturated_layer{k}": v for k, v in sorted(self.saturated.items())})
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EpochRow:
        def layers(prefix: str) -> dict[int, float]:
            return {int(k[len(prefix):]): float(v) for k, v in raw.items()
                    if k.startswith(prefix) and k[len(prefix):].isdigit()}

        silent = layers("silent_layer")
        return cls(int(raw["epoch"]), float(raw["train_loss"]), float(raw["train_acc"]),
                   float(raw["val_loss"]), float(raw["val_acc"]), float(raw["lr"]),
                   int(raw["bumps"]), [silent[k] for k in sorted(silent)],
                   layers("saturated_layer"), float(raw.get("time_s") or 0.0))


@dataclass
class RunSummary:
    """summary.json: the results of a finished run (accuracies as fractions, times in s)."""

    experiment: str
    test_accuracy: float  # network after the last epoch; on a noisy backend the mean of draws
    test_loss: float
    val_accuracy: float
    val_loss: float
    best_val_epoch: int  # the epoch with the highest validation accuracy (first of ties)
    best_val_accuracy: float
    test_accuracy_at_best_val: float
    n_params: int
    epochs: int
    wall_time_s: float  # the training loop (epochs incl. validation), not start-up or test
    seed: int
    threads: int = 0  # numba threads the run used (0: not recorded, an older run)
    test_accuracy_draws: list[float] = field(default_factory=list)
    silent_fraction_test: list[float] = field(default_factory=list)
    backend: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    # The test split's efficiency figures (model/efficiency.Efficiency.to_dict; {}: older run)
    efficiency: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunSummary":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def read(cls, run_dir: Path) -> "RunSummary":
        """The summary of a finished run; RunDirError if it is missing or unreadable."""
        path = Path(run_dir) / "summary.json"
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise RunDirError(f"{run_dir}: no summary.json (the run has not finished)") from None
        except (OSError, ValueError, TypeError) as exc:
            raise RunDirError(f"{path}: not a readable snndelay summary "
                              f"({type(exc).__name__})") from None


CHECKPOINT_FORMAT = 2  # 1: the same fields without "format" (written before it existed)


@dataclass
class Checkpoint:
    """checkpoint.pt: everything a resumed run needs to continue exactly where it stopped,
    and the networks that evaluate and deploy load (last and best-validation)."""

    epoch: int
    model: dict[str, Any]  # the network's state_dict after `epoch` epochs
    optimizer: dict[str, Any]
    shuffle_rng: Any  # torch generator state
    noise_rng: dict[str, Any] | None  # numpy bit generator state of the input jitter
    bump_layer: int
    bump_value: float
    elapsed_s: float
    rows: list[dict[str, Any]]  # metrics.csv so far (EpochRow.to_dict)
    best_epoch: int
    best_model: dict[str, Any]
    backend: dict[str, Any] = field(default_factory=dict)
    format: int = CHECKPOINT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Any, where: Path) -> "Checkpoint":
        """A checkpoint from what torch.load returned; RunDirError naming `where` if it is not
        one this version of snndelay can read."""
        if not isinstance(raw, dict) or "model" not in raw:
            raise RunDirError(f"{where}: not an snndelay checkpoint (no model state)")
        version = raw.get("format", 1)
        if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
            raise RunDirError(f"{where}: checkpoint format {version!r} is newer than this "
                              f"snndelay reads ({CHECKPOINT_FORMAT}); update snndelay")
        raw = {"noise_rng": None, "best_epoch": 0, "best_model": {}, **raw, "format": version}
        missing = [f.name for f in fields(cls) if f.name not in raw
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise RunDirError(f"{where}: incomplete snndelay checkpoint (missing "
                              f"{', '.join(missing)})")
        ckpt = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        ckpt._check(where)
        return ckpt

    def _check(self, where: Path) -> None:
        """What a damaged or edited checkpoint would get wrong: the epoch, the best epoch,
        finite parameters, the bumping state."""
        import math

        import torch

        def bad(problem: str) -> RunDirError:
            return RunDirError(f"{where}: {problem}; the checkpoint is damaged or was edited")

        if not isinstance(self.epoch, int) or isinstance(self.epoch, bool) or self.epoch < 0:
            raise bad(f"epoch {self.epoch!r} is not a count of finished epochs")
        if not isinstance(self.rows, list) or len(self.rows) > self.epoch:
            raise bad(f"epoch {self.epoch} with more metrics rows than epochs")
        if not isinstance(self.model, dict) or not isinstance(self.best_model, dict):
            raise bad("its networks are not parameter dictionaries")
        if not isinstance(self.best_epoch, int) or not (
                (0 if not self.best_model else min(1, self.epoch)) <= self.best_epoch
                <= self.epoch):
            raise bad(f"best epoch {self.best_epoch!r} is not one of its epochs 1..{self.epoch}")
        for name, state in (("model", self.model), ("best_model", self.best_model)):
            for key, value in state.items():
                if not isinstance(value, torch.Tensor):
                    raise bad(f"{name}.{key} is not a tensor")
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise bad(f"{name}.{key} holds NaN or infinite values")
        for key in ("elapsed_s", "bump_value"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise bad(f"{key} {value!r} is not a finite value >= 0")
        if not isinstance(self.bump_layer, int) or self.bump_layer < -1:
            raise bad(f"bump_layer {self.bump_layer!r} is not a layer index or -1")
