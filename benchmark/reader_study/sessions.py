"""Server-side sessions of the reader-study app (a Flask ``SessionInterface`` on ``study.db``) and
the login view of the reader and admin pages.

The cookie holds only a random 256-bit session id; the database stores its SHA-256 with the
session data (reader id or admin flag, CSRF token, flashed messages). Only logged-in sessions are
stored: an anonymous visitor (the login page) leaves nothing in the database (its CSRF state is a
cookie, :mod:`benchmark.reader_study.auth`), and a failed login is counted in memory for the
per-address limit (:mod:`benchmark.reader_study.limits`) and logged to the server's log, not to the
database. A session therefore ends on the server: at logout (the row is deleted), after
``SESSION_IDLE_SECONDS`` without a request, after ``SESSION_MAX_SECONDS`` in all, and when the
organiser revokes, rotates or removes the reader. A captured cookie is worthless afterwards, also
across server restarts. Logging in issues a new id (no session fixation).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import TooManyRequests

from benchmark.reader_study import db, limits
from benchmark.reader_study.auth import csrf_token, hash_token, identified, wants_json

log = logging.getLogger(__name__)

#: Seconds between two ``last_seen`` updates of one session (saves a write per request).
TOUCH_EVERY_S = 30.0
#: Longest token a login form may send (tokens have 32 characters; longer ones fail unhashed).
MAX_TOKEN_CHARS = 100


def expire(conn, config) -> None:
    """Delete the sessions that ``config``'s idle or absolute lifetime has ended (at app start and
    at each successful login, so ended sessions cannot pile up)."""
    db.sessions_expire(
        conn, idle_s=config["SESSION_IDLE_SECONDS"], max_age_s=config["SESSION_MAX_SECONDS"]
    )


def token_login(
    template: str,
    check: Callable[[sqlite3.Connection, str], Any],
    *,
    key: str,
    event: str,
    error: str,
    then: str,
):
    """The login view of the reader and of the admin pages.

    GET shows the form ``template``. POST is refused with 429 (``Retry-After``) while the client
    address has too many recent failures (:class:`benchmark.reader_study.limits.LoginLimiter`).
    Otherwise ``check(conn, token)`` (``token`` stripped, never empty) gives the value the session
    holds under ``key`` (the reader id, or True for the admin), or None: the form again with
    ``error`` (403), the failure counted for the address and logged to the server's log (not the
    database). On success old sessions are expired, the session starts afresh (new id, new CSRF
    token), the login is logged as ``event``, and the browser goes to the endpoint ``then``
    (a ``fetch`` asking for JSON gets ``{"csrf_token", "reader", "next"}`` instead).
    """
    if request.method == "GET":
        return render_template(template)
    limiter = limits.login_limiter(current_app)
    address = request.remote_addr or "unknown"
    wait = limiter.retry_after(address)
    if wait:
        raise TooManyRequests(
            description=f"Too many failed logins from your address; try again in {wait} s.",
            retry_after=wait,
        )
    token = request.form.get("token", "").strip()
    conn = db.get_db()
    value = check(conn, token) if token and len(token) <= MAX_TOKEN_CHARS else None
    if value is None:
        limiter.fail(address)
        log.warning("%s failed from %s", event, address)
        if wants_json():
            return {"error": error}, 403
        return render_template(template, error=error), 403
    expire(conn, current_app.config)
    session.regenerate()
    session[key] = value
    token = csrf_token()
    reader_id = session.get("reader_id")
    db.log_event(conn, reader_id, event, None, {})
    if wants_json():
        row = db.reader(conn, int(reader_id)) if reader_id is not None else None
        name = row["name"] if row is not None else None
        return {"csrf_token": token, "reader": name, "next": url_for(then)}
    return redirect(url_for(then))


class ServerSession(CallbackDict, SessionMixin):
    """Session data plus its id; ``regenerate()`` asks for a fresh id at the next save."""

    def __init__(self, initial=None, sid: str | None = None, created: float | None = None):
        def on_update(self):
            self.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.created = created if created is not None else time.time()
        self.modified = False
        self.renew = False

    def regenerate(self) -> None:
        """Drop the data and take a new id (call at login and logout)."""
        self.clear()
        self.renew = True


class DatabaseSessionInterface(SessionInterface):
    """Sessions stored in ``sessions`` of ``app.config["DATABASE"]``."""

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or len(sid) > 100:
            return ServerSession()
        conn = db.get_db()
        id_hash = hash_token(sid)
        now = time.time()
        row = db.session_get(conn, id_hash)
        if row is None:
            return ServerSession()
        idle = now - row["last_seen"]
        if idle > app.config["SESSION_IDLE_SECONDS"]:
            g.session_end = "idle"
        elif now - row["created"] > app.config["SESSION_MAX_SECONDS"]:
            g.session_end = "expired"
        if g.get("session_end"):
            db.session_delete(conn, id_hash)
            return ServerSession()
        if idle > TOUCH_EVERY_S:
            db.session_touch(conn, id_hash)
        return ServerSession(json.loads(row["data"]), sid=sid, created=row["created"])

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        conn = db.get_db()
        stored = identified(session)
        if session.sid and (session.renew or not stored):  # login, logout, or emptied
            db.session_delete(conn, hash_token(session.sid))
            session.sid = None
            if not stored:
                response.delete_cookie(name, domain=domain, path=path)
        if not stored or (session.sid and not session.modified):
            return  # anonymous sessions are never stored
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
            session.created = time.time()
        reader_id = session.get("reader_id")
        db.session_put(
            conn, hash_token(session.sid), reader_id, dict(session), created=session.created
        )
        response.set_cookie(
            name,
            session.sid,
            max_age=int(app.config["SESSION_MAX_SECONDS"]),
            httponly=self.get_cookie_httponly(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            domain=domain,
            path=path,
        )
