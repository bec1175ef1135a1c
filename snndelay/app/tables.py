"""Typed records of the sweep and comparison tables: a job's row of summary.csv (SweepRow)
and a cell of the delay comparison (CompareCell), with their CSV forms and the statistics they
are summarised by."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from snndelay.app.records import RunSummary

# Statuses of a job's row: trained ("done"), trained again after a config change ("rerun"),
# its finished run reused ("reused"), or "failed" (with the error); "" before it ran.
DONE, RERUN, REUSED, FAILED = "done", "rerun", "reused", "failed"
SEED_KEY = "training.seed"
RESULT_KEYS = ("test_accuracy", "val_accuracy", "test_accuracy_at_best_val", "n_params",
               "wall_time_s")


def _parse(value: Any, kind: type) -> Any:
    """A CSV cell as `kind`, '' or None as None."""
    if value in ("", None):
        return None
    return kind(float(value)) if kind is int else kind(value)


@dataclass
class SweepRow:
    """One job of a sweep (summary.csv): what it is (name, overrides, the experiment, delay
    type, hidden sizes and seed of its config, known before it runs: a job that dies still has
    its cell) and how it ended (status, results, times, error)."""

    job: str
    status: str = ""
    swept: str = ""
    overrides: str = ""
    experiment: str = ""
    delay: str = ""
    hidden: str = ""
    seed: int | None = None
    test_accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy_at_best_val: float | None = None
    n_params: int | None = None
    wall_time_s: float | None = None  # the epochs only (summary.json)
    job_time_s: float | None = None  # the job's whole process
    # Efficiency on the test split (summary.json's efficiency): spikes of the network's layers
    # (inputs not counted) and synaptic events per sample, parameter bytes.
    spikes_per_sample: float | None = None
    synaptic_events_per_sample: float | None = None
    footprint_bytes: int | None = None
    error: str = ""
    run_dir: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAILED or self.test_accuracy is None

    def with_summary(self, status: str, summary: RunSummary) -> SweepRow:
        eff = summary.efficiency
        spikes = eff.get("spikes_per_sample")
        return replace(self, status=status, **{k: getattr(summary, k) for k in RESULT_KEYS},
                       spikes_per_sample=sum(spikes[1:]) if spikes else None,
                       synaptic_events_per_sample=eff.get("synaptic_events_per_sample"),
                       footprint_bytes=eff.get("footprint_bytes"))

    def to_dict(self) -> dict[str, Any]:
        """The CSV row (None as '')."""
        return {f.name: "" if getattr(self, f.name) is None else getattr(self, f.name)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SweepRow:
        kinds = {"seed": int, "n_params": int, "test_accuracy": float, "val_accuracy": float,
                 "test_accuracy_at_best_val": float, "wall_time_s": float, "job_time_s": float,
                 "spikes_per_sample": float, "synaptic_events_per_sample": float,
                 "footprint_bytes": int}
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: (_parse(v, kinds[k]) if k in kinds else str(v))
                                  for k, v in raw.items() if k in known}
        return cls(**values)


SUMMARY_FIELDS = tuple(f.name for f in fields(SweepRow))


def summary_csv(rows: list[SweepRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_FIELDS))
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r.job):
        writer.writerow(row.to_dict())
    return buf.getvalue()


def read_summary(path: Path) -> list[SweepRow]:
    with open(path, newline="") as f:
        return [SweepRow.from_dict(r) for r in csv.DictReader(f)]


@dataclass(frozen=True)
class Stats:
    """n, median, interquartile range (inclusive quartiles), mean, std (sample) of values."""

    n: int
    median: float
    q1: float
    q3: float
    mean: float
    std: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        n = len(values)
        if n == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        q1, med, q3 = (statistics.quantiles(values, n=4, method="inclusive") if n > 1
                       else [values[0]] * 3)
        return cls(n, med, q1, q3, statistics.fmean(values),
                   statistics.stdev(values) if n > 1 else 0.0)


@dataclass
class CompareCell:
    """One (delay type, hidden sizes) cell of compare-delays: test error statistics (percent)
    of its runs and how many failed."""

    delay: str
    hidden: str
    n_params: int | None = None
    errors: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def stats(self) -> Stats:
        return Stats.of(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """The comparison.csv row."""
        s = self.stats
        return {"delay": self.delay, "hidden": self.hidden,
                "n_params": "" if self.n_params is None else self.n_params, "runs": s.n,
                "failed": self.failed, "median_error": s.median, "q1_error": s.q1,
                "q3_error": s.q3, "mean_error": s.mean, "std_error": s.std}


COMPARE_FIELDS = ("delay", "hidden", "n_params", "runs", "failed", "median_error", "q1_error",
                  "q3_error", "mean_error", "std_error")


def group_key(swept: str) -> str:
    """A job's swept overrides without the seed: jobs that differ only in seed form a group."""
    return " ".join(o for o in swept.split() if not o.startswith(f"{SEED_KEY}=")) or "(all)"


@dataclass(frozen=True)
class Group:
    """Jobs that differ only in their seed: test accuracy statistics and the failed count."""

    group: str
    stats: Stats
    failed: int
    spikes: Stats = field(default_factory=lambda: Stats.of([]))  # spikes per sample (summary.json's efficiency)


def groups(rows: list[SweepRow]) -> list[Group]:
    """One entry per group of rows (group_key), in the order the groups first appear."""
    acc: dict[str, list[float]] = {}
    spikes: dict[str, list[float]] = {}
    failed: dict[str, int] = {}
    for row in rows:
        key = group_key(row.swept)
        acc.setdefault(key, [])
        spikes.setdefault(key, [])
        failed[key] = failed.get(key, 0) + row.failed
        if not row.failed and row.test_accuracy is not None:
            acc[key].append(row.test_accuracy)
            if row.spikes_per_sample is not None:
                spikes[key].append(row.spikes_per_sample)
    return [Group(key, Stats.of(values), failed[key], Stats.of(spikes[key]))
            for key, values in acc.items()]
