"""The reader-study server under load: 20 readers rank concurrently over HTTP against the real
``bench reader-study serve`` (waitress), the server is killed with SIGKILL while they write and
started again; every confirmed answer must be there, complete, and the database intact.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import re
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
from benchmark.reader_study import auth, db
from benchmark.reader_study.prepare import load_study

N_READERS = 20
N_CASES = 4
SERVE = "import sys; from benchmark.cli import main; sys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(study: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "reader-study", "serve", str(study), "--port", str(port)],
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
    run = make_fake_run(
        tmp_path / "fake",
        methods=("elastix", "unet-nmi", "poolnet-nmi"),
        n_cases=N_CASES,
        shape=(24, 24, 4),
    )
    study = tmp_path / "study"
    args = ["--methods", "elastix,unet-nmi,poolnet-nmi", "--out", str(study)]
    assert main(["reader-study", "create", str(run), *args]) == 0
    cases = {c["id"]: len(c["panels"]["results"]) for c in load_study(study)["cases"]}
    tokens = [auth.new_token() for _ in range(N_READERS)]
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
