"""Losses and decoding on output spike times (docs/model.md section 5)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def _safe(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t with +inf replaced by 0, finite mask): keeps inf out of every formula so that no
    gradient turns into 0 * inf = NaN."""
    fin = torch.isfinite(t)
    return torch.where(fin, t, torch.zeros_like(t)), fin


def shift_mse(t: torch.Tensor, label: torch.Tensor, dt: float = 0.2) -> torch.Tensor:
    """Per-sample 1/2 sum_k ((t_k - t_label) - dt [k != label])^2 (DelGrad). Samples with a
    silent output get a constant 0 (no gradient)."""
    t_s, fin = _safe(t)
    t_label = t_s.gather(1, label[:, None])
    # float64 mask: a bool tensor times a Python float would be float32 (0.2 -> 0.2000000030)
    target = dt * (torch.arange(t.shape[1], device=t.device)[None, :] != label[:, None]).to(t.dtype)
    per = 0.5 * ((t_s - t_label - target) ** 2).sum(dim=1)
    return torch.where(fin.all(dim=1), per, torch.zeros_like(per))


def ttfs_cross_entropy(t: torch.Tensor, label: torch.Tensor, xi: float = 0.2,
                       alpha: float = 0.005, beta: float = 1.0) -> torch.Tensor:
    """Per-sample -log softmax(-t / xi)[label] + alpha exp(t_label / beta) (Fast & Deep).
    A silent non-label output has softmax weight 0; a silent label neuron gives a constant 0."""
    t_s, fin = _safe(t)
    logits = torch.where(fin, -t_s / xi, torch.full_like(t_s, float("-inf")))
    t_label = t_s.gather(1, label[:, None]).squeeze(1)
    per = -torch.log_softmax(logits, dim=1).gather(1, label[:, None]).squeeze(1) \
        + alpha * torch.exp(t_label / beta)
    return torch.where(fin.gather(1, label[:, None]).squeeze(1), per, torch.zeros_like(per))


def predict(t: torch.Tensor) -> torch.Tensor:
    """The first output neuron to spike; -1 when all outputs are silent (always wrong)."""
    first = t.argmin(dim=1)
    return torch.where(torch.isfinite(t.min(dim=1).values), first, torch.full_like(first, -1))


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"shift_mse": shift_mse, "ttfs_ce": ttfs_cross_entropy}


# -- numpy forms with their closed-form gradients, for the fused training step --------------
def shift_mse_np(t: np.ndarray, label: np.ndarray, dt: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(per-sample shift_mse [B], d mean / dt [B, K]). With r_k = t_k - t_label - dt [k != label]:
    dL/dt_k = r_k (k != label), dL/dt_label = -sum_k r_k; silent samples: 0 and no gradient."""
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
    return per, g / max(n, 1)


def ttfs_cross_entropy_np(t: np.ndarray, label: np.ndarray, xi: float = 0.2, alpha: float = 0.005,
                          beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(per-sample ttfs_cross_entropy [B], d mean / dt [B, K]): with p = softmax(-t / xi),
    dL/dt_k = (1[k = label] - p_k) / xi + 1[k = label] alpha / beta e^{t_label / beta};
    a silent output has p_k = 0, a silent label neuron gives 0 and no gradient."""
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
    return per, g / max(n, 1)


def predict_np(t: np.ndarray) -> np.ndarray:
    """predict for numpy arrays: first output neuron to spike, -1 when all are silent."""
    first = t.argmin(axis=1)
    return np.where(np.isfinite(t.min(axis=1)), first, -1)


LOSSES_NP: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "shift_mse": shift_mse_np, "ttfs_ce": ttfs_cross_entropy_np}
