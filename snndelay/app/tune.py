"""`snndelay tune`: hyperparameter search with Optuna (TPE sampling, median pruning on each
epoch's validation accuracy). Every trial is an ordinary run directory (TUNE/trials/NNNN);
the study lives in a storage (SQLite in the tune directory by default, a journal file on
SLURM, or any Optuna storage URL), so that a killed study resumes and several workers (local
processes or a SLURM job array) share one study. The objective is the validation accuracy
after the last epoch; the test split is never looked at to choose.

A search dimension is an override in Optuna's terms:
  training.lr=float(1e-4,1e-1,log)   network.hidden=int(16,256)   delay=choice(axonal,synaptic)
every other override is fixed for all trials.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from snndelay.errors import ConfigError, UserError

_DIM = re.compile(r"^([A-Za-z_][\w.]*)=(float|int|choice)\((.*)\)$")
BEST_FILE = "best_overrides.yaml"  # `snndelay train --overrides-file` reads it


@dataclass(frozen=True)
class Dimension:
    """One searched override: key=float(lo,hi[,log]) | int(lo,hi[,log]) | choice(a,b,...)."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()

    def suggest(self, trial: Any) -> str:
        """The trial's override for this dimension (Optuna's suggest_*)."""
        if self.kind == "float":
            return f"{self.key}={trial.suggest_float(self.key, self.low, self.high, log=self.log)!r}"
        if self.kind == "int":
            value = trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
            return f"{self.key}={value}"
        return f"{self.key}={trial.suggest_categorical(self.key, list(self.choices))}"

    def corners(self) -> list[str]:
        """Overrides at the ends of the range (every choice): what is checked before a trial."""
        if self.kind == "choice":
            return [f"{self.key}={c}" for c in self.choices]
        fmt = (lambda v: str(int(v))) if self.kind == "int" else repr
        return [f"{self.key}={fmt(self.low)}", f"{self.key}={fmt(self.high)}"]

    def text(self) -> str:
        if self.kind == "choice":
            return f"{self.key}=choice({','.join(self.choices)})"
        return f"{self.key}={self.kind}({self.low:g},{self.high:g}{',log' if self.log else ''})"


def _dimension(key: str, kind: str, body: str) -> Dimension:
    args = [a.strip() for a in body.split(",") if a.strip()]
    form = f"{key}={kind}(...)"
    if kind == "choice":
        if len(args) < 2:
            raise ConfigError(f"{form}: give at least two choices, e.g. {key}=choice(a,b)")
        return Dimension(key, kind, choices=tuple(args))
    log = args[-1:] == ["log"]
    nums = args[:-1] if log else args
    try:
        low, high = (float(v) for v in nums) if len(nums) == 2 else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or not low < high or (kind == "int" and (
            low != int(low) or high != int(high))):
        raise ConfigError(f"{form}: must be {kind}(LOW,HIGH) or {kind}(LOW,HIGH,log) with "
                          f"LOW < HIGH{' integers' if kind == 'int' else ''}, got "
                          f"{kind}({body})")
    if log and low <= 0:
        raise ConfigError(f"{form}: a log range needs LOW > 0, got {low:g}")
    return Dimension(key, kind, low, high, log)


def parse_space(overrides: list[str]) -> tuple[list[str], list[Dimension]]:
    """(the fixed overrides, the searched dimensions) of tune's arguments."""
    fixed, dims = [], []
    for override in overrides:
        m = _DIM.match(override.strip())
        if m is None:
            fixed.append(override)
        else:
            dims.append(_dimension(*m.groups()))
    keys = [d.key for d in dims]
    if not dims:
        raise ConfigError("tune: no search dimension; give e.g. training.lr=float(1e-4,1e-1,log)"
                          ", network.hidden=int(16,256) or delay=choice(axonal,synaptic)")
    dup = {k for k in keys if keys.count(k) > 1} | {k for k in keys
                                                    if any(o.startswith(f"{k}=") for o in fixed)}
    if dup:
        raise ConfigError(f"tune: {', '.join(sorted(dup))} is given more than once")
    return fixed, dims


def check_space(fixed: list[str], dims: list[Dimension]) -> Any:
    """Compose the config at every corner of every dimension (the others at their lower
    end) and check its data: a bad key, value or file is one line before any trial runs.
    Returns the config of the lower corner."""
    from snndelay.app.trainer import check_data
    from snndelay.config import compose

    base = [d.corners()[0] for d in dims]
    cfg = compose(fixed + base)[1]
    for k, d in enumerate(dims):
        for corner in d.corners()[1:]:
            compose(fixed + base[:k] + [corner] + base[k + 1:])
    check_data(cfg.dataset)
    return cfg


# -- the study ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudySpec:
    """Where a study lives and what it searches (what every worker needs)."""

    tune_dir: str
    storage: str  # an Optuna storage URL, or journal:PATH (a journal file)
    name: str
    fixed: tuple[str, ...]
    dims: tuple[Dimension, ...]
    trials: int
    seed: int
    prune: bool = True
    threads: Optional[int] = None  # per worker (None: the CPUs it may use)
    stale_after_s: float = 3600.0  # a RUNNING trial not heard of for this long is dead
    warmup_epochs: int = 1  # the pruner judges a trial only after this many epochs


def default_storage(tune_dir: Path, slurm: bool) -> str:
    """SQLite in the tune directory; on SLURM a journal file (SQLite locks badly on network
    filesystems)."""
    tune_dir = tune_dir.resolve()
    return f"journal:{tune_dir / 'journal.log'}" if slurm else f"sqlite:///{tune_dir / 'study.db'}"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("snndelay tune needs optuna: pip install 'snndelay[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(url: str) -> Any:
    optuna = _optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    return url


def open_study(spec: StudySpec, worker: int = 0) -> Any:
    """The study (made on first use), with a TPE sampler seeded per worker (two workers must
    not propose the same first trials) and the median pruner. A study made with another
    search space is refused."""
    optuna = _optuna()
    sampler = optuna.samplers.TPESampler(seed=spec.seed + 1000 * worker)
    # Median pruning after 5 finished trials, each judged from its warm-up epochs on (the
    # first epochs of a run say little about where it ends).
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5,
                                          n_warmup_steps=spec.warmup_epochs)
              if spec.prune else optuna.pruners.NopPruner())
    try:
        study = optuna.create_study(storage=_storage(spec.storage), study_name=spec.name,
                                    direction="maximize", sampler=sampler, pruner=pruner,
                                    load_if_exists=True)
    except Exception as exc:  # noqa: BLE001 - a storage URL it cannot open: one line
        raise ConfigError(f"--storage {spec.storage}: cannot open the study ({type(exc).__name__}"
                          f": {str(exc).splitlines()[0][:160]})") from None
    space = [d.text() for d in spec.dims]
    saved = study.user_attrs.get("space")
    if saved is None:
        study.set_user_attr("space", space)
        study.set_user_attr("fixed", list(spec.fixed))
    elif saved != space or study.user_attrs.get("fixed") != list(spec.fixed):
        raise ConfigError(f"study {spec.name!r} in {spec.storage} searches {' '.join(saved)} "
                          f"with {' '.join(study.user_attrs.get('fixed', [])) or 'no fixed overrides'}; "
                          "give the same arguments to resume it, or another --study-name")
    return study


def _counts(t: Any) -> bool:
    """Whether a trial is one of the study's N: done, running or waiting, but not one that
    died with its worker (retried) nor a surplus one a racing worker made."""
    attrs = t.user_attrs
    return t.state.name != "FAIL" or not (attrs.get("retried") or attrs.get("surplus"))


def _alive(t: Any, stale_after_s: float) -> bool:
    attrs = t.user_attrs
    if attrs.get("host") == socket.gethostname() and isinstance(attrs.get("pid"), int):
        try:
            os.kill(attrs["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return time.time() - float(attrs.get("beat", time.time())) < stale_after_s


def recover(study: Any, spec: StudySpec) -> list[int]:
    """Trials left RUNNING by a worker that died (its process is gone on this host, or it has
    not reported for stale_after_s): failed, marked retried, and their parameters queued again
    so that the study still ends with N trials. Finished trials are never repeated."""
    from optuna.trial import TrialState

    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not _alive(t, spec.stale_after_s)]
    for t in dead:
        study._storage.set_trial_user_attr(t._trial_id, "retried", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number},
                            skip_if_exists=False)
    return [t.number for t in dead]


def _rank(study: Any, number: int) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and _counts(t))


def run_trial(study: Any, spec: StudySpec, trial: Any,
              on_epoch: Callable[[Any], None] = lambda row: None) -> None:
    """Train one trial's run directory and tell the study how it ended."""
    from optuna.trial import TrialState

    from snndelay.app.runs import RunStopped, train_run
    from snndelay.config import compose
    from snndelay.config.compose import one_line

    for key, value in (("host", socket.gethostname()), ("pid", os.getpid()),
                       ("beat", time.time())):
        trial.set_user_attr(key, value)
    overrides = [*spec.fixed, *(d.suggest(trial) for d in spec.dims)]
    run_dir = Path(spec.tune_dir) / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("overrides", overrides)
    pruned = False

    def report(row: Any) -> None:
        nonlocal pruned
        trial.report(row.val_acc, row.epoch)
        trial.set_user_attr("beat", time.time())
        pruned = spec.prune and trial.should_prune()
        on_epoch(row)

    try:
        cfg = compose(overrides)[1]
        if run_dir.exists():  # left by a worker that died before the study knew the trial
            from snndelay.app.rundir import clear_run_dir

            clear_run_dir(run_dir)
        result = train_run(cfg, run_dir, overrides, on_epoch=report, threads=spec.threads,
                           should_stop=lambda: pruned)
    except RunStopped:
        study.tell(trial, state=TrialState.PRUNED)
        return
    except Exception as exc:  # noqa: BLE001 - a failing trial must not stop the study
        trial.set_user_attr("error", one_line(exc)[:500] if isinstance(exc, UserError)
                            else f"{type(exc).__name__}: {one_line(exc)[:400]}")
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("test_accuracy", result.summary.test_accuracy)  # reported, not chosen
    study.tell(trial, result.summary.val_accuracy)


def work(spec: StudySpec, worker: int = 0, on_trial: Callable[[str], None] = lambda s: None
         ) -> int:
    """One worker: run trials until the study holds spec.trials of them; the count of trials
    it ran. Several workers (processes, SLURM tasks) may share the study."""
    study = open_study(spec, worker)
    recover(study, spec)
    ran = 0
    while True:
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state.name == "WAITING" for t in trials)
        if sum(_counts(t) for t in trials) >= spec.trials and not waiting:
            return ran
        trial = study.ask()
        if _rank(study, trial.number) >= spec.trials:  # another worker took the last one
            from optuna.trial import TrialState

            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return ran
        run_trial(study, spec, trial)
        ran += 1
        done = study._storage.get_trial(trial._trial_id)
        on_trial(f"trial {done.number}: {done.state.name.lower()}"
                 + (f", val {100 * done.value:.2f} %" if done.value is not None else "")
                 + (f" ({done.user_attrs['error']})" if "error" in done.user_attrs else ""))
