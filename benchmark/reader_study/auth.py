"""Tokens and request protection of the reader-study app: invitation/admin tokens (stored as
SHA-256 hashes), the CSRF tokens, and the login-required decorators.

Tokens are 192-bit random strings from :mod:`secrets` (deliberately not seeded: they are
credentials), so a plain SHA-256 is enough to store them; comparisons are constant-time.
Invitations are one-time: :func:`benchmark.reader_study.db.redeem_invitation` uses them up when
they are exchanged for a server-side session (:mod:`benchmark.reader_study.sessions`).

CSRF: a logged-in session (reader or admin) keeps its token server-side. Before login nothing is
stored on the server: the browser gets a random nonce in the cookie :data:`CSRF_COOKIE` and the
login form carries ``HMAC(secret, nonce)`` (a signed double-submit token), so anonymous visitors
cannot fill the database with sessions.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: Cookie holding the anonymous CSRF nonce (before login).
CSRF_COOKIE = "reader_study_csrf"
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh URL-safe random token (32 characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def identified(data: Mapping | None = None) -> bool:
    """True when the session data (default: the current session) belong to a logged-in reader or
    admin (only such sessions are stored)."""
    data = session if data is None else data
    return data.get("reader_id") is not None or bool(data.get("admin"))


def wants_json() -> bool:
    """True for the page scripts' ``fetch`` calls (``Accept: application/json``): they get JSON
    answers instead of pages and redirects."""
    return request.accept_mimetypes.best == "application/json"


def _anonymous_token(nonce: str) -> str:
    key = current_app.secret_key.encode("utf-8")
    return hmac.new(key, b"anonymous-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def _cookie_nonce() -> str | None:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    return nonce if _NONCE_RE.fullmatch(nonce) else None


def csrf_token() -> str:
    """The CSRF token of the current visitor (available in templates): the session's own once
    logged in, else the anonymous token of the cookie's nonce (a new nonce is set with the
    response when there is none)."""
    if identified():
        token = session.get(CSRF_FIELD)
        if not token:
            token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
        return token
    nonce = g.get("csrf_nonce") or _cookie_nonce()
    if nonce is None:
        nonce = g.csrf_nonce = secrets.token_urlsafe(32)
    return _anonymous_token(nonce)


def check_csrf() -> None:
    """Abort with 400 unless a state-changing request carries the visitor's CSRF token (form
    field ``csrf_token`` or header ``X-CSRF-Token``)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if identified():
        expected = session.get(CSRF_FIELD)
    else:
        nonce = _cookie_nonce()
        expected = _anonymous_token(nonce) if nonce else None
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not sent or not same(expected, sent):
        abort(400, description="missing or invalid CSRF token; reload the page and try again")


def _set_nonce_cookie(response: Response) -> Response:
    nonce = g.get("csrf_nonce")
    if nonce is not None:
        app = current_app
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            secure=bool(app.config["SESSION_COOKIE_SECURE"]),
            samesite="Lax",
            path="/",
        )
    return response


def init_app(app: Flask) -> None:
    """Register :func:`csrf_token` with the templates and the cookie of a new anonymous nonce."""
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.after_request(_set_nonce_cookie)


def reader_required(view: Callable) -> Callable:
    """Redirect to the login page unless a reader is logged in (``g.reader`` is set)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("reader") is None:
            return redirect(url_for("reader.login"))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view: Callable) -> Callable:
    """Redirect to the admin login unless the session is an admin session."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not session.get("admin"):
            return redirect(url_for("admin.login"))
        return view(*args, **kwargs)

    return wrapped


def login_endpoint() -> bool:
    """True for the endpoints an anonymous visitor may POST to (the two logins, logout)."""
    return request.endpoint in ("reader.login", "admin.login", "reader.logout")


def abort_if_session_ended() -> None:
    """Abort with 401 when a POST other than login/logout comes without a logged-in session:
    the session ended (idle, revoked, logged out elsewhere) or never was. The message says which,
    in words; nothing is done."""
    if request.method in ("GET", "HEAD", "OPTIONS") or identified() or login_endpoint():
        return
    if g.get("session_end") == "idle":
        idle = current_app.config["SESSION_IDLE_SECONDS"] / 60
        why = f"Your session ended after {idle:g} minutes without activity."
    elif g.get("session_end") == "expired":
        hours = current_app.config["SESSION_MAX_SECONDS"] / 3600
        why = f"Your session ended: sessions last at most {hours:g} hours."
    elif request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        why = (
            "Your session has ended: you logged out (perhaps in another tab), or the study "
            "organiser ended it."
        )
    else:
        why = "You are not logged in."
    abort(
        401,
        description=f"{why} Nothing was saved. Log in again with a new invitation link from "
        "the study organiser.",
    )
