"""Admin blueprint: admin-token login, progress of every reader, reopening a case for a reader,
removing a reader, and the blinded answers as CSV (letters and slots, never method names:
unblinding stays with ``bench reader-study export``)."""

from __future__ import annotations

import io

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


def _reader_id() -> int:
    text = request.form.get("reader_id", "")
    if not text.isdigit() or db.reader(db.get_db(), int(text)) is None:
        abort(404, description=f"no reader with id {text[:20]!r}")
    return int(text)


@bp.post("/reopen")
@auth.admin_required
def reopen():
    reader_id = _reader_id()
    position = request.form.get("position", "")
    if not position.isdigit():
        abort(400, description=f"position must be a case number, got {position[:20]!r}")
    try:
        db.reopen(db.get_db(), reader_id, int(position))
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
    buf = io.StringIO()
    pd.DataFrame(rows, columns=ANSWER_COLUMNS).to_csv(buf, index=False)
    db.log_event(db.get_db(), None, "admin-download", None, {"rows": len(rows)})
    return Response(
        buf.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=answers-blinded.csv"},
    )
