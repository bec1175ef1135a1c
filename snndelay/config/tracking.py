"""The `tracking` group's schemas: where a run's epochs, config, summary and files are logged
besides its run directory (the trackers themselves: snndelay.app.tracking). `none` (the
default) logs nothing and needs nothing installed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from snndelay.errors import need


@dataclass
class TrackingConfig:
    """The schema every tracker shares."""

    name: str = "none"
    # Set by sweep, compare-delays and tune for their jobs: the name that groups them (an
    # MLflow parent run; TensorBoard's hparams view of the sweep directory). Not a user key.
    group: Optional[str] = None
    package: ClassVar[str] = ""  # the package a tracker needs (its one line when missing)

    def check(self) -> None:
        need(self.group is None or bool(str(self.group).strip()), "tracking.group",
             "must be a non-empty name or null", self.group)


@dataclass
class NoTrackingConfig(TrackingConfig):
    name: str = "none"


@dataclass
class TensorBoardConfig(TrackingConfig):
    """TensorBoard event files in the run directory (RUN/tensorboard)."""

    name: str = "tensorboard"
    package: ClassVar[str] = "tensorboard"


@dataclass
class MlflowConfig(TrackingConfig):
    """An MLflow run per training run. tracking_uri: null = a local SQLite store
    outputs/mlflow.db (artifacts in outputs/mlartifacts), or any MLflow tracking URI (a server:
    http://host:5000). experiment: null = the group's name, else the config's name."""

    name: str = "mlflow"
    package: ClassVar[str] = "mlflow"
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None

    def check(self) -> None:
        super().check()
        need(self.tracking_uri is None or bool(str(self.tracking_uri).strip()),
             "tracking.tracking_uri", "must be a URI (e.g. sqlite:///outputs/mlflow.db, "
             "http://host:5000) or null", self.tracking_uri)
        need(self.experiment is None or bool(str(self.experiment).strip()),
             "tracking.experiment", "must be a non-empty name or null", self.experiment)


TRACKING_SCHEMAS: dict[str, type[TrackingConfig]] = {
    "none": NoTrackingConfig, "tensorboard": TensorBoardConfig, "mlflow": MlflowConfig}
