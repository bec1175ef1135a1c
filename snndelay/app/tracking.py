"""Experiment tracking (the `tracking` config group; schemas in snndelay.config.tracking): a
run's epochs, resolved config, summary and files logged to TensorBoard or MLflow besides its
run directory. The tracker is opened before the first epoch (a missing package is one line,
exit 2, before any training time), fed every EpochRow, and closed with the summary. With
tracking=none the loop calls no-op methods: it pays nothing.

Grouping: sweep, compare-delays and tune set `tracking.group` on their jobs. MLflow logs the
jobs as child runs of one parent run (named after the group) in an experiment of that name;
TensorBoard writes each job's hparams with its final metrics, so `tensorboard --logdir
SWEEP_DIR` tables them side by side."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from snndelay.app.records import EpochRow, RunSummary
from snndelay.config import Config, to_yaml
from snndelay.config.tracking import MlflowConfig, TrackingConfig
from snndelay.errors import BackendUnavailable

TRACKING_FILE = "tracking.json"  # the MLflow run of a run directory (a resume continues it)
ARTIFACTS = ("config.yaml", "overrides.yaml", "metrics.csv", "summary.json", "checkpoint.pt",
             "learning_curves.png", "delays.png", "yinyang_predictions.png")
GROUP_TAG = "snndelay.group"


class TrackingUnavailable(BackendUnavailable):
    """A tracker whose package is not installed (or whose store cannot be reached)."""


def flat_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as dotted keys (tracking's own keys left out: they do not change
    what is trained); lists become their YAML text."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            out[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)

    raw = yaml.safe_load(to_yaml(cfg))
    raw.pop("tracking", None)
    walk("", raw)
    return out


def summary_metrics(summary: RunSummary) -> dict[str, float]:
    """The summary's figures that are numbers (the final metrics a tracker logs)."""
    out = {k: float(v) for k, v in vars(summary).items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key, value in summary.efficiency.items():
        if isinstance(value, (int, float)):
            out[f"efficiency.{key}"] = float(value)
        elif isinstance(value, list):
            out.update({f"efficiency.{key}." + ("inputs" if k == 0 else f"layer{k - 1}"):
                        float(v) for k, v in enumerate(value)})
    return out


class Tracker:
    """tracking=none: every call does nothing."""

    def epoch(self, row: EpochRow) -> None:
        pass

    def finish(self, summary: RunSummary, run_dir: Path) -> None:
        pass

    def fail(self, status: str = "FAILED") -> None:
        """The run ended without a summary (FAILED; KILLED: stopped, it may be resumed)."""


class TensorBoardTracker(Tracker):
    """Event files in RUN/tensorboard: scalars per epoch (step = epoch), hparams at the end."""

    def __init__(self, cfg: Config, run_dir: Path, first_epoch: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrackingUnavailable("tracking=tensorboard needs the tensorboard package: "
                                      "pip install 'snndelay[tracking]'") from None
        # purge_step: a resumed run drops what a killed process logged after its checkpoint.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                    purge_step=first_epoch + 1 if first_epoch else None)
        self.params = flat_config(cfg)

    def epoch(self, row: EpochRow) -> None:
        for key, value in row.to_dict().items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row.epoch)
        self.writer.flush()

    def finish(self, summary: RunSummary, run_dir: Path) -> None:
        metrics = {f"hparam/{k}": v for k, v in summary_metrics(summary).items()}
        self.writer.add_hparams(self.params, metrics, run_name="hparams")
        self.writer.close()

    def fail(self, status: str = "FAILED") -> None:
        self.writer.close()


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise TrackingUnavailable("tracking=mlflow needs the mlflow package: "
                                  "pip install 'snndelay[tracking]'") from None
    import logging

    for name in ("mlflow", "alembic"):  # their INFO lines (creating tables) are not ours
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def default_store(root: Path = Path("outputs")) -> tuple[str, str]:
    """(tracking URI, artifact root) of the local store: outputs/mlflow.db and
    outputs/mlartifacts, absolute, so that jobs started elsewhere (SLURM) find the same one."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def _client(cfg: MlflowConfig) -> tuple[Any, str | None]:
    mlflow = _mlflow()
    uri, artifacts = (cfg.tracking_uri, None) if cfg.tracking_uri else default_store()
    return mlflow.tracking.MlflowClient(tracking_uri=uri), artifacts


def _experiment_id(client: Any, name: str, artifacts: str | None) -> str:
    """The experiment called `name`, created when missing (two jobs may race to create it)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(
            name, artifact_location=f"{artifacts}/{name}" if artifacts else None))
    except Exception:  # noqa: BLE001 - created meanwhile by another job
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def _parent_run(client: Any, exp_id: str, group: str) -> str:
    """The id of the group's parent run (made once, by the sweep before its jobs start)."""
    found = client.search_runs([exp_id], filter_string=f"tags.`{GROUP_TAG}` = '{group}'",
                               max_results=1)
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(exp_id, run_name=group, tags={GROUP_TAG: group})
    return str(run.info.run_id)


def _experiment_name(cfg: MlflowConfig, config_name: str) -> str:
    return cfg.experiment or cfg.group or config_name


class MlflowTracker(Tracker):
    """One MLflow run per run directory (its id kept in RUN/tracking.json, so that a resumed
    run continues it): config as parameters, metrics per epoch (step = epoch), the summary as
    final metrics, the run directory's files as artifacts."""

    def __init__(self, cfg: Config, run_dir: Path, first_epoch: int) -> None:
        tcfg = cfg.tracking
        assert isinstance(tcfg, MlflowConfig)
        self.client, artifacts = _client(tcfg)
        exp_id = _experiment_id(self.client, _experiment_name(tcfg, cfg.name), artifacts)
        record = run_dir / TRACKING_FILE
        saved = json.loads(record.read_text()) if first_epoch and record.is_file() else {}
        if saved.get("tracking_uri") == self.client.tracking_uri and saved.get("run_id"):
            self.run_id = str(saved["run_id"])
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags = {"snndelay.run_dir": str(run_dir.resolve())}
            if tcfg.group:
                tags.update({GROUP_TAG + ".member": tcfg.group,
                             "mlflow.parentRunId": _parent_run(self.client, exp_id, tcfg.group)})
            self.run_id = str(self.client.create_run(exp_id, run_name=run_dir.name,
                                                     tags=tags).info.run_id)
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in flat_config(cfg).items()]
            for i in range(0, len(params), 100):  # log_batch takes at most 100 parameters
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            from snndelay.app.rundir import atomic_write_text

            atomic_write_text(record, json.dumps({"tracking_uri": self.client.tracking_uri,
                                                  "run_id": self.run_id}) + "\n")

    def epoch(self, row: EpochRow) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), now, row.epoch) for k, v in row.to_dict().items()
            if k != "epoch"])

    def finish(self, summary: RunSummary, run_dir: Path) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(f"final.{k}", v, now, summary.epochs)
            for k, v in summary_metrics(summary).items()])
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, status: str = "FAILED") -> None:
        self.client.set_terminated(self.run_id, status)


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


def open_tracker(cfg: Config, run_dir: Path, first_epoch: int = 0) -> Tracker:
    """The run's tracker (first_epoch: the epoch a resumed run starts after)."""
    kind = TRACKERS.get(cfg.tracking.name)
    if kind is None:
        return Tracker()
    try:
        return kind(cfg, run_dir, first_epoch)  # type: ignore[call-arg]
    except TrackingUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a store that cannot be reached: one line
        from snndelay.config.compose import one_line

        raise TrackingUnavailable(f"tracking={cfg.tracking.name}: cannot open the tracking "
                                  f"store ({type(exc).__name__}: {one_line(exc)[:200]})") from None


def check_available(tracking: TrackingConfig) -> None:
    """TrackingUnavailable at once when the chosen tracker's package is missing."""
    if tracking.package:
        import importlib.util

        if importlib.util.find_spec(tracking.package) is None:
            raise TrackingUnavailable(f"tracking={tracking.name} needs the {tracking.package} "
                                      "package: pip install 'snndelay[tracking]'")


def close_group(tracking: TrackingConfig, config_name: str) -> None:
    """Mark the group's MLflow parent run finished (its jobs have ended)."""
    if isinstance(tracking, MlflowConfig) and tracking.group:
        client, artifacts = _client(tracking)
        exp_id = _experiment_id(client, _experiment_name(tracking, config_name), artifacts)
        client.set_terminated(_parent_run(client, exp_id, tracking.group), "FINISHED")


def open_group(tracking: TrackingConfig, group: str, config_name: str) -> list[str]:
    """What a sweep (or tune) does before its jobs start: the overrides that group them
    (tracking.group=NAME), and for MLflow the experiment and the parent run, made once."""
    if tracking.name == "none":
        return []
    check_available(tracking)
    if isinstance(tracking, MlflowConfig):
        tracking = replace(tracking, group=group)
        client, artifacts = _client(tracking)
        exp_id = _experiment_id(client, _experiment_name(tracking, config_name), artifacts)
        _parent_run(client, exp_id, group)
    return [f"tracking.group={group}"]
