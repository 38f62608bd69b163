"""The reader-study web app (Flask): login, progress, blinded case pages, ranking, admin page.

:func:`create_app` builds the app for one study folder. It reads only the public ``study.json``,
the opaque panel files under ``data/`` and the SQLite database; it never opens the private key,
so method names cannot reach a reader. Pages are server-rendered Jinja templates with one local
script (``static/viewer.js``) that draws the panels with window/level on canvases. Every POST is
CSRF-checked, the session cookie is HttpOnly and SameSite=Lax, and responses carry a strict
Content-Security-Policy (no external origin at all: the app works offline).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wsgi import wrap_file

from benchmark.errors import BenchError
from benchmark.reader_study import auth, db
from benchmark.reader_study.prepare import load_study

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"[0-9a-f]{32}")
RANK_RE = re.compile(r"[0-9]{1,3}")
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


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


def create_app(study_dir: str | os.PathLike, *, testing: bool = False) -> Flask:
    """Build the Flask app serving the study in ``study_dir``.

    Parameters
    ----------
    study_dir : path
        Folder written by ``bench reader-study create`` (``study.json``, ``data/``,
        ``study.db``).
    testing : bool, default False
        Flask testing mode (exceptions propagate to the test client).
    """
    study_dir = Path(study_dir).resolve()
    study = load_study(study_dir)
    db_path = study_dir / db.DB_NAME
    conn = db.connect(db_path)
    try:
        secret_key = db.setting(conn, "secret_key")
        admin_hash = db.setting(conn, "admin_token_hash")
    finally:
        conn.close()

    cases = {c["id"]: c for c in study["cases"]}
    data_dir = (study_dir / "data").resolve()
    files: dict[str, Path] = {}  # whitelist: opaque id -> file, nothing else is ever served
    for case in study["cases"]:
        tokens = [case["panels"]["fixed"]] + [
            case["panels"][label][kind]
            for label in case["labels"]
            for kind in ("warped", "subtraction")
        ]
        for token in tokens:
            if not TOKEN_RE.fullmatch(token):
                raise BenchError(f"{study_dir}/study.json: malformed panel id {token!r}")
            files[token] = data_dir / f"{token}.bin"

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        TESTING=testing,
        SESSION_COOKIE_NAME="reader_study_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("READER_STUDY_SECURE_COOKIES") == "1",
        MAX_CONTENT_LENGTH=64 * 1024,
        STUDY_DIR=str(study_dir),
    )
    app.jinja_env.globals["csrf_token"] = auth.csrf_token

    def get_db() -> sqlite3.Connection:
        if "db" not in g:
            g.db = db.connect(db_path)
        return g.db

    @app.teardown_appcontext
    def close_db(_exc=None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.before_request
    def load_user() -> None:
        auth.check_csrf()
        g.reader = None
        reader_id = session.get("reader_id")
        if reader_id is not None:
            row = db.reader(get_db(), int(reader_id))
            if row is None:
                session.pop("reader_id", None)
            else:
                g.reader = row

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.endpoint not in ("static", "data"):
            response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
        return response

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(409)
    @app.errorhandler(413)
    def error(exc):
        return render_template(
            "error.html", code=exc.code, name=exc.name, message=exc.description
        ), exc.code

    # ------------------------------------------------------------------ helpers
    def reader_state() -> tuple[list[str], dict[str, dict[str, int]]]:
        conn = get_db()
        return db.assignments(conn, g.reader["id"]), db.answers(conn, g.reader["id"])

    def first_unanswered(order, answered, after: int = 0) -> int | None:
        """1-based position of the first unanswered case after ``after`` (wrapping)."""
        n = len(order)
        for step in range(n):
            pos = (after + step) % n + 1
            if order[pos - 1] not in answered:
                return pos
        return None

    # ------------------------------------------------------------------ reader pages
    @app.get("/")
    @auth.reader_required
    def overview():
        order, answered = reader_state()
        items = [{"position": i + 1, "case": c, "done": c in answered} for i, c in enumerate(order)]
        return render_template(
            "overview.html",
            items=items,
            n_done=len(answered),
            n=len(order),
            resume=first_unanswered(order, answered),
            finished=bool(g.reader["finished"]),
        )

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return render_template("login.html", token=request.args.get("token", ""))
        token = request.form.get("token", "").strip()
        row = db.reader_by_token_hash(get_db(), auth.hash_token(token)) if token else None
        if row is None:
            db.log_event(get_db(), None, "login-failed", None, {})
            return render_template(
                "login.html", token="", error="Unknown or invalid invitation token."
            ), 403
        session.clear()
        session["reader_id"] = int(row["id"])
        auth.csrf_token()
        db.log_event(get_db(), int(row["id"]), "login", None, {})
        return redirect(url_for("resume"))

    @app.post("/logout")
    def logout():
        if g.reader is not None:
            db.log_event(get_db(), int(g.reader["id"]), "logout", None, {})
        session.clear()
        return redirect(url_for("login"))

    @app.get("/resume")
    @auth.reader_required
    def resume():
        order, answered = reader_state()
        pos = first_unanswered(order, answered)
        if pos is None or g.reader["finished"]:
            return redirect(url_for("overview"))
        return redirect(url_for("case_page", position=pos))

    def render_case(position: int, order, answered, *, ranks=None, errors=(), status=200):
        case_id = order[position - 1]
        case = cases[case_id]
        panels = case["panels"]
        data = {
            "shape": case["shape"],
            "spacing": case["spacing"],
            "offset": case["offset"],
            "scale": case["scale"],
            "presets": case["presets"],
            "labels": case["labels"],
            "fixed": url_for("data", token=panels["fixed"]),
            "panels": {
                label: {
                    kind: url_for("data", token=panels[label][kind])
                    for kind in ("warped", "subtraction")
                }
                for label in case["labels"]
            },
        }
        current = ranks if ranks is not None else answered.get(case_id, {})
        return render_template(
            "case.html",
            case_id=case_id,
            position=position,
            n=len(order),
            data=data,
            labels=case["labels"],
            ranks=current,
            errors=list(errors),
            n_done=len(answered),
            finished=bool(g.reader["finished"]),
            prev=position - 1 if position > 1 else None,
            next=position + 1 if position < len(order) else None,
        ), status

    @app.get("/case/<int:position>")
    @auth.reader_required
    def case_page(position: int):
        order, answered = reader_state()
        if not 1 <= position <= len(order):
            abort(404)
        db.log_event(
            get_db(), int(g.reader["id"]), "view", order[position - 1], {"position": position}
        )
        return render_case(position, order, answered)

    @app.post("/case/<int:position>")
    @auth.reader_required
    def submit_case(position: int):
        order, answered = reader_state()
        if not 1 <= position <= len(order):
            abort(404)
        if g.reader["finished"]:
            abort(409, description="You have finished the study; answers can no longer change.")
        case_id = order[position - 1]
        ranks, problems = parse_ranks(request.form, cases[case_id]["labels"])
        reader_id = int(g.reader["id"])
        if problems:
            db.log_event(get_db(), reader_id, "answer-rejected", case_id, {"problems": problems})
            return render_case(position, order, answered, ranks=ranks, errors=problems, status=400)
        try:
            active = float(request.form.get("active_ms", "0") or 0) / 1000.0
        except ValueError:
            active = 0.0
        try:
            db.save_answer(get_db(), reader_id, case_id, ranks, active_seconds=active)
        except BenchError as exc:
            abort(409, description=str(exc))
        answered[case_id] = ranks
        nxt = first_unanswered(order, answered, after=position)
        if nxt is None:
            flash("Every case is ranked. Review your answers or press Finish.")
            return redirect(url_for("overview"))
        return redirect(url_for("case_page", position=nxt))

    @app.post("/finish")
    @auth.reader_required
    def finish():
        order, _ = reader_state()
        try:
            db.finish(get_db(), int(g.reader["id"]), len(order))
        except BenchError as exc:
            abort(409, description=str(exc))
        flash("Thank you: your rankings are saved and locked.")
        return redirect(url_for("overview"))

    @app.get("/data/<token>")
    @auth.reader_required
    def data(token: str):
        path = files.get(token) if TOKEN_RE.fullmatch(token) else None
        if path is None or path.parent != data_dir or not path.is_file():
            abort(404)
        # streamed without Last-Modified/ETag: file times must not hint at the write order
        size = path.stat().st_size
        response = Response(
            wrap_file(request.environ, path.open("rb")),
            mimetype="application/octet-stream",
            direct_passthrough=True,
        )
        response.content_length = size
        response.headers["Cache-Control"] = "private, max-age=86400"
        return response

    # ------------------------------------------------------------------ admin
    @app.route("/admin/login", methods=["GET", "POST"])
    def admin_login():
        if request.method == "GET":
            return render_template("admin_login.html")
        token = request.form.get("token", "").strip()
        if not token or not auth.same(auth.hash_token(token), admin_hash):
            db.log_event(get_db(), None, "admin-login-failed", None, {})
            return render_template("admin_login.html", error="Invalid admin token."), 403
        session.clear()
        session["admin"] = True
        auth.csrf_token()
        db.log_event(get_db(), None, "admin-login", None, {})
        return redirect(url_for("admin"))

    @app.get("/admin")
    @auth.admin_required
    def admin():
        rows = db.progress(get_db())
        return render_template("admin.html", readers=rows, n_cases=len(cases))

    return app
