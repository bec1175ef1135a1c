"""Losses against hand-computed values, decoding, parameter counts (docs/model.md sections 3, 5)."""

import math

import pytest
import torch

from snndelay.app.trainer import build_network
from snndelay.config import compose, resolve
from snndelay.model.losses import predict
from snndelay.model.torch_losses import shift_mse, ttfs_cross_entropy

INF = math.inf


def test_shift_mse_by_hand():
    t = torch.tensor([[1.0, 1.5, 1.1], [2.0, 1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    # sample 0: ((1.5-1)-0.2)^2 + ((1.1-1)-0.2)^2 = 0.09 + 0.01 -> 0.05
    # sample 1: ((2-1)-0.2)^2 + ((3-1)-0.2)^2 = 0.64 + 3.24 -> 1.94
    per = shift_mse(t, y, dt=0.2)
    assert torch.allclose(per, torch.tensor([0.05, 1.94], dtype=torch.float64))
    per.sum().backward()
    assert torch.allclose(t.grad[0], torch.tensor([-0.2, 0.3, -0.1], dtype=torch.float64))


def test_shift_mse_silent_output_is_constant_without_gradient():
    t = torch.tensor([[1.0, INF, 1.1]], dtype=torch.float64, requires_grad=True)
    per = shift_mse(t, torch.tensor([0]))
    assert per.item() == 0.0
    per.sum().backward()
    assert torch.all(t.grad == 0) and not torch.isnan(t.grad).any()


def test_ttfs_cross_entropy_by_hand():
    t = torch.tensor([[1.0, 1.2, INF]], dtype=torch.float64, requires_grad=True)
    per = ttfs_cross_entropy(t, torch.tensor([0]), xi=0.2, alpha=0.005, beta=1.0)
    logits = torch.tensor([-5.0, -6.0], dtype=torch.float64)
    expected = -torch.log_softmax(logits, 0)[0] + 0.005 * math.exp(1.0)
    assert per.item() == pytest.approx(expected.item(), rel=1e-12)
    per.sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad[0, 2] == 0
    # a silent label neuron: constant, no gradient
    t2 = torch.tensor([[INF, 1.0, 1.2]], dtype=torch.float64, requires_grad=True)
    per2 = ttfs_cross_entropy(t2, torch.tensor([0]))
    per2.sum().backward()
    assert per2.item() == 0.0 and torch.all(t2.grad == 0)


def test_prediction_is_first_spike_and_silence_is_wrong():
    t = torch.tensor([[2.0, 1.0, 3.0], [INF, INF, INF], [1.0, INF, 0.5]], dtype=torch.float64)
    assert predict(t).tolist() == [1, -1, 2]


@pytest.mark.parametrize("preset, count", [
    ("yinyang_h30_w", 210), ("yinyang_h30_wa", 244), ("yinyang_h30_wd", 243),
    ("yinyang_h30_ws", 420), ("yinyang_h5_ws", 70), ("fastdeep_yinyang", 5 * 120 + 121 * 3)])
def test_parameter_counts_match_model_md(preset, count):
    _, cfg = compose([f"experiment={preset}"])
    assert build_network(resolve(cfg).network, cfg.training.seed).n_params() == count


@pytest.mark.parametrize("positivity", ["sigmoid", "clamp"])
def test_delays_stay_positive_and_groups_share(positivity):
    _, cfg = compose(["delay=axonal", f"delay.positivity={positivity}", "delay.group_size=2",
                      "delay.init_std=3.0"])
    net = build_network(resolve(cfg).network, cfg.training.seed)
    d0 = net.layers[0].delays()
    assert d0.shape == (4, 1) and net.layers[0].delays.raw.shape == (2, 1)
    assert torch.equal(d0[0], d0[1]) and torch.equal(d0[2], d0[3])
    with torch.no_grad():
        net.layers[0].delays.raw.fill_(-5.0)
    net.project()
    assert torch.all(net.layers[0].delays() >= 0)


def test_lean_adam_with_decay_matches_torch_adam_and_steplr_bit_for_bit():
    from snndelay.model.optim import Adam

    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = ours[0].detach().clone()
    opt = Adam([([ours[0]], 0.01), ([ours[1]], 0.003)])
    ref_opt = torch.optim.Adam([{"params": [ref[0]], "lr": 0.01}, {"params": [ref[1]], "lr": 0.003}])
    sched = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=3, gamma=0.95)
    for it in range(30):
        grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in ours]
        for p, q, gr in zip(ours, ref, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt.step()
        ref_opt.step()
        sched.step()
        if (it + 1) % 3 == 0:  # StepLR's boundary, as the trainer applies it
            opt.decay(0.95)
    assert opt.lrs == [group["lr"] for group in ref_opt.param_groups]
    assert all(torch.equal(p, q) for p, q in zip(ours, ref))
    assert (ours[0] - start).abs().min() > 0  # every entry moved
