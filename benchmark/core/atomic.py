"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A reader never sees a half-written file; a killed process leaves at most a stray temporary file.
An operating-system error while writing (no space left, permission denied, a read-only file
system) is raised again naming the target file, so that the message says where.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that is renamed onto ``path`` on success.

    The temporary name keeps the full suffix (``.nii.gz``), so writers that pick a format by
    extension (nibabel, ITK) behave as for the final name.
    """
    path = Path(path)
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(path.suffixes) or ".tmp"
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent
        )
        os.close(fd)
    tmp = Path(name)
    try:
        with _naming(path):
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for co-authors too
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an OSError that names no file (``No space left on device``) or another file (a
    temporary one) as the same error type naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from exc


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
