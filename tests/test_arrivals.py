"""The one arrival preparation (engine/prepare.py) and its adjoint."""

import numpy as np
import pytest
import torch

from snndelay.engine import DelayKind, LayerParams, Neuron, arrivals
from snndelay.engine.prepare import fold_grads


def test_bias_is_appended_and_axonal_delays_shift_every_row_inf_stays_inf():
    t = np.array([[0.5, np.inf], [1.0, 2.0]])
    layer = LayerParams(np.ones((3, 2)), DelayKind.AXONAL, np.array([2.0, 3.0, 2.5]), 0.9,
                        Neuron(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(arrivals(t, layer).t, [[2.5, np.inf, 3.4], [3.0, 5.0, 3.4]])
    plain = LayerParams(np.ones((2, 2)), neuron=Neuron(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(arrivals(t, plain).t, t)
    biased = LayerParams(np.ones((3, 2)), bias_time=0.9, neuron=Neuron(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(arrivals(t, biased).t[:, 2], [0.9, 0.9])


def test_times_and_delays_are_scaled_to_tau_syn_and_spikes_flattened():
    t = np.array([[[0.4, 1.0], [np.inf, 2.0]]])  # [B=1, N=2, S=2]
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    d = np.array([[0.2, 0.4], [0.6, 0.8]])
    arr = arrivals(t, LayerParams(w, DelayKind.SYNAPTIC, d, None, Neuron(4.0, 2.0, 1.0)))
    np.testing.assert_array_equal(arr.t, [[0.2, 0.5, np.inf, 1.0]])
    np.testing.assert_array_equal(arr.w, [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [3.0, 4.0]])
    np.testing.assert_allclose(arr.d_syn, [[0.1, 0.2], [0.1, 0.2], [0.3, 0.4], [0.3, 0.4]])
    assert arr.spikes == 2 and arr.d_out is None


@pytest.mark.parametrize("kind", list(DelayKind))
@pytest.mark.parametrize("spikes", [1, 3])
@pytest.mark.parametrize("bias", [None, 0.7])
def test_fold_grads_is_the_adjoint_of_arrivals(kind, spikes, bias):
    """fold_grads against autograd through arrivals() on torch tensors (a linear map of the
    inputs, weights and delays, apart from the dendritic shift, which is checked likewise)."""
    gen = torch.Generator().manual_seed(1)
    n, m, b = 3, 2, 4
    rows = n + (bias is not None)
    shape = (b, n) if spikes == 1 else (b, n, spikes)
    t = torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_()
    w = torch.randn(rows, m, generator=gen, dtype=torch.float64).requires_grad_()
    d_shape = {DelayKind.NONE: None, DelayKind.AXONAL: (rows,), DelayKind.DENDRITIC: (m,),
               DelayKind.SYNAPTIC: (rows, m)}[kind]
    d = None if d_shape is None else torch.rand(d_shape, generator=gen,
                                                dtype=torch.float64).requires_grad_()
    layer = LayerParams(w, kind, d, bias, Neuron(2.0, 0.5, 1.0))
    arr = arrivals(t, layer)
    core = torch.rand(b, m, generator=gen, dtype=torch.float64)
    core[0, 0] = float("inf")  # a silent neuron: its dendritic delay gets no gradient
    g_core = torch.randn(b, m, generator=gen, dtype=torch.float64)
    # the spike-time backward gives arrivals that never happen (+inf) no gradient
    g_t = torch.where(torch.isfinite(arr.t), torch.randn_like(arr.t), 0.0)
    g_w = torch.randn_like(arr.w)
    g_d = None if arr.d_syn is None else torch.randn_like(arr.d_syn)
    # scalar whose gradient is the vector-Jacobian product fold_grads computes
    total = (arr.t.nan_to_num(posinf=0.0) * g_t).sum() + (arr.w * g_w).sum()
    if g_d is not None:
        total = total + (arr.d_syn * g_d).sum()
    if arr.d_out is not None:
        total = total + (torch.isfinite(core) * arr.d_out[None, :] * g_core).sum()
    grads = torch.autograd.grad(total, [x for x in (t, w, d) if x is not None])
    got = fold_grads(LayerParams(w.detach(), kind, None if d is None else d.detach(), bias,
                                 layer.neuron), arr, tuple(t.shape), core, g_core, g_t, g_w, g_d)
    fin = torch.isfinite(t)
    torch.testing.assert_close(torch.where(fin, got[0], 0.0), torch.where(fin, grads[0], 0.0))
    torch.testing.assert_close(got[1], grads[1])
    if d is not None:
        torch.testing.assert_close(got[2], grads[2])
    else:
        assert got[2] is None
