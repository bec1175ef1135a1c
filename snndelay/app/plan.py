"""The resume policy of `snndelay train`: a new run, a continued one (--resume), one killed
before its first checkpoint started over, or a finished run extended by more epochs
(--resume RUN training.epochs=N)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from snndelay.app.rundir import default_run_dir, load_run_config, load_run_overrides
from snndelay.config import Config
from snndelay.errors import ConfigError, RunDirError

EXTEND_KEY = "training.epochs"


@dataclass
class TrainPlan:
    """What `snndelay train` will do: the config, the run directory, its overrides, whether it
    continues a checkpoint, or starts over a run killed before its first one (note says so)."""

    cfg: Config
    run_dir: Path
    overrides: list[str]
    resume: bool = False
    start_over: bool = False
    note: str = ""


def plan_train(overrides: list[str], run_dir: Path | None, resume: Path | None) -> TrainPlan:
    """The resume policy: --resume continues a run from its saved config (no overrides, no
    other directory); a run killed before its first checkpoint is started over from it."""
    from snndelay.config import compose

    if resume is None:
        cfg = compose(overrides)[1]
        return TrainPlan(cfg, run_dir or default_run_dir(cfg), overrides)
    if run_dir is not None:
        raise ConfigError("--resume continues the run in its own directory; drop --run-dir")
    cfg = load_run_config(resume)
    if overrides:
        return _extended(cfg, resume, overrides)
    if (resume / "checkpoint.pt").exists():
        return TrainPlan(cfg, resume, overrides, resume=True)
    return TrainPlan(cfg, resume, load_run_overrides(resume), start_over=True,
                     note=f"{resume} has no checkpoint yet (stopped before the first epoch "
                          "ended): starting it over from its saved config")


def _extended(cfg: Config, run: Path, overrides: list[str]) -> TrainPlan:
    """--resume RUN training.epochs=N: continue a run (finished or not) up to N epochs. A
    step schedule continues as if N had been asked from the start; cosine and one-cycle
    schedules depend on the total, so their runs cannot be extended."""
    keys = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    if keys != {EXTEND_KEY} or len(overrides) != 1:
        raise ConfigError("--resume continues a run with its saved config; the one override it "
                          f"takes is {EXTEND_KEY}=N (to extend it); drop "
                          f"{', '.join(sorted(keys - {EXTEND_KEY})) or 'the repeated one'}")
    value = overrides[0].split("=", 1)[1]
    try:
        epochs = int(value)
    except ValueError:
        raise ConfigError(f"{EXTEND_KEY}: must be an integer, got {value!r}") from None
    if not (run / "checkpoint.pt").exists():
        raise RunDirError(f"{run}: no checkpoint.pt to extend (run it with --resume alone)")
    from snndelay.app.runs import load_checkpoint

    done = load_checkpoint(run).epoch
    if epochs < max(done, cfg.training.epochs):
        raise ConfigError(f"{EXTEND_KEY}: must be at least {max(done, cfg.training.epochs)} "
                          f"(the run's training.epochs; it has trained {done}), got {epochs}")
    if cfg.training.schedule != "step" and epochs != cfg.training.epochs:
        raise ConfigError(f"{EXTEND_KEY}: a run with training.schedule="
                          f"{cfg.training.schedule} cannot be extended (its learning rates "
                          "follow the total epoch count); start a new run")
    from snndelay.config import validate

    extended = validate(replace(cfg, training=replace(cfg.training, epochs=epochs)))
    return TrainPlan(extended, run, [*load_run_overrides(run), overrides[0]], resume=True,
                     note="" if epochs == cfg.training.epochs else
                     f"extending {run} from {cfg.training.epochs} to {epochs} epochs")


def read_overrides_file(path: Path) -> list[str]:
    """A YAML list of overrides (tune's best_overrides.yaml, a run's overrides.yaml)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--overrides-file {path}: not a readable YAML file "
                          f"({type(exc).__name__})") from None
    if not isinstance(raw, list) or not all(isinstance(o, str) and "=" in o for o in raw):
        raise ConfigError(f"--overrides-file {path}: must be a YAML list of overrides "
                          "(- KEY=VALUE lines)")
    return list(raw)
