"""A sweep's jobs: Hydra sweep overrides (a,b,c and range(...)) expanded into one job per
combination, each named after its swept values and composed once, up front."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from snndelay.config import Config, compose
from snndelay.config.compose import one_line
from snndelay.errors import ConfigError

MAX_JOBS = 100_000  # a sweep's jobs (each is a run directory)


def expand(overrides: list[str]) -> list[tuple[list[str], list[str]]]:
    """Cartesian product of the sweep overrides (a,b,c and range(...)) parsed by Hydra's own
    override parser. Returns one (all overrides, swept overrides) pair per job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:  # one at a time, so that an error names its override
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as exc:
            raise ConfigError(f"cannot parse the override {line!r}: {one_line(exc)}") from None
    axes: list[list[tuple[str, bool]]] = []
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            axes.append([(o.input_line or "", False)])
            continue
        if not o.is_discrete_sweep():
            raise ConfigError(f"{key}: only discrete sweeps can be expanded (a,b,c or "
                              f"range(start,stop[,step])), got {o.input_line!r}")
        try:
            values = list(itertools.islice(o.sweep_string_iterator(), MAX_JOBS + 1))
        except HydraException:
            raise ConfigError(f"{key}: glob() sweeps are not supported; list the options "
                              "(a,b,c)") from None
        if not values:
            raise ConfigError(f"{key}: the sweep {o.input_line!r} has no values")
        axes.append([(f"{key}={v}", True) for v in values])
    n_jobs = math.prod(len(a) for a in axes)
    if n_jobs > MAX_JOBS:
        raise ConfigError(f"the sweep has more than {MAX_JOBS} jobs (each a run directory); "
                          "sweep fewer values at once")
    return [([s for s, _ in combo], [s for s, swept in combo if swept])
            for combo in itertools.product(*axes)]


def job_name(swept: list[str]) -> str:
    """A directory name from the swept values, e.g. experiment=yinyang_h30_wa,training.seed=3."""
    name = ",".join(swept) or "job"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)[:200]


@dataclass(frozen=True)
class Job:
    name: str
    overrides: tuple[str, ...]
    run_dir: str
    threads: Optional[int] = 1  # None: the CPUs of the job's own allocation (a SLURM task)
    swept: tuple[str, ...] = ()  # the overrides that vary across the sweep
    cfg: Optional[Config] = None  # composed already (see with_configs), else by the job
    in_worker: bool = False  # runs in a worker process: exit when the sweep process is gone


def make_jobs(overrides: list[str], sweep_dir: Path, threads: Optional[int] = 1) -> list[Job]:
    jobs: list[Job] = []
    seen: set[str] = set()
    for full, swept in expand(overrides):
        name = job_name(swept)
        if name in seen:  # two values that differ only in characters a path cannot hold
            name = f"{name}_{len(seen)}"
        seen.add(name)
        jobs.append(Job(name, tuple(full), str(sweep_dir / name), threads, tuple(swept)))
    return jobs


def with_configs(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """Compose every job's config once, up front: (jobs carrying their config, the errors of
    those that do not compose; those jobs run without one and fail with that error)."""
    out, errors = [], []
    for job in jobs:
        try:
            out.append(replace(job, cfg=compose(list(job.overrides))[1]))
        except ConfigError as exc:
            errors.append(str(exc))
            out.append(job)
    return out, errors
