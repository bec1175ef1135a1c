"""A lean Adam for the few parameter tensors of a spiking network.

Same update as torch.optim.Adam without weight decay or amsgrad (Kingma & Ba 2015, in the form
torch uses): m <- lerp(m, g, 1 - b1), v <- b2 v + (1 - b2) g^2,
p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). It exists because constructing
torch.optim.Adam imports torch._dynamo (~1.3 s of start-up here) and its per-step bookkeeping
costs more than the update itself for networks of a few hundred parameters.
"""

from __future__ import annotations

import torch


class Adam:
    """Adam over parameter groups [(params, lr), ...]. decay(gamma) multiplies every learning
    rate, as torch's StepLR does at each step boundary (same rounding, so a run is bit-identical
    to torch.optim.Adam + StepLR)."""

    def __init__(self, groups: list[tuple[list[torch.nn.Parameter], float]],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for ps, _ in groups for p in ps]
        self.lrs = [float(lr) for ps, lr in groups for _ in ps]
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
        torch._foreach_addcdiv_(params, m, denom, [-(self.lrs[k] / bias1) for k in live])

    def decay(self, gamma: float) -> None:
        self.lrs = [lr * gamma for lr in self.lrs]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "lrs": self.lrs, "exp_avg": self.exp_avg,
                "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.lrs = int(state["steps"]), [float(x) for x in state["lrs"]]
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            dst.copy_(src)
