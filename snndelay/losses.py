"""Losses and decoding on output spike times (model.md section 5)."""

from __future__ import annotations

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
    target = dt * (torch.arange(t.shape[1], device=t.device)[None, :] != label[:, None])
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


LOSSES = {"shift_mse": shift_mse, "ttfs_ce": ttfs_cross_entropy}
