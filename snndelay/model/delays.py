"""Learnable delays of one connection: the parametrisation d(p) (sigmoid or clamped) and its
vector-Jacobian product (docs/model.md section 3); how shared delays map to neurons is
DelaySharing's and the spec DelaySpec's (model/sharing.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from array_api_compat import array_namespace
from torch import nn

from snndelay.model.sharing import DelayKind, DelaySpec


def _sigmoid(p: Any) -> Any:
    return 1.0 / (1.0 + array_namespace(p).exp(-p))


class Delays(nn.Module):
    """Learnable delays of one connection. The parameter `raw` holds one value per distinct
    delay (DelaySharing.raw_shape); value() gives the delays in the engine's per-kind shape,
    vjp() the gradient of raw from theirs."""

    def __init__(self, spec: DelaySpec, n_in: int, n_out: int, gen: torch.Generator):
        super().__init__()
        self.spec = spec
        self.sharing = spec.sharing(n_in, n_out)
        self.n_in, self.n_out = n_in, n_out
        p = spec.init_mean + spec.init_std * torch.randn(self.sharing.raw_shape, generator=gen,
                                                         dtype=torch.float64)
        if spec.positivity == "clamp":
            p = spec.shift + spec.scale * torch.sigmoid(p)
        self.raw = nn.Parameter(p)

    def _raw(self, tensors: bool = False) -> Any:
        return self.raw.detach() if tensors else self.raw.detach().numpy()

    def _transform(self, tensors: bool = False) -> Any:
        """The delays in raw's shape (one per shared group): the transform d(p); numpy, or
        with tensors a tensor on raw's device."""
        p = self._raw(tensors)
        if self.spec.positivity == "sigmoid":
            return self.spec.shift + self.spec.scale * _sigmoid(p)
        return p.clone() if tensors else p.copy()

    def distinct_values(self) -> np.ndarray:
        """One value per trainable delay (before a shared group's expansion), flattened."""
        return self._transform().reshape(-1)

    def value(self, tensors: bool = False) -> Any:
        """The effective delays in the engine's per-kind shape: axonal [N_in], dendritic
        [N_out] (a shared group's value repeated for its members), synaptic [N_in, N_out];
        numpy, or with tensors a tensor on raw's device."""
        return self.sharing.expand(self._transform(tensors))

    def circuit_values(self) -> np.ndarray:
        """One delay per delay circuit pair of a chip (axonal; DelaySharing.circuit_values)."""
        return self.sharing.circuit_values(self._transform())

    def vjp(self, g_d: Any) -> Any:
        """dL/dp from dL/dd (per-kind shape; numpy, or a tensor on raw's device, and the
        result likewise): summed over a shared group (DelaySharing.reduce), times the
        sigmoid's derivative scale * s (1 - s) (identity for clamping)."""
        tensors = isinstance(g_d, torch.Tensor)
        g = self.sharing.reduce(g_d) if self.sharing.shared else g_d.reshape(self.raw.shape)
        if self.spec.positivity == "sigmoid":
            s = _sigmoid(self._raw(tensors))
            g = g * (self.spec.scale * s * (1.0 - s))
        return g

    def forward(self) -> torch.Tensor:
        """The delays as a tensor broadcastable to [N_in, N_out] (for plots and inspection)."""
        d = torch.from_numpy(self.value())
        if self.spec.type is DelayKind.AXONAL:
            return d[:, None]
        return d[None, :] if self.spec.type is DelayKind.DENDRITIC else d

    @torch.no_grad()
    def project(self) -> None:
        """Keep clamped delays >= shift (after each optimiser step)."""
        if self.spec.positivity == "clamp":
            self.raw.clamp_(min=self.spec.shift)
