"""Configuration: Hydra composes configs/ (compose.py), the schemas type every value
(schema.py), validate() checks them (checks.py) and resolve() turns a checked config into the
run specification that everything below the application is built from (resolve.py)."""

from snndelay.config.checks import validate
from snndelay.config.compose import (
    compose,
    config_dir,
    from_dictconfig,
    to_yaml,
    with_backend,
    without_foreign_keys,
)
from snndelay.config.resolve import resolve
from snndelay.config.schema import (
    Config,
    DelayConfig,
    NetworkConfig,
    NeuronConfig,
    TrainingConfig,
    option_schemas,
)

__all__ = ["Config", "DelayConfig", "NetworkConfig", "NeuronConfig", "TrainingConfig",
           "compose", "config_dir", "from_dictconfig", "option_schemas", "resolve", "to_yaml",
           "validate", "with_backend", "without_foreign_keys"]
