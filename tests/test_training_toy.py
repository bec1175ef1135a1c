"""A two-layer network built from first_spike_times learns a toy problem."""

import pytest
import torch

from snndelay.engine import first_spike_times

pytestmark = pytest.mark.usefixtures("engine_impl")


def test_two_layer_network_with_delays_learns():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=g, dtype=torch.float64)
    label = (x[:, 0] > x[:, 1]).long()  # which of two inputs is larger
    t_in = torch.cat([0.15 + 1.85 * x, 0.15 + 1.85 * (1 - x)], dim=1)  # 4 input spikes
    w1 = (1.0 + 0.8 * torch.randn(4, 10, generator=g, dtype=torch.float64)).requires_grad_()
    w2 = (1.0 + 0.8 * torch.randn(10, 2, generator=g, dtype=torch.float64)).requires_grad_()
    d1 = (0.5 * torch.rand(4, 10, generator=g, dtype=torch.float64)).requires_grad_()
    d2 = (0.5 * torch.rand(10, 1, generator=g, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.Adam([w1, w2, d1, d2], lr=0.03)

    def loss_and_acc():
        hidden = first_spike_times(t_in, w1, d1)
        out = first_spike_times(hidden, w2, d2)
        # TTFS cross-entropy (docs/model.md section 5); a silent output counts as very late.
        t = torch.where(torch.isfinite(out), out, torch.full_like(out, 10.0))
        loss = torch.nn.functional.cross_entropy(-t / 0.2, label)
        acc = (t.argmin(dim=1) == label).double().mean()
        return loss, acc

    first_loss, first_acc = loss_and_acc()
    # Without weight bumping (the trainer's job) long runs can silence outputs; 40 steps suffice.
    for _ in range(40):
        loss, _ = loss_and_acc()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            d1.clamp_(min=0)
            d2.clamp_(min=0)
    last_loss, last_acc = loss_and_acc()
    assert last_loss.item() < 0.5 * first_loss.item()
    assert last_acc.item() > max(0.9, first_acc.item())
