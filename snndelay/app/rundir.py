"""Run directories without the heavy machinery: paths, locks, atomic text files and the saved
config. A run directory holds config.yaml (resolved), overrides.yaml, metrics.csv,
summary.json, checkpoint.pt and the plots. Every file is written to a temporary name and
renamed, so a killed run never leaves a half-written file. (Imported by the CLI before it
knows whether it will train, so it loads neither torch nor plotting.)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import yaml

from snndelay.config import Config, from_dictconfig, without_foreign_keys
from snndelay.errors import ConfigError, RunDirError


def _tmp_name(path: Path) -> Path:
    """A temporary name beside path, unique per process and call (two writers never share)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through write(file object) under a unique temporary name beside path, then
    rename it into place: readers and a killed run never see half a file, and two writers
    never share a temporary file."""
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


@contextmanager
def directory_lock(path: Path, what: str = "run directory") -> Iterator[None]:
    """Hold an exclusive lock on path/.lock while the block runs; a second snndelay command
    on the same directory is refused with one line. The OS releases the lock when the holder
    exits or is killed, so a stale lock file never blocks anyone."""
    make_dir(path, what)
    fd = _open_lock_file(path / ".lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{path}: another snndelay command is using this {what}; wait "
                              "for it to finish or choose another directory") from None
        yield
    finally:
        os.close(fd)


def _open_lock_file(path: Path) -> int:
    """A lock file's descriptor; a lock path that is not a regular file is one line."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RunDirError(f"{path}: the lock file is not a regular file; remove it")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot open the lock file ({exc.strerror})") from None


@contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """Hold a shared lock on the file `path` while the block runs (many holders at once);
    `exclusive_free(path)` tells whether nobody holds it. The jobs of a sweep hold one on
    the sweep directory, wherever they were started from."""
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def exclusive_free(path: Path) -> bool:
    """Whether no process holds a lock on the file `path` (False while one does)."""
    if not path.exists():
        return True
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def check_writable_dir(path: Path, what: str = "run directory") -> None:
    """A directory we may create or use: neither it nor any parent is an existing file."""
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise RunDirError(f"{what} {path}: {p} is a file, not a directory")


def make_dir(path: Path, what: str = "run directory") -> None:
    """Create the directory path (and its parents) or say in one line why it cannot be."""
    check_writable_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{what} {path}: cannot be created ({exc.strerror or exc})") from None


def is_run_dir(path: Path) -> bool:
    """Whether path is a run directory (a config.yaml with a checkpoint or a summary)."""
    return (path / "config.yaml").is_file() and (
        (path / "checkpoint.pt").exists() or (path / "summary.json").exists())


def check_output_file(path: Path, force: bool, what: str = "--out",
                      own_run: Path | None = None) -> None:
    """The rule for a file a command writes where the user names it: never over a directory,
    device, pipe or link; never a file of a run directory (nor anything directly inside a run
    directory other than own_run, or in its deploy/ folder); over any other existing file only
    with --force. The parent directory must be one we can create."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RunDirError(f"{what} {path}: exists and is not a regular file; snndelay never "
                          "replaces it")
    own = own_run.resolve() if own_run is not None else None
    parent = path.parent
    for run, inside in ((parent, path.name), (parent.parent, f"{parent.name}/{path.name}")):
        if is_run_dir(run) and (run.resolve() != own or path.name in RUN_FILES
                                or parent.name == "deploy"):
            raise RunDirError(f"{what} {path}: {inside} belongs to the run directory {run}; "
                              "choose a path outside it")
    if path.exists() and not force:
        raise RunDirError(f"{what} {path}: exists; pass --force to replace it")
    check_writable_dir(parent, what)


def check_fresh_run_dir(path: Path) -> None:
    """A new run may start in path only if it holds nothing (a directory with files of a run,
    or of anyone else, is never written over: --resume continues a run)."""
    if not path.is_dir():
        return
    entries = sorted(p.name for p in path.iterdir() if p.name != ".lock")
    if entries:
        hint = f"use --resume {path} or another --run-dir" if (path / "config.yaml").is_file() \
            else "choose an empty or new --run-dir"
        raise RunDirError(f"{path} already holds {', '.join(entries[:3])}"
                          f"{' ...' if len(entries) > 3 else ''}; {hint}")


# Every name a run directory of `snndelay train` holds (besides temporary files, see
# _tmp_name): what a sweep may remove when it retrains a job. Anything else in a job's
# directory was put there by someone else, and the sweep refuses to touch it.
RUN_FILES = frozenset({"config.yaml", "overrides.yaml", "metrics.csv", "summary.json",
                       "checkpoint.pt", "learning_curves.png", "delays.png",
                       "yinyang_predictions.png", "error.txt", ".lock", "tracking.json"})
RUN_DIRS = frozenset({"tensorboard"})  # tracking=tensorboard's event files
_TMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def foreign_entries(run_dir: Path) -> list[str]:
    """Names in run_dir that `snndelay train` does not write (sorted; [] for a pure run)."""
    return sorted(p.name for p in run_dir.iterdir()
                  if not (p.name in RUN_FILES and (p.is_file() and not p.is_symlink()))
                  and not (p.name in RUN_DIRS and p.is_dir() and not p.is_symlink())
                  and not (_TMP.match(p.name) and p.is_file()))


def check_no_foreign(run_dir: Path, hint: str = "move it away") -> None:
    """RunDirError naming what run_dir holds that `snndelay train` does not write."""
    foreign = foreign_entries(run_dir)
    if foreign:
        raise RunDirError(f"{run_dir}: holds {', '.join(foreign[:3])}"
                          f"{' ...' if len(foreign) > 3 else ''}, which snndelay did not "
                          f"write; {hint} (nothing was removed)")


def clear_run_dir(run_dir: Path) -> None:
    """Remove what `snndelay train` wrote in run_dir (the caller holds its lock, so .lock
    stays); refuses, removing nothing, when run_dir holds anything else."""
    check_no_foreign(run_dir)
    for p in run_dir.iterdir():
        if p.name in RUN_DIRS:
            shutil.rmtree(p)
        elif p.name != ".lock":
            p.unlink()


def default_run_dir(cfg: Config, root: Path = Path("outputs")) -> Path:
    now = datetime.now()
    return root / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}_{cfg.name}"


MAX_CONFIG_BYTES = 1_000_000  # a resolved config.yaml is a few kB


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases: the configs snndelay writes hold none, and expanding a few
    nested aliases ("billion laughs") would keep a reader busy for minutes."""

    def compose_node(self, parent: object, index: object) -> object:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError(f"YAML alias *{self.peek_event().anchor}: snndelay's files "
                                 "hold none")
        return super().compose_node(parent, index)


def read_yaml(text: str) -> object:
    """Plain YAML data (safe types, no aliases); yaml.YAMLError otherwise."""
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def load_run_config(run_dir: Path) -> Config:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml)")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise RunDirError(f"{path}: {path.stat().st_size} bytes, more than a config holds "
                              f"({MAX_CONFIG_BYTES})")
        raw = read_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path}: cannot be read as YAML ({type(exc).__name__}"
                          f"{': alias' if 'alias' in str(exc) else ''})") from None
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: holds no config mapping")
    try:
        return from_dictconfig(without_foreign_keys(raw))
    except ConfigError as exc:
        raise RunDirError(f"{path}: {exc}") from None


def load_run_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (overrides.yaml; [] if unreadable)."""
    try:
        raw = read_yaml((run_dir / "overrides.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    return [str(o) for o in raw] if isinstance(raw, list) else []
