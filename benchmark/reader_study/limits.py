"""What one client can make the reader-study server do: the request, connection and login limits.

One place for every limit (the security model of the README lists them):

- **Bodies** at most :data:`MAX_BODY_BYTES` (the app's ``MAX_CONTENT_LENGTH``; waitress refuses a
  larger declared ``Content-Length`` before reading the body, and a chunked body as soon as it
  passes the limit: 413), only ``application/x-www-form-urlencoded`` (multipart, JSON and other
  bodies: 415), at most :data:`MAX_FORM_FIELDS` form fields (413).
- **Headers** at most :data:`MAX_HEADER_BYTES` (431, waitress).
- **Connections**: :data:`CONNECTION_LIMIT` open at once; one silent for
  :data:`CHANNEL_TIMEOUT_S` (a half-sent request, an idle keep-alive) is closed, checked every
  :data:`CLEANUP_INTERVAL_S` (:func:`waitress_settings`).
- **Failed logins** (reader and admin together): after :data:`LOGIN_FAILURES` within
  :data:`LOGIN_WINDOW_S` from one client address, login attempts from it get 429 with
  ``Retry-After`` until the oldest failure leaves the window (:class:`LoginLimiter`; in memory,
  nothing is written to the database).

Own code rather than Flask-Limiter: the limit counts failures only, per address, in bounded memory,
in a few lines; a new dependency would bring a storage layer this single-process server does not
need.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any

from flask import Flask, abort, request

#: Largest request body (bytes): the case form with the longest comment is far below it.
MAX_BODY_BYTES = 64 * 1024
#: Most form fields of one request (the case form has at most 26 ranks and 4 other fields).
MAX_FORM_FIELDS = 64
#: Largest request line plus headers (bytes).
MAX_HEADER_BYTES = 32 * 1024
#: Connections open at once (waitress's default is 100; a browser opens up to 6 per reader).
CONNECTION_LIMIT = 500
#: Seconds of silence after which a connection without a running request is closed.
CHANNEL_TIMEOUT_S = 30
#: Seconds between two sweeps for such connections.
CLEANUP_INTERVAL_S = 5
#: Failed logins per client address within :data:`LOGIN_WINDOW_S` before 429.
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 600.0
#: Client addresses whose failures are remembered (the oldest are forgotten first).
MAX_TRACKED_ADDRESSES = 10_000
#: The only media type of a request body.
FORM_TYPE = "application/x-www-form-urlencoded"
EXTENSION = "reader_study_login_limiter"

#: Flask settings of :func:`benchmark.reader_study.app.create_app` that hold these limits.
CONFIG: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
    "MAX_FORM_PARTS": MAX_FORM_FIELDS,
    "MAX_FORM_MEMORY_SIZE": MAX_BODY_BYTES,
    "LOGIN_FAILURES": LOGIN_FAILURES,
    "LOGIN_WINDOW_S": LOGIN_WINDOW_S,
}


def waitress_settings(app: Flask, *, trusted_proxy: str | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`waitress.serve` that enforce these limits for ``app``.

    ``trusted_proxy``: the address of a reverse proxy whose ``X-Forwarded-For`` names the client
    (for the login limit and the logs); without it waitress drops every ``X-Forwarded-*`` and
    ``Forwarded`` header and the client is the connection's peer.
    """
    settings: dict[str, Any] = {
        # waitress refuses a body of max_request_body_size bytes or more: one more than Flask's
        "max_request_body_size": int(app.config["MAX_CONTENT_LENGTH"]) + 1,
        "max_request_header_size": MAX_HEADER_BYTES,
        "connection_limit": CONNECTION_LIMIT,
        "channel_timeout": CHANNEL_TIMEOUT_S,
        "cleanup_interval": CLEANUP_INTERVAL_S,
        "asyncore_use_poll": True,  # select() cannot watch descriptors past 1023
        "clear_untrusted_proxy_headers": True,
    }
    if trusted_proxy:
        settings.update(
            trusted_proxy=trusted_proxy,
            trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for"},
        )
    return settings


def check_request() -> None:
    """Refuse (415/413) a request body that is not a small URL-encoded form (called by the app's
    first ``before_request`` hook, before anything reads the body).

    Flask refuses a declared body over ``MAX_CONTENT_LENGTH`` with 413 before reading it. A
    streamed body (chunked, no ``Content-Length``) is read here up to the limit: Werkzeug would
    parse a form cut at the limit without a word, so one that reaches it is refused (413).
    Waitress refuses both kinds itself before the app sees them (:func:`waitress_settings`)."""
    streamed = request.content_length is None and bool(request.headers.get("Transfer-Encoding"))
    if (request.content_length or streamed) and request.mimetype != FORM_TYPE:
        abort(
            415,
            description=f"request bodies must be {FORM_TYPE} forms, "
            f"got {request.mimetype or 'no content type'!r}",
        )
    limit = request.max_content_length
    if streamed and limit is not None and len(request.get_data(cache=True)) >= limit:
        abort(413, description=f"the request body reaches the limit of {limit} bytes")
    if request.mimetype == FORM_TYPE:
        n = sum(len(values) for values in request.form.lists())
        if n > MAX_FORM_FIELDS:
            abort(413, description=f"{n} form fields, at most {MAX_FORM_FIELDS} allowed")


class LoginLimiter:
    """Failed logins per client address in a sliding window (thread-safe, bounded memory).

    Examples
    --------
    >>> limiter = LoginLimiter(failures=2, window_s=60.0)
    >>> limiter.fail("10.0.0.1", now=0.0); limiter.fail("10.0.0.1", now=1.0)
    >>> limiter.retry_after("10.0.0.1", now=2.0), limiter.retry_after("10.0.0.2", now=2.0)
    (58, 0)
    >>> limiter.retry_after("10.0.0.1", now=60.5)
    0
    """

    def __init__(
        self,
        *,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, address: str, *, now: float | None = None) -> int:
        """Whole seconds until ``address`` may try again (0: it may now)."""
        now = time.time() if now is None else now
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.failures:
                return 0
            return max(1, int(times[-self.failures] + self.window_s - now + 0.999))

    def fail(self, address: str, *, now: float | None = None) -> None:
        """Count one failed login of ``address``."""
        now = time.time() if now is None else now
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            while len(times) > self.failures:
                times.popleft()
            self._seen[address] = times
            self._seen.move_to_end(address)
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)


def init_app(app: Flask) -> None:
    """Give ``app`` its :class:`LoginLimiter` (from ``LOGIN_FAILURES`` / ``LOGIN_WINDOW_S``)."""
    app.extensions[EXTENSION] = LoginLimiter(
        failures=int(app.config["LOGIN_FAILURES"]), window_s=float(app.config["LOGIN_WINDOW_S"])
    )


def login_limiter(app: Flask) -> LoginLimiter:
    """The :class:`LoginLimiter` of ``app``."""
    return app.extensions[EXTENSION]
