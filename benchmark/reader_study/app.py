"""The reader-study web app (Flask app factory): reader and admin blueprints on one study.

:func:`create_app` builds the app for one study folder from a configuration mapping (nothing is
read from the environment). It reads only the public ``study.json``, the opaque panel files under
``data/`` and the SQLite database; it never opens the private key, so method names cannot reach a
reader. The loaded study lives in ``app.extensions["reader_study"]`` (:class:`Study`), the database
is hooked up with :func:`benchmark.reader_study.db.init_app`, sessions are server-side
(:mod:`benchmark.reader_study.sessions`). Pages are server-rendered Jinja templates with local
scripts only; every POST is CSRF-checked, the Host header is checked against ``TRUSTED_HOSTS``,
and responses carry a strict Content-Security-Policy (no external origin: the app works offline).

Configuration keys (besides Flask's own)
-----------------------------------------
STUDY_DIR : path, required
    The study folder.
TRUSTED_HOSTS : list of str or None
    Host names the server answers to (Flask's setting; ``bench reader-study serve`` sets the
    served address and the public URL's host). Other Host headers get 400.
SESSION_IDLE_SECONDS, SESSION_MAX_SECONDS : float
    Inactivity and absolute lifetime of a session (defaults 2 h and 12 h).
SESSION_COOKIE_SECURE : bool
    Send the cookie over HTTPS only (set by ``serve`` when the public URL is ``https://``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from flask.globals import request_ctx

from benchmark.core.errors import BenchError
from benchmark.reader_study import auth, db, sessions
from benchmark.reader_study.prepare import load_study, panel_tokens
from benchmark.reader_study.private import check_private

TOKEN_RE = re.compile(r"[0-9a-f]{32}")
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_NAME": "reader_study_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "SESSION_IDLE_SECONDS": 2 * 3600.0,
    "SESSION_MAX_SECONDS": 12 * 3600.0,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "TRUSTED_HOSTS": None,
}


class Study:
    """The public side of one study folder: cases, options and the panel-file whitelist.

    Panel URLs are ``/data/TAG`` with ``TAG`` an HMAC of the reader id and the panel id under the
    study's secret, so two readers' URLs for the same image differ (letters cannot be matched up
    through URLs) and a reader's browser cache never serves another reader's panel.
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


def get_study() -> Study:
    """The :class:`Study` of the current app."""
    return current_app.extensions["reader_study"]


def create_app(config: Mapping[str, Any]) -> Flask:
    """Build the Flask app serving one study.

    Parameters
    ----------
    config : mapping
        ``STUDY_DIR`` (required) and any Flask or app setting of the module docstring
        (``TESTING``, ``TRUSTED_HOSTS``...), applied over :data:`DEFAULTS`.

    Raises
    ------
    BenchError
        No ``STUDY_DIR``, a missing or malformed study, or a key/database other users can read.
    """
    if "STUDY_DIR" not in config:
        raise BenchError("create_app: config needs STUDY_DIR (the study folder)")
    study_dir = Path(config["STUDY_DIR"]).resolve()
    check_private(study_dir)
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(config)
    app.config.update(STUDY_DIR=str(study_dir), DATABASE=str(study_dir / db.DB_NAME))
    conn = db.connect(app.config["DATABASE"])
    try:
        secret = db.setting(conn, "secret_key")
        app.config["ADMIN_TOKEN_HASH"] = db.setting(conn, "admin_token_hash")
        sessions.expire(conn, app.config)
    finally:
        conn.close()
    app.secret_key = secret  # not used for sessions (server-side); Flask wants one for flash
    app.extensions["reader_study"] = Study(study_dir, secret=secret)
    db.init_app(app)
    app.session_interface = sessions.DatabaseSessionInterface()
    app.jinja_env.globals["csrf_token"] = auth.csrf_token

    from benchmark.reader_study import admin, reader

    app.register_blueprint(reader.bp)
    app.register_blueprint(admin.bp)

    @app.before_request
    def protect() -> None:
        auth.check_csrf()

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.endpoint not in ("static", "reader.data"):
            response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
        return response

    def error(exc):
        if request_ctx.url_adapter is None:  # the Host check failed: no page can link anywhere
            text = f"{exc.code} {exc.name}: {exc.description}"
            return Response(text, status=exc.code, mimetype="text/plain")
        return render_template(
            "error.html", code=exc.code, name=exc.name, message=exc.description
        ), exc.code

    for code in (400, 403, 404, 405, 409, 413):
        app.register_error_handler(code, error)
    return app
