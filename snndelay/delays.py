"""The delay kinds (docs/model.md section 3), in a module light enough for the config checks."""

from snndelay.engine.types import DELAY_TYPES, DelayKind

__all__ = ["DELAY_TYPES", "DelayKind"]
