"""The delay kinds (docs/model.md section 3), in a module light enough for the config checks."""

from snndelay.engine.types import DELAY_TYPES, DelayKind

# How group_size > 1 neurons share a delay: "consecutive" (neurons i g .. i g + g - 1 share
# delay i) or "strided" (neuron i takes delay i mod (N / g)); network.DelaySpec.
GROUP_LAYOUTS = ("consecutive", "strided")

__all__ = ["DELAY_TYPES", "DelayKind", "GROUP_LAYOUTS"]
