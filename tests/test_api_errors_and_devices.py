"""Argument checking of the public entry points, and device/dtype behaviour."""

import pytest
import torch

from snndelay.engine import first_spike_times, spike_times_with_grad

pytestmark = pytest.mark.usefixtures("engine_impl")

T = torch.rand(2, 3, dtype=torch.float64)
W = torch.rand(3, 4, dtype=torch.float64)


@pytest.mark.parametrize("tau_mem, tau_syn", [(3.0, 1.0), (1.5, 1.0), (4.0, 1.0)])
def test_unsupported_tau_ratio_is_a_clear_value_error(tau_mem, tau_syn):
    with pytest.raises(ValueError, match="supported ratios: 1, 2"):
        first_spike_times(T, W, tau_mem=tau_mem, tau_syn=tau_syn)


@pytest.mark.parametrize("kwargs, match", [
    (dict(t_in=torch.rand(2, 5, dtype=torch.float64)), "weights must be"),
    (dict(t_in=torch.rand(2, dtype=torch.float64)), "t_in must be"),
    (dict(delays=torch.rand(2, 4, dtype=torch.float64)), "delays must broadcast"),
    (dict(delays=torch.rand(3, 4, 1, dtype=torch.float64)), "delays must broadcast"),
    (dict(threshold=torch.ones(3, dtype=torch.float64)), "threshold must be"),
    (dict(threshold=-1.0), "threshold must be positive"),
    (dict(t_in=torch.tensor([[0.0, float("nan"), 1.0]] * 2, dtype=torch.float64)), "NaN"),
    (dict(tau_mem=-2.0), "positive"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    args = dict(t_in=T, weights=W, delays=None)
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("threshold", "tau_mem") if k in args}
    with pytest.raises(ValueError, match=match):
        first_spike_times(args["t_in"], args["weights"], args["delays"], **extra)


def test_given_times_must_have_output_shape():
    with pytest.raises(ValueError, match="t_out must be"):
        spike_times_with_grad(torch.ones(2, 3, dtype=torch.float64), T, W)


def test_float32_inputs_are_computed_in_float64():
    t32, w32 = T.float(), (3 * W).float()
    out = first_spike_times(t32, w32)
    assert out.dtype == torch.float64
    assert torch.isfinite(out).any()
    assert torch.equal(out, first_spike_times(t32.double(), w32.double()))


def test_scalar_and_vector_delays_broadcast_like_dendritic():
    base = first_spike_times(T, 3 * W)
    shifted = first_spike_times(T, 3 * W, torch.tensor(0.5, dtype=torch.float64))
    fin = torch.isfinite(base)
    assert fin.any() and torch.allclose(shifted[fin], base[fin] + 0.5)
    vec = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    assert torch.allclose(first_spike_times(T, 3 * W, vec)[fin],
                          first_spike_times(T, 3 * W, vec.view(1, 4))[fin])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    t = 2 * torch.rand(16, 20, generator=g, dtype=torch.float64)
    w = 0.2 + 0.3 * torch.randn(20, 8, generator=g, dtype=torch.float64)
    for d in (None, torch.rand(20, 1, dtype=torch.float64), torch.rand(20, 8, dtype=torch.float64)):
        for ratio in (1.0, 2.0):
            cpu = [p.clone().requires_grad_() for p in (t, w) + (() if d is None else (d,))]
            gpu = [p.detach().cuda().requires_grad_() for p in cpu]
            oc = first_spike_times(*cpu[:2], cpu[2] if d is not None else None, tau_mem=ratio)
            og = first_spike_times(*gpu[:2], gpu[2] if d is not None else None, tau_mem=ratio)
            assert og.device.type == "cuda"
            assert torch.equal(torch.isfinite(oc), torch.isfinite(og.cpu()))
            fin = torch.isfinite(oc)
            assert torch.allclose(oc[fin], og.cpu()[fin], atol=1e-12)
            gc = torch.autograd.grad(torch.where(fin, oc, 0).sum(), cpu)
            gg = torch.autograd.grad(torch.where(fin.cuda(), og, 0).sum(), gpu)
            for a, b in zip(gc, gg):
                assert torch.allclose(a, b.cpu(), atol=1e-10)
