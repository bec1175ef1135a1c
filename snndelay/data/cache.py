"""The on-disk cache of encoded splits and file checks: reading and encoding a recording file
(SHD: tens of seconds for its 8,156 clips) happens once per file content and encoding; later
runs load the arrays (about a second).

An entry is keyed by the content of the files it was made from (BLAKE2b of their bytes, so a
file replaced at the same path is read afresh and a copied file is found again) and by the
settings that shape the result. A file's digest is remembered by its path, size, mtime and
inode (as make and ccache trust them), so an unchanged file is not hashed again. Entries live
in SNNDELAY_CACHE_DIR (default $XDG_CACHE_HOME/snndelay, else ~/.cache/snndelay);
SNNDELAY_CACHE_DIR=off turns the cache off. An entry that cannot be read is ignored and
rewritten; a cache that cannot be written only costs the time (the run goes on).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1  # raise when the encoders change what they produce for the same settings
_DIGESTS: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path | None:
    """Where entries live; None when SNNDELAY_CACHE_DIR is off (or 0, or empty)."""
    raw = os.environ.get("SNNDELAY_CACHE_DIR")
    if raw is not None:
        return None if raw.strip().lower() in ("", "0", "off", "none") else Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snndelay"


def file_digest(path: Path) -> str:
    """BLAKE2b of a file's bytes. Remembered by path, size, mtime and inode, in this process
    and in the cache directory (hashing SHD's 500 MB takes about a second; a file rewritten in
    place changes its mtime, so it is hashed again)."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _DIGESTS:
        return _DIGESTS[memo]
    stamp = f"{memo[0]}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    name = "digest-" + hashlib.blake2b(stamp.encode(), digest_size=16).hexdigest()
    known = load(name)
    if known is not None and "digest" in known:
        digest = str(known["digest"])
    else:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "blake2b").hexdigest()
        save(name, {"digest": np.asarray(digest)})
    _DIGESTS[memo] = digest
    return digest


def key(kind: str, files: list[Path], settings: Any) -> str:
    """An entry's name: its kind, the files' contents and the settings (repr'd)."""
    raw = json.dumps([FORMAT, kind, [file_digest(p) for p in files], repr(settings)])
    return f"{kind}-{hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()}"


def load(name: str) -> dict[str, np.ndarray] | None:
    """The arrays of entry `name`, or None (no cache, no entry, or an unreadable one)."""
    root = cache_dir()
    path = None if root is None else root / f"{name}.npz"
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001 - a damaged or partial entry is rebuilt, never trusted
        return None


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write entry `name` atomically (a reader never sees half of it); a failure to write is
    ignored (the cache only saves time)."""
    root = cache_dir()
    if root is None:
        return
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # (numpy's stub: allow_pickle)
        os.replace(tmp, root / f"{name}.npz")
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
