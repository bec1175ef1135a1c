"""Spike dropout in hidden layers (training only; docs/model.md section 12): every spike a
hidden layer emits reaches the next layer (or the readout) with probability 1 - p, as in
inverted dropout: the consuming layer's weights from that layer are scaled by 1 / (1 - p)
during training, so that evaluation, which sees every spike, gets the same expected drive.

The mask acts between layers, not inside a neuron: a dropped spike still reset its own neuron
(that neuron's train and its backward are unchanged), it only never arrives. So the gradient
stays exact for the masked network: a dropped spike's arrival contributes nothing and receives
no gradient, and the scaled weights' gradient is the unscaled one times the scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from snndelay.engine import LayerParams


@dataclass
class SpikeDropout:
    """One batch's masks (True = dropped), one per hidden layer (the outputs of layer k for
    k < the number of layers - 1), each in its layer's output shape, and the weight scale."""

    masks: list[Any]
    scale: float

    @classmethod
    def draw(cls, p: float, rng: np.random.Generator, batch: int, sizes: list[int],
             max_spikes: list[int], arrays: Any = np.asarray) -> SpikeDropout:
        """Masks with P(dropped) = p for a batch through layers of `sizes` (inputs first),
        each layer k emitting up to max_spikes[k] spikes per neuron; `arrays` places them
        (numpy, or a placement's device)."""
        masks = []
        for k in range(len(sizes) - 2):  # every layer whose spikes another layer reads
            shape = (batch, sizes[k + 1]) + ((max_spikes[k],) if max_spikes[k] > 1 else ())
            masks.append(arrays(rng.random(shape) < p))
        return cls(masks, 1.0 / (1.0 - p))

    def spikes(self, k: int, t: Any) -> Any:
        """Layer k's spike times as the next layer receives them (dropped: +inf)."""
        return array_namespace(t).where(self.masks[k], float("inf"), t)

    def params(self, params: list[LayerParams]) -> list[LayerParams]:
        """The layers as trained: the weights of every row fed by a hidden layer (not a bias
        row) times the scale."""
        return params[:1] + [replace(layer, weights=self._scale_fed_rows(k, layer.weights))
                             for k, layer in enumerate(params[1:], start=1)]

    def input_grad(self, k: int, g: Any) -> Any:
        """dL/d(layer k's spikes) from dL/d(what the next layer received): 0 where dropped."""
        return array_namespace(g).where(self.masks[k], 0.0, g)

    def weight_grad(self, k: int, g_w: Any) -> Any:
        """dL/d(layer k's own weights) from dL/d(its scaled weights) (k >= 1)."""
        return self._scale_fed_rows(k, g_w)

    def _scale_fed_rows(self, k: int, w: Any) -> Any:
        """A copy of layer k's [N_rows, N_out] array (weights or their gradient) with the rows
        fed by hidden layer k - 1 (not a bias row) times the scale, whatever the array type."""
        n_fed = self.masks[k - 1].shape[1]
        out = w * 1.0
        out[:n_fed] = out[:n_fed] * self.scale
        return out
