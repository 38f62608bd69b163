"""Content hashes of input files and of JSON-able settings, the parts of a task's key.

A file's hash is the SHA-256 of its bytes; it is cached by (path, size, mtime), so an unchanged
file is not read again, and a file rewritten with the same bytes keeps its hash (touching a file
does not make results stale; changing a byte does).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from benchmark.core.atomic import write_text

log = logging.getLogger(__name__)


def digest(value: Any) -> str:
    """SHA-256 (hex, 16 characters) of the canonical JSON of ``value``."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FileHashes:
    """Content hashes of files, cached in ``cache`` (a JSON file) by path, size and mtime."""

    def __init__(self, cache: Path | None = None):
        self.cache = cache
        self._known: dict[str, list] = {}
        self._changed = False
        if cache is not None and cache.is_file():
            try:
                self._known = json.loads(cache.read_text())
            except (OSError, ValueError):
                log.debug("ignoring unreadable hash cache %s", cache)

    def of(self, path: str | Path) -> str:
        """The file's content hash (hex, 16 characters)."""
        path = Path(path).resolve()
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        known = self._known.get(str(path))
        if known and known[:2] == stamp:
            return known[2]
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        value = sha.hexdigest()[:16]
        self._known[str(path)] = [*stamp, value]
        self._changed = True
        return value

    def save(self) -> None:
        if self.cache is not None and self._changed:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.cache, json.dumps(self._known))
            self._changed = False
