"""A lean Adam for the few parameter tensors of a spiking network.

Same update as torch.optim.Adam without weight decay or amsgrad (Kingma & Ba 2015, in the form
torch uses): m <- lerp(m, g, 1 - b1), v <- b2 v + (1 - b2) g^2,
p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). It exists because constructing
torch.optim.Adam imports torch._dynamo (~1.3 s of start-up here) and its per-step bookkeeping
costs more than the update itself for networks of a few hundred parameters.
"""

from __future__ import annotations

import math

import torch


def schedule_factor(name: str, epoch: int, epochs: int) -> float:
    """The learning rate of epoch `epoch` (0-based) of `epochs` as a fraction of the base rate
    (docs/model.md section 6): cosine (CosineAnnealingLR, T_max = E): (1 + cos(pi e / E)) / 2;
    onecycle (OneCycleLR stepped once per epoch, its defaults): a cosine from 1/25 up to 1
    over the first 0.3 E - 1 epochs, then a cosine down to 1 / (25 * 1e4) at the last. The
    step schedule multiplies instead (Adam.decay)."""
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if name == "onecycle":
        up = 0.3 * epochs - 1  # the peak's epoch (no warm-up for runs under 4 epochs)
        if 0 < up and epoch <= up:
            lo, hi, pct = 1 / 25, 1.0, epoch / up
        else:
            up = max(up, 0.0)
            lo, hi, pct = 1.0, 1 / 25e4, min(1.0, (epoch - up) / max(epochs - 1 - up, 1e-12))
        return hi + (lo - hi) / 2 * (1.0 + math.cos(math.pi * pct))
    raise ValueError(f"schedule must be cosine or onecycle, got {name!r}")


class Adam:
    """Adam over parameter groups [(params, lr), ...] or [(params, lr, weight_decay), ...]
    (decoupled, as AdamW: p <- p (1 - lr wd) before the step). decay(gamma) multiplies every
    learning rate, as torch's StepLR does at each step boundary (same rounding, so a run is
    bit-identical to torch.optim.Adam + StepLR); scale(f) sets them to f times the base."""

    def __init__(self, groups: list[tuple], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = [p for ps, *_ in groups for p in ps]
        self.lrs = [float(g[1]) for g in groups for _ in g[0]]
        self.base_lrs = list(self.lrs)
        self.wds = [float(g[2]) if len(g) > 2 else 0.0 for g in groups for _ in g[0]]
        self.betas, self.eps = betas, eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.steps += 1
        live = [k for k, p in enumerate(self.params) if p.grad is not None]
        params: list[torch.Tensor] = [self.params[k] for k in live]
        grads = [p.grad for p in params if p.grad is not None]
        m = [self.exp_avg[k] for k in live]
        v = [self.exp_avg_sq[k] for k in live]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, (1 - b2 ** self.steps) ** 0.5)
        torch._foreach_add_(denom, self.eps)
        bias1 = 1 - b1 ** self.steps
        for k in live:
            if self.wds[k]:
                self.params[k].mul_(1 - self.lrs[k] * self.wds[k])
        torch._foreach_addcdiv_(params, m, denom, [-(self.lrs[k] / bias1) for k in live])

    def decay(self, gamma: float) -> None:
        self.lrs = [lr * gamma for lr in self.lrs]

    def scale(self, factor: float) -> None:
        self.lrs = [lr * factor for lr in self.base_lrs]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "lrs": self.lrs, "exp_avg": self.exp_avg,
                "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.lrs = int(state["steps"]), [float(x) for x in state["lrs"]]
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            dst.copy_(src)
