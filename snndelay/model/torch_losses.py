"""The losses of model/losses.py as differentiable torch operations (their closed-form
gradients as the backward), for users of the engine's autograd API."""

from __future__ import annotations

from typing import Any, Callable

import torch

from snndelay.model.losses import LOSSES, LossFn


class _Loss(torch.autograd.Function):
    """A numpy loss with its closed-form gradient as a torch operation."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, label: torch.Tensor, fn: LossFn,
                kwargs: dict[str, float]) -> torch.Tensor:
        per, g = fn(t.detach().cpu().numpy(), label.detach().cpu().numpy(), **kwargs)
        ctx.save_for_backward(torch.from_numpy(g).to(t.device))
        return torch.from_numpy(per).to(t.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (g,) = ctx.saved_tensors
        return g * grad_out[:, None], None, None, None


def torch_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss `name` of LOSSES as a differentiable torch function (t [B, K], label [B],
    keyword parameters) -> per-sample losses [B]."""
    fn = LOSSES[name]
    return lambda t, label, **kw: _Loss.apply(t.to(torch.float64), label, fn, kw)


shift_mse = torch_loss("shift_mse")
ttfs_cross_entropy = torch_loss("ttfs_ce")
