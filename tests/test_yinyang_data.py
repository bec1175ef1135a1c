"""The Yin-Yang generator reproduces the golden values of docs/model.md section 7."""

import numpy as np
import pytest
import torch

from snndelay.data.yinyang import yinyang, yinyang_spikes

GOLDEN = {  # size, seed, class counts, first sample, first label
    "train": (5000, 42, [1681, 1702, 1617], [0.68030754, 0.45049925, 0.31969246, 0.54950075], 2),
    "val": (1000, 41, [316, 336, 348], [0.68057273, 0.32097339, 0.31942727, 0.67902661], 0),
    "test": (1000, 40, [350, 316, 334], [0.23409665, 0.40172498, 0.76590335, 0.59827502], 2),
}


@pytest.mark.parametrize("split", GOLDEN)
def test_golden_values(split):
    size, seed, counts, first, label = GOLDEN[split]
    feats, labels = yinyang(size, seed)
    assert np.bincount(labels).tolist() == counts
    assert np.allclose(feats[0], first, atol=5e-9)
    assert labels[0] == label
    assert np.allclose(feats[:, 2], 1 - feats[:, 0]) and np.allclose(feats[:, 3], 1 - feats[:, 1])


def test_points_lie_in_the_big_circle():
    feats, _ = yinyang(500, 3)
    assert np.all(np.hypot(feats[:, 0] - 0.5, feats[:, 1] - 0.5) <= 0.5)


def test_encoding_maps_values_to_spike_times():
    t = yinyang_spikes(np.array([[0.0, 1.0, 0.5, 0.25]]))
    assert t.dtype == torch.float64
    assert torch.allclose(t, torch.tensor([[0.15, 2.0, 1.075, 0.6125]], dtype=torch.float64))
