"""Engine self-check: exact gradients against central finite differences on a small layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snndelay.engine import DELAY_TYPES, DelayKind, first_spike_times
from snndelay.engine.types import KERNEL_RATIOS


@dataclass
class CheckRow:
    ratio: float
    delay: str
    spiking: float
    max_abs_err: float
    max_grad: float


def finite_difference_check(ratio: float, delay: str, *, seed: int = 0, h: float = 1e-6
                            ) -> CheckRow:
    """Compare d(sum of spike times)/d(params) from the engine with central differences."""
    gen = torch.Generator().manual_seed(seed)
    n_b, n_in, n_out = 4, 6, 5
    t_in = 0.15 + 1.85 * torch.rand(n_b, n_in, generator=gen, dtype=torch.float64)
    w = 0.8 + 0.6 * torch.randn(n_in, n_out, generator=gen, dtype=torch.float64)
    shape = DelayKind(delay).broadcast_shape(n_in, n_out)
    d = None if shape is None else 0.5 * torch.rand(shape, generator=gen, dtype=torch.float64)
    params = [t_in, w] + ([] if d is None else [d])

    def loss(*p: torch.Tensor) -> torch.Tensor:
        t = first_spike_times(p[0], p[1], p[2] if len(p) > 2 else None, tau_mem=ratio)
        return torch.where(torch.isfinite(t), t, 0.0).sum()

    leaves = [p.clone().requires_grad_() for p in params]
    loss(*leaves).backward()
    err, gmax = 0.0, 0.0
    for i, p in enumerate(params):
        flat = p.reshape(-1)
        for j in range(flat.numel()):
            plus, minus = [q.clone() for q in params], [q.clone() for q in params]
            plus[i].view(-1)[j] += h
            minus[i].view(-1)[j] -= h
            fd = (loss(*plus) - loss(*minus)).item() / (2 * h)
            grad = leaves[i].grad
            assert grad is not None
            g = grad.reshape(-1)[j].item()
            err, gmax = max(err, abs(fd - g)), max(gmax, abs(g))
    spiking = float(torch.isfinite(first_spike_times(t_in, w, d, tau_mem=ratio)).double().mean())
    return CheckRow(ratio, delay, spiking, err, gmax)


def run_selfcheck() -> list[CheckRow]:
    return [finite_difference_check(r, d) for r in KERNEL_RATIOS for d in DELAY_TYPES]
