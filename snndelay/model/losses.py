"""Losses and decoding on output spike times and on readout values (docs/model.md sections 5
and 12).

Each loss is written once, over numpy arrays or torch tensors (the array API), with its
closed-form gradient: it returns the per-sample loss [B] and d loss_b / d t_b [B, K]. A loss
reads what a readout produces (model/readouts.py): spike times (the earliest wins) or values
(the largest wins). Training calls these directly (no autograd overhead on small batches);
model/torch_losses.py gives the same losses as differentiable
torch operations (torch_loss), for users of the engine's autograd API. Each loss's config
schema lives here too (configs/loss/NAME.yaml extends it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import numpy as np
from array_api_compat import array_namespace as namespace
from array_api_compat import device

from snndelay.errors import need
from snndelay.limits import MAX_TIME, MAX_WEIGHT

LossFn = Callable[..., tuple[np.ndarray, np.ndarray]]


def _rows(xp: Any, t: Any) -> Any:
    return xp.arange(t.shape[0], device=device(t))


def shift_mse_grad(t: Any, label: Any, dt: float = 0.2) -> tuple[Any, Any]:
    """Per-sample 1/2 sum_k ((t_k - t_label) - dt [k != label])^2 (DelGrad) and its gradient.
    With r_k = t_k - t_label - dt [k != label]: dL/dt_k = r_k (k != label),
    dL/dt_label = -sum_k r_k. Samples with a silent output: 0 and no gradient."""
    xp = namespace(t, label)
    ok = xp.all(xp.isfinite(t), axis=1)
    t_s = xp.where(ok[:, None], t, 0.0)
    rows = _rows(xp, t)
    r = t_s - t_s[rows, label][:, None] - dt
    r[rows, label] = 0.0
    r[~ok] = 0.0
    per = 0.5 * xp.sum(r * r, axis=1)
    g = r
    g[rows, label] = -xp.sum(r, axis=1)
    return per, g


def ttfs_cross_entropy_grad(t: Any, label: Any, xi: float = 0.2, alpha: float = 0.005,
                            beta: float = 1.0) -> tuple[Any, Any]:
    """Per-sample -log softmax(-t / xi)[label] + alpha exp(t_label / beta) (Fast & Deep) and
    its gradient: with p = softmax(-t / xi), dL/dt_k = (1[k = label] - p_k) / xi
    + 1[k = label] alpha / beta e^{t_label / beta}. A silent output has p_k = 0; a silent
    label neuron gives 0 and no gradient."""
    xp = namespace(t, label)
    rows = _rows(xp, t)
    fin = xp.isfinite(t)
    ok = fin[rows, label]
    logits = xp.where(fin, -xp.where(fin, t, 0.0) / xi, -xp.inf)
    top = xp.where(ok, xp.max(logits, axis=1), 0.0)
    e = xp.exp(logits - top[:, None])
    z = xp.sum(e, axis=1)
    p = e / xp.where(ok, z, 1.0)[:, None]
    t_label = xp.where(ok, t[rows, label], 0.0)
    growth = alpha * xp.exp(t_label / beta)
    per = xp.where(ok, -(logits[rows, label] - top - xp.log(xp.where(ok, z, 1.0))) + growth,
                   0.0)
    g = -p / xi
    g[rows, label] += 1.0 / xi + growth / beta
    g[~ok] = 0.0
    return per, g


def cross_entropy_grad(z: Any, label: Any, scale: float = 1.0) -> tuple[Any, Any]:
    """Per-sample -log softmax(scale z)[label] on readout values z [B, K] and its gradient:
    with p = softmax(scale z), dL/dz_k = scale (p_k - 1[k = label])."""
    xp = namespace(z, label)
    rows = _rows(xp, z)
    logits = scale * z
    top = xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(logits - top)
    total = xp.sum(e, axis=1, keepdims=True)
    p = e / total
    per = -(logits[rows, label] - top[:, 0] - xp.log(total[:, 0]))
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


def loss_fn(cfg: LossConfig) -> Callable[[Any, Any], tuple[Any, Any]]:
    """The configured loss: (readout outputs [B, K], labels [B]) -> (per-sample loss [B],
    d loss_b / d out_b [B, K]) (docs/model.md sections 5 and 12); numpy or torch arrays."""
    kw = cfg.kwargs()
    fn = LOSSES[cfg.name]

    def loss(t: Any, y: Any) -> tuple[Any, Any]:
        # An overflowing loss becomes inf, which the max_loss guard reports in one line.
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(t, y, **kw)

    return loss


def predict(t: Any) -> Any:
    """The first output neuron to spike; -1 when all outputs are silent (always wrong).
    numpy in, numpy out; torch in, torch out (on its device)."""
    xp = namespace(t)
    return xp.where(xp.isfinite(xp.min(t, axis=1)), xp.argmin(t, axis=1), -1)
