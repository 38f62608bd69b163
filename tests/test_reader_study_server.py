"""The reader-study server under load: 20 readers rank concurrently over HTTP against the real
``bench reader-study serve`` (waitress), the server is killed with SIGKILL while they write and
started again; every confirmed answer must be there, complete, and the database intact.

Slow and hostile clients, with raw sockets against a served app on localhost (issue 30.4 and 30.9):
a body over the limit is refused from its declared size before it is sent, and a chunked one as
soon as it passes the limit; 110 half-sent connections do not lock a new reader out, and
connections that stay silent are dropped so the server recovers even when they fill its
connection limit.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from fake_run import make_fake_run

from benchmark.cli import main
from benchmark.reader_study import auth, db, limits
from benchmark.reader_study.prepare import load_study

N_READERS = 20
N_CASES = 4
SERVE = "import sys; from benchmark.cli import main; sys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(study: Path, port: int, script: list[str] | None = None) -> subprocess.Popen:
    """``bench reader-study serve`` (or ``python -c SCRIPT...``) on ``port``, once it answers."""
    command = script or [SERVE, "reader-study", "serve", str(study), "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{proc.stderr.read()}") from None
            time.sleep(0.1)


def _study(
    tmp_path: Path,
    n_readers: int,
    *,
    methods: tuple[str, ...] = ("elastix", "unet-nmi"),
    n_cases: int = 2,
    shape: tuple[int, int, int] = (16, 16, 4),
) -> tuple[Path, list[str]]:
    """A study of a fake run with ``n_readers`` readers ``r0, r1...``; their invitation tokens."""
    run = make_fake_run(tmp_path / "fake", methods=methods, n_cases=n_cases, shape=shape)
    study = tmp_path / "study"
    args = ["--methods", ",".join(methods), "--out", str(study)]
    assert main(["reader-study", "create", str(run), *args]) == 0
    cases = {c["id"]: len(c["panels"]["results"]) for c in load_study(study)["cases"]}
    tokens = [auth.new_token() for _ in range(n_readers)]
    conn = db.connect(study / db.DB_NAME)
    for i, token in enumerate(tokens):
        db.add_reader(
            conn,
            f"r{i}",
            invite_hash=auth.hash_token(token),
            invite_expires=time.time() + 3600,
            cases=cases,
        )
    conn.close()
    return study, tokens


class Reader:
    """One reader's browser: a cookie jar, retrying requests while the server is down."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(self, path: str, form: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        for _ in range(600):
            try:
                with self.opener.open(self.base + path, data=body, timeout=30) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()
            except (OSError, http.client.HTTPException):
                # connection refused or reset, or a response cut short (IncompleteRead): the
                # server is down or was killed while answering
                time.sleep(0.05)
        raise RuntimeError(f"{path}: server unreachable")

    def csrf(self, path: str) -> str:
        status, text = self.request(path)
        assert status == 200, (path, status)
        return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def test_twenty_readers_and_a_server_killed_mid_write(tmp_path):
    study, tokens = _study(
        tmp_path, N_READERS, methods=("elastix", "unet-nmi", "poolnet-nmi"), n_cases=N_CASES
    )
    rng = np.random.default_rng(0)
    plans = [[rng.permutation(3) + 1 for _ in range(N_CASES)] for _ in range(N_READERS)]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(study, port)
    confirmed = [0] * N_READERS
    errors: list[BaseException] = []
    start = threading.Barrier(N_READERS + 1)
    logged_in = threading.Barrier(N_READERS)

    def work(i: int) -> None:
        try:
            reader = Reader(base)
            start.wait()
            status, _ = reader.request(
                "/login", {"token": tokens[i], "csrf_token": reader.csrf("/login")}
            )
            assert status == 200
            logged_in.wait()  # the kill hits answers, not one-time logins
            for rep in range(3):  # every case three times: revisions replace, never duplicate
                for pos in range(1, N_CASES + 1):
                    ranks = plans[i][pos - 1] if rep == 2 else np.roll(plans[i][pos - 1], rep)
                    form = {f"rank_{'ABC'[k]}": str(r) for k, r in enumerate(ranks)}
                    form["csrf_token"] = reader.csrf(f"/case/{pos}")
                    status, text = reader.request(f"/case/{pos}", form)
                    assert status == 200, (i, rep, pos, status, text[-800:])  # 302 followed
                    confirmed[i] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_READERS)]
    for t in threads:
        t.start()
    start.wait()
    try:
        while sum(confirmed) < N_READERS * N_CASES:  # a third of the writes done: kill -9
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        killed_at = sum(confirmed)
        time.sleep(0.5)
        proc = _start(study, port)
        for t in threads:
            t.join(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert not errors, errors
    assert killed_at < 3 * N_READERS * N_CASES  # the kill happened while readers were writing
    conn = sqlite3.connect(study / db.DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    conn = db.connect(study / db.DB_NAME)
    for i in range(N_READERS):
        order = db.assignments(conn, i + 1)
        got = {item: a["ranks"] for item, a in db.answers(conn, i + 1).items()}
        want = {
            order[p]: {"ABC"[k]: int(r) for k, r in enumerate(plans[i][p])} for p in range(N_CASES)
        }
        assert got == want, i
    # one answer event per counted submission: the response and its event commit together
    per_item = conn.execute(
        "SELECT p.submissions, (SELECT COUNT(*) FROM events e WHERE e.kind = 'answer' AND "
        "e.reader_id = p.reader_id AND e.case_id = p.case_id AND e.read = p.read) AS logged "
        "FROM responses p"
    ).fetchall()
    assert len(per_item) == N_READERS * N_CASES
    assert all(r["submissions"] == r["logged"] >= 3 for r in per_item)
    conn.close()


# ---------------------------------------------------------------- slow and hostile clients
def _log_in_quickly(base: str, token: str, *, within_s: float) -> float:
    """A new reader opens the login page and logs in, each request given ``within_s`` seconds;
    returns the seconds it took."""
    t0 = time.monotonic()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(base + "/login", timeout=within_s) as resp:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', resp.read().decode()).group(1)
    body = urllib.parse.urlencode({"token": token, "csrf_token": csrf}).encode()
    with opener.open(base + "/login", data=body, timeout=within_s) as resp:
        assert resp.status == 200 and "/case/" in resp.url
    return time.monotonic() - t0


def _half_sent(port: int, i: int) -> socket.socket:
    """A connection that sent part of a request and then nothing: headers cut short (even i) or
    a body shorter than its Content-Length (odd i)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if i % 2:
        head += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nto"
    s.sendall(head.encode())
    return s


def test_bodies_over_the_limit_refused_before_they_arrive(tmp_path):
    """Issue 30.4: a 30 MB declared body gets 413 on its headers alone; a chunked one as soon as
    it passes the limit (today's 1 GB waitress default waited for all of it); headers over
    MAX_HEADER_BYTES get 431."""
    study, _ = _study(tmp_path, 1)
    port = _free_port()
    proc = _start(study, port)
    head = (
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"{head}Content-Length: 30000000\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 413")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
            s.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            chunk = b"a=" + b"x" * (16 * 1024 - 2)
            sent, reply = 0, b""
            while sent < 2 * 1024 * 1024 and not reply:
                try:
                    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    reply = s.recv(4096)
                    break
                sent += len(chunk)
                if select.select([s], [], [], 0.02)[0]:
                    reply = s.recv(4096)
            assert reply.startswith(b"HTTP/1.1 413"), (sent, reply[:80])
            assert sent <= 4 * limits.MAX_BODY_BYTES, sent
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # headers: 431
            s.sendall(f"{head}X-Big: {'x' * limits.MAX_HEADER_BYTES}\r\n\r\n".encode())
            assert re.match(rb"HTTP/1\.[01] 431 ", s.recv(4096))
    finally:
        proc.kill()
        proc.wait()


def test_half_sent_connections_do_not_lock_out_a_new_reader(tmp_path):
    """Issue 30.9: 110 connections that each sent half a request (waitress's default limit was
    100) and a new reader still logs in at once."""
    study, tokens = _study(tmp_path, 1)
    port = _free_port()
    proc = _start(study, port)
    socks = []
    try:
        socks = [_half_sent(port, i) for i in range(110)]
        time.sleep(0.5)  # all of them accepted by the server (or waiting for it)
        assert _log_in_quickly(f"http://127.0.0.1:{port}", tokens[0], within_s=5.0) < 5.0
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()


SERVE_WITH = (
    "import json, sys, waitress\n"
    "from benchmark.reader_study import limits\n"
    "from benchmark.reader_study.app import create_app\n"
    "study, port, overrides = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])\n"
    "app = create_app({'STUDY_DIR': study})\n"
    "waitress.serve(app, host='127.0.0.1', port=port, threads=4,\n"
    "               **{**limits.waitress_settings(app), **overrides})\n"
)


def test_silent_connections_are_dropped_and_the_server_recovers(tmp_path):
    """Issue 30.9: with the served settings but a 20-connection limit and a 1 s channel timeout,
    25 half-sent connections fill the server; they are closed by the server, and a new reader who
    queued behind them logs in within a few sweeps."""
    study, tokens = _study(tmp_path, 1)
    port = _free_port()
    overrides = {"connection_limit": 20, "channel_timeout": 1, "cleanup_interval": 1}
    proc = _start(study, port, [SERVE_WITH, str(study), str(port), json.dumps(overrides)])
    socks = []
    try:
        socks = [_half_sent(port, i) for i in range(25)]
        time.sleep(0.3)
        took = _log_in_quickly(f"http://127.0.0.1:{port}", tokens[0], within_s=15.0)
        assert took < 10.0
        for s in socks:  # every half-sent connection is closed by the server (a timeout fails)
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()
