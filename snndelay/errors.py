"""The one family of user errors.

Everything a user can get wrong (a config value, a command-line value, a data file, a run
directory, a backend that is not installed, a network the chip cannot realise) raises a
subclass of UserError whose message is one line naming what is wrong and what is allowed.
The CLI turns every UserError, raised anywhere below it, into that line and exit code 2 in one
place (`snndelay.cli`); anything else is a bug and keeps its traceback.

Each subclass also derives from the builtin its callers may already catch (ValueError,
FileNotFoundError, RuntimeError), so library users keep working with plain Python errors.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: one line, exit code 2."""


class ConfigError(UserError, ValueError):
    """A configuration or command-line value that is not allowed."""


class DataError(UserError, ValueError):
    """A data file that exists but cannot be read as the dataset it should be."""


class DatasetMissing(UserError, FileNotFoundError):
    """Files of a dataset are not where the configuration says (the line says which)."""


class RunDirError(UserError, ValueError):
    """A run directory (config.yaml, checkpoint.pt) that cannot be used."""


class BackendUnavailable(UserError, RuntimeError):
    """The backend's software or hardware is not reachable here (the line says what to do)."""


class TrainingDiverged(UserError, ArithmeticError):
    """Training made a parameter NaN or infinite (a learning rate or initialisation too large
    for the problem); the run keeps its last finite checkpoint."""


class LauncherError(UserError, RuntimeError):
    """A launcher that cannot take the jobs: no scheduler here, its controller is down, or it
    refused them (the line says which setting)."""


class NetworkSilent(TrainingDiverged):
    """No output neuron spiked for any validation sample, epoch after epoch: the run would
    report 0 % for a reason the line names (weights, threshold, learning rate)."""


class MappingError(UserError, ValueError):
    """A network or value that the BrainScaleS-2 chip cannot realise (the line says why)."""


__all__ = ["BackendUnavailable", "ConfigError", "DataError", "DatasetMissing", "LauncherError",
           "MappingError", "NetworkSilent", "RunDirError", "TrainingDiverged", "UserError"]


def need(ok: bool, key: str, what: str, value: object) -> None:
    """ConfigError "KEY: WHAT, got VALUE" unless ok."""
    if not ok:
        raise ConfigError(f"{key}: {what}, got {value!r}")


def need_int(key: str, value: object, lo: int, hi: int) -> None:
    """ConfigError unless value is an integer (not a bool) in [lo, hi]."""
    need(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi, key,
         f"must be an integer in [{lo}, {hi}]", value)
