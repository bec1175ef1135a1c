"""The delay kinds (docs/model.md section 3), in a module light enough for the config checks."""

DELAY_TYPES = ("none", "axonal", "dendritic", "synaptic")
