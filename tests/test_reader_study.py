"""Tests of the blinded reader study (``benchmark.reader_study``): case selection, one rendering
pipeline, blinding of everything a reader can reach, randomisation (seeded case orders,
cryptographic per-reader label orders), rank validation, reader isolation, CSRF, path traversal,
private files, server-side sessions, one-time invitations, time fields, resume/finish, admin
actions, WAL + append-only event log, concurrency (in-process and against a real server killed
mid-write), export and analysis.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sqlite3
import stat
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
import pandas as pd
import pytest
from fake_run import make_fake_run
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement, read_image
from benchmark.reader_study import auth, db
from benchmark.reader_study.app import create_app
from benchmark.reader_study.export import rankings_table
from benchmark.reader_study.prepare import decode, load_key, load_study, panel_tokens
from benchmark.reader_study.reader import parse_ranks

METHODS = ("elastix", "unet-nmi", "poolnet-nmi")
SEED = 3
N_CASES = 4
# everything that would identify a method (registry names and their parts)
FORBIDDEN = ("identity", "elastix", "unet", "u-net", "poolnet", "nmi", "ncc", "convir")


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A fake run (5 pairs, 6 methods) and a study of its 4 most deformed pairs."""
    root = tmp_path_factory.mktemp("rs")
    run = make_fake_run(root / "fake", n_cases=5, seed=1)
    out = root / "study"
    assert (
        main(
            [
                "reader-study",
                "create",
                str(run),
                "--methods",
                ",".join(METHODS),
                "--cases",
                str(N_CASES),
                "--seed",
                str(SEED),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return run, out


@pytest.fixture
def study(template, tmp_path):
    """A fresh copy of the template study (each test gets its own database)."""
    _, src = template
    dst = tmp_path / "study"
    shutil.copytree(src, dst)
    return dst


def make_app(study: Path, **config):
    """The app of ``study`` in testing mode (extra Flask/app settings as keywords)."""
    return create_app({"STUDY_DIR": study, "TESTING": True, **config})


def add_reader(study: Path, name: str) -> str:
    """Add a reader as ``bench reader-study add-reader`` does; return their invitation token."""
    token = auth.new_token()
    st_ = load_study(study)
    conn = db.connect(study / db.DB_NAME)
    try:
        db.add_reader(
            conn,
            name,
            invite_hash=auth.hash_token(token),
            invite_expires=time.time() + 3600,
            cases={c["id"]: len(c["panels"]["results"]) for c in st_["cases"]},
            repeats=st_["options"]["repeats"],
            per_reader_labels=st_["options"]["per_reader_labels"],
        )
    finally:
        conn.close()
    return token


def new_invitation(study: Path, name: str) -> str:
    """A fresh invitation for an existing reader (as ``rotate``)."""
    token = auth.new_token()
    conn = db.connect(study / db.DB_NAME)
    try:
        row = db.reader_by_name(conn, name)
        db.set_invitation(conn, int(row["id"]), auth.hash_token(token), time.time() + 3600)
    finally:
        conn.close()
    return token


def set_admin_token(study: Path, token: str = "admintoken") -> None:
    """Give ``study`` a known admin token (``create`` prints a random one once)."""
    conn = sqlite3.connect(study / db.DB_NAME)
    conn.execute(
        "UPDATE settings SET value = ? WHERE key = 'admin_token_hash'", (auth.hash_token(token),)
    )
    conn.commit()
    conn.close()


def methods_of(study: Path, reader_id: int, case: str, read: int = 1) -> dict[str, str]:
    """Letter -> method of one reader's item (letter -> slot in the database, slot -> method in
    the key)."""
    key = load_key(study)["cases"][case]
    conn = db.connect(study / db.DB_NAME)
    try:
        return {k: key[s] for k, s in db.label_order(conn, reader_id, case, read).items()}
    finally:
        conn.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


def login(client, token: str):
    page = client.get("/login")
    assert page.status_code == 200
    resp = client.post("/login", data={"token": token, "csrf_token": csrf_of(page.text)})
    assert resp.status_code == 302, resp.text
    return resp


def case_page(client, position: int):
    resp = client.get(f"/case/{position}")
    assert resp.status_code == 200
    data = json.loads(
        re.search(
            r'<script id="case-data" type="application/json">(.*?)</script>', resp.text, re.S
        ).group(1)
    )
    return resp, data


def submit(client, position: int, ranks: dict[str, int], *, csrf: str | None = None, **extra):
    page, _ = case_page(client, position)
    form = {f"rank_{label}": str(r) for label, r in ranks.items()}
    form["csrf_token"] = csrf_of(page.text) if csrf is None else csrf
    form.update(extra)
    return client.post(f"/case/{position}", data=form)


def case_ids_in_order(client) -> list[str]:
    """The case id shown on each of the reader's case pages, in their order."""
    ids = []
    for pos in range(1, N_CASES + 1):
        page, _ = case_page(client, pos)
        ids.append(re.search(r'<small class="case-id">([^<]+)</small>', page.text).group(1))
    return ids


# ---------------------------------------------------------------- create / selection / rendering
def test_selection_is_largest_mean_displacement(template):
    run, study_dir = template
    pairs = pd.read_csv(run / "pairs.csv", dtype=str)
    scores = {}
    for r in pairs.itertuples(index=False):
        mags = []
        for m in METHODS:
            disp, _ = read_displacement(
                run / "pairs" / m / f"fold{r.fold}" / r.case / r.pair / "displacement.nii.gz"
            )
            mags.append(np.linalg.norm(disp.astype(np.float64), axis=0).mean())
        scores[f"{r.case}/{r.pair}"] = float(np.mean(mags))
    expected = sorted(scores, key=lambda k: -scores[k])[:N_CASES]
    study = load_study(study_dir)
    assert [c["id"] for c in study["cases"]] == expected
    key = load_key(study_dir)
    assert key["deformation_mm"] == pytest.approx({k: scores[k] for k in expected})


def test_selection_uses_ground_truth_when_every_pair_has_one(template, tmp_path):
    from benchmark.reader_study.prepare import select_cases

    run = tmp_path / "run"
    shutil.copytree(template[0], run)
    pairs = pd.read_csv(run / "pairs.csv", dtype=str, keep_default_na=False)
    # a "ground truth" per pair: the unet-ncc field (not among the compared methods)
    truth = [
        str(run / "pairs" / "unet-ncc" / f"fold{r.fold}" / r.case / r.pair / "displacement.nii.gz")
        for r in pairs.itertuples()
    ]
    pairs["displacement"] = truth
    pairs.to_csv(run / "pairs.csv", index=False)
    mags = {
        f"{r.case}/{r.pair}": float(
            np.linalg.norm(read_displacement(t)[0].astype(np.float64), axis=0).mean()
        )
        for r, t in zip(pairs.itertuples(), truth, strict=True)
    }
    rows, scores, criterion = select_cases(run, list(METHODS), n_cases=2)
    assert list(rows["key"]) == sorted(mags, key=lambda k: -mags[k])[:2]
    assert scores == pytest.approx({k: mags[k] for k in rows["key"]})
    assert "ground truth" in criterion
    # one pair without a ground truth: back to the methods' fields for all
    pairs.loc[0, "displacement"] = ""
    pairs.to_csv(run / "pairs.csv", index=False)
    assert "methods' fields" in select_cases(run, list(METHODS), n_cases=2)[2]


def test_key_is_a_permutation_per_case_and_kept_private(template):
    _, study_dir = template
    key = load_key(study_dir)
    study = load_study(study_dir)
    assert set(key["cases"]) == {c["id"] for c in study["cases"]}
    for case in study["cases"]:
        assert sorted(key["cases"][case["id"]]) == sorted(METHODS)
        assert len(case["panels"]["results"]) == len(METHODS)
    # nothing outside key/ names a method or the run folder
    for path in study_dir.rglob("*"):
        if path.is_file() and path.parent.name != "key" and path.suffix != ".db":
            text = path.read_bytes().lower()
            if path.suffix == ".json":
                for word in FORBIDDEN:
                    assert word.encode() not in text, (path, word)
                assert str(template[0]).encode().lower() not in text
    for path in (study_dir / "data").iterdir():
        assert re.fullmatch(r"[0-9a-f]{32}\.bin", path.name), path.name


def test_panels_rendered_by_one_pipeline(template):
    """Decoded panels match an independent warp (scipy cubic B-spline, border padding) of the
    moving image with each method's field; subtraction = warped - fixed; the reference panels are
    the moving image and moving - fixed; one code for all."""
    run, study_dir = template
    study, key = load_study(study_dir), load_key(study_dir)
    pairs = (
        pd.read_csv(run / "pairs.csv", dtype=str)
        .assign(key=lambda t: t["case"] + "/" + t["pair"])
        .set_index("key")
    )
    case = study["cases"][0]
    row = pairs.loc[case["id"]]
    fixed, moving = read_image(row["fixed"]), read_image(row["moving"])
    shape, spacing = tuple(case["shape"]), fixed.spacing
    step = case["scale"]

    def panel(token):
        data = (study_dir / "data" / f"{token}.bin").read_bytes()
        assert len(data) == 2 * int(np.prod(shape))  # raw uint16, no header
        return decode(data, shape, offset=case["offset"], scale=case["scale"])

    np.testing.assert_allclose(panel(case["panels"]["fixed"]), fixed.array, atol=step / 2 + 1e-6)
    np.testing.assert_allclose(panel(case["panels"]["moving"]), moving.array, atol=step / 2 + 1e-6)
    np.testing.assert_allclose(
        panel(case["panels"]["moving_subtraction"]),
        moving.array - fixed.array,
        atol=step / 2 + 1e-4,
    )
    grid = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    for slot, method in enumerate(key["cases"][case["id"]]):
        disp, _ = read_displacement(
            run
            / "pairs"
            / method
            / f"fold{row['fold']}"
            / row["case"]
            / row["pair"]
            / "displacement.nii.gz"
        )
        # border padding = positions clamped to the image; mirror-extended exact prefilter
        coords = [
            np.clip(g + disp[c] / spacing[c], 0, n - 1)
            for c, (g, n) in enumerate(zip(grid, shape, strict=True))
        ]
        ref = ndimage.map_coordinates(
            moving.array.astype(np.float64), coords, order=3, mode="mirror", prefilter=True
        )
        result = case["panels"]["results"][slot]
        warped = panel(result["warped"])
        np.testing.assert_allclose(warped, ref, atol=1e-4 * np.ptp(ref) + step)
        sub = panel(result["subtraction"])
        np.testing.assert_allclose(sub, warped - fixed.array, atol=2 * step + 1e-4)


# ---------------------------------------------------------------- blinding of everything served
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def test_reader_never_sees_a_method_name_or_run_path(study, template):
    run, _ = template
    app = make_app(study)
    client = app.test_client()
    token = add_reader(study, "alice")
    leaks: list[str] = []
    forbidden = [w.encode() for w in FORBIDDEN] + [
        str(run.parent).lower().encode(),
        str(study).lower().encode(),
        b"key.json",
    ]

    def check(url: str, resp) -> None:
        blob = "\n".join(f"{k}: {v}" for k, v in resp.headers.items()).lower().encode()
        if not url.startswith("/data/"):
            blob += resp.get_data().lower()
        for word in forbidden:
            if word in blob:
                leaks.append(f"{url}: {word!r}")

    login(client, token)
    # first answer one case wrongly (error page) and rightly, so every page state is crawled
    resp = submit(client, 1, {"A": 1, "B": 1, "C": 2})
    assert resp.status_code == 400
    check("/case/1 (400)", resp)
    check("/case/1 (302)", submit(client, 1, {"A": 2, "B": 1, "C": 3}))
    seen, queue, data_urls = set(), ["/", "/resume", "/login", "/admin/login", "/nope"], set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        resp = client.get(url)
        check(url, resp)
        if resp.status_code in (301, 302):
            queue.append(urlsplit(resp.headers["Location"]).path)
        if resp.mimetype == "text/html":
            parser = _Links()
            parser.feed(resp.text)
            for link in parser.links:
                target = urlsplit(urljoin(url, link))
                if not target.netloc:
                    queue.append(target.path)
            for m in re.finditer(
                r'<script id="case-data" type="application/json">(.*?)</script>', resp.text, re.S
            ):
                data = json.loads(m.group(1))
                data_urls |= {data["fixed"], data["moving"], data["moving_subtraction"]}
                for kinds in data["panels"].values():
                    data_urls.update(kinds.values())
    assert {f"/case/{i}" for i in range(1, N_CASES + 1)} <= seen
    assert any(u.endswith("viewer.js") for u in seen) and any(u.endswith(".css") for u in seen)
    assert len(data_urls) == N_CASES * (3 + 2 * len(METHODS))
    for url in data_urls:
        resp = client.get(url)
        assert resp.status_code == 200
        check(url, resp)
        assert resp.mimetype == "application/octet-stream"
        assert "Last-Modified" not in resp.headers and "ETag" not in resp.headers
        assert "Content-Disposition" not in resp.headers
        assert re.fullmatch(r"/data/[0-9a-f]{32}", url)
    # the session cookie holds only a random session id
    cookie = client.get_cookie("reader_study_session")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie.value)
    assert not leaks, leaks


def test_data_sizes_identical_within_a_case(study):
    for case in load_study(study)["cases"]:
        sizes = {(study / "data" / f"{t}.bin").stat().st_size for t in panel_tokens(case)}
        assert sizes == {2 * int(np.prod(case["shape"]))}


def test_path_traversal_and_unlisted_files_rejected(study):
    app = make_app(study)
    client = app.test_client()
    # not logged in: no data at all
    login(client, add_reader(study, "bob"))
    _, data = case_page(client, 1)
    url0 = data["fixed"]
    assert client.get(url0).status_code == 200
    token0 = load_study(study)["cases"][0]["panels"]["fixed"]
    (study / "data" / ("f" * 32 + ".bin")).write_bytes(b"secret")  # on disk but not listed
    for url in [
        "/data/../key/key.json",
        "/data/..%2fkey%2fkey.json",
        "/data/%2e%2e/study.json",
        "/data/" + "f" * 32,
        f"/data/{token0}",  # a panel id is not a URL: only the reader's own tags are
        f"{url0}.bin",
        url0.upper(),
        "/data/study.json",
        "/static/../key/key.json",
        "/static/..%2fstudy.json",
        "/static/%2e%2e/%2e%2e/study.db",
        "/key/key.json",
        "/study.json",
        "/study.db",
        "/data/" + "..%2f" * 6 + "etc%2fpasswd",
    ]:
        resp = client.get(url)
        assert resp.status_code in (404, 308), (url, resp.status_code)
        assert b"secret" not in resp.data and b"elastix" not in resp.data
    anonymous = app.test_client()
    assert anonymous.get(url0).status_code == 302


# ---------------------------------------------------------------- randomisation
def test_reader_orders_seeded_and_stored(study):
    tokens = [add_reader(study, f"reader{i}") for i in range(4)]
    conn = db.connect(study / db.DB_NAME)
    case_ids = [c["id"] for c in load_study(study)["cases"]]
    orders = []
    for row in conn.execute("SELECT * FROM readers ORDER BY id"):
        assert row["order_seed"] == db.reader_order_seed(SEED, row["id"])
        order = db.assignments(conn, row["id"])
        assert order == db.case_order(case_ids, row["order_seed"])
        assert sorted(order) == sorted((c, 1) for c in case_ids)
        orders.append(order)
    conn.close()
    assert len({tuple(o) for o in orders}) > 1  # different readers, different orders
    # what the reader sees follows the stored order
    client = make_app(study).test_client()
    login(client, tokens[2])
    assert case_ids_in_order(client) == [c for c, _ in orders[2]]
    # the same seed in another database gives the same orders
    assert db.case_order(case_ids, db.reader_order_seed(SEED, 3)) == orders[2]


# ---------------------------------------------------------------- validation and CSRF
def _count(study, sql, *args):
    conn = db.connect(study / db.DB_NAME)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def test_server_rejects_incomplete_duplicate_and_unknown_ranks(study):
    client = make_app(study).test_client()
    login(client, add_reader(study, "carol"))
    bad = [
        {"A": 1, "B": 2},
        {"A": 1, "B": 1, "C": 2},
        {"A": 0, "B": 1, "C": 2},
        {"A": 4, "B": 1, "C": 2},
        {"A": "x", "B": 1, "C": 2},
        {"A": 1, "B": 2, "C": 3, "D": 4},
        {"A": "1.0", "B": 2, "C": 3},
        {"A": -1, "B": 2, "C": 3},
    ]
    for ranks in bad:
        resp = submit(client, 1, ranks)
        assert resp.status_code == 400, ranks
        assert 'id="server-errors"' in resp.text
    assert _count(study, "SELECT COUNT(*) FROM answers") == 0
    assert _count(study, "SELECT COUNT(*) FROM events WHERE kind = 'answer-rejected'") == len(bad)
    assert submit(client, 1, {"A": 3, "B": 1, "C": 2}).status_code == 302
    assert _count(study, "SELECT COUNT(*) FROM answers") == 3


def test_posts_without_csrf_token_rejected(study):
    client = make_app(study).test_client()
    token = add_reader(study, "dave")
    # login itself needs the token
    assert client.post("/login", data={"token": token}).status_code == 400
    login(client, token)
    assert submit(client, 1, {"A": 1, "B": 2, "C": 3}, csrf="").status_code == 400
    assert submit(client, 1, {"A": 1, "B": 2, "C": 3}, csrf="forged").status_code == 400
    assert client.post("/finish").status_code == 400
    assert client.post("/logout").status_code == 400
    assert _count(study, "SELECT COUNT(*) FROM answers") == 0
    # the header form works for fetch()
    page, _ = case_page(client, 1)
    resp = client.post(
        "/case/1",
        data={"rank_A": "1", "rank_B": "2", "rank_C": "3"},
        headers={"X-CSRF-Token": csrf_of(page.text)},
    )
    assert resp.status_code == 302


_RANK_TEXT = st.one_of(
    st.integers(-2, 5).map(str),
    st.sampled_from(["", " ", "x", "1.5", "02", " 3 ", "\u00b2", "\u0663"]),
)
_FORMS = st.one_of(
    st.dictionaries(st.sampled_from("ABCD"), _RANK_TEXT, max_size=4),
    st.permutations(["1", "2", "3"]).map(lambda p: dict(zip("ABC", p, strict=True))),
    st.permutations(["1", "2", "3"]).flatmap(  # a permutation with one field changed
        lambda p: st.tuples(st.sampled_from("ABCD"), _RANK_TEXT).map(
            lambda kv: {**dict(zip("ABC", p, strict=True)), kv[0]: kv[1]}
        )
    ),
).map(lambda d: {f"rank_{k}": v for k, v in d.items()})


@settings(max_examples=300, deadline=None)
@given(_FORMS)
def test_parse_ranks_accepts_exactly_permutations(form):
    labels = ["A", "B", "C"]
    ranks, problems = parse_ranks(form, labels)
    is_perm = set(form) == {f"rank_{label}" for label in labels} and sorted(
        int(v) if re.fullmatch(r"\s*[0-9]+\s*", v) else -99 for v in form.values()
    ) == [1, 2, 3]
    assert (not problems) == is_perm
    if is_perm:
        assert ranks == {k[5:]: int(v) for k, v in form.items()}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-10, 10**10).map(str),
        st.sampled_from(
            [
                "",
                "nan",
                "inf",
                "-0",
                "1e3",
                "x",
                "1_000",
                " 5 ",
                "+5",
                "5.0",
                "0x10",
                "\u0661",
                "\u00b2",
                "\uff15",
                "1" * 25,
                "86400000",
                "86400001",
                "000000001",
                "5\n",
            ]
        ),
        st.text(max_size=8),
    )
)
def test_parse_active_ms_accepts_exactly_ascii_digits_within_the_range(text):
    """Issue 30.6: only ASCII digits (no sign, point, exponent, space, other scripts' digits) of
    at most MAX_ACTIVE_MS milliseconds; empty is 0."""
    from benchmark.reader_study.reader import MAX_ACTIVE_MS, parse_active_ms

    seconds, problems = parse_active_ms(text)
    ascii_digits = 0 < len(text) <= 9 and all(c in "0123456789" for c in text)
    ok = text == "" or (ascii_digits and int(text) <= MAX_ACTIVE_MS)
    assert (not problems) == ok, text
    assert seconds == (int(text) / 1000.0 if ok and text else 0.0)
    if not ok:
        assert "ASCII digits" in problems[0] and str(MAX_ACTIVE_MS) in problems[0]


def test_parse_ranks_rejects_repeated_fields():
    from werkzeug.datastructures import MultiDict

    form = MultiDict([("rank_A", "1"), ("rank_A", "2"), ("rank_B", "2"), ("rank_C", "3")])
    _, problems = parse_ranks(form, ["A", "B", "C"])
    assert problems == ["result A has several ranks"]


# ---------------------------------------------------------------- isolation, sessions, admin
def test_reader_cannot_see_or_change_another_readers_answers(study):
    app = make_app(study)
    c1, c2 = app.test_client(), app.test_client()
    login(c1, add_reader(study, "r1"))
    login(c2, add_reader(study, "r2"))
    ids1, ids2 = case_ids_in_order(c1), case_ids_in_order(c2)
    assert submit(c1, 1, {"A": 3, "B": 1, "C": 2}).status_code == 302
    # reader 2 opens the same case: nothing pre-selected, progress 0
    pos2 = ids2.index(ids1[0]) + 1
    page, _ = case_page(c2, pos2)
    assert not re.search(r"rank_[A-Z]_[0-9]+\"[^>]* checked", page.text)
    assert "0 of 4 cases ranked" in c2.get("/").text
    # reader 2 ranks the same case differently: reader 1's answer is unchanged
    assert submit(c2, pos2, {"A": 1, "B": 2, "C": 3}).status_code == 302
    conn = db.connect(study / db.DB_NAME)
    assert db.answers(conn, 1)[(ids1[0], 1)]["ranks"] == {"A": 3, "B": 1, "C": 2}
    assert db.answers(conn, 2)[(ids1[0], 1)]["ranks"] == {"A": 1, "B": 2, "C": 3}
    assert list(db.answers(conn, 2)) == [(ids1[0], 1)]
    conn.close()
    # a client-side session cookie (e.g. claiming reader 1, signed with the study's secret) and
    # a guessed session id are both ignored: sessions exist only on the server
    other = Flask("other")
    other.secret_key = db.setting(db.connect(study / db.DB_NAME), "secret_key")
    forged = other.session_interface.get_signing_serializer(other).dumps({"reader_id": 1})
    c3 = app.test_client()
    c3.set_cookie("reader_study_session", forged)
    assert c3.get("/case/1").status_code == 302
    assert c3.get("/").headers["Location"].endswith("/login")


def test_session_cookie_flags_and_security_headers(study):
    client = make_app(study).test_client()
    resp = login(client, add_reader(study, "erin"))
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/case/1")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "http" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    # every asset is local: no absolute URL anywhere in the page or the script
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    js = client.get("/static/viewer.js").get_data(as_text=True)
    assert "http://" not in js and "https://" not in js


def test_wrong_token_rejected(study, caplog):
    client = make_app(study).test_client()
    add_reader(study, "frank")
    page = client.get("/login")
    resp = client.post("/login", data={"token": "guess", "csrf_token": csrf_of(page.text)})
    assert resp.status_code == 403
    assert client.get("/").status_code == 302
    # counted for the address and logged to the server's log, not stored (issue 30.5)
    assert any("login failed from 127.0.0.1" in r.getMessage() for r in caplog.records)
    assert _count(study, "SELECT COUNT(*) FROM events WHERE kind LIKE '%failed%'") == 0


def test_admin_page_protected_and_shows_progress(study, capsys):
    set_admin_token(study)  # create prints it once; a known one here
    app = make_app(study)
    reader = app.test_client()
    login(reader, add_reader(study, "gina"))
    add_reader(study, "hank")
    submit(reader, 1, {"A": 1, "B": 2, "C": 3})
    assert reader.get("/admin").status_code == 302  # a reader is not an admin
    admin = app.test_client()
    assert admin.get("/admin").headers["Location"].endswith("/admin/login")
    page = admin.get("/admin/login")
    assert (
        admin.post(
            "/admin/login", data={"token": "wrong", "csrf_token": csrf_of(page.text)}
        ).status_code
        == 403
    )
    resp = admin.post(
        "/admin/login", data={"token": "admintoken", "csrf_token": csrf_of(page.text)}
    )
    assert resp.status_code == 302
    text = admin.get("/admin").text
    assert re.search(r"gina</td><td>1 / 4", text) and re.search(r"hank</td><td>0 / 4", text)
    for word in FORBIDDEN:
        assert word not in text.lower()
    assert admin.post("/logout", data={"csrf_token": csrf_of(text)}).status_code == 302
    assert admin.get("/admin").status_code == 302


# ---------------------------------------------------------------- resume, revise, finish, time
def test_resume_revise_finish_and_time(study):
    client = make_app(study).test_client()
    resp = login(client, add_reader(study, "ivy"))
    assert resp.headers["Location"].endswith("/resume")
    assert client.get("/resume").headers["Location"].endswith("/case/1")
    # answer case 2 first, then 1: the next unanswered is 3
    assert submit(client, 2, {"A": 1, "B": 2, "C": 3}).headers["Location"].endswith("/case/3")
    assert (
        submit(client, 1, {"A": 1, "B": 2, "C": 3}, active_ms="1500")
        .headers["Location"]
        .endswith("/case/3")
    )
    # log out and in again: resumes at the first unanswered case
    page = client.get("/")
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert client.get("/").status_code == 302
    login(client, new_invitation(study, "ivy"))
    assert client.get("/resume").headers["Location"].endswith("/case/3")
    # finishing early is refused
    page = client.get("/")
    assert client.post("/finish", data={"csrf_token": csrf_of(page.text)}).status_code == 409
    # revise case 1, answer the rest
    assert submit(client, 1, {"A": 3, "B": 2, "C": 1}).status_code == 302
    submit(client, 3, {"A": 2, "B": 1, "C": 3})
    resp = submit(client, 4, {"A": 2, "B": 3, "C": 1})
    assert resp.headers["Location"].endswith("/")
    page = client.get("/")
    assert "finish-button" in page.text
    assert client.post("/finish", data={"csrf_token": csrf_of(page.text)}).status_code == 302
    assert "You have finished" in client.get("/").text
    # locked afterwards
    assert submit(client, 1, {"A": 1, "B": 2, "C": 3}).status_code == 409
    conn = db.connect(study / db.DB_NAME)
    ids = db.assignments(conn, 1)
    assert db.answers(conn, 1)[ids[0]]["ranks"] == {"A": 3, "B": 2, "C": 1}
    rows = {r["case_id"]: dict(r) for r in conn.execute("SELECT * FROM responses")}
    assert rows[ids[0][0]]["submissions"] == 2
    # the browser's active time never exceeds the server's time of the visit
    assert all(0 <= r["active_seconds"] <= r["seconds"] for r in rows.values())
    assert conn.execute("SELECT finished FROM readers").fetchone()[0]
    conn.close()


# ---------------------------------------------------------------- database
def test_wal_mode_and_append_only_event_log(study):
    client = make_app(study).test_client()
    login(client, add_reader(study, "jack"))
    submit(client, 1, {"A": 1, "B": 2, "C": 3})
    conn = sqlite3.connect(study / db.DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds[0] == "create" and kinds[-3:] == ["login", "view", "answer"]
    assert "login" in kinds and "add-reader" in kinds
    times = [r[0] for r in conn.execute("SELECT unix FROM events ORDER BY id")]
    assert times == sorted(times)
    n = len(kinds)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events")
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == n
    detail = json.loads(
        conn.execute("SELECT detail FROM events WHERE kind = 'answer'").fetchone()[0]
    )
    assert detail["ranks"] == {"A": 1, "B": 2, "C": 3}
    conn.close()


def test_concurrent_readers_lose_nothing(study):
    app = make_app(study)
    n_readers = 6
    tokens = [add_reader(study, f"c{i}") for i in range(n_readers)]
    clients = [app.test_client() for _ in tokens]
    for c, t in zip(clients, tokens, strict=True):
        login(c, t)
    rng = np.random.default_rng(0)
    plans = [
        [
            dict(zip("ABC", (int(x) for x in rng.permutation(3) + 1), strict=True))
            for _ in range(N_CASES)
        ]
        for _ in range(n_readers)
    ]
    pages = [[csrf_of(case_page(c, p)[0].text) for p in range(1, N_CASES + 1)] for c in clients]
    barrier = threading.Barrier(n_readers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for pos in range(1, N_CASES + 1):
                form = {f"rank_{k}": str(v) for k, v in plans[i][pos - 1].items()}
                form["csrf_token"] = pages[i][pos - 1]
                for _ in range(2):  # submit twice: a revision must replace, not duplicate
                    resp = clients[i].post(f"/case/{pos}", data=form)
                    assert resp.status_code == 302, resp.text
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    conn = db.connect(study / db.DB_NAME)
    for i in range(n_readers):
        order = db.assignments(conn, i + 1)
        got = {item: a["ranks"] for item, a in db.answers(conn, i + 1).items()}
        assert got == {order[p]: plans[i][p] for p in range(N_CASES)}
    assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'answer'").fetchone()[0] == (
        2 * n_readers * N_CASES
    )
    assert conn.execute("SELECT SUM(submissions) FROM responses").fetchone()[0] == (
        2 * n_readers * N_CASES
    )
    conn.close()


# ---------------------------------------------------------------- export and analysis
def finish(client) -> None:
    page = client.get("/")
    assert client.post("/finish", data={"csrf_token": csrf_of(page.text)}).status_code == 302


def test_export_and_analyze_match_answers(study, capsys):
    from benchmark.stats.ranking import analyze_rankings, read_rankings

    app = make_app(study)
    preference = {"poolnet-nmi": 1, "elastix": 2, "unet-nmi": 3}
    expected = []
    for reader_id, (name, flip) in enumerate((("r1", False), ("r2", True)), 1):
        client = app.test_client()
        login(client, add_reader(study, name))
        for pos, case in enumerate(case_ids_in_order(client), 1):
            letters = methods_of(study, reader_id, case)
            ranks = {label: preference[m] for label, m in letters.items()}
            if flip and pos == 1:  # one disagreement: swap elastix and unet
                ranks = {k: {2: 3, 3: 2}.get(v, v) for k, v in ranks.items()}
            assert submit(client, pos, ranks).status_code == 302
            expected += [
                {"case": case, "method": letters[lab], "rank": r, "reader": name}
                for lab, r in ranks.items()
            ]
        finish(client)
    out = study / "out.csv"
    assert main(["reader-study", "export", str(study), "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # unblinded: private
    table = pd.read_csv(out)
    assert list(table.columns) == ["case", "method", "rank", "reader"]
    key_cols = ["reader", "case", "method"]
    got = table.sort_values(key_cols).reset_index(drop=True)
    want = pd.DataFrame(expected).sort_values(key_cols).reset_index(drop=True)[table.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    capsys.readouterr()
    # analyze prints exactly what `bench stats ranking` prints for the exported CSV
    assert main(["reader-study", "analyze", str(study)]) == 0
    text = capsys.readouterr().out
    assert main(["stats", "ranking", str(out)]) == 0
    assert capsys.readouterr().out == text
    assert main(["reader-study", "analyze", str(study), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    ref = analyze_rankings(read_rankings(out)).to_dict()
    assert stats == json.loads(json.dumps(ref))
    counts = analyze_rankings(read_rankings(out)).contingency  # method x rank
    assert counts.loc["poolnet-nmi", 1] == 2 * N_CASES
    assert counts.loc["elastix", 2] == 2 * N_CASES - 1


def test_export_without_answers_fails_cleanly(study, capsys):
    assert main(["reader-study", "export", str(study)]) == 2
    assert "no rankings" in capsys.readouterr().err


def test_export_refuses_mismatched_key(study):
    client = make_app(study).test_client()
    login(client, add_reader(study, "kim"))
    submit(client, 1, {"A": 1, "B": 2, "C": 3})
    key = load_key(study)
    key["cases"] = {}
    (study / "key" / "key.json").write_text(json.dumps(key))
    with pytest.raises(BenchError, match="no method for case"):
        rankings_table(study, include_unfinished=True)


# ---------------------------------------------------------------- command line
def test_create_with_pairs_file_and_errors(template, tmp_path, capsys):
    run, _ = template
    keys = tmp_path / "keys.txt"
    keys.write_text("# chosen pairs\npatient002/ED-ES\n\npatient005/ED-ES  # second\n")
    out = tmp_path / "s"
    assert (
        main(
            [
                "reader-study",
                "create",
                str(run),
                "--methods",
                "elastix,unet-ncc",
                "--pairs",
                str(keys),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "admin token" in printed
    assert [c["id"] for c in load_study(out)["cases"]] == ["patient002/ED-ES", "patient005/ED-ES"]
    admin_token = re.search(r"admin token \(shown once, keep it\): (\S+)", printed).group(1)
    conn = db.connect(out / db.DB_NAME)
    assert db.setting(conn, "admin_token_hash") == auth.hash_token(admin_token)
    conn.close()
    assert main(["reader-study", "add-reader", str(out), "lena"]) == 0
    printed = capsys.readouterr().out
    link = re.search(r"login link: (\S+)", printed).group(1)
    assert link.startswith("http://127.0.0.1:8000/login#invite=")
    client = make_app(out).test_client()
    login(client, link.split("#invite=")[1])
    assert main(["reader-study", "add-reader", str(out), "lena"]) == 2  # duplicate name
    bad = [
        (["--methods", "elastix,unet-nmi", "--out", str(out)], "not an empty folder"),
        (["--methods", "elastix", "--out", str(tmp_path / "a")], "two distinct"),
        (["--methods", "elastix,nosuch", "--out", str(tmp_path / "b")], "nosuch"),
        (["--methods", "elastix,unet-nmi", "--cases", "0", "--out", str(tmp_path / "c")], ">= 1"),
    ]
    keys.write_text("patient009/ED-ES\n")
    bad.append(
        (
            ["--methods", "elastix,unet-nmi", "--pairs", str(keys), "--out", str(tmp_path / "d")],
            "patient009",
        )
    )
    for args, message in bad:
        capsys.readouterr()
        assert main(["reader-study", "create", str(run), *args]) == 2, args
        assert message in capsys.readouterr().err, args


def test_loopback_detection():
    from benchmark.reader_study.commands import is_loopback, login_url

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert login_url("::1", 80) == "http://[::1]:80/login"


def test_serve_binds_loopback_and_warns_otherwise(study, monkeypatch, caplog):
    import waitress

    calls = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: calls.append((app, kw)))
    assert main(["reader-study", "serve", str(study)]) == 0
    app, kw = calls[-1]
    assert (kw["host"], kw["port"]) == ("127.0.0.1", 8000)
    assert app.config["SESSION_COOKIE_HTTPONLY"] and not app.config["TESTING"]
    assert not app.config["SESSION_COOKIE_SECURE"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert main(["reader-study", "serve", str(study), "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert (calls[-1][1]["host"], calls[-1][1]["port"]) == ("0.0.0.0", 9000)
    assert any("reachable from other machines" in r.getMessage() for r in caplog.records)
    # behind an HTTPS proxy: secure cookies, the public host trusted
    args = ["--public-url", "https://study.example.org"]
    assert main(["reader-study", "serve", str(study), *args]) == 0
    app, kw = calls[-1]
    assert app.config["SESSION_COOKIE_SECURE"] and kw["url_scheme"] == "https"
    assert "study.example.org" in app.config["TRUSTED_HOSTS"]


def test_failed_create_leaves_nothing_behind(tmp_path, capsys):
    run = make_fake_run(
        tmp_path / "fake", methods=("elastix", "unet-nmi"), n_cases=2, shape=(16, 16, 4)
    )
    bad = next((run / "pairs" / "unet-nmi").rglob("displacement.nii.gz"))
    bad.write_bytes(b"not a nifti")
    out = tmp_path / "study"
    assert (
        main(
            ["reader-study", "create", str(run), "--methods", "elastix,unet-nmi", "--out", str(out)]
        )
        == 2
    )
    assert "cannot read displacement" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- issue 15: the seven defects
def test_study_files_private_and_exposed_study_refused(study, template, tmp_path, capsys):
    """Defect 1: study folders 0700, files 0600; a key or database others can read is refused
    with the fix command."""
    _, src = template
    for path in [src, *src.rglob("*")]:
        if path.name == "study.db-shm":
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    make_app(study)  # private: served
    for victim in (study / "key" / "key.json", study / db.DB_NAME):
        os.chmod(victim, 0o644)
        with pytest.raises(BenchError, match=f"chmod -R go= {re.escape(str(study))}"):
            make_app(study)
        capsys.readouterr()
        assert main(["reader-study", "serve", str(study)]) == 2
        assert str(victim) in capsys.readouterr().err
        os.chmod(victim, 0o600)
    make_app(study)


def test_logout_and_inactivity_end_the_session_on_the_server(study):
    """Defect 2: a captured cookie and CSRF token stop working at logout, also in a restarted
    server, and sessions expire after inactivity."""
    app = make_app(study)
    client = app.test_client()
    login(client, add_reader(study, "mallory-victim"))
    page, _ = case_page(client, 1)
    cookie, csrf = client.get_cookie("reader_study_session").value, csrf_of(page.text)
    thief = app.test_client()
    thief.set_cookie("reader_study_session", cookie)
    assert thief.get("/case/1").status_code == 200  # the stolen cookie works while logged in
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert _count(study, "SELECT COUNT(*) FROM sessions WHERE reader_id IS NOT NULL") == 0
    for app_now in (app, make_app(study)):  # the same server and a restarted one
        thief = app_now.test_client()
        thief.set_cookie("reader_study_session", cookie)
        assert thief.get("/case/1").status_code == 302
        resp = thief.post(
            "/case/1", data={"rank_A": "1", "rank_B": "2", "rank_C": "3", "csrf_token": csrf}
        )
        assert resp.status_code == 401  # no session: refused before anything is read
    assert _count(study, "SELECT COUNT(*) FROM answers") == 0
    # inactivity: a session idle longer than SESSION_IDLE_SECONDS is gone
    short = make_app(study, SESSION_IDLE_SECONDS=0.5)
    client = short.test_client()
    login(client, new_invitation(study, "mallory-victim"))
    assert client.get("/case/1").status_code == 200
    time.sleep(0.8)
    assert client.get("/case/1").status_code == 302


def test_invitations_are_one_time_revocable_and_linked_to_the_served_address(
    study, monkeypatch, capsys
):
    """Defect 3: no token in a URL the server sees; an invitation works once; revoke and rotate
    end sessions; links carry the served host and port."""
    import waitress

    monkeypatch.setattr(waitress, "serve", lambda app, **kw: None)
    assert main(["reader-study", "serve", str(study), "--port", "8123"]) == 0
    capsys.readouterr()
    assert main(["reader-study", "add-reader", str(study), "nina"]) == 0
    link = re.search(r"login link: (\S+)", capsys.readouterr().out).group(1)
    assert link.startswith("http://127.0.0.1:8123/login#invite=")
    token = link.split("#invite=")[1]
    app = make_app(study)
    # the login page never takes a token from the query string
    assert token not in app.test_client().get(f"/login?token={token}").text
    first = app.test_client()
    login(first, token)
    assert first.get("/case/1").status_code == 200
    second = app.test_client()  # the same link again: refused
    page = second.get("/login")
    resp = second.post("/login", data={"token": token, "csrf_token": csrf_of(page.text)})
    assert resp.status_code == 403 and "ask the study organiser" in resp.text
    # rotate: the old session ends, the new one-time link works
    assert main(["reader-study", "rotate", str(study), "nina", "--url", "https://rs.example/"]) == 0
    link2 = re.search(r"login link: (\S+)", capsys.readouterr().out).group(1)
    assert link2.startswith("https://rs.example/login#invite=")
    assert first.get("/case/1").status_code == 302
    login(second, link2.split("#invite=")[1])
    assert second.get("/case/1").status_code == 200
    # revoke: the session ends, no invitation is left
    assert main(["reader-study", "revoke", str(study), "nina"]) == 0
    assert second.get("/case/1").status_code == 302
    assert _count(study, "SELECT COUNT(*) FROM readers WHERE invite_hash IS NOT NULL") == 0
    assert main(["reader-study", "rotate", str(study), "nina", "--url", "https://x/sub"]) == 2
    assert "expected http(s)://HOST[:PORT]" in capsys.readouterr().err
    assert main(["reader-study", "revoke", str(study), "nobody"]) == 2
    assert "no reader 'nobody'" in capsys.readouterr().err
    # expired invitations are refused
    expired = auth.new_token()
    conn = db.connect(study / db.DB_NAME)
    db.set_invitation(conn, 1, auth.hash_token(expired), time.time() - 1)
    conn.close()
    page = second.get("/login")
    resp = second.post("/login", data={"token": expired, "csrf_token": csrf_of(page.text)})
    assert resp.status_code == 403


def test_time_fields_validated_and_not_counted_twice(study):
    """Defect 4: non-finite or negative active time is rejected (400, nothing saved), large values
    are clamped to the server's visit time, and two saves without a reload count each second
    once."""
    client = make_app(study).test_client()
    login(client, add_reader(study, "tim"))
    ranks = {"A": 1, "B": 2, "C": 3}
    for bad in ("nan", "inf", "-inf", "-5", "abc", "1e400", "1e12", "\u0661", "86400001"):
        resp = submit(client, 1, ranks, active_ms=bad)
        assert resp.status_code == 400, bad
        assert "active_ms must be a whole number of milliseconds" in resp.text
    assert _count(study, "SELECT COUNT(*) FROM answers") == 0
    t0 = time.time()
    page, _ = case_page(client, 1)  # the view starts the clock
    csrf = csrf_of(page.text)
    form = {f"rank_{k}": str(v) for k, v in ranks.items()} | {"csrf_token": csrf}
    time.sleep(0.3)
    assert client.post("/case/1", data=form | {"active_ms": "86400000"}).status_code == 302
    time.sleep(0.3)
    assert client.post("/case/1", data=form | {"active_ms": "86400000"}).status_code == 302
    wall = time.time() - t0
    conn = db.connect(study / db.DB_NAME)
    row = conn.execute("SELECT * FROM responses").fetchone()
    conn.close()
    assert row["submissions"] == 2
    assert 0.6 <= row["seconds"] <= wall  # not (t1 - t0) + (t2 - t0)
    assert row["active_seconds"] <= row["seconds"]


def test_analyze_defaults_to_finished_readers_and_common_cases(study, capsys, caplog):
    """Defect 5: an unfinished reader no longer empties the common cases; what is left out is
    said; --include-unfinished takes everything."""
    app = make_app(study)
    for name, n in (("done1", N_CASES), ("done2", N_CASES), ("busy", 1)):
        client = app.test_client()
        login(client, add_reader(study, name))
        for pos in range(1, n + 1):
            assert submit(client, pos, {"A": 1, "B": 2, "C": 3}).status_code == 302
        if n == N_CASES:
            finish(client)
    caplog.clear()
    assert main(["reader-study", "analyze", str(study), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["readers"] == ["done1", "done2"]
    assert stats["reader_agreement"]["n_cases"] == N_CASES
    assert np.isfinite(stats["reader_agreement"]["kendall_w_per_case"])
    assert any("busy" in note for note in stats["left_out"])
    assert any("busy" in r.getMessage() for r in caplog.records)
    assert main(["reader-study", "analyze", str(study), "--json", "--include-unfinished"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["readers"] == ["done1", "done2", "busy"]
    assert stats["n_rankings"] == 2 * N_CASES + 1


def test_label_orders_cryptographic_private_and_per_reader(template, tmp_path, study):
    """Defect 6: the seed does not rebuild the key (it is not even public), and each reader has
    their own letter order per case."""
    run, _ = template
    keys = []
    for name in ("s1", "s2"):
        args = ["--methods", ",".join(METHODS), "--cases", "4", "--seed", str(SEED)]
        assert main(["reader-study", "create", str(run), *args, "--out", str(tmp_path / name)]) == 0
        assert "seed" not in load_study(tmp_path / name)
        keys.append(load_key(tmp_path / name)["cases"])
    assert keys[0] != keys[1]  # same command, same seed: other label orders (p = 6**-4)
    # readers: 8 readers x 4 cases; letter A names the same method for everybody with p = 1/3
    # per reader and case, so identical orders everywhere would be a certain failure
    for i in range(8):
        add_reader(study, f"q{i}")
    cases = [c["id"] for c in load_study(study)["cases"]]
    orders = {
        (i, case): tuple(methods_of(study, i, case).values()) for i in range(1, 9) for case in cases
    }
    for case in cases:
        assert len({orders[(i, case)] for i in range(1, 9)}) > 1
    assert all(sorted(o) == sorted(METHODS) for o in orders.values())
    # shared letters on request: every reader sees slot order A, B, C
    shared = tmp_path / "shared"
    args = ["--methods", ",".join(METHODS), "--cases", "2", "--shared-labels"]
    assert main(["reader-study", "create", str(run), *args, "--out", str(shared)]) == 0
    for i in range(3):
        add_reader(shared, f"p{i}")
    conn = db.connect(shared / db.DB_NAME)
    assert {
        tuple(db.label_order(conn, i, c, 1).values())
        for i in range(1, 4)
        for c in (x["id"] for x in load_study(shared)["cases"])
    } == {(0, 1, 2)}
    conn.close()


def test_server_is_waitress_and_checks_the_host_header(study, monkeypatch):
    """Defect 7: ``serve`` runs waitress (not Werkzeug's development server) and the app answers
    only to the served host names (DNS rebinding)."""
    import waitress
    import werkzeug.serving

    served = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: served.append((app, kw)))
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *a, **k: pytest.fail("dev server"))
    assert main(["reader-study", "serve", str(study), "--port", "8124"]) == 0
    app, kw = served[-1]
    assert kw["threads"] >= 4 and kw["ident"] == "reader-study"
    client = app.test_client()
    assert client.get("/login", headers={"Host": "127.0.0.1:8124"}).status_code == 200
    assert client.get("/login", headers={"Host": "localhost:8124"}).status_code == 200
    for host in ("evil.example", "evil.example:8124", "127.0.0.1.evil.example"):
        resp = client.get("/login", headers={"Host": host})
        assert resp.status_code == 400, host


def test_serve_passes_the_limits_to_waitress(study, monkeypatch, capsys):
    """Issue 30.9: waitress gets the app's body limit (not its 1 GB default), short channel
    timeouts, a higher connection limit with poll(); X-Forwarded-For is trusted only from the
    proxy named by --trusted-proxy, and nothing of X-Forwarded-* without it."""
    import waitress
    from waitress.adjustments import Adjustments

    from benchmark.reader_study import limits

    served = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: served.append((app, kw)))
    assert main(["reader-study", "serve", str(study)]) == 0
    app, kw = served[-1]
    assert kw["max_request_body_size"] == app.config["MAX_CONTENT_LENGTH"] + 1
    assert (
        app.config["MAX_CONTENT_LENGTH"]
        == limits.MAX_BODY_BYTES
        < Adjustments.max_request_body_size
    )
    assert kw["max_request_header_size"] == limits.MAX_HEADER_BYTES
    assert kw["channel_timeout"] <= 60 < Adjustments.channel_timeout
    assert kw["cleanup_interval"] <= kw["channel_timeout"] / 2
    assert kw["connection_limit"] >= 5 * Adjustments.connection_limit and kw["asyncore_use_poll"]
    assert kw["clear_untrusted_proxy_headers"] and "trusted_proxy" not in kw
    assert main(["reader-study", "serve", str(study), "--trusted-proxy", "127.0.0.1"]) == 0
    kw = served[-1][1]
    assert kw["trusted_proxy"] == "127.0.0.1" and kw["trusted_proxy_headers"] == {"x-forwarded-for"}
    assert kw["trusted_proxy_count"] == 1
    capsys.readouterr()
    assert main(["reader-study", "serve", str(study), "--trusted-proxy", "proxy.example"]) == 2
    assert "--trusted-proxy must be an IP address" in capsys.readouterr().err


# ---------------------------------------------------------------- options and admin actions
@pytest.fixture(scope="module")
def options_study(template, tmp_path_factory):
    """A 3-case study with 'cannot judge', comments and 2 repeated cases."""
    run, _ = template
    out = tmp_path_factory.mktemp("opt") / "study"
    args = ["--methods", ",".join(METHODS), "--cases", "3", "--cannot-judge", "--comment"]
    assert (
        main(["reader-study", "create", str(run), *args, "--repeats", "2", "--out", str(out)]) == 0
    )
    return out


def test_cannot_judge_comment_and_repeats(options_study, tmp_path, capsys):
    study = tmp_path / "s"
    shutil.copytree(options_study, study)
    client = make_app(study).test_client()
    login(client, add_reader(study, "opt"))
    conn = db.connect(study / db.DB_NAME)
    order = db.assignments(conn, 1)
    conn.close()
    assert len(order) == 5 and [r for _, r in order] == [1, 1, 1, 2, 2]
    assert {c for c, r in order if r == 2} <= {c for c, r in order if r == 1}
    page, _ = case_page(client, 1)
    assert 'id="cannot-judge"' in page.text and 'id="comment"' in page.text
    resp = submit(client, 1, {}, cannot_judge="1", comment="motion artefact")
    assert resp.status_code == 302
    assert submit(client, 2, {"A": 1, "B": 2, "C": 3}, comment="x" * 2001).status_code == 400
    prefs = {"elastix": 1, "unet-nmi": 2, "poolnet-nmi": 3}
    for pos in range(2, 6):
        case, read = order[pos - 1]
        letters = methods_of(study, 1, case, read)
        assert submit(client, pos, {k: prefs[m] for k, m in letters.items()}).status_code == 302
    finish(client)
    conn = db.connect(study / db.DB_NAME)
    first = db.answers(conn, 1)[order[0]]
    conn.close()
    assert first == {"state": "cannot-judge", "comment": "motion artefact", "ranks": {}}
    capsys.readouterr()
    assert main(["reader-study", "analyze", str(study), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_rankings"] == 2  # 3 cases, one 'cannot judge'; repeats separate
    assert any("cannot judge" in note for note in stats["left_out"])
    intra = stats["intra_reader_agreement"]
    repeated_ranked = {c for c, r in order if r == 2} - {order[0][0]}
    assert intra[0]["n_cases"] == len(repeated_ranked)
    assert intra[0]["identical"] == 1.0 and intra[0]["kendall_w"] == pytest.approx(1.0)
    assert main(["reader-study", "export", str(study)]) == 0
    repeats = pd.read_csv(study / "rankings_repeats.csv")
    assert sorted(repeats["read"].unique()) == [1, 2]


def test_admin_reopens_removes_and_downloads(study):
    set_admin_token(study)
    app = make_app(study)
    reader = app.test_client()
    login(reader, add_reader(study, "ola"))
    other = app.test_client()
    login(other, add_reader(study, "pia"))
    for pos in range(1, N_CASES + 1):
        submit(reader, pos, {"A": 1, "B": 2, "C": 3})
    finish(reader)
    admin = app.test_client()
    page = admin.get("/admin/login")
    admin.post("/admin/login", data={"token": "admintoken", "csrf_token": csrf_of(page.text)})
    text = admin.get("/admin").text
    csrf = csrf_of(text)
    # download: blinded (letters and slots, no method names)
    csv = admin.get("/admin/answers.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    table = pd.read_csv(io.StringIO(csv.get_data(as_text=True)))
    assert len(table) == 3 * N_CASES and set(table["reader"]) == {"ola"}
    for word in FORBIDDEN:
        assert word not in csv.get_data(as_text=True).lower()
    assert reader.get("/admin/answers.csv").status_code == 302  # readers cannot
    # reopen case 2 for ola: unlocked, answer cleared, must finish again
    resp = admin.post("/admin/reopen", data={"reader_id": "1", "position": "2", "csrf_token": csrf})
    assert resp.status_code == 302
    assert "3 of 4 cases ranked" in reader.get("/").text
    assert submit(reader, 2, {"A": 3, "B": 2, "C": 1}).status_code == 302
    finish(reader)
    # remove pia: her session ends, she is out of every export
    resp = admin.post(
        "/admin/remove", data={"reader_id": "2", "confirm": "nope", "csrf_token": csrf}
    )
    assert resp.status_code == 400
    resp = admin.post(
        "/admin/remove", data={"reader_id": "2", "confirm": "pia", "csrf_token": csrf}
    )
    assert resp.status_code == 302
    assert other.get("/").status_code == 302
    assert "pia</td>" not in admin.get("/admin").text
    conn = db.connect(study / db.DB_NAME)
    kinds = [r["kind"] for r in conn.execute("SELECT kind FROM events")]
    conn.close()
    assert {"reopen", "remove-reader", "admin-download"} <= set(kinds)


# ---------------------------------------------------------------- issue 26.3 and issue 30
def test_reader_study_has_no_import_cycle_and_only_the_cli_imports_the_factory():
    """Issue 26.3: no import cycle through a module of the reader study (imports inside
    functions count; the graph of tests/test_architecture.py), and the app factory module is
    imported only by the CLI's ``commands``."""
    from test_architecture import import_cycles, import_graph

    package = "benchmark.reader_study"
    graph = import_graph()
    assert {f"{package}.app", f"{package}.reader", f"{package}.study"} <= set(graph)
    ours = [c for c in import_cycles(graph) if any(m.startswith(package + ".") for m in c)]
    assert not ours, ours
    importers = sorted(m for m, deps in graph.items() if f"{package}.app" in deps)
    assert importers == [f"{package}.commands"], importers


def _admin_client(study: Path, app=None):
    """An admin logged in on ``study`` (the admin token set to a known one)."""
    set_admin_token(study)
    app = app or make_app(study)
    admin = app.test_client()
    page = admin.get("/admin/login")
    resp = admin.post(
        "/admin/login", data={"token": "admintoken", "csrf_token": csrf_of(page.text)}
    )
    assert resp.status_code == 302
    return app, admin, csrf_of(admin.get("/admin").text)


def _stored(study: Path) -> dict:
    """Every stored answer: answers and responses rows (submissions included), reader rows."""
    conn = sqlite3.connect(study / db.DB_NAME)
    try:
        return {
            t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ("answers", "responses", "readers")
        }
    finally:
        conn.close()


def test_reopen_unlocks_exactly_the_case_named(study):
    """Issue 30.3: after the admin reopens one case of a finished reader, every other case stays
    locked (409, stored answers unchanged); the reopened one can be answered, then Finish locks
    it again."""
    _, admin, csrf = _admin_client(study)
    app = make_app(study)
    reader = app.test_client()
    login(reader, add_reader(study, "lou"))
    for pos in range(1, N_CASES + 1):
        assert submit(reader, pos, {"A": 1, "B": 2, "C": 3}).status_code == 302
    finish(reader)
    resp = admin.post("/admin/reopen", data={"reader_id": "1", "position": "2", "csrf_token": csrf})
    assert resp.status_code == 302
    before = _stored(study)
    for pos in (1, 3, 4):
        page, _ = case_page(reader, pos)
        assert 'id="case-locked"' in page.text and 'id="save-button" disabled' in page.text
        resp = submit(reader, pos, {"A": 3, "B": 2, "C": 1})
        assert resp.status_code == 409, pos
        assert "locked" in resp.text
        form = {"rank_A": "3", "rank_B": "2", "rank_C": "1", "csrf_token": csrf_of(page.text)}
        resp = reader.post(f"/case/{pos}", data=form, headers={"Accept": "application/json"})
        assert resp.status_code == 409 and "locked" in resp.json["error"]  # the page script's
    assert _stored(study) == before
    assert submit(reader, 2, {"A": 3, "B": 2, "C": 1}).status_code == 302
    assert submit(reader, 2, {"A": 2, "B": 3, "C": 1}).status_code == 302  # revisable until Finish
    finish(reader)
    assert submit(reader, 2, {"A": 1, "B": 2, "C": 3}).status_code == 409
    conn = db.connect(study / db.DB_NAME)
    order = db.assignments(conn, 1)
    got = {order.index(item) + 1: a["ranks"] for item, a in db.answers(conn, 1).items()}
    conn.close()
    assert got == {
        1: {"A": 1, "B": 2, "C": 3},
        2: {"A": 2, "B": 3, "C": 1},
        3: {"A": 1, "B": 2, "C": 3},
        4: {"A": 1, "B": 2, "C": 3},
    }


def test_database_of_an_older_version_is_upgraded_with_its_locks(study):
    """A study database without ``assignments.locked`` gets it at app start, locked for the
    readers who had finished."""
    app = make_app(study)
    done, busy = app.test_client(), app.test_client()
    login(done, add_reader(study, "done"))
    login(busy, add_reader(study, "busy"))
    for pos in range(1, N_CASES + 1):
        submit(done, pos, {"A": 1, "B": 2, "C": 3})
    finish(done)
    conn = sqlite3.connect(study / db.DB_NAME)
    conn.execute("ALTER TABLE assignments DROP COLUMN locked")
    conn.commit()
    conn.close()
    make_app(study)
    conn = db.connect(study / db.DB_NAME)
    locks = dict(conn.execute("SELECT reader_id, MIN(locked) FROM assignments GROUP BY reader_id"))
    conn.close()
    assert locks == {1: 1, 2: 0}


class _CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes that counts what the server reads of it."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"a" * n
        self.read_bytes += n
        return n


def test_bodies_fields_and_media_types_limited(study):
    """Issue 30.4 in the app: a declared body over the limit is refused unread, a streamed one
    after at most the limit; more than MAX_FORM_FIELDS fields, multipart, JSON and text bodies
    are refused before anything is done."""
    from benchmark.reader_study import limits

    app = make_app(study)
    client = app.test_client()
    login(client, add_reader(study, "max"))
    page, _ = case_page(client, 1)
    csrf = csrf_of(page.text)
    before = _stored(study)
    stream = _CountingStream(30_000_000)
    resp = client.post(
        "/case/1",
        content_type=limits.FORM_TYPE,
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "30000000"},
    )
    assert resp.status_code == 413 and stream.read_bytes == 0
    stream = _CountingStream(30_000_000)
    resp = client.post(  # chunked: no declared length, the stream ends where the body ends
        "/case/1",
        content_type=limits.FORM_TYPE,
        environ_overrides={
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert resp.status_code == 413 and stream.read_bytes <= limits.MAX_BODY_BYTES + 65536
    form = {"rank_A": "1", "rank_B": "2", "rank_C": "3", "csrf_token": csrf}
    many = form | {f"x{i}": "" for i in range(limits.MAX_FORM_FIELDS)}
    resp = client.post("/case/1", data=many)
    assert resp.status_code == 413 and "form fields" in resp.text
    for content_type, body in (
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="rank_A"\r\n\r\n1\r\n--b--\r\n',
        ),
        ("application/json", json.dumps(form).encode()),
        ("text/plain", b"rank_A=1&rank_B=2&rank_C=3&csrf_token=" + csrf.encode()),
        ("", b"rank_A=1"),
    ):
        resp = client.post("/case/1", data=body, content_type=content_type)
        assert resp.status_code == 415, content_type
    resp = client.post("/case/1", data={**form, "f": (io.BytesIO(b"x"), "f.txt")})
    assert resp.status_code == 415  # a file upload (multipart) from the test client
    assert _stored(study) == before
    assert client.post("/case/1", data=form).status_code == 302  # the real form still works


def test_anonymous_visitors_and_failed_logins_store_nothing(study):
    """Issue 30.5: 600 anonymous login pages and 200 failed logins (20 addresses) leave the
    database exactly as it was; login still needs its CSRF token."""
    app = make_app(study)
    add_reader(study, "noa")
    files = [study / n for n in ("study.db", "study.db-wal")]
    conn = sqlite3.connect(study / db.DB_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    sizes = [p.stat().st_size if p.exists() else 0 for p in files]
    dump = "\n".join(sqlite3.connect(study / db.DB_NAME).iterdump())
    for i in range(600):
        client = app.test_client()
        assert client.get("/login" if i % 2 else "/admin/login").status_code == 200
        assert client.get_cookie("reader_study_session") is None
    for i in range(200):
        client = app.test_client()
        path = "/login" if i % 2 else "/admin/login"
        page = client.get(path)
        resp = client.post(
            path,
            data={"token": f"guess{i}", "csrf_token": csrf_of(page.text)},
            environ_base={"REMOTE_ADDR": f"10.0.0.{i % 20}"},
        )
        assert resp.status_code == 403
    client = app.test_client()
    page = client.get("/login")
    assert client.post("/login", data={"token": "x"}).status_code == 400  # no CSRF token
    other = app.test_client()  # a token of another browser's cookie does not pass
    assert (
        other.post("/login", data={"token": "x", "csrf_token": csrf_of(page.text)}).status_code
        == 400
    )
    assert [p.stat().st_size if p.exists() else 0 for p in files] == sizes
    assert "\n".join(sqlite3.connect(study / db.DB_NAME).iterdump()) == dump


def test_failed_logins_rate_limited_per_address(study):
    """Issue 30.5: after LOGIN_FAILURES failures an address gets 429 with Retry-After (also for a
    valid token); other addresses are not affected; the window passes."""
    app = make_app(study, LOGIN_FAILURES=3, LOGIN_WINDOW_S=1.0)
    token = add_reader(study, "rita")

    def attempt(address: str, tok: str, **headers):
        client = app.test_client()
        page = client.get("/login")
        return client.post(
            "/login",
            data={"token": tok, "csrf_token": csrf_of(page.text)},
            environ_base={"REMOTE_ADDR": address},
            headers=headers,
        )

    for _ in range(3):
        assert attempt("192.0.2.7", "wrong").status_code == 403
    resp = attempt("192.0.2.7", token)
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 1
    assert "Too many failed logins from your address" in resp.text
    resp = attempt("192.0.2.7", "wrong", Accept="application/json")
    assert resp.status_code == 429 and "try again in" in resp.json["error"]
    assert attempt("192.0.2.7", "wrong", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 429
    assert attempt("192.0.2.8", "wrong").status_code == 403  # another address
    time.sleep(1.1)
    assert attempt("192.0.2.7", token).status_code == 302


def test_login_limiter_window_and_memory_bound():
    """The limiter blocks an address after its failures until the oldest leaves the window, and
    remembers at most max_addresses addresses (the oldest are forgotten first)."""
    from benchmark.reader_study.limits import LoginLimiter

    limiter = LoginLimiter(failures=2, window_s=10.0, max_addresses=3)
    limiter.fail("a", now=0.0)
    assert limiter.retry_after("a", now=1.0) == 0
    limiter.fail("a", now=4.0)
    assert limiter.retry_after("a", now=5.0) == 5  # until the failure at 0 s is 10 s old
    assert limiter.retry_after("a", now=10.5) == 0
    for address in "bcd":
        limiter.fail(address, now=11.0)
        limiter.fail(address, now=11.0)
    assert [limiter.retry_after(x, now=12.0) for x in "abcd"] == [0, 9, 9, 9]
    limiter.fail("e", now=12.0)
    limiter.fail("e", now=12.0)
    assert limiter.retry_after("b", now=12.0) == 0  # forgotten: the oldest of four
    assert limiter.retry_after("e", now=12.0) == 10


def test_admin_forms_answer_400_for_malformed_numbers(study):
    """Issue 30.6: reader_id and position values such as '²' or 25 digits give 400 with a
    message (they crashed with 500), unknown ones 404; nothing changes."""
    app, admin, csrf = _admin_client(study)
    reader = app.test_client()
    login(reader, add_reader(study, "ada"))
    submit(reader, 1, {"A": 1, "B": 2, "C": 3})
    before = _stored(study)
    bad = ["", " 1", "1 ", "\u00b2", "\u0661", "\uff11", "1" * 25, "-1", "+1", "1.0", "0x1", "1e3"]
    for value in bad:
        for route, form in (
            ("/admin/reopen", {"reader_id": value, "position": "1"}),
            ("/admin/reopen", {"reader_id": "1", "position": value}),
            ("/admin/remove", {"reader_id": value, "confirm": "ada"}),
        ):
            resp = admin.post(route, data=form | {"csrf_token": csrf})
            assert resp.status_code == 400, (route, form)
            assert "must be a number" in resp.text
    for route, form in (
        ("/admin/reopen", {"reader_id": "999999999", "position": "1"}),
        ("/admin/reopen", {"reader_id": "1", "position": "999999999"}),
        ("/admin/remove", {"reader_id": "0", "confirm": "ada"}),
    ):
        assert admin.post(route, data=form | {"csrf_token": csrf}).status_code == 404
    assert _stored(study) == before


def test_image_data_is_sent_no_store(study):
    """Issue 30.8: panels are never cached by the browser (they used to be kept a day)."""
    client = make_app(study).test_client()
    login(client, add_reader(study, "ned"))
    _, data = case_page(client, 1)
    resp = client.get(data["fixed"])
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"


def test_answers_csv_escapes_formulas(options_study, tmp_path):
    """Issue 30.10: comments (and any text cell) starting with = + - @ reach the admin's CSV with
    a leading ' (OWASP CSV injection); other text is unchanged."""
    from benchmark.reader_study.admin import FORMULA_START, spreadsheet_safe

    study = tmp_path / "s"
    shutil.copytree(options_study, study)
    app, admin, _ = _admin_client(study)
    reader = app.test_client()
    login(reader, add_reader(study, "=cmd|' /C calc'!A0"))
    comments = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1:A9)", "fine"]
    conn = db.connect(study / db.DB_NAME)
    n = len(db.assignments(conn, 1))
    conn.close()
    for pos in range(1, n + 1):
        comment = comments[(pos - 1) % len(comments)]
        assert submit(reader, pos, {}, cannot_judge="1", comment=comment).status_code == 302
    table = pd.read_csv(io.StringIO(admin.get("/admin/answers.csv").get_data(as_text=True)))
    assert set(table["reader"]) == {"'=cmd|' /C calc'!A0"}
    for comment in table["comment"]:
        assert not comment.startswith(FORMULA_START)
        original = comment[1:] if comment.startswith("'") else comment
        assert spreadsheet_safe(original) == comment and original in comments
    assert {c for c in table["comment"] if not c.startswith("'")} == {"fine"}
    for start in FORMULA_START:  # tab and CR as well (comments arrive stripped of them)
        assert spreadsheet_safe(start + "1") == "'" + start + "1"


def test_ended_session_answers_401_in_words_and_the_reader_logs_in_again(study):
    """Issue 30.11 on the server: a save after the session idled out is refused with 401 and a
    message in words (JSON for the page script, with a login CSRF token; a page otherwise); the
    page script logs in again with a new invitation and saves with the new session's token."""
    app = make_app(study, SESSION_IDLE_SECONDS=0.5)
    client = app.test_client()
    login(client, add_reader(study, "ida"))
    page, _ = case_page(client, 1)
    form = {"rank_A": "2", "rank_B": "1", "rank_C": "3", "csrf_token": csrf_of(page.text)}
    as_json = {"Accept": "application/json"}
    time.sleep(0.7)
    resp = client.post("/case/1", data=form, headers=as_json)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Invitation")
    assert "ended after 0.00833333 minutes without activity" in resp.json["error"]
    assert "Nothing was saved" in resp.json["error"]
    login_csrf = resp.json["login_csrf"]
    html = client.post("/case/1", data=form)  # without the script: a page, in words
    assert html.status_code == 401 and "Log in again" in html.text
    assert "Your session has ended" in html.text and "Nothing was saved" in html.text
    assert _count(study, "SELECT COUNT(*) FROM answers") == 0
    resp = client.post("/login", data={"token": "wrong", "csrf_token": login_csrf}, headers=as_json)
    assert resp.status_code == 403 and "ask the study organiser" in resp.json["error"]
    token = new_invitation(study, "ida")
    resp = client.post("/login", data={"token": token, "csrf_token": login_csrf}, headers=as_json)
    assert resp.status_code == 200 and resp.json["reader"] == "ida"
    resp = client.post(
        "/case/1", data=form | {"csrf_token": resp.json["csrf_token"]}, headers=as_json
    )
    assert resp.status_code == 200 and resp.json == {"next": "/case/2"}
    # revoked: said so; a form with problems answers JSON errors, nothing stored
    conn = db.connect(study / db.DB_NAME)
    db.set_invitation(conn, 1, None, None)
    conn.close()
    resp = client.post("/case/2", data=form, headers=as_json)
    assert resp.status_code == 401 and "the study organiser ended it" in resp.json["error"]
    assert _count(study, "SELECT COUNT(*) FROM answers") == 3
