"""Tokens and request protection of the reader-study app: invitation/admin tokens (stored as
SHA-256 hashes), the per-session CSRF token, and the login-required decorators.

Tokens are 192-bit random strings from :mod:`secrets` (deliberately not seeded: they are
credentials), so a plain SHA-256 is enough to store them; comparisons are constant-time.
Invitations are one-time: :func:`benchmark.reader_study.db.redeem_invitation` uses them up when
they are exchanged for a server-side session (:mod:`benchmark.reader_study.sessions`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable

from flask import abort, g, redirect, request, session, url_for

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def new_token() -> str:
    """A fresh URL-safe random token (32 characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def csrf_token() -> str:
    """The session's CSRF token, created on first use (available in templates)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort with 400 unless a state-changing request carries the session's CSRF token (form
    field ``csrf_token`` or header ``X-CSRF-Token``)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not sent or not same(expected, sent):
        abort(400, description="missing or invalid CSRF token; reload the page and try again")


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
