"""Where `snndelay tune`'s workers run (this process, local processes, a SLURM job array
through submitit) and what a study leaves: trials.csv, the best trials, the best overrides
as a file `snndelay train --overrides-file` reads, and Optuna's plots."""

from __future__ import annotations

import csv
import io
import multiprocessing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from snndelay.app.launchers import LauncherConfig, threads_per_job
from snndelay.app.tune import BEST_FILE, StudySpec, work
from snndelay.errors import LauncherError


def _local_worker(spec: StudySpec, worker: int) -> None:
    from snndelay.app.jobrunner import _exit_with_parent

    _exit_with_parent()  # a killed `snndelay tune` takes its workers with it
    work(spec, worker, lambda line: print(f"worker {worker}: {line}", flush=True))


def _slurm_worker(spec: StudySpec, worker: int) -> int:
    return work(spec, worker, lambda line: print(line, flush=True))


def run_workers(spec: StudySpec, jobs: int, launcher: LauncherConfig,
                on_trial: Callable[[str], None]) -> None:
    """Run `jobs` workers on one study until it holds spec.trials trials."""
    if launcher.name != "local":
        _run_submitit(spec, jobs, launcher)
        return
    if jobs == 1:
        work(spec, 0, on_trial)
        return
    ctx = multiprocessing.get_context("spawn")  # no forked numba / torch thread pools
    spec = replace(spec, threads=spec.threads or threads_per_job(jobs))
    procs = [ctx.Process(target=_local_worker, args=(spec, k), daemon=False)
             for k in range(jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    failed = [k for k, p in enumerate(procs) if p.exitcode]
    if failed:
        raise LauncherError(f"tune: worker {failed[0]} exited with code "
                            f"{procs[failed[0]].exitcode}; rerun the same command to resume "
                            "the study")


def _run_submitit(spec: StudySpec, jobs: int, launcher: LauncherConfig) -> None:
    from snndelay.app.slurm import _executor

    ex = _executor(launcher, Path(spec.tune_dir))
    submitted = ex.map_array(_slurm_worker, [spec] * jobs, list(range(jobs)))
    errors = []
    for sj in submitted:
        try:
            sj.result()
        except Exception as exc:  # noqa: BLE001 - one line per failed task
            errors.append(f"task {sj.job_id}: {str(exc).strip().splitlines()[-1][:200]}")
    if errors:
        raise LauncherError(f"tune: {len(errors)} of {jobs} workers failed ({errors[0]}); "
                            "rerun the same command to resume the study")


# -- what a study leaves ---------------------------------------------------------------------
@dataclass
class TrialRow:
    """One trial of trials.csv."""

    number: int
    state: str
    val_accuracy: Optional[float]  # the objective: validation accuracy after the last epoch
    epochs: int  # epochs it trained (fewer when pruned)
    params: str
    test_accuracy: Optional[float]  # reported beside, never used to choose
    run_dir: str
    error: str = ""


def trial_rows(study: Any) -> list[TrialRow]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if attrs.get("surplus"):
            continue
        state = "retried" if attrs.get("retried") else t.state.name.lower()
        rows.append(TrialRow(t.number, state, t.value, len(t.intermediate_values),
                             " ".join(f"{k}={v}" for k, v in t.params.items()),
                             attrs.get("test_accuracy"), attrs.get("run_dir", ""),
                             attrs.get("error", "")))
    return rows


def best_rows(rows: list[TrialRow], n: int = 5) -> list[TrialRow]:
    """The n completed trials with the highest objective (the earlier of ties first)."""
    done = [r for r in rows if r.state == "complete" and r.val_accuracy is not None]
    return sorted(done, key=lambda r: (-float(r.val_accuracy or 0.0), r.number))[:n]


def write_results(study: Any, tune_dir: Path) -> tuple[list[TrialRow], Optional[Path]]:
    """trials.csv, BEST_FILE (the best trial's overrides) and the plots; (rows, best file)."""
    from snndelay.app.rundir import atomic_write_text

    rows = trial_rows(study)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0]) if rows else ["number"]))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    atomic_write_text(tune_dir / "trials.csv", buf.getvalue())
    best = best_rows(rows, 1)
    path = None
    if best:
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == best[0].number)
        path = tune_dir / BEST_FILE
        atomic_write_text(path, f"# snndelay tune: trial {best[0].number}, validation accuracy "
                                f"{best[0].val_accuracy:.4f}\n"
                                + yaml.safe_dump(list(trial.user_attrs["overrides"])))
    _plots(study, tune_dir)
    return rows, path


def _plots(study: Any, tune_dir: Path) -> None:
    """Optuna's optimisation history and parameter importances (when they can be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    for name, draw in (("history.png", ovm.plot_optimization_history),
                       ("importances.png", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore")
                ax = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. fewer than two completed trials for importances
        fig: Any = ax.figure if hasattr(ax, "figure") else plt.gcf()
        fig.tight_layout()
        fig.savefig(tune_dir / name, dpi=120)
        plt.close(fig)

