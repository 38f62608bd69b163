"""File permissions of a study folder: only the organiser's account may read it.

The key unblinds the study and ``study.db`` holds the readers' sessions, so a study folder is
``0700`` (folders) / ``0600`` (files) from the moment it is written, and the app refuses to serve
a study whose key or database other accounts of the machine can read (readers who reach the
server through ``ssh -L`` have such accounts).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import BenchError

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make it ``0700``."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def write_private(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically with mode ``0600`` (str as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        os.chmod(tmp, FILE_MODE)
        tmp.write_bytes(data)


def exposed(study_dir: Path) -> list[str]:
    """The secret paths of ``study_dir`` that other accounts can read, as ``PATH (mode)``:
    the study folder, ``key/``, ``key/key.json`` and ``study.db`` with its WAL files."""
    candidates = [study_dir, study_dir / "key", study_dir / "key" / "key.json"]
    candidates += [study_dir / name for name in ("study.db", "study.db-wal", "study.db-shm")]
    out = []
    for path in candidates:
        if path.exists() and path.stat().st_mode & 0o077:
            out.append(f"{path} ({stat.filemode(path.stat().st_mode)})")
    return out


def check_private(study_dir: str | os.PathLike) -> None:
    """BenchError naming the exposed paths and the fix command unless :func:`exposed` is empty."""
    study_dir = Path(study_dir).resolve()
    bad = exposed(study_dir)
    if bad:
        raise BenchError(
            f"{study_dir}: the study key or database is readable by other users: "
            f"{', '.join(bad)}; refusing to serve. Fix with: chmod -R go= {study_dir}"
        )
