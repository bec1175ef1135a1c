"""Losses and decoding on output spike times and on readout values (docs/model.md sections 5
and 12).

Each loss is written once, on numpy arrays, with its closed-form gradient: it returns the
per-sample loss [B] and d loss_b / d t_b [B, K]. A loss reads what a readout produces
(model/readouts.py): spike times (the earliest wins) or values (the largest wins). Training calls these directly (no autograd
overhead on small batches); model/torch_losses.py gives the same losses as differentiable
torch operations (torch_loss), for users of the engine's autograd API. Each loss's config
schema lives here too (configs/loss/NAME.yaml extends it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import numpy as np

from snndelay.errors import need
from snndelay.limits import MAX_TIME, MAX_WEIGHT

LossFn = Callable[..., tuple[np.ndarray, np.ndarray]]


def shift_mse_grad(t: np.ndarray, label: np.ndarray, dt: float = 0.2
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample 1/2 sum_k ((t_k - t_label) - dt [k != label])^2 (DelGrad) and its gradient.
    With r_k = t_k - t_label - dt [k != label]: dL/dt_k = r_k (k != label),
    dL/dt_label = -sum_k r_k. Samples with a silent output: 0 and no gradient."""
    n = t.shape[0]
    ok = np.isfinite(t).all(axis=1)
    t_s = np.where(ok[:, None], t, 0.0)
    rows = np.arange(n)
    r = t_s - t_s[rows, label][:, None] - dt
    r[rows, label] = 0.0
    r[~ok] = 0.0
    per = 0.5 * (r * r).sum(axis=1)
    g = r
    g[rows, label] = -r.sum(axis=1)
    return per, g


def ttfs_cross_entropy_grad(t: np.ndarray, label: np.ndarray, xi: float = 0.2,
                            alpha: float = 0.005, beta: float = 1.0
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample -log softmax(-t / xi)[label] + alpha exp(t_label / beta) (Fast & Deep) and
    its gradient: with p = softmax(-t / xi), dL/dt_k = (1[k = label] - p_k) / xi
    + 1[k = label] alpha / beta e^{t_label / beta}. A silent output has p_k = 0; a silent
    label neuron gives 0 and no gradient."""
    n = t.shape[0]
    rows = np.arange(n)
    fin = np.isfinite(t)
    ok = fin[rows, label]
    logits = np.where(fin, -np.where(fin, t, 0.0) / xi, -np.inf)
    top = np.where(ok, logits.max(axis=1), 0.0)
    e = np.exp(logits - top[:, None])
    z = e.sum(axis=1)
    p = e / np.where(ok, z, 1.0)[:, None]
    t_label = np.where(ok, t[rows, label], 0.0)
    growth = alpha * np.exp(t_label / beta)
    per = np.where(ok, -(logits[rows, label] - top - np.log(np.where(ok, z, 1.0))) + growth, 0.0)
    g = -p / xi
    g[rows, label] += 1.0 / xi + growth / beta
    g[~ok] = 0.0
    return per, g


def cross_entropy_grad(z: np.ndarray, label: np.ndarray, scale: float = 1.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample -log softmax(scale z)[label] on readout values z [B, K] and its gradient:
    with p = softmax(scale z), dL/dz_k = scale (p_k - 1[k = label])."""
    rows = np.arange(z.shape[0])
    logits = scale * z
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    total = e.sum(axis=1, keepdims=True)
    p = e / total
    per = -(logits[rows, label] - top[:, 0] - np.log(total[:, 0]))
    g = scale * p
    g[rows, label] -= scale
    return per, g


# -- configuration: each loss's schema (configs/loss/NAME.yaml extends it) -----------------------
@dataclass
class LossConfig:
    name: str = "shift_mse"
    reads: ClassVar[str] = "times"  # what it reads: a readout's `produces` (model/readouts.py)

    def kwargs(self) -> dict[str, float]:
        """The loss function's keyword parameters (every key but the name)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def check(self) -> None:
        pass

    def hint(self) -> str:
        """What to change when this loss overflows (training.max_loss), or ''."""
        return ""


@dataclass
class ShiftMseConfig(LossConfig):
    name: str = "shift_mse"
    dt: float = 0.2  # target gap between label and other outputs (0.3 on hardware)

    def check(self) -> None:
        need(0 <= self.dt <= MAX_TIME, "loss.dt", f"must be in [0, {MAX_TIME:g}] tau_s", self.dt)


@dataclass
class TtfsCeConfig(LossConfig):
    name: str = "ttfs_ce"
    xi: float = 0.2  # softmax temperature of -t
    alpha: float = 0.005  # weight of the early-label regulariser alpha exp(t_label / beta)
    beta: float = 1.0

    def check(self) -> None:
        need(0 < self.xi <= MAX_TIME, "loss.xi", f"must be in (0, {MAX_TIME:g}] tau_s", self.xi)
        need(0 <= self.alpha <= MAX_WEIGHT, "loss.alpha", f"must be in [0, {MAX_WEIGHT:g}]",
             self.alpha)
        need(0 < self.beta <= MAX_TIME, "loss.beta", f"must be in (0, {MAX_TIME:g}] tau_s",
             self.beta)

    def hint(self) -> str:
        return ("its alpha exp(t / beta) term grows with the output spike times: raise "
                "loss.beta towards the input span in tau_s (e.g. loss.beta=20 on inputs "
                f"tens of tau_s long; now {self.beta}) or lower loss.alpha")


@dataclass
class CrossEntropyConfig(LossConfig):
    name: str = "cross_entropy"
    scale: float = 1.0  # logits = scale * readout values (membrane units)
    reads: ClassVar[str] = "values"

    def check(self) -> None:
        need(0 < self.scale <= MAX_WEIGHT, "loss.scale", f"must be in (0, {MAX_WEIGHT:g}]",
             self.scale)


# A loss: its function (numpy, closed-form gradient) and its schema, by name.
LOSSES: dict[str, LossFn] = {"shift_mse": shift_mse_grad, "ttfs_ce": ttfs_cross_entropy_grad,
                             "cross_entropy": cross_entropy_grad}
LOSS_SCHEMAS: dict[str, type[LossConfig]] = {"shift_mse": ShiftMseConfig,
                                             "ttfs_ce": TtfsCeConfig,
                                             "cross_entropy": CrossEntropyConfig}


def loss_fn(cfg: LossConfig) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The configured loss: (readout outputs [B, K], labels [B]) -> (per-sample loss [B],
    d loss_b / d out_b [B, K]) (docs/model.md sections 5 and 12)."""
    kw = cfg.kwargs()
    fn = LOSSES[cfg.name]

    def loss(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # An overflowing loss becomes inf, which the max_loss guard reports in one line.
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(t, y, **kw)

    return loss


def predict(t: Any) -> Any:
    """The first output neuron to spike; -1 when all outputs are silent (always wrong).
    numpy in, numpy out; torch in, torch out."""
    if not isinstance(t, np.ndarray):  # a tensor (torch is loaded once one exists)
        import torch

        return torch.from_numpy(predict(t.detach().cpu().numpy())).to(t.device)
    first = t.argmin(axis=1)
    return np.where(np.isfinite(t.min(axis=1)), first, -1)
