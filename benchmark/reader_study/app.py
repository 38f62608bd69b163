"""The reader-study web app (Flask app factory): reader and admin blueprints on one study.

:func:`create_app` builds the app for one study folder from a configuration mapping (nothing is
read from the environment). It reads only the public ``study.json``, the opaque panel files under
``data/`` and the SQLite database; it never opens the private key, so method names cannot reach a
reader. The loaded study is the app's :class:`benchmark.reader_study.study.Study` (the blueprints
get it with :func:`benchmark.reader_study.study.get_study`), the database is hooked up with
:func:`benchmark.reader_study.db.init_app`, sessions are server-side
(:mod:`benchmark.reader_study.sessions`), the request and login limits come from
:mod:`benchmark.reader_study.limits`. Pages are server-rendered Jinja templates with local scripts
only; every POST is CSRF-checked, the Host header is checked against ``TRUSTED_HOSTS``, and
responses carry a strict Content-Security-Policy (no external origin: the app works offline).
Errors are pages, or JSON (``{"error": ...}``) for the page scripts' ``fetch`` calls.

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
    Send the cookies over HTTPS only (set by ``serve`` when the public URL is ``https://``).
LOGIN_FAILURES, LOGIN_WINDOW_S : int, float
    Failed logins per client address within the window before 429 (defaults in
    :mod:`benchmark.reader_study.limits`, as are ``MAX_CONTENT_LENGTH`` and ``MAX_FORM_PARTS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.globals import request_ctx
from werkzeug.exceptions import HTTPException

from benchmark.core.errors import BenchError
from benchmark.reader_study import admin, auth, db, limits, reader, sessions, study
from benchmark.reader_study.private import check_private

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
    **limits.CONFIG,
    "TRUSTED_HOSTS": None,
}
#: Status codes answered with the app's error page (or JSON).
ERROR_CODES = (400, 401, 403, 404, 405, 409, 413, 415, 429)


def error_response(exc: HTTPException):
    """The answer to an HTTP error: plain text when the Host check failed (no page can link
    anywhere), JSON for ``fetch`` calls (a 401 adds a fresh login CSRF token), else the error
    page; ``Retry-After`` (429) is kept and a 401 names its credential."""
    if request_ctx.url_adapter is None:
        text = f"{exc.code} {exc.name}: {exc.description}"
        response = Response(text, status=exc.code, mimetype="text/plain")
    elif auth.wants_json():
        body: dict[str, Any] = {"error": exc.description, "status": exc.code}
        if exc.code == 401:
            body["login_csrf"] = auth.csrf_token()
        response = jsonify(body)
        response.status_code = exc.code
    else:
        page = render_template("error.html", code=exc.code, name=exc.name, message=exc.description)
        response = Response(page, status=exc.code, mimetype="text/html")
    for name, value in exc.get_headers():
        if name == "Retry-After":
            response.headers[name] = value
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Invitation realm="reader study"'
    return response


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
        db.upgrade(conn)
        secret = db.setting(conn, "secret_key")
        app.config["ADMIN_TOKEN_HASH"] = db.setting(conn, "admin_token_hash")
        sessions.expire(conn, app.config)
    finally:
        conn.close()
    app.secret_key = secret  # signs the anonymous CSRF tokens; sessions are server-side
    study.init_app(app, study.Study(study_dir, secret=secret))
    db.init_app(app)
    limits.init_app(app)
    auth.init_app(app)
    app.session_interface = sessions.DatabaseSessionInterface()
    app.register_blueprint(reader.bp)
    app.register_blueprint(admin.bp)

    @app.before_request
    def protect() -> None:
        """Body limits, then session, then CSRF, before anything reads the form; a request that
        matched no route (404, 405, or a Host not trusted: 400) gets that answer untouched."""
        if request.routing_exception is not None:
            return
        limits.check_request()
        auth.abort_if_session_ended()
        auth.check_csrf()

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
        return response

    for code in ERROR_CODES:
        app.register_error_handler(code, error_response)
    return app
