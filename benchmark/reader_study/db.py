"""SQLite persistence of a reader study: schema, connections and every read/write the app needs.

One file ``STUDY_DIR/study.db`` in WAL mode (readers never block the writer). Every write runs in
its own ``BEGIN IMMEDIATE`` transaction with a 30 s busy timeout, so concurrent requests serialise
instead of failing. Tables:

- ``settings``: session secret key, hashed admin token, study seed.
- ``readers``: name, hashed invite token, the seed of their case order, finish time.
- ``assignments``: each reader's case order (position 1..n -> case id).
- ``answers``: the current rank of each blinded label, per reader and case (keyed by reader).
- ``responses``: per reader and case: seconds spent (server clock, summed over visits), active
  seconds (page visible, browser clock), number of submissions, last submission time.
- ``events``: append-only log (triggers reject UPDATE and DELETE): time, reader, kind, case,
  detail JSON.

Method names are never stored here: answers refer to blinded labels (``A``, ``B``...).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmark.errors import BenchError

DB_NAME = "study.db"

SCHEMA = """
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE readers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    order_seed INTEGER NOT NULL,
    created TEXT NOT NULL,
    finished TEXT
);
CREATE TABLE assignments (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    position INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (reader_id, position),
    UNIQUE (reader_id, case_id)
);
CREATE TABLE answers (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    case_id TEXT NOT NULL,
    label TEXT NOT NULL,
    rank INTEGER NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (reader_id, case_id, label),
    UNIQUE (reader_id, case_id, rank)
);
CREATE TABLE responses (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    case_id TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0,
    active_seconds REAL NOT NULL DEFAULT 0,
    submissions INTEGER NOT NULL DEFAULT 0,
    last_submitted TEXT,
    PRIMARY KEY (reader_id, case_id)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    unix REAL NOT NULL,
    reader_id INTEGER,
    kind TEXT NOT NULL,
    case_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_reader_case ON events (reader_id, case_id, kind);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""

#: Longest time one visit of a case may add (a reader who leaves a tab open overnight).
MAX_VISIT_S = 3600.0


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open the study database (autocommit mode; use :func:`transaction` for writes)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: study database not found")
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def init_db(path: str | os.PathLike, *, secret_key: str, admin_token_hash: str, seed: int) -> None:
    """Create a new database with the schema, WAL mode and the settings."""
    path = Path(path)
    if path.exists():
        raise BenchError(f"{path}: database exists already")
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise BenchError(f"{path}: cannot switch SQLite to WAL mode (got {mode!r})")
        conn.executescript("BEGIN;" + SCHEMA + "COMMIT;")
        with transaction(conn):
            conn.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?)",
                [
                    ("secret_key", secret_key),
                    ("admin_token_hash", admin_token_hash),
                    ("seed", str(int(seed))),
                ],
            )
            _log(conn, None, "create", None, {})
    finally:
        conn.close()


def setting(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise BenchError(f"study database: setting {key!r} missing")
    return row["value"]


def _log(conn, reader_id, kind, case_id, detail) -> None:
    conn.execute(
        "INSERT INTO events (time, unix, reader_id, kind, case_id, detail) VALUES (?,?,?,?,?,?)",
        (now_iso(), time.time(), reader_id, kind, case_id, json.dumps(detail, sort_keys=True)),
    )


def log_event(
    conn: sqlite3.Connection,
    reader_id: int | None,
    kind: str,
    case_id: str | None = None,
    detail: dict | None = None,
) -> None:
    """Append one event in its own transaction."""
    with transaction(conn):
        _log(conn, reader_id, kind, case_id, detail or {})


def reader_order_seed(study_seed: int, reader_id: int) -> int:
    """Seed of a reader's case order, derived from the study seed and the reader id."""
    return int(np.random.SeedSequence([int(study_seed), int(reader_id)]).generate_state(1)[0])


def case_order(case_ids: list[str], order_seed: int) -> list[str]:
    """``case_ids`` permuted with ``numpy.random.default_rng(order_seed)``."""
    perm = np.random.default_rng(order_seed).permutation(len(case_ids))
    return [case_ids[i] for i in perm]


def add_reader(
    conn: sqlite3.Connection, name: str, *, token_hash: str, case_ids: list[str]
) -> tuple[int, list[str]]:
    """Create a reader with a seeded random case order; return ``(reader id, order)``."""
    name = name.strip()
    if not name or len(name) > 100:
        raise BenchError(f"reader name must be 1-100 characters, got {name!r}")
    seed = int(setting(conn, "seed"))
    with transaction(conn):
        if conn.execute("SELECT 1 FROM readers WHERE name = ?", (name,)).fetchone():
            raise BenchError(f"reader {name!r} exists already")
        cur = conn.execute(
            "INSERT INTO readers (name, token_hash, order_seed, created) VALUES (?, ?, 0, ?)",
            (name, token_hash, now_iso()),
        )
        reader_id = int(cur.lastrowid)
        order_seed = reader_order_seed(seed, reader_id)
        conn.execute("UPDATE readers SET order_seed = ? WHERE id = ?", (order_seed, reader_id))
        order = case_order(case_ids, order_seed)
        conn.executemany(
            "INSERT INTO assignments (reader_id, position, case_id) VALUES (?,?,?)",
            [(reader_id, i + 1, c) for i, c in enumerate(order)],
        )
        _log(conn, reader_id, "add-reader", None, {"order_seed": order_seed})
    return reader_id, order


def reader_by_token_hash(conn: sqlite3.Connection, token_hash: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM readers WHERE token_hash = ?", (token_hash,)).fetchone()


def reader(conn: sqlite3.Connection, reader_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM readers WHERE id = ?", (reader_id,)).fetchone()


def assignments(conn: sqlite3.Connection, reader_id: int) -> list[str]:
    """The reader's case ids in their order (position 1 first)."""
    rows = conn.execute(
        "SELECT case_id FROM assignments WHERE reader_id = ? ORDER BY position", (reader_id,)
    ).fetchall()
    return [r["case_id"] for r in rows]


def answers(conn: sqlite3.Connection, reader_id: int) -> dict[str, dict[str, int]]:
    """``{case id: {label: rank}}`` of one reader (only this reader's rows)."""
    out: dict[str, dict[str, int]] = {}
    for r in conn.execute(
        "SELECT case_id, label, rank FROM answers WHERE reader_id = ?", (reader_id,)
    ):
        out.setdefault(r["case_id"], {})[r["label"]] = int(r["rank"])
    return out


def save_answer(
    conn: sqlite3.Connection,
    reader_id: int,
    case_id: str,
    ranks: dict[str, int],
    *,
    active_seconds: float = 0.0,
) -> float:
    """Replace the reader's ranking of one case; add the time of this visit; log the event.

    The visit time is the server time since the reader's last ``view`` of this case (at most
    :data:`MAX_VISIT_S`). Returns the seconds added. Raises BenchError when the reader has
    finished the study (answers are then locked) or the case is not assigned to them.
    """
    with transaction(conn):
        row = reader(conn, reader_id)
        if row is None or row["finished"]:
            raise BenchError("the study is finished for this reader; answers are locked")
        if not conn.execute(
            "SELECT 1 FROM assignments WHERE reader_id = ? AND case_id = ?", (reader_id, case_id)
        ).fetchone():
            raise BenchError(f"case {case_id!r} is not assigned to this reader")
        view = conn.execute(
            "SELECT unix FROM events WHERE reader_id = ? AND case_id = ? AND kind = 'view' "
            "ORDER BY id DESC LIMIT 1",
            (reader_id, case_id),
        ).fetchone()
        seconds = min(max(time.time() - view["unix"], 0.0), MAX_VISIT_S) if view else 0.0
        active = min(max(float(active_seconds), 0.0), MAX_VISIT_S)
        conn.execute(
            "DELETE FROM answers WHERE reader_id = ? AND case_id = ?", (reader_id, case_id)
        )
        conn.executemany(
            "INSERT INTO answers (reader_id, case_id, label, rank) VALUES (?, ?, ?, ?)",
            [(reader_id, case_id, label, int(rank)) for label, rank in sorted(ranks.items())],
        )
        conn.execute(
            "INSERT INTO responses (reader_id, case_id, seconds, active_seconds, submissions, "
            "last_submitted) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (reader_id, case_id) DO UPDATE "
            "SET seconds = seconds + excluded.seconds, "
            "active_seconds = active_seconds + excluded.active_seconds, "
            "submissions = submissions + 1, last_submitted = excluded.last_submitted",
            (reader_id, case_id, seconds, active, now_iso()),
        )
        _log(
            conn,
            reader_id,
            "answer",
            case_id,
            {
                "ranks": dict(sorted(ranks.items())),
                "seconds": round(seconds, 3),
                "active_seconds": round(active, 3),
            },
        )
    return seconds


def finish(conn: sqlite3.Connection, reader_id: int, n_cases: int) -> None:
    """Lock the reader's answers; BenchError unless every assigned case is answered."""
    with transaction(conn):
        done = conn.execute(
            "SELECT COUNT(DISTINCT case_id) FROM answers WHERE reader_id = ?", (reader_id,)
        ).fetchone()[0]
        if done < n_cases:
            raise BenchError(f"{n_cases - done} case(s) not ranked yet")
        conn.execute(
            "UPDATE readers SET finished = ? WHERE id = ? AND finished IS NULL",
            (now_iso(), reader_id),
        )
        _log(conn, reader_id, "finish", None, {})


def progress(conn: sqlite3.Connection) -> list[dict]:
    """Per reader: id, name, created, finished, answered, assigned, seconds (sum)."""
    rows = conn.execute("""
        SELECT r.id, r.name, r.created, r.finished,
               (SELECT COUNT(*) FROM assignments a WHERE a.reader_id = r.id) AS assigned,
               (SELECT COUNT(DISTINCT case_id) FROM answers s WHERE s.reader_id = r.id)
                   AS answered,
               (SELECT COALESCE(SUM(seconds), 0) FROM responses p WHERE p.reader_id = r.id)
                   AS seconds,
               (SELECT MAX(time) FROM events e WHERE e.reader_id = r.id) AS last_seen
        FROM readers r ORDER BY r.id""").fetchall()
    return [dict(r) for r in rows]


def all_answers(conn: sqlite3.Connection) -> list[dict]:
    """Every saved ranking: reader (name), case, label, rank, seconds, finished."""
    rows = conn.execute("""
        SELECT r.name AS reader, a.case_id AS "case", a.label, a.rank,
               p.seconds, r.finished IS NOT NULL AS finished
        FROM answers a JOIN readers r ON r.id = a.reader_id
        LEFT JOIN responses p ON p.reader_id = a.reader_id AND p.case_id = a.case_id
        ORDER BY r.id, a.case_id, a.label""").fetchall()
    return [dict(r) for r in rows]
