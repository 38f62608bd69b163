"""Reader blueprint: one-time invitation login, logout, progress, blinded case pages, ranking,
finish and the panel data.

A reader's items are ``(case, read)`` pairs in their own order (``read`` 2 marks a repeated case);
on each item the letters map to the case's result slots by the reader's own permutation
(:func:`benchmark.reader_study.db.label_order`). The case page's script saves with ``fetch`` and
gets JSON (``{"next": URL}``, ``{"errors": [...]}``); a browser without scripts posts the form and
gets pages and redirects.
"""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.routing import BaseConverter
from werkzeug.wsgi import wrap_file

from benchmark.core.errors import BenchError
from benchmark.reader_study import auth, db, sessions
from benchmark.reader_study.study import TOKEN_RE, get_study

bp = Blueprint("reader", __name__)


class PositionConverter(BaseConverter):
    """A case position in a URL: 1-9 ASCII digits (Werkzeug's ``int`` takes any script's
    digits, so ``/case/\u0661`` would be case 1)."""

    regex = r"[0-9]{1,9}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))


# before the routes: the app knows the converter when their rules are added
bp.record_once(lambda state: state.app.url_map.converters.setdefault("position", PositionConverter))

RANK_RE = re.compile(r"[0-9]{1,3}")
#: Longest free-text comment (characters).
MAX_COMMENT = 2000
#: Largest ``active_ms`` (milliseconds the page was visible): one day. The server keeps at most
#: the visit's own time (:func:`benchmark.reader_study.db.save_answer`).
MAX_ACTIVE_MS = 24 * 3600 * 1000
ACTIVE_MS_RE = re.compile(r"[0-9]{1,9}")


def parse_ranks(form, labels: list[str]) -> tuple[dict[str, int], list[str]]:
    """Read ``rank_<LABEL>`` fields; return ``(ranks, problems)``.

    A valid ranking gives every label of the case a distinct integer rank in ``1..len(labels)``
    and has no ``rank_`` field for another label. ``ranks`` holds the fields that parsed (so a
    rejected form can be shown again as submitted).
    """
    k = len(labels)
    ranks: dict[str, int] = {}
    problems: list[str] = []
    for field in form:
        if field.startswith("rank_") and field[5:] not in labels:
            problems.append(f"unknown result {field[5:]!r}")
    getlist = getattr(form, "getlist", None)
    for label in labels:
        if getlist is not None and len(getlist(f"rank_{label}")) > 1:
            problems.append(f"result {label} has several ranks")
            continue
        text = (form.get(f"rank_{label}") or "").strip()
        if not text:
            problems.append(f"result {label} has no rank")
            continue
        if not RANK_RE.fullmatch(text) or not 1 <= int(text) <= k:
            problems.append(f"result {label}: rank must be 1-{k}, got {text[:10]!r}")
            continue
        ranks[label] = int(text)
    seen: dict[int, list[str]] = {}
    for label, rank in ranks.items():
        seen.setdefault(rank, []).append(label)
    for rank, tied in sorted(seen.items()):
        if len(tied) > 1:
            problems.append(f"rank {rank} given to {' and '.join(tied)}; ranks must differ")
    return ranks, problems


def parse_active_ms(text: str | None) -> tuple[float, list[str]]:
    """Seconds of the ``active_ms`` field (empty: 0); a problem unless it is ASCII digits only
    (no sign, point, exponent, space or other script's digits) with a value of at most
    :data:`MAX_ACTIVE_MS`."""
    text = text or ""
    if not text:
        return 0.0, []
    if not ACTIVE_MS_RE.fullmatch(text) or int(text) > MAX_ACTIVE_MS:
        return 0.0, [
            f"active_ms must be a whole number of milliseconds 0-{MAX_ACTIVE_MS} in ASCII "
            f"digits, got {text[:20]!r}"
        ]
    return int(text) / 1000.0, []


@bp.before_app_request
def load_user() -> None:
    g.reader = None
    reader_id = session.get("reader_id")
    if reader_id is not None:
        row = db.reader(db.get_db(), int(reader_id))
        if row is None:
            session.regenerate()
        else:
            g.reader = row


def reader_state() -> tuple[list[tuple[str, int]], dict]:
    conn = db.get_db()
    return db.assignments(conn, g.reader["id"]), db.answers(conn, g.reader["id"])


def reader_item(position: int) -> tuple[list[tuple[str, int]], dict, str, int]:
    """:func:`reader_state` and the case id and read of the item at 1-based ``position``
    (404 when the reader has no such item)."""
    order, answered = reader_state()
    if not 1 <= position <= len(order):
        abort(404)
    case_id, read = order[position - 1]
    return order, answered, case_id, read


def first_unanswered(order, answered, after: int = 0) -> int | None:
    """1-based position of the first unanswered item after ``after`` (wrapping)."""
    n = len(order)
    for step in range(n):
        pos = (after + step) % n + 1
        if order[pos - 1] not in answered:
            return pos
    return None


@bp.get("/")
@auth.reader_required
def overview():
    order, answered = reader_state()
    items = [{"position": i + 1, "done": it in answered} for i, it in enumerate(order)]
    return render_template(
        "overview.html",
        items=items,
        n_done=len(answered),
        n=len(order),
        resume=first_unanswered(order, answered),
        finished=bool(g.reader["finished"]),
    )


def _redeem(conn, token: str) -> int | None:
    """The id of the reader whose invitation ``token`` is (used up now), else None."""
    row = db.redeem_invitation(conn, auth.hash_token(token))
    return None if row is None else int(row["id"])


@bp.route("/login", methods=["GET", "POST"])
def login():
    return sessions.token_login(
        "login.html", _redeem, key="reader_id", event="login",
        error="Unknown, used or expired invitation. Invitations work once; ask the study "
        "organiser for a new link.",
        then="reader.resume",
    )


@bp.post("/logout")
def logout():
    if g.reader is not None:
        db.log_event(db.get_db(), int(g.reader["id"]), "logout", None, {})
    elif session.get("admin"):
        db.log_event(db.get_db(), None, "admin-logout", None, {})
    session.regenerate()
    return redirect(url_for("reader.login"))


@bp.get("/resume")
@auth.reader_required
def resume():
    order, answered = reader_state()
    pos = first_unanswered(order, answered)
    if pos is None or g.reader["finished"]:
        return redirect(url_for("reader.overview"))
    return redirect(url_for("reader.case_page", position=pos))


def render_case(position: int, order, answered, *, form=None, errors=(), status=200):
    study = get_study()
    case_id, read = order[position - 1]
    case = study.cases[case_id]
    reader_id = int(g.reader["id"])
    letters = db.label_order(db.get_db(), reader_id, case_id, read)
    panels = case["panels"]

    def url(token: str) -> str:
        return url_for("reader.data", tag=study.tag(reader_id, token))

    data = {
        "shape": case["shape"],
        "spacing": case["spacing"],
        "offset": case["offset"],
        "scale": case["scale"],
        "presets": case["presets"],
        "labels": list(letters),
        "fixed": url(panels["fixed"]),
        "moving": url(panels["moving"]),
        "moving_subtraction": url(panels["moving_subtraction"]),
        "panels": {
            label: {kind: url(panels["results"][slot][kind]) for kind in ("warped", "subtraction")}
            for label, slot in letters.items()
        },
    }
    locked = bool(g.reader["finished"]) or db.locked(db.get_db(), reader_id, case_id, read)
    saved = answered.get((case_id, read), {})
    if form is not None:  # a rejected submission is shown again as sent
        ranks = form["ranks"]
        cannot_judge, comment = form["cannot_judge"], form["comment"]
    else:
        ranks = saved.get("ranks", {})
        cannot_judge, comment = saved.get("state") == "cannot-judge", saved.get("comment", "")
    return render_template(
        "case.html",
        case_id=case_id,
        position=position,
        n=len(order),
        data=data,
        labels=list(letters),
        ranks=ranks,
        cannot_judge=cannot_judge,
        comment=comment,
        options=study.options,
        max_comment=MAX_COMMENT,
        errors=list(errors),
        n_done=len(answered),
        finished=bool(g.reader["finished"]),
        locked=locked,
        idle_minutes=current_app.config["SESSION_IDLE_SECONDS"] / 60,
        prev=position - 1 if position > 1 else None,
        next=position + 1 if position < len(order) else None,
    ), status


@bp.get("/case/<position:position>")
@auth.reader_required
def case_page(position: int):
    order, answered, case_id, read = reader_item(position)
    db.log_event(
        db.get_db(), int(g.reader["id"]), "view", case_id, {"position": position}, read=read
    )
    return render_case(position, order, answered)


@bp.post("/case/<position:position>")
@auth.reader_required
def submit_case(position: int):
    """Save the reader's answer to the item at ``position``: 409 when it is locked, 400 with the
    problems when the form is not a valid answer (nothing saved), else on to the next unanswered
    item."""
    order, answered, case_id, read = reader_item(position)
    reader_id = int(g.reader["id"])
    conn = db.get_db()
    if g.reader["finished"]:
        abort(409, description="You have finished the study; answers can no longer change.")
    if db.locked(conn, reader_id, case_id, read):
        abort(409, description="This case is locked: the organiser reopened other cases only.")
    study = get_study()
    labels = list(db.label_order(conn, reader_id, case_id, read))
    cannot_judge = bool(study.options["cannot_judge"]) and request.form.get("cannot_judge") == "1"
    comment = (request.form.get("comment") or "").strip() if study.options["comment"] else ""
    if cannot_judge:
        ranks, problems = {}, []
    else:
        ranks, problems = parse_ranks(request.form, labels)
    active, time_problems = parse_active_ms(request.form.get("active_ms"))
    problems += time_problems
    if len(comment) > MAX_COMMENT:
        problems.append(f"comment has {len(comment)} characters, at most {MAX_COMMENT} allowed")
    if problems:
        db.log_event(conn, reader_id, "answer-rejected", case_id, {"problems": problems}, read=read)
        if auth.wants_json():
            return {"errors": problems}, 400
        form = {"ranks": ranks, "cannot_judge": cannot_judge, "comment": comment}
        return render_case(position, order, answered, form=form, errors=problems, status=400)
    try:
        db.save_answer(
            conn,
            reader_id,
            case_id,
            read,
            ranks,
            active_seconds=active,
            cannot_judge=cannot_judge,
            comment=comment,
        )
    except BenchError as exc:
        abort(409, description=str(exc))
    answered[(case_id, read)] = {"ranks": ranks}
    nxt = first_unanswered(order, answered, after=position)
    if nxt is None:
        flash("Every case is answered. Review your answers or press Finish.")
        target = url_for("reader.overview")
    else:
        target = url_for("reader.case_page", position=nxt)
    return {"next": target} if auth.wants_json() else redirect(target)


@bp.post("/finish")
@auth.reader_required
def finish():
    order, _ = reader_state()
    try:
        db.finish(db.get_db(), int(g.reader["id"]), len(order))
    except BenchError as exc:
        abort(409, description=str(exc))
    flash("Thank you: your answers are saved and locked.")
    return redirect(url_for("reader.overview"))


@bp.get("/data/<tag>")
@auth.reader_required
def data(tag: str):
    study = get_study()
    path = study.tags(int(g.reader["id"])).get(tag) if TOKEN_RE.fullmatch(tag) else None
    if path is None or path.parent != study.data_dir or not path.is_file():
        abort(404)
    # streamed without Last-Modified/ETag: file times must not hint at the write order
    size = path.stat().st_size
    response = Response(
        wrap_file(request.environ, path.open("rb")),
        mimetype="application/octet-stream",
        direct_passthrough=True,
    )
    response.content_length = size
    # patient images never go to the browser's disk cache: the page keeps each volume in memory
    response.headers["Cache-Control"] = "no-store"
    return response
