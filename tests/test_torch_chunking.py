"""The vectorised torch implementation processes samples in chunks: the chunk size never
changes a spike time or a gradient, including chunks whose samples have no input spikes."""

import math

import pytest
import torch
from reference import assert_same_times, random_layer

from snndelay.engine import set_implementation, spike_time_grads
from snndelay.engine.kernels import kernel_for
from snndelay.engine.solver import solve_first_spikes


@pytest.mark.parametrize("ratio", (1.0, 2.0))
@pytest.mark.parametrize("kind", ("none", "synaptic"))
@pytest.mark.parametrize("stable", (False, True))
def test_chunk_size_does_not_change_results(ratio, kind, stable):
    set_implementation("torch")
    t_in, w, d = random_layer(21, 9, 7, 5, kind=kind, w_mean=0.9 if ratio == 1.0 else 0.6)
    t_in[3] = math.inf  # a sample without input spikes: its chunk is empty when chunks are 1 row
    t_in[5, :4] = math.inf
    theta = torch.ones(9, 5, dtype=torch.float64)
    k = kernel_for(ratio, 1.0)
    whole = solve_first_spikes(t_in, w, d, theta, k, stable=stable, chunk_elems=1 << 30)
    rows = solve_first_spikes(t_in, w, d, theta, k, stable=stable, chunk_elems=1)
    assert torch.isinf(whole[3]).all() and torch.isfinite(whole).sum() >= 20
    assert_same_times(rows, whole, 1e-13)
    g = torch.linspace(-1.0, 2.0, 45, dtype=torch.float64).view(9, 5)
    g_whole = spike_time_grads(g, whole, t_in, w, d, k, chunk_elems=1 << 30)
    g_rows = spike_time_grads(g, whole, t_in, w, d, k, chunk_elems=1)
    for a, b in zip(g_whole, g_rows):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-13, atol=1e-15)
    assert torch.all(g_whole[0][3] == 0)
