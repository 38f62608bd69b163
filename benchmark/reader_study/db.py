"""SQLite persistence of a reader study: schema, connections, the Flask hook-up (as in Flask's
tutorial: :func:`get_db` per request, :func:`init_app` closes it) and every read/write.

One file ``STUDY_DIR/study.db`` (mode ``0600``) in WAL mode (readers never block the writer).
Every write runs in its own ``BEGIN IMMEDIATE`` transaction with a 30 s busy timeout, so concurrent
requests serialise instead of failing. Tables:

- ``settings``: data-URL secret, hashed admin token, case-order seed, public URL of the server.
- ``readers``: name, hashed one-time invitation (and its expiry), the seed of their case order,
  finish and removal times.
- ``assignments``: each reader's items in order (position 1..n -> case id and read: ``1``, or
  ``2`` for a repeated case) and whether the item is locked (Finish locks every item of the
  reader; the admin's reopen unlocks exactly the item named).
- ``label_orders``: per reader, case and read, the result slot behind each letter.
- ``answers``: the current rank of each letter, per reader, case and read.
- ``responses``: per reader, case and read: state (``ranked``, ``cannot-judge``, ``reopened``),
  comment, seconds spent (server clock), active seconds (page visible, browser clock, never more
  than the server's), number of submissions, last submission time.
- ``sessions``: server-side sessions (hash of the cookie's id, reader or admin, data, times).
- ``events``: append-only log (triggers reject UPDATE and DELETE): time, reader, kind, case,
  read, detail JSON.

Method names are never stored here: answers refer to letters, letters to opaque slots.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.reader_study.prepare import LETTERS
from benchmark.reader_study.private import FILE_MODE

DB_NAME = "study.db"
#: Answer states of ``responses.state`` that count as answered.
ANSWERED = ("ranked", "cannot-judge")

SCHEMA = """
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE readers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    invite_hash TEXT UNIQUE,
    invite_expires REAL,
    order_seed INTEGER NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    removed TEXT
);
CREATE TABLE assignments (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    position INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    read INTEGER NOT NULL DEFAULT 1,
    locked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (reader_id, position),
    UNIQUE (reader_id, case_id, read)
);
CREATE TABLE label_orders (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    case_id TEXT NOT NULL,
    read INTEGER NOT NULL,
    label TEXT NOT NULL,
    slot INTEGER NOT NULL,
    PRIMARY KEY (reader_id, case_id, read, label),
    UNIQUE (reader_id, case_id, read, slot)
);
CREATE TABLE answers (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    case_id TEXT NOT NULL,
    read INTEGER NOT NULL,
    label TEXT NOT NULL,
    rank INTEGER NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (reader_id, case_id, read, label),
    UNIQUE (reader_id, case_id, read, rank)
);
CREATE TABLE responses (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    case_id TEXT NOT NULL,
    read INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ranked', 'cannot-judge', 'reopened')),
    comment TEXT NOT NULL DEFAULT '',
    seconds REAL NOT NULL DEFAULT 0,
    active_seconds REAL NOT NULL DEFAULT 0,
    submissions INTEGER NOT NULL DEFAULT 0,
    last_submitted TEXT,
    PRIMARY KEY (reader_id, case_id, read)
);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    reader_id INTEGER REFERENCES readers(id),
    data TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    unix REAL NOT NULL,
    reader_id INTEGER,
    kind TEXT NOT NULL,
    case_id TEXT,
    read INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_reader_case ON events (reader_id, case_id, read, kind);
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
def open_study_db(study_dir: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """The database of the study folder ``study_dir`` (:func:`connect`), closed on leaving."""
    conn = connect(Path(study_dir) / DB_NAME)
    try:
        yield conn
    finally:
        conn.close()


# ---------------------------------------------------------------- Flask hook-up
def get_db() -> sqlite3.Connection:
    """The request's connection to ``current_app.config["DATABASE"]`` (opened once per request)."""
    from flask import current_app, g

    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Close the request's connection, if any (registered by :func:`init_app`)."""
    from flask import g

    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app) -> None:
    """Register :func:`close_db` with ``app`` (Flask's ``db.init_app`` pattern)."""
    app.teardown_appcontext(close_db)


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
    """Create a new database (mode ``0600``) with the schema, WAL mode and the settings."""
    path = Path(path)
    if path.exists():
        raise BenchError(f"{path}: database exists already")
    # created private before SQLite opens it: the WAL and shared-memory files copy its mode
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
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


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older version to the current schema: ``assignments.locked``
    (added locked for the readers who had finished)."""
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(assignments)")}
    if "locked" in columns:
        return
    with transaction(conn):
        conn.execute("ALTER TABLE assignments ADD COLUMN locked INTEGER NOT NULL DEFAULT 0")
        conn.execute(
            "UPDATE assignments SET locked = 1 WHERE reader_id IN "
            "(SELECT id FROM readers WHERE finished IS NOT NULL)"
        )
        _log(conn, None, "upgrade", None, {"added": "assignments.locked"})


def setting(conn: sqlite3.Connection, key: str, default: str | None = None) -> str:
    """A value of ``settings``; BenchError when missing and no ``default`` is given."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    if row is None:
        if default is not None:
            return default
        raise BenchError(f"study database: setting {key!r} missing")
    return row["value"]


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _log(conn, reader_id, kind, case_id, detail, read=None) -> None:
    conn.execute(
        "INSERT INTO events (time, unix, reader_id, kind, case_id, read, detail) "
        "VALUES (?,?,?,?,?,?,?)",
        (
            now_iso(),
            time.time(),
            reader_id,
            kind,
            case_id,
            read,
            json.dumps(detail, sort_keys=True),
        ),
    )


def log_event(
    conn: sqlite3.Connection,
    reader_id: int | None,
    kind: str,
    case_id: str | None = None,
    detail: dict | None = None,
    *,
    read: int | None = None,
) -> None:
    """Append one event in its own transaction."""
    with transaction(conn):
        _log(conn, reader_id, kind, case_id, detail or {}, read)


# ---------------------------------------------------------------- readers and invitations
def reader_order_seed(study_seed: int, reader_id: int) -> int:
    """Seed of a reader's case order, derived from the study seed and the reader id."""
    return int(np.random.SeedSequence([int(study_seed), int(reader_id)]).generate_state(1)[0])


def case_order(case_ids: list[str], order_seed: int, *, repeats: int = 0) -> list[tuple[str, int]]:
    """``(case id, read)`` items: ``case_ids`` permuted with ``default_rng(order_seed)`` (read 1),
    then ``repeats`` of them drawn from the same generator, in random order (read 2)."""
    rng = np.random.default_rng(order_seed)
    perm = rng.permutation(len(case_ids))
    items = [(case_ids[i], 1) for i in perm]
    if repeats:
        items += [(case_ids[i], 2) for i in rng.choice(len(case_ids), repeats, replace=False)]
    return items


def add_reader(
    conn: sqlite3.Connection,
    name: str,
    *,
    invite_hash: str,
    invite_expires: float,
    cases: dict[str, int],
    repeats: int = 0,
    per_reader_labels: bool = True,
) -> tuple[int, list[tuple[str, int]]]:
    """Create a reader with a seeded random case order and their letter orders.

    Parameters
    ----------
    cases : dict
        Case id -> number of result slots, in study order.
    repeats : int
        Cases read a second time (see :func:`case_order`).
    per_reader_labels : bool
        Letters map to slots by a permutation per (case, read) from :class:`secrets.SystemRandom`;
        otherwise letter ``A`` is slot 0 for every reader (the slots are shuffled in the study).

    Returns
    -------
    (int, list)
        Reader id and their ``(case, read)`` items in order.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise BenchError(f"reader name must be 1-100 characters, got {name!r}")
    seed = int(setting(conn, "seed"))
    rng = secrets.SystemRandom()
    with transaction(conn):
        if conn.execute("SELECT 1 FROM readers WHERE name = ?", (name,)).fetchone():
            raise BenchError(f"reader {name!r} exists already")
        cur = conn.execute(
            "INSERT INTO readers (name, invite_hash, invite_expires, order_seed, created) "
            "VALUES (?, ?, ?, 0, ?)",
            (name, invite_hash, invite_expires, now_iso()),
        )
        reader_id = int(cur.lastrowid)
        order_seed = reader_order_seed(seed, reader_id)
        conn.execute("UPDATE readers SET order_seed = ? WHERE id = ?", (order_seed, reader_id))
        order = case_order(list(cases), order_seed, repeats=repeats)
        conn.executemany(
            "INSERT INTO assignments (reader_id, position, case_id, read) VALUES (?,?,?,?)",
            [(reader_id, i + 1, c, r) for i, (c, r) in enumerate(order)],
        )
        rows = []
        for case_id, read in order:
            slots = list(range(cases[case_id]))
            if per_reader_labels:
                rng.shuffle(slots)
            rows += [(reader_id, case_id, read, LETTERS[i], s) for i, s in enumerate(slots)]
        conn.executemany(
            "INSERT INTO label_orders (reader_id, case_id, read, label, slot) VALUES (?,?,?,?,?)",
            rows,
        )
        _log(conn, reader_id, "add-reader", None, {"order_seed": order_seed})
    return reader_id, order


def reader_by_name(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    """The reader called ``name``; BenchError listing the readers when there is none."""
    row = conn.execute("SELECT * FROM readers WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [r["name"] for r in conn.execute("SELECT name FROM readers ORDER BY id")]
        raise BenchError(f"no reader {name!r}; readers: {names}")
    return row


def set_invitation(
    conn: sqlite3.Connection, reader_id: int, invite_hash: str | None, expires: float | None
) -> None:
    """Replace the reader's invitation (``None``: none) and end every session of theirs."""
    with transaction(conn):
        conn.execute(
            "UPDATE readers SET invite_hash = ?, invite_expires = ? WHERE id = ?",
            (invite_hash, expires, reader_id),
        )
        conn.execute("DELETE FROM sessions WHERE reader_id = ?", (reader_id,))
        _log(conn, reader_id, "rotate" if invite_hash else "revoke", None, {})


def redeem_invitation(conn: sqlite3.Connection, invite_hash: str) -> sqlite3.Row | None:
    """The reader whose valid invitation has this hash, which is used up; ``None`` otherwise
    (unknown, used, expired or removed reader)."""
    with transaction(conn):
        row = conn.execute(
            "SELECT * FROM readers WHERE invite_hash = ? AND removed IS NULL", (invite_hash,)
        ).fetchone()
        if row is None or (row["invite_expires"] or 0) < time.time():
            return None
        conn.execute(
            "UPDATE readers SET invite_hash = NULL, invite_expires = NULL WHERE id = ?",
            (row["id"],),
        )
        _log(conn, int(row["id"]), "invitation-used", None, {})
    return row


def reader(conn: sqlite3.Connection, reader_id: int) -> sqlite3.Row | None:
    """The reader with this id unless removed."""
    return conn.execute(
        "SELECT * FROM readers WHERE id = ? AND removed IS NULL", (reader_id,)
    ).fetchone()


def remove_reader(conn: sqlite3.Connection, reader_id: int) -> None:
    """Mark the reader removed (answers kept in the database, left out of every export), end
    their sessions and invitation."""
    with transaction(conn):
        conn.execute(
            "UPDATE readers SET removed = ?, invite_hash = NULL WHERE id = ? AND removed IS NULL",
            (now_iso(), reader_id),
        )
        conn.execute("DELETE FROM sessions WHERE reader_id = ?", (reader_id,))
        _log(conn, reader_id, "remove-reader", None, {})


# ---------------------------------------------------------------- sessions
def session_get(conn: sqlite3.Connection, id_hash: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM sessions WHERE id_hash = ?", (id_hash,)).fetchone()


def session_put(
    conn: sqlite3.Connection, id_hash: str, reader_id: int | None, data: dict, *, created: float
) -> None:
    """Insert or replace one session, stamped ``last_seen = now``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO sessions (id_hash, reader_id, data, created, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id_hash) DO UPDATE SET "
            "reader_id = excluded.reader_id, data = excluded.data, last_seen = excluded.last_seen",
            (id_hash, reader_id, json.dumps(data, sort_keys=True), created, time.time()),
        )


def session_touch(conn: sqlite3.Connection, id_hash: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (time.time(), id_hash))


def session_delete(conn: sqlite3.Connection, id_hash: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def sessions_expire(conn: sqlite3.Connection, *, idle_s: float, max_age_s: float) -> None:
    """Delete sessions idle longer than ``idle_s`` or older than ``max_age_s``."""
    now = time.time()
    with transaction(conn):
        conn.execute(
            "DELETE FROM sessions WHERE last_seen < ? OR created < ?",
            (now - idle_s, now - max_age_s),
        )


# ---------------------------------------------------------------- reading and answering
def assignments(conn: sqlite3.Connection, reader_id: int) -> list[tuple[str, int]]:
    """The reader's ``(case id, read)`` items in their order (position 1 first)."""
    rows = conn.execute(
        "SELECT case_id, read FROM assignments WHERE reader_id = ? ORDER BY position", (reader_id,)
    ).fetchall()
    return [(r["case_id"], int(r["read"])) for r in rows]


def assignment(
    conn: sqlite3.Connection, reader_id: int, case_id: str, read: int
) -> sqlite3.Row | None:
    """The ``assignments`` row of one reader's item (position, locked...), None if unassigned."""
    return conn.execute(
        "SELECT * FROM assignments WHERE reader_id = ? AND case_id = ? AND read = ?",
        (reader_id, case_id, read),
    ).fetchone()


def locked(conn: sqlite3.Connection, reader_id: int, case_id: str, read: int) -> bool:
    """True when the reader's item is locked (finished and not reopened since)."""
    row = assignment(conn, reader_id, case_id, read)
    return bool(row is not None and row["locked"])


def label_order(conn: sqlite3.Connection, reader_id: int, case_id: str, read: int) -> dict:
    """``{letter: slot}`` of one reader's item, letters in order."""
    rows = conn.execute(
        "SELECT label, slot FROM label_orders WHERE reader_id = ? AND case_id = ? AND read = ? "
        "ORDER BY label",
        (reader_id, case_id, read),
    ).fetchall()
    return {r["label"]: int(r["slot"]) for r in rows}


def answers(conn: sqlite3.Connection, reader_id: int) -> dict[tuple[str, int], dict]:
    """``{(case, read): {"state", "comment", "ranks": {letter: rank}}}`` of one reader's answered
    items (only this reader's rows)."""
    out: dict[tuple[str, int], dict] = {}
    for r in conn.execute(
        "SELECT case_id, read, state, comment FROM responses WHERE reader_id = ? AND state IN "
        "(?, ?)",
        (reader_id, *ANSWERED),
    ):
        out[(r["case_id"], int(r["read"]))] = {
            "state": r["state"],
            "comment": r["comment"],
            "ranks": {},
        }
    for r in conn.execute(
        "SELECT case_id, read, label, rank FROM answers WHERE reader_id = ?", (reader_id,)
    ):
        item = out.get((r["case_id"], int(r["read"])))
        if item is not None:
            item["ranks"][r["label"]] = int(r["rank"])
    return out


def visit_seconds(conn: sqlite3.Connection, reader_id: int, case_id: str, read: int) -> float:
    """Server seconds since the later of the reader's last view and last save of this item
    (0 when neither exists), at most :data:`MAX_VISIT_S`."""
    row = conn.execute(
        "SELECT MAX(unix) AS t FROM events WHERE reader_id = ? AND case_id = ? AND read = ? "
        "AND kind IN ('view', 'answer')",
        (reader_id, case_id, read),
    ).fetchone()
    if row is None or row["t"] is None:
        return 0.0
    return min(max(time.time() - row["t"], 0.0), MAX_VISIT_S)


def save_answer(
    conn: sqlite3.Connection,
    reader_id: int,
    case_id: str,
    read: int,
    ranks: dict[str, int],
    *,
    active_seconds: float = 0.0,
    cannot_judge: bool = False,
    comment: str = "",
) -> tuple[float, float]:
    """Replace the reader's answer to one item; add the time of this visit; log the event.

    The visit time is :func:`visit_seconds` (so two saves without a reload do not count the same
    time twice). ``active_seconds`` (browser clock) must be finite and >= 0 and is clamped to the
    visit time. Returns ``(seconds, active seconds)`` added. Raises BenchError when the reader has
    finished the study or the item is locked (finished, and not the item the admin reopened), the
    item is not assigned to them, or the time is not a finite non-negative number.
    """
    active_seconds = float(active_seconds)
    if not np.isfinite(active_seconds) or active_seconds < 0:
        raise BenchError(f"active time must be a finite number >= 0, got {active_seconds!r}")
    state = "cannot-judge" if cannot_judge else "ranked"
    with transaction(conn):
        row = reader(conn, reader_id)
        if row is None or row["finished"]:
            raise BenchError("the study is finished for this reader; answers are locked")
        item = assignment(conn, reader_id, case_id, read)
        if item is None:
            raise BenchError(f"case {case_id!r} is not assigned to this reader")
        if item["locked"]:
            raise BenchError(
                "this case is locked: you finished the study, and the organiser reopened other "
                "cases only"
            )
        seconds = visit_seconds(conn, reader_id, case_id, read)
        active = min(active_seconds, seconds)
        conn.execute(
            "DELETE FROM answers WHERE reader_id = ? AND case_id = ? AND read = ?",
            (reader_id, case_id, read),
        )
        conn.executemany(
            "INSERT INTO answers (reader_id, case_id, read, label, rank) VALUES (?, ?, ?, ?, ?)",
            [(reader_id, case_id, read, label, int(r)) for label, r in sorted(ranks.items())],
        )
        conn.execute(
            "INSERT INTO responses (reader_id, case_id, read, state, comment, seconds, "
            "active_seconds, submissions, last_submitted) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (reader_id, case_id, read) DO UPDATE SET state = excluded.state, "
            "comment = excluded.comment, seconds = seconds + excluded.seconds, "
            "active_seconds = active_seconds + excluded.active_seconds, "
            "submissions = submissions + 1, last_submitted = excluded.last_submitted",
            (reader_id, case_id, read, state, comment, seconds, active, now_iso()),
        )
        _log(
            conn,
            reader_id,
            "answer",
            case_id,
            {
                "ranks": dict(sorted(ranks.items())),
                "state": state,
                "comment": comment,
                "seconds": round(seconds, 3),
                "active_seconds": round(active, 3),
                "active_seconds_sent": round(active_seconds, 3),
            },
            read,
        )
    return seconds, active


def finish(conn: sqlite3.Connection, reader_id: int, n_items: int) -> None:
    """Lock the reader's answers (every item); BenchError unless every assigned item is
    answered."""
    with transaction(conn):
        done = conn.execute(
            "SELECT COUNT(*) FROM responses WHERE reader_id = ? AND state IN (?, ?)",
            (reader_id, *ANSWERED),
        ).fetchone()[0]
        if done < n_items:
            raise BenchError(f"{n_items - done} case(s) not answered yet")
        conn.execute(
            "UPDATE readers SET finished = ? WHERE id = ? AND finished IS NULL",
            (now_iso(), reader_id),
        )
        conn.execute("UPDATE assignments SET locked = 1 WHERE reader_id = ?", (reader_id,))
        _log(conn, reader_id, "finish", None, {})


def reopen(conn: sqlite3.Connection, reader_id: int, position: int) -> tuple[str, int]:
    """Reopen the reader's item at ``position``: its answer is cleared (kept in the event log),
    exactly this item is unlocked (the reader's other items stay as they are), and the reader must
    answer it and press Finish again. Returns the ``(case, read)``."""
    with transaction(conn):
        item = conn.execute(
            "SELECT case_id, read FROM assignments WHERE reader_id = ? AND position = ?",
            (reader_id, position),
        ).fetchone()
        if item is None:
            raise BenchError(f"reader {reader_id} has no case at position {position}")
        key = (reader_id, item["case_id"], item["read"])
        old = conn.execute(
            "SELECT label, rank FROM answers WHERE reader_id = ? AND case_id = ? AND read = ?", key
        ).fetchall()
        conn.execute("DELETE FROM answers WHERE reader_id = ? AND case_id = ? AND read = ?", key)
        conn.execute(
            "UPDATE responses SET state = 'reopened' WHERE reader_id = ? AND case_id = ? "
            "AND read = ?",
            key,
        )
        conn.execute(
            "UPDATE assignments SET locked = 0 WHERE reader_id = ? AND position = ?",
            (reader_id, position),
        )
        conn.execute("UPDATE readers SET finished = NULL WHERE id = ?", (reader_id,))
        _log(
            conn,
            reader_id,
            "reopen",
            item["case_id"],
            {"position": position, "ranks": {r["label"]: r["rank"] for r in old}},
            item["read"],
        )
    return item["case_id"], int(item["read"])


def progress(conn: sqlite3.Connection) -> list[dict]:
    """Per reader (not removed): id, name, created, finished, answered, assigned, seconds (sum),
    last_seen, invited (an unused invitation is pending)."""
    rows = conn.execute(
        """
        SELECT r.id, r.name, r.created, r.finished, r.invite_hash IS NOT NULL AS invited,
               (SELECT COUNT(*) FROM assignments a WHERE a.reader_id = r.id) AS assigned,
               (SELECT COUNT(*) FROM responses s WHERE s.reader_id = r.id AND s.state IN (?, ?))
                   AS answered,
               (SELECT COALESCE(SUM(seconds), 0) FROM responses p WHERE p.reader_id = r.id)
                   AS seconds,
               (SELECT MAX(time) FROM events e WHERE e.reader_id = r.id) AS last_seen
        FROM readers r WHERE r.removed IS NULL ORDER BY r.id""",
        ANSWERED,
    ).fetchall()
    return [dict(r) for r in rows]


def all_responses(conn: sqlite3.Connection) -> list[dict]:
    """Every answered item of every reader not removed, blinded, one row per (reader, case, read,
    letter) (one row with empty letter for "cannot judge"): reader, case, read, label, slot,
    rank, state, comment, seconds, active_seconds, submissions, finished."""
    rows = conn.execute(
        """
        SELECT r.name AS reader, p.case_id AS "case", p.read, a.label, o.slot, a.rank, p.state,
               p.comment, p.seconds, p.active_seconds, p.submissions,
               r.finished IS NOT NULL AS finished
        FROM responses p JOIN readers r ON r.id = p.reader_id
        LEFT JOIN answers a
            ON a.reader_id = p.reader_id AND a.case_id = p.case_id AND a.read = p.read
        LEFT JOIN label_orders o ON o.reader_id = a.reader_id AND o.case_id = a.case_id
            AND o.read = a.read AND o.label = a.label
        WHERE r.removed IS NULL AND p.state IN (?, ?)
        ORDER BY r.id, p.case_id, p.read, a.label""",
        ANSWERED,
    ).fetchall()
    return [dict(r) for r in rows]


def readers_status(conn: sqlite3.Connection) -> list[dict]:
    """Name and finished flag of every reader not removed, in creation order."""
    rows = conn.execute(
        "SELECT name, finished IS NOT NULL AS finished FROM readers WHERE removed IS NULL "
        "ORDER BY id"
    ).fetchall()
    return [dict(r) for r in rows]
