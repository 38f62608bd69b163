"""Adversarial pass over every route and form field of the reader-study app (issue 30), table
driven: each case is (who, method, route, field, bad value) -> the expected status, and after it
nothing is stored (answers, responses, readers, assignments, letter orders, settings and sessions
unchanged; the event log gains at most the reader's own ``view`` / ``answer-rejected`` records).

Who: an anonymous visitor, a logged-in reader (``atk``, whose fellow reader ``victim`` is the
target of the IDOR cases) and the logged-in admin. The app is the one ``serve`` builds (Host check
on), with the login limit raised so the many failed logins of the table are answered 403, not 429
(the limit has its own test in ``test_reader_study.py``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_run import make_fake_run
from test_reader_study import set_admin_token
from werkzeug.datastructures import MultiDict

from benchmark.cli import main
from benchmark.reader_study import auth, db, limits
from benchmark.reader_study.app import create_app
from benchmark.reader_study.prepare import load_study
from benchmark.reader_study.study import Study

#: Stand-ins filled in when a case runs.
CSRF, ADMIN_CSRF, VICTIM_TAG, OWN_TAG = "<csrf>", "<admin csrf>", "<victim tag>", "<own tag>"
USED_TOKEN, ADMIN_TOKEN, READER_TOKEN = "<used token>", "admintoken", "<victim token>"
#: Values no numeric or rank field may accept.
BAD_NUMBERS = [
    "",
    " ",
    "-1",
    "+1",
    "1.0",
    "1e0",
    "0x1",
    "1_0",
    " 1",
    "1 ",
    "\u0661",  # Arabic-Indic one
    "\u00b2",  # superscript two
    "\uff11",  # fullwidth one
    "1" * 25,
    "9" * 400,
    "\x00",
    "1\x00",
    "nan",
    "inf",
    "1 OR 1=1",
    "1; DROP TABLE readers",
    "<script>alert(1)</script>",
    "x" * 10_000,
]
#: Values no token field may accept (besides the stand-ins).
BAD_TOKENS = [
    "",
    " ",
    "x",
    "' OR '1'='1",
    "%00",
    "\x00",
    "t" * 32,
    "x" * 10_000,
    "\u00e9" * 32,
    "../../study.db",
]
BAD_CSRF = [None, "", " ", "x", "forged", ADMIN_CSRF + "!", "0" * 43]


@dataclass(frozen=True)
class Case:
    """One attack: ``who`` sends ``method path`` with ``form`` (None removes a field; a list
    repeats it) and extra ``headers``; ``status`` is the expected answer."""

    id: str
    who: str  # "anonymous", "reader", "admin"
    method: str
    path: str
    status: int
    form: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None


RANKS = {"rank_A": "1", "rank_B": "2", "rank_C": "3"}


def _cases() -> list[Case]:
    """The table (long because it is one table: route x field x bad value)."""
    cases: list[Case] = []
    add = cases.append
    # --- POST /case/1: each rank field, active_ms, cannot_judge, comment, csrf, structure
    # (a rank may carry spaces around its digits: test_parse_ranks_accepts_exactly_permutations)
    bad_ranks = [v for v in BAD_NUMBERS if v.strip() != "1"] + ["0", "4", "99", "01 1"]
    for label in "ABC":
        for i, value in enumerate(bad_ranks):
            add(
                Case(
                    f"case-rank_{label}-{i}",
                    "reader",
                    "POST",
                    "/case/1",
                    400,
                    {**RANKS, f"rank_{label}": value, "csrf_token": CSRF},
                )
            )
        add(
            Case(
                f"case-rank_{label}-missing",
                "reader",
                "POST",
                "/case/1",
                400,
                {**RANKS, f"rank_{label}": None, "csrf_token": CSRF},
            )
        )
        add(
            Case(
                f"case-rank_{label}-twice",
                "reader",
                "POST",
                "/case/1",
                400,
                {**RANKS, f"rank_{label}": ["1", "1"], "csrf_token": CSRF},
            )
        )
    for extra in ("rank_D", "rank_a", "rank_", "rank_AA", "rank_A "):
        add(
            Case(
                f"case-extra-{extra}",
                "reader",
                "POST",
                "/case/1",
                400,
                {**RANKS, extra: "1", "csrf_token": CSRF},
            )
        )
    add(
        Case(
            "case-ties",
            "reader",
            "POST",
            "/case/1",
            400,
            {"rank_A": "1", "rank_B": "1", "rank_C": "2", "csrf_token": CSRF},
        )
    )
    for i, value in enumerate(
        [v for v in BAD_NUMBERS if v != ""] + ["86400001", "-0", "1e12", "0.5"]
    ):
        add(
            Case(
                f"case-active_ms-{i}",
                "reader",
                "POST",
                "/case/1",
                400,
                {**RANKS, "active_ms": value, "csrf_token": CSRF},
            )
        )
    for i, value in enumerate(["yes", "true", "on", "2", "\u0661", "1 "]):  # not "1": rank needed
        add(
            Case(
                f"case-cannot_judge-{i}",
                "reader",
                "POST",
                "/case/1",
                400,
                {"cannot_judge": value, "csrf_token": CSRF},
            )
        )
    add(
        Case(
            "case-comment-too-long",
            "reader",
            "POST",
            "/case/1",
            400,
            {**RANKS, "comment": "x" * 2001, "csrf_token": CSRF},
        )
    )
    for i, value in enumerate(BAD_CSRF):
        add(
            Case(f"case-csrf-{i}", "reader", "POST", "/case/1", 400, {**RANKS, "csrf_token": value})
        )
    add(
        Case(
            "case-csrf-of-the-admin",
            "reader",
            "POST",
            "/case/1",
            400,
            {**RANKS, "csrf_token": ADMIN_CSRF},
        )
    )
    add(
        Case(
            "case-csrf-in-query-only",
            "reader",
            "POST",
            f"/case/1?csrf_token={CSRF}",
            400,
            dict(RANKS),
        )
    )
    # --- the case position in the URL
    for i, pos in enumerate(
        [
            "0",
            "5",
            "-1",
            "\u0661",
            "\uff11",
            "\u00b2",
            "1" * 25,
            "1.0",
            "1%00",
            "abc",
            "1/..",
            "..%2f1",
            "%EF%BC%91",
        ]
    ):
        add(Case(f"case-position-get-{i}", "reader", "GET", f"/case/{pos}", 404))
        add(
            Case(
                f"case-position-post-{i}",
                "reader",
                "POST",
                f"/case/{pos}",
                404,
                {**RANKS, "csrf_token": CSRF},
            )
        )
    # --- anonymous posts to reader and admin routes: refused, nothing read
    for path in ("/case/1", "/finish", "/admin/reopen", "/admin/remove"):
        add(
            Case(
                f"anonymous-post{path.replace('/', '-')}",
                "anonymous",
                "POST",
                path,
                401,
                {
                    **RANKS,
                    "reader_id": "2",
                    "position": "1",
                    "confirm": "victim",
                    "csrf_token": CSRF,
                },
            )
        )
    for path in ("/", "/resume", "/case/1", "/admin", "/admin/answers.csv", f"/data/{OWN_TAG}"):
        add(Case(f"anonymous-get{path.replace('/', '-')}", "anonymous", "GET", path, 302))
    # --- the reader on admin routes (IDOR / privilege)
    for path, form in (
        ("/admin/reopen", {"reader_id": "2", "position": "1"}),
        ("/admin/remove", {"reader_id": "2", "confirm": "victim"}),
    ):
        add(
            Case(
                f"reader-post{path.replace('/', '-')}",
                "reader",
                "POST",
                path,
                302,
                {**form, "csrf_token": CSRF},
            )
        )
    for path in ("/admin", "/admin/answers.csv"):
        add(Case(f"reader-get{path.replace('/', '-')}", "reader", "GET", path, 302))
    # --- POST /finish with unanswered cases, or a bad csrf
    add(Case("finish-unanswered", "reader", "POST", "/finish", 409, {"csrf_token": CSRF}))
    for i, value in enumerate(BAD_CSRF):
        add(Case(f"finish-csrf-{i}", "reader", "POST", "/finish", 400, {"csrf_token": value}))
        add(Case(f"logout-csrf-{i}", "reader", "POST", "/logout", 400, {"csrf_token": value}))
    # --- panel data: malformed, unlisted, another reader's tag
    for i, tag in enumerate(
        [
            VICTIM_TAG,
            "f" * 32,
            "F" * 32,
            "0" * 31,
            "0" * 33,
            "..%2fstudy.json",
            "%2e%2e",
            "study.json",
            "../key/key.json",
            OWN_TAG + ".bin",
            OWN_TAG.upper(),
            OWN_TAG + "%00",
        ]
    ):
        add(Case(f"data-{i}", "reader", "GET", f"/data/{tag}", 404))
    # --- both logins: token and csrf fields
    for path in ("/login", "/admin/login"):
        name = path.strip("/").replace("/", "-")
        for i, token in enumerate([*BAD_TOKENS, USED_TOKEN]):
            add(
                Case(
                    f"{name}-token-{i}",
                    "anonymous",
                    "POST",
                    path,
                    403,
                    {"token": token, "csrf_token": CSRF},
                )
            )
        add(Case(f"{name}-token-missing", "anonymous", "POST", path, 403, {"csrf_token": CSRF}))
        add(
            Case(
                f"{name}-token-twice",
                "anonymous",
                "POST",
                path,
                403,
                {"token": ["x", "y"], "csrf_token": CSRF},
            )
        )
        for i, value in enumerate(BAD_CSRF):
            add(
                Case(
                    f"{name}-csrf-{i}",
                    "anonymous",
                    "POST",
                    path,
                    400,
                    {
                        "token": READER_TOKEN if path == "/login" else ADMIN_TOKEN,
                        "csrf_token": value,
                    },
                )
            )
        add(
            Case(
                f"{name}-token-in-query",
                "anonymous",
                "POST",
                f"{path}?token={READER_TOKEN if path == '/login' else ADMIN_TOKEN}",
                403,
                {"csrf_token": CSRF},
            )
        )
    add(
        Case(
            "login-with-the-admin-token",
            "anonymous",
            "POST",
            "/login",
            403,
            {"token": ADMIN_TOKEN, "csrf_token": CSRF},
        )
    )
    add(
        Case(
            "admin-login-with-a-reader-token",
            "anonymous",
            "POST",
            "/admin/login",
            403,
            {"token": READER_TOKEN, "csrf_token": CSRF},
        )
    )
    # --- admin forms: reader_id, position, confirm
    for i, value in enumerate(BAD_NUMBERS):
        add(
            Case(
                f"reopen-reader_id-{i}",
                "admin",
                "POST",
                "/admin/reopen",
                400,
                {"reader_id": value, "position": "1", "csrf_token": ADMIN_CSRF},
            )
        )
        add(
            Case(
                f"reopen-position-{i}",
                "admin",
                "POST",
                "/admin/reopen",
                400,
                {"reader_id": "2", "position": value, "csrf_token": ADMIN_CSRF},
            )
        )
        add(
            Case(
                f"remove-reader_id-{i}",
                "admin",
                "POST",
                "/admin/remove",
                400,
                {"reader_id": value, "confirm": "victim", "csrf_token": ADMIN_CSRF},
            )
        )
    for i, (reader_id, position) in enumerate(
        [("0", "1"), ("999999999", "1"), ("2", "0"), ("2", "5"), ("2", "999999999")]
    ):
        add(
            Case(
                f"reopen-unknown-{i}",
                "admin",
                "POST",
                "/admin/reopen",
                404,
                {"reader_id": reader_id, "position": position, "csrf_token": ADMIN_CSRF},
            )
        )
    for i, value in enumerate(
        [None, "", "VICTIM", " victim", "victim ", "vict", "atk", "x" * 10_000, "victim\x00"]
    ):
        add(
            Case(
                f"remove-confirm-{i}",
                "admin",
                "POST",
                "/admin/remove",
                400,
                {"reader_id": "2", "confirm": value, "csrf_token": ADMIN_CSRF},
            )
        )
    for path in ("/admin/reopen", "/admin/remove"):
        for i, value in enumerate(BAD_CSRF + [CSRF]):
            add(
                Case(
                    f"{path.strip('/').replace('/', '-')}-csrf-{i}",
                    "admin",
                    "POST",
                    path,
                    400,
                    {"reader_id": "2", "position": "1", "confirm": "victim", "csrf_token": value},
                )
            )
    # --- bodies: media types, size, field count (before anything reads the form)
    for i, content_type in enumerate(
        ["multipart/form-data; boundary=b", "application/json", "text/plain", "application/xml", ""]
    ):
        for who, path in (
            ("reader", "/case/1"),
            ("anonymous", "/login"),
            ("admin", "/admin/reopen"),
        ):
            add(
                Case(
                    f"media-{i}-{who}",
                    who,
                    "POST",
                    path,
                    415,
                    body=b"rank_A=1&token=x&reader_id=2&position=1",
                    content_type=content_type,
                )
            )
    many = {f"f{i}": "" for i in range(limits.MAX_FORM_FIELDS)}
    for who, path, token in (
        ("reader", "/case/1", CSRF),
        ("anonymous", "/login", CSRF),
        ("admin", "/admin/reopen", ADMIN_CSRF),
    ):
        add(
            Case(
                f"fields-{who}",
                who,
                "POST",
                path,
                413,
                {**RANKS, **many, "reader_id": "2", "position": "1", "csrf_token": token},
            )
        )
        add(
            Case(
                f"size-{who}",
                who,
                "POST",
                path,
                413,
                {
                    **RANKS,
                    "comment": "x" * limits.MAX_BODY_BYTES,
                    "reader_id": "2",
                    "position": "1",
                    "csrf_token": token,
                },
            )
        )
    # --- methods and hosts
    for path in (
        "/case/1",
        "/login",
        "/finish",
        "/admin/reopen",
        "/admin/answers.csv",
        f"/data/{OWN_TAG}",
    ):
        for method in ("PUT", "DELETE", "PATCH"):
            add(
                Case(
                    f"method-{method}{path.replace('/', '-')}",
                    "reader",
                    method,
                    path,
                    405,
                    {"csrf_token": CSRF},
                )
            )
    for i, host in enumerate(
        [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1:80@evil",
            "[::1]",
            "localhost:8000.evil",
        ]
    ):
        add(
            Case(
                f"host-{i}",
                "reader",
                "POST",
                "/case/1",
                400,
                {**RANKS, "csrf_token": CSRF},
                headers={"Host": host},
            )
        )
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The study (3 cases, 'cannot judge' and comments on), readers ``atk`` (logged in, id 1)
    and ``victim`` (id 2, one case answered), the logged-in admin, and the app."""
    root = tmp_path_factory.mktemp("attacks")
    run = make_fake_run(root / "fake", methods=("elastix", "unet-nmi", "poolnet-nmi"), n_cases=4)
    study = root / "study"
    args = [
        "--methods",
        "elastix,unet-nmi,poolnet-nmi",
        "--cases",
        "4",
        "--comment",
        "--cannot-judge",
        "--out",
        str(study),
    ]
    assert main(["reader-study", "create", str(run), *args]) == 0
    set_admin_token(study, ADMIN_TOKEN)
    cases = {c["id"]: len(c["panels"]["results"]) for c in load_study(study)["cases"]}
    tokens = {}
    conn = db.connect(study / db.DB_NAME)
    for name in ("atk", "victim"):
        tokens[name] = auth.new_token()
        db.add_reader(
            conn,
            name,
            invite_hash=auth.hash_token(tokens[name]),
            invite_expires=time.time() + 3600,
            cases=cases,
        )
    victim_token = auth.new_token()  # a live invitation of the victim (refused at admin login)
    db.set_invitation(conn, 2, auth.hash_token(victim_token), time.time() + 3600)
    conn.close()
    app = create_app({"STUDY_DIR": study, "TRUSTED_HOSTS": ["localhost"], "LOGIN_FAILURES": 10**9})
    clients = {"reader": app.test_client(), "admin": app.test_client()}
    for who, path, token in (
        ("reader", "/login", tokens["atk"]),
        ("admin", "/admin/login", ADMIN_TOKEN),
    ):
        page = clients[who].get(path)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        resp = clients[who].post(path, data={"token": token, "csrf_token": csrf})
        assert resp.status_code == 302
    reader_csrf = re.search(
        r'name="csrf_token" value="([^"]+)"', clients["reader"].get("/case/1").text
    ).group(1)
    admin_csrf = re.search(
        r'name="csrf_token" value="([^"]+)"', clients["admin"].get("/admin").text
    ).group(1)
    panel = load_study(study)["cases"][0]["panels"]["fixed"]
    secret = db.setting(db.connect(study / db.DB_NAME), "secret_key")
    tags = Study(study, secret=secret)
    assert clients["reader"].get(f"/data/{tags.tag(1, panel)}").status_code == 200
    return {
        "app": app,
        "study": study,
        "clients": clients,
        "values": {
            CSRF: reader_csrf,
            ADMIN_CSRF: admin_csrf,
            VICTIM_TAG: tags.tag(2, panel),
            OWN_TAG: tags.tag(1, panel),
            USED_TOKEN: tokens["atk"],
            READER_TOKEN: victim_token,
        },
    }


def _fill(value, values: dict):
    if isinstance(value, str):
        for stand_in, real in values.items():
            value = value.replace(stand_in, real)
    return value


def _state(study: Path) -> dict:
    conn = sqlite3.connect(study / db.DB_NAME)
    try:
        tables = (
            "answers",
            "responses",
            "readers",
            "assignments",
            "label_orders",
            "settings",
            "sessions",
        )
        out = {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
        out["events"] = [
            tuple(r) for r in conn.execute("SELECT id, reader_id, kind FROM events ORDER BY id")
        ]
        return out
    finally:
        conn.close()


def test_the_table_covers_every_route_and_field():
    """Every route of the app is attacked, and every form field a view reads."""
    routes = {c.path.split("?")[0] for c in CASES}
    fields = {k for c in CASES for k in c.form}
    assert {
        "/case/1",
        "/finish",
        "/logout",
        "/login",
        "/admin/login",
        "/admin/reopen",
        "/admin/remove",
        "/admin",
        "/admin/answers.csv",
        "/",
        "/resume",
    } <= routes
    assert any(p.startswith("/data/") for p in routes)
    assert {
        "rank_A",
        "rank_B",
        "rank_C",
        "active_ms",
        "cannot_judge",
        "comment",
        "csrf_token",
        "token",
        "reader_id",
        "position",
        "confirm",
    } <= fields
    assert len(CASES) == len({c.id for c in CASES})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_attack(world, case):
    values = world["values"]
    client = world["app"].test_client() if case.who == "anonymous" else world["clients"][case.who]
    if case.who == "anonymous":
        page = client.get("/login")
        values = {
            **values,
            CSRF: re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1),
        }
    form = []
    for key, value in case.form.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                form.append((key, _fill(item, values)))
    before = _state(world["study"])
    kwargs = {"headers": {k: _fill(v, values) for k, v in case.headers.items()}}
    if case.body is not None:
        kwargs.update(data=case.body, content_type=case.content_type)
    elif case.method not in ("GET", "HEAD"):
        kwargs["data"] = MultiDict(form)
    resp = client.open(_fill(case.path, values), method=case.method, **kwargs)
    assert resp.status_code == case.status, resp.get_data(as_text=True)[-600:]
    after = _state(world["study"])
    new_events = after.pop("events")[len(before.pop("events")) :]
    assert after == before, "something was stored"
    allowed = {"view", "answer-rejected"} if case.who == "reader" else set()
    assert {kind for _, _, kind in new_events} <= allowed, new_events
    assert all(reader_id == 1 for _, reader_id, _ in new_events)
    if resp.status_code >= 400:  # an error never reflects markup or a traceback
        text = resp.get_data(as_text=True)
        assert "<script>alert" not in text and "Traceback" not in text
