"""Admin blueprint: admin-token login, progress of every reader, reopening a case for a reader,
removing a reader, and the blinded answers as CSV (letters and slots, never method names:
unblinding stays with ``bench reader-study export``).

The CSV holds readers' free text (comments), so every text cell that a spreadsheet would read as a
formula is escaped (:func:`spreadsheet_safe`, OWASP's CSV-injection rule).
"""

from __future__ import annotations

import io
import re

import pandas as pd
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from benchmark.core.errors import BenchError
from benchmark.reader_study import auth, db, sessions

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: Columns of the blinded answers CSV (:func:`benchmark.reader_study.db.all_responses`).
ANSWER_COLUMNS = [
    "reader",
    "case",
    "read",
    "label",
    "slot",
    "rank",
    "state",
    "comment",
    "seconds",
    "active_seconds",
    "submissions",
    "finished",
]
#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: An id or position of an admin form: ASCII digits, at most 9 of them.
NUMBER_RE = re.compile(r"[0-9]{1,9}")


def spreadsheet_safe(value):
    """``value`` with a ``'`` in front when it is text starting with one of
    :data:`FORMULA_START` (spreadsheets then show it as text); anything else unchanged.

    Examples
    --------
    >>> spreadsheet_safe("=1+1"), spreadsheet_safe("@SUM(A1)"), spreadsheet_safe("fine")
    ("'=1+1", "'@SUM(A1)", 'fine')
    >>> spreadsheet_safe(-1)
    -1
    """
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _admin_token(conn, token: str) -> bool | None:
    """True for the study's admin token, else None."""
    expected = current_app.config["ADMIN_TOKEN_HASH"]
    return True if auth.same(auth.hash_token(token), expected) else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    return sessions.token_login(
        "admin_login.html", _admin_token, key="admin", event="admin-login",
        error="Invalid admin token.", then="admin.index",
    )


@bp.get("")
@auth.admin_required
def index():
    conn = db.get_db()
    readers = db.progress(conn)
    for r in readers:
        r["items"] = db.assignments(conn, r["id"])
        r["answered_items"] = set(db.answers(conn, r["id"]))
    return render_template("admin.html", readers=readers)


def _number(field: str) -> int:
    """The form field ``field`` as a number; 400 unless it is 1-9 ASCII digits."""
    text = request.form.get(field, "")
    if not NUMBER_RE.fullmatch(text):
        abort(400, description=f"{field} must be a number (1-9 digits 0-9), got {text[:20]!r}")
    return int(text)


def _reader_id() -> int:
    reader_id = _number("reader_id")
    if db.reader(db.get_db(), reader_id) is None:
        abort(404, description=f"no reader with id {reader_id}")
    return reader_id


@bp.post("/reopen")
@auth.admin_required
def reopen():
    reader_id = _reader_id()
    position = _number("position")
    try:
        db.reopen(db.get_db(), reader_id, position)
    except BenchError as exc:
        abort(404, description=str(exc))
    flash(f"Case {position} reopened for reader {db.reader(db.get_db(), reader_id)['name']}.")
    return redirect(url_for("admin.index"))


@bp.post("/remove")
@auth.admin_required
def remove():
    reader_id = _reader_id()
    name = db.reader(db.get_db(), reader_id)["name"]
    if request.form.get("confirm") != name:
        abort(400, description=f"type the reader's name ({name}) to confirm the removal")
    db.remove_reader(db.get_db(), reader_id)
    flash(f"Reader {name} removed: sessions ended, answers left out of every export.")
    return redirect(url_for("admin.index"))


@bp.get("/answers.csv")
@auth.admin_required
def answers_csv():
    rows = db.all_responses(db.get_db())
    safe = [{k: spreadsheet_safe(v) for k, v in row.items()} for row in rows]
    buf = io.StringIO()
    pd.DataFrame(safe, columns=ANSWER_COLUMNS).to_csv(buf, index=False)
    db.log_event(db.get_db(), None, "admin-download", None, {"rows": len(rows)})
    return Response(
        buf.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=answers-blinded.csv"},
    )
