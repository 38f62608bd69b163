"""The study an app serves: :class:`Study` (public side of a study folder) and its handle.

:func:`init_app` puts the loaded study into ``app.extensions`` and :func:`get_study` returns the
current app's study inside a request (the flaskr pattern of ``get_db``: the blueprints reach the
study through :data:`flask.current_app`, never through the app factory module, so nothing of the
package imports :mod:`benchmark.reader_study.app` but the CLI).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from pathlib import Path

from flask import Flask, current_app

from benchmark.core.errors import BenchError
from benchmark.reader_study.prepare import load_study, panel_tokens

#: A panel id and a panel URL tag: 32 lowercase hex digits.
TOKEN_RE = re.compile(r"[0-9a-f]{32}")
EXTENSION = "reader_study"


class Study:
    """The public side of one study folder: cases, options and the panel-file whitelist.

    Panel URLs are ``/data/TAG`` with ``TAG`` an HMAC of the reader id and the panel id under the
    study's secret, so two readers' URLs for the same image differ (letters cannot be matched up
    through URLs) and a reader's browser never serves another reader's panel.
    """

    def __init__(self, study_dir: Path, *, secret: str) -> None:
        self.dir = study_dir
        self.data = load_study(study_dir)
        self.cases = {c["id"]: c for c in self.data["cases"]}
        self.options = self.data["options"]
        self.data_dir = (study_dir / "data").resolve()
        self.files: dict[str, Path] = {}  # whitelist: panel id -> file, nothing else is served
        for case in self.data["cases"]:
            for token in panel_tokens(case):
                if not TOKEN_RE.fullmatch(token):
                    raise BenchError(f"{study_dir}/study.json: malformed panel id {token!r}")
                self.files[token] = self.data_dir / f"{token}.bin"
        self._secret = secret.encode("utf-8")
        self.tags = lru_cache(maxsize=256)(self._tags)

    def tag(self, reader_id: int, token: str) -> str:
        """The reader's URL tag of one panel."""
        msg = f"{reader_id}:{token}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def _tags(self, reader_id: int) -> dict[str, Path]:
        return {self.tag(reader_id, t): path for t, path in self.files.items()}


def init_app(app: Flask, study: Study) -> None:
    """Make ``study`` the study of ``app`` (what :func:`get_study` returns in its requests)."""
    app.extensions[EXTENSION] = study


def get_study() -> Study:
    """The :class:`Study` of the current app."""
    return current_app.extensions[EXTENSION]
