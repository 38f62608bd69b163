"""End-to-end test of the reader-study app in a real browser.

Playwright drives Debian's Chromium headless (no browser download: ``executable_path`` points at
``/usr/bin/chromium``, or at ``$READER_STUDY_CHROMIUM``) against the real server started with
``bench reader-study serve`` (waitress) on a free loopback port. A reader logs in by opening the
one-time link printed by ``add-reader`` (token in the URL fragment; the page logs in at once), scrolls
slices, changes window/level, zooms (Ctrl+wheel) and pans (pan tool), all panels in sync and the
display checked pixel by pixel against the stored volume, switches to the coronal and sagittal
views (checked against the volume too) through the crosshair point, switches views, is stopped by
the browser on an invalid ranking, ranks every case, reloads, comes back with a rotated link (the
study resumes at the first unranked case), finishes. A second reader, whose letter order differs
from the first reader's, ranks every case too: the panel under each letter is the right method's
image for each of them, and the export unblinds exactly what each clicked. A screenshot of a case
page is saved to ``test-artifacts/reader_study_case.png``.

Issue 30 in the browser, with a real Chromium profile on disk where it matters: the invitation
token leaves the tab's history before the page is parsed and an opened link is used up (a link read
back from Chromium's History database no longer logs in; the same browser refuses a link it opened
before without asking the server); patient images never reach the disk cache (each volume is
fetched once per page); a session that ends while a reader ranks keeps the ranking in the page,
says so, and lets the reader log in again in the page and save it.

Marked ``browser`` so it can be selected (``-m browser``); it runs by default and is skipped
only when the ``playwright`` package or Chromium is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_run import make_fake_run

from benchmark.cli import main
from benchmark.reader_study import db
from benchmark.reader_study.prepare import decode, load_key, load_study, panel_tokens

pytestmark = pytest.mark.browser

CHROMIUM = (
    os.environ.get("READER_STUDY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
N_CASES = 3
# the ranks clicked on each case position (label -> rank)
CLICKS = {1: {"A": 2, "B": 1, "C": 3}, 2: {"A": 1, "B": 3, "C": 2}, 3: {"A": 3, "B": 2, "C": 1}}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the `playwright` Python package is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set "
            "READER_STUDY_CHROMIUM)"
        )
    return sync_playwright


def _link(printed: str) -> str:
    return re.search(r"login link: (\S+)", printed).group(1)


@pytest.fixture
def server(tmp_path, capsys):
    """A study (3 pairs, 3 methods), readers, and `bench reader-study serve` on a free port."""
    run = make_fake_run(tmp_path / "fake", n_cases=N_CASES, seed=2)
    study = tmp_path / "study"
    args = ["--methods", "elastix,unet-nmi,poolnet-nmi", "--seed", "5", "--out", str(study)]
    assert main(["reader-study", "create", str(run), *args]) == 0
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from benchmark.cli import main; sys.exit(main(sys.argv[1:]))",
            "reader-study",
            "serve",
            str(study),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{proc.stdout.read()}") from None
                time.sleep(0.2)
        capsys.readouterr()
        # readers added while the server runs: their links carry its real address
        links = {}
        for name in ("Dr Reader", *(f"Dr Second {i}" for i in range(5))):
            assert main(["reader-study", "add-reader", str(study), name]) == 0
            links[name] = _link(capsys.readouterr().out)
        assert all(link.startswith(f"{base}/login#invite=") for link in links.values())
        yield base, study, links
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _canvas_signature(page, selector: str) -> list[float]:
    """Mean and standard deviation of the grey values drawn on one canvas."""
    return page.eval_on_selector(
        selector,
        """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0, s2 = 0, n = d.length / 4;
        for (let t = 0; t < d.length; t += 4) { s += d[t]; s2 += d[t] * d[t]; }
        const m = s / n; return [m, Math.sqrt(Math.max(s2 / n - m * m, 0))];
    }""",
    )


def _case_data(page) -> dict:
    return page.evaluate("JSON.parse(document.getElementById('case-data').textContent)")


def _volume(study: Path, data: dict, token: str) -> np.ndarray:
    raw = (study / "data" / f"{token}.bin").read_bytes()
    return decode(raw, tuple(data["shape"]), offset=data["offset"], scale=data["scale"])


# plane -> (horizontal axis, vertical axis drawn upwards, normal axis)
PLANES = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}


def _expected_plane(page, volume: np.ndarray, kind: str) -> np.ndarray:
    """The window-mapped plane through the crosshair, rows top to bottom, from the volume."""
    plane = page.get_attribute("#viewer", "data-plane")
    cursor = [int(v) for v in page.get_attribute("#viewer", "data-cursor").split(",")]
    lo, hi = (float(v) for v in page.get_attribute("#viewer", f"data-{kind}-window").split(","))
    u, v, n = PLANES[plane]
    index = [slice(None)] * 3
    index[n] = cursor[n]
    section = volume[tuple(index)]  # 2D, axes (u, v) in increasing axis order
    section = section if u < v else section.T
    return np.clip((section.T[::-1, :] - lo) * 255.0 / (hi - lo), 0, 255)


def _check_plane(page, study: Path, key: str, token: str, kind: str = "image") -> None:
    """The plane the script computed for panel ``key`` equals the stored volume's plane."""
    got = page.evaluate(
        f"(() => {{ const p = readerStudy.planeGrey('{key}'); "
        "return [p.width, p.height, Array.from(p.grey)]; })()"
    )
    width, height, grey = got
    grey = np.asarray(grey, dtype=np.float64).reshape(height, width)
    expected = _expected_plane(page, _volume(study, _case_data(page), token), kind)
    np.testing.assert_allclose(grey, expected, atol=1.0)


def _check_display(page, study: Path, token: str) -> None:
    """The fixed panel's canvas shows, at the centre of a voxel near the view centre, that voxel's
    window-mapped value: the zoom/pan transform (view centre at the canvas centre, isotropic mm
    scaling that fits the plane at zoom 1) computed here independently of the script."""
    data = _case_data(page)
    plane = page.get_attribute("#viewer", "data-plane")
    u, v, _ = PLANES[plane]
    n, sp = data["shape"], data["spacing"]
    zoom = float(page.get_attribute("#viewer", "data-zoom"))
    cu, cv = (float(x) for x in page.get_attribute("#viewer", "data-center").split(","))
    css = page.evaluate("readerStudy.cssSize")
    fit = min(css / (n[u] * sp[u]), css / (n[v] * sp[v]))
    su, sv = fit * zoom * sp[u], fit * zoom * sp[v]
    expected = _expected_plane(page, _volume(study, data, token), "image")
    checked = 0
    for du, dv in ((0.3, 0.3), (-1.2, 0.7), (1.6, -1.4)):
        vu, vv = int(np.floor(cu + du)), int(np.floor(cv + dv))
        if not (0 <= vu < n[u] and 0 <= vv < n[v]):
            continue
        x = css / 2 + (vu + 0.5 - cu) * su
        y = css / 2 - (vv + 0.5 - cv) * sv
        pixel = page.eval_on_selector(
            "canvas[data-volume='fixed']",
            f"""c => {{ const r = c.width / {css};
                return c.getContext('2d').getImageData(
                    Math.floor({x} * r), Math.floor({y} * r), 1, 1).data[0]; }}""",
        )
        assert abs(pixel - expected[n[v] - 1 - vv, vu]) <= 1.0, (plane, vu, vv)
        checked += 1
    assert checked


def _login(page, link):
    """Open the invitation link: the page logs in at once and resumes at a case."""
    page.goto(link)
    page.wait_for_url(re.compile(r"/case/\d+$"))
    assert "invite" not in page.url


def _wait_loaded(page):
    page.wait_for_selector("#viewer[data-loaded='true']", timeout=15000)


def _rank(page, ranks: dict[str, int]):
    for label, r in ranks.items():
        page.check(f"#rank_{label}_{r}")


def _letters(study: Path, reader_id: int, case: str) -> dict[str, int]:
    conn = db.connect(study / db.DB_NAME)
    try:
        return db.label_order(conn, reader_id, case, 1)
    finally:
        conn.close()


def _explore_viewer(page, study: Path) -> None:
    """Slices, window/level, zoom, pan, crosshair, orthogonal views and view toggle, checked
    against the stored volumes."""
    data = _case_data(page)
    case = next(c for c in load_study(study)["cases"] if c["id"] == page.inner_text(".case-id"))
    fixed = case["panels"]["fixed"]
    canvases = page.locator("canvas.panel")
    assert canvases.count() == (2 + 3) + (1 + 3)  # fixed, moving, results; no fixed subtraction
    boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
    assert len({(round(b["width"]), round(b["height"])) for b in boxes}) == 1
    assert len({round(b["y"]) for b in boxes[:5]}) == 1  # image row on one line
    assert page.locator(".subtraction-row canvas[data-volume='fixed']").count() == 0
    for i in range(canvases.count()):
        assert _canvas_signature(page, f"canvas.panel >> nth={i}")[1] > 5
    _check_plane(page, study, "fixed", fixed)
    _check_plane(page, study, "moving", case["panels"]["moving"])
    _check_plane(
        page, study, "moving_subtraction", case["panels"]["moving_subtraction"], "subtraction"
    )
    # slices: wheel over a panel and keys move every panel together
    k0 = int(page.get_attribute("#viewer", "data-slice"))
    before = _canvas_signature(page, "canvas[data-volume='B:warped']")
    page.hover("canvas[data-volume='A:warped']")
    page.mouse.wheel(0, 120)
    page.wait_for_function(f"document.getElementById('viewer').dataset.slice == '{k0 + 1}'")
    assert _canvas_signature(page, "canvas[data-volume='B:warped']") != before
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#viewer", "data-slice") == str(k0 - 1)
    _check_plane(page, study, "fixed", fixed)
    # window/level: preset buttons and dragging, synchronised across panels
    sub_before = page.get_attribute("#viewer", "data-subtraction-window")
    page.click("button.preset[data-kind='subtraction'] >> nth=2")
    assert page.get_attribute("#viewer", "data-subtraction-window") != sub_before
    win_before = page.get_attribute("#viewer", "data-image-window")
    sig_c = _canvas_signature(page, "canvas[data-volume='C:warped']")
    box = page.locator("canvas[data-volume='A:warped']").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 60, cy + 40, steps=5)
    page.mouse.up()
    lo, hi = (float(v) for v in page.get_attribute("#viewer", "data-image-window").split(","))
    lo0, hi0 = (float(v) for v in win_before.split(","))
    assert hi - lo < hi0 - lo0 and (lo + hi) < (lo0 + hi0)  # narrower and lower level
    assert _canvas_signature(page, "canvas[data-volume='C:warped']") != sig_c
    # zoom: Ctrl+wheel over panel A zooms every panel; the display shows the right voxels
    page.keyboard.press("x")  # crosshair off for the pixel checks
    sigs = {v: _canvas_signature(page, f"canvas[data-volume='{v}']") for v in ("fixed", "C:warped")}
    page.mouse.move(cx + 10, cy - 10)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    page.wait_for_function("Number(document.getElementById('viewer').dataset.zoom) > 1.5")
    for v, sig in sigs.items():
        assert _canvas_signature(page, f"canvas[data-volume='{v}']") != sig, v
    _check_display(page, study, fixed)
    # pan with the pan tool: the centre moves, every panel follows
    center0 = page.get_attribute("#viewer", "data-center")
    sig = _canvas_signature(page, "canvas[data-volume='B:subtraction']")
    page.click("#tool-toggle button[data-tool='pan']")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy + 20, steps=4)
    page.mouse.up()
    assert page.get_attribute("#viewer", "data-center") != center0
    assert _canvas_signature(page, "canvas[data-volume='B:subtraction']") != sig
    _check_display(page, study, fixed)
    # crosshair: a click places it; the orthogonal views cut through that point
    page.keyboard.press("x")
    page.click("#tool-toggle button[data-tool='crosshair']")
    page.click("#reset-view")
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    cursor = [int(v) for v in page.get_attribute("#viewer", "data-cursor").split(",")]
    n = data["shape"]
    assert cursor[0] < n[0] / 2 and cursor[1] < n[1] / 2  # left and below the centre
    page.keyboard.press("x")  # crosshair lines off for the pixel checks
    for plane, normal in (("coronal", 1), ("sagittal", 0), ("axial", 2)):
        page.click(f"#plane-toggle button[data-plane='{plane}']")
        assert page.get_attribute("#viewer", "data-plane") == plane
        assert page.get_attribute("#viewer", "data-slice") == str(cursor[normal])
        _check_plane(page, study, "fixed", fixed)
        if plane != "axial":
            _check_display(page, study, fixed)
    page.click("#tool-toggle button[data-tool='window']")
    # view toggle
    page.click("#view-toggle button[data-view='subtraction']")
    assert not page.is_visible("canvas[data-volume='A:warped']")
    assert page.is_visible("canvas[data-volume='A:subtraction']")
    page.click("#view-toggle button[data-view='both']")
    assert page.is_visible("canvas[data-volume='A:warped']")


def _check_letters(page, study: Path, reader_id: int) -> dict[str, str]:
    """Each letter's panels are the images of the slot the reader's order puts behind it;
    return letter -> method."""
    case = next(c for c in load_study(study)["cases"] if c["id"] == page.inner_text(".case-id"))
    key = load_key(study)["cases"][case["id"]]
    letters = _letters(study, reader_id, case["id"])
    for letter, slot in letters.items():
        result = case["panels"]["results"][slot]
        _check_plane(page, study, f"{letter}:warped", result["warped"])
        _check_plane(page, study, f"{letter}:subtraction", result["subtraction"], "subtraction")
    return {letter: key[slot] for letter, slot in letters.items()}


def test_reader_session_in_chromium(sync_playwright, server, capsys):
    base, study, links = server
    cases = [c["id"] for c in load_study(study)["cases"]]
    # the second reader: one whose letters differ from the first reader's in some case
    others = [f"Dr Second {i}" for i in range(5)]
    second = next(
        name
        for i, name in enumerate(others, 2)
        if any(_letters(study, i, c) != _letters(study, 1, c) for c in cases)
    )
    second_id = others.index(second) + 2
    clicked: dict[str, dict[str, dict[str, str]]] = {"Dr Reader": {}, second: {}}
    console_errors: list[str] = []
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)

        def new_page():
            context = browser.new_context(viewport={"width": 1500, "height": 1100})
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    console_errors.append(f"{m.text} {m.location}") if m.type == "error" else None
                ),
            )
            page.on("request", lambda r: requested.append(r.url))
            return context, page

        try:
            context, page = new_page()
            _login(page, links["Dr Reader"])
            assert page.url.endswith("/case/1")
            _wait_loaded(page)
            assert page.inner_text("#position") == "1" and page.inner_text("#n-cases") == "3"
            _explore_viewer(page, study)
            page.keyboard.press("x")  # crosshair on, zoomed in: what the screenshot shows
            page.keyboard.press("+")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "reader_study_case.png"), full_page=True)
            # the browser refuses incomplete and tied rankings
            assert page.is_disabled("#save-button")
            _rank(page, {"A": 1, "B": 1})
            assert page.is_disabled("#save-button")
            assert "must differ" in page.inner_text("#rank-message")
            for pos in (1, 2):
                methods = _check_letters(page, study, 1)
                clicked["Dr Reader"][page.inner_text(".case-id")] = {
                    methods[k]: r for k, r in CLICKS[pos].items()
                }
                _rank(page, CLICKS[pos])
                assert page.is_enabled("#save-button")
                page.click("#save-button")
                page.wait_for_url(re.compile(rf"/case/{pos + 1}$"))
                _wait_loaded(page)
            # stop here: reload; the used link no longer works; a rotated link resumes at 3
            page.reload()
            _wait_loaded(page)
            assert page.url.endswith("/case/3")
            context.close()
            context, page = new_page()
            page.goto(links["Dr Reader"])  # opened in another browser: the server refuses it
            page.wait_for_selector("text=ask the study organiser")
            assert main(["reader-study", "rotate", str(study), "Dr Reader"]) == 0
            _login(page, _link(capsys.readouterr().out))
            assert page.url.endswith("/case/3")
            _wait_loaded(page)
            # earlier answers are kept and can be revised
            page.goto(f"{base}/case/1")
            assert page.is_checked(f"#rank_A_{CLICKS[1]['A']}")
            page.goto(f"{base}/case/3")
            _wait_loaded(page)
            methods = _check_letters(page, study, 1)
            clicked["Dr Reader"][page.inner_text(".case-id")] = {
                methods[k]: r for k, r in CLICKS[3].items()
            }
            _rank(page, CLICKS[3])
            page.click("#save-button")
            page.wait_for_url(re.compile(r"/$"))
            page.click("#finish-button")
            page.wait_for_selector("#finished")
            context.close()
            # the second reader: same letters clicked, other methods behind them somewhere
            context, page = new_page()
            _login(page, links[second])
            for pos in (1, 2, 3):
                _wait_loaded(page)
                methods = _check_letters(page, study, second_id)
                clicked[second][page.inner_text(".case-id")] = {
                    methods[k]: r for k, r in CLICKS[pos].items()
                }
                _rank(page, CLICKS[pos])
                page.click("#save-button")
                page.wait_for_url(re.compile(rf"/case/{pos + 1}$" if pos < 3 else r"/$"))
            page.click("#finish-button")
            page.wait_for_selector("#finished")
            context.close()
        finally:
            browser.close()
    assert all(url.startswith(base) for url in requested), "request outside the app"
    assert not any("invite=" in url for url in requested), "token sent to the server in a URL"
    # the only error: the deliberate 403 of the used invitation
    assert [e for e in console_errors if "403" not in e or "/login'" not in e] == []
    assert len(console_errors) == 1
    assert clicked["Dr Reader"] != clicked[second]  # same clicks, other methods: own letters
    # the export unblinds exactly what each reader clicked
    out = study / "export.csv"
    assert main(["reader-study", "export", str(study), "--out", str(out)]) == 0
    want = pd.DataFrame(
        [
            {"case": case, "method": m, "rank": r, "reader": reader}
            for reader, by_case in clicked.items()
            for case, ranks in by_case.items()
            for m, r in ranks.items()
        ]
    )
    got = pd.read_csv(out)
    cols = ["reader", "case", "method"]
    pd.testing.assert_frame_equal(
        got.sort_values(cols).reset_index(drop=True),
        want.sort_values(cols).reset_index(drop=True)[got.columns],
        check_dtype=False,
    )


# ---------------------------------------------------------------- issue 30 in the browser
def _persistent(p, profile: Path):
    """A Chromium context on a profile folder (history database and disk cache on disk)."""
    return p.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1500, "height": 1100},
    )


def _history_urls(profile: Path) -> list[str]:
    """Every URL in the profile's History database (Chromium closed)."""
    copy = profile.parent / "History-copy"
    shutil.copyfile(profile / "Default" / "History", copy)
    conn = sqlite3.connect(copy)
    try:
        return [r[0] for r in conn.execute("SELECT url FROM urls")]
    finally:
        conn.close()


def test_invitation_leaves_history_and_an_opened_link_is_used_up(sync_playwright, server, tmp_path):
    """Issue 30.7: the token is out of the tab's history before the page is parsed; opening the
    link uses it up, so the link Chromium's History database keeps no longer logs in (elsewhere),
    and the same browser refuses a link it opened before without sending it to the server."""
    base, study, links = server
    link = links["Dr Reader"]
    profile = tmp_path / "profile"
    with sync_playwright() as p:
        context = _persistent(p, profile)
        seen: list[str] = []
        context.expose_function("reportLocation", lambda href: seen.append(href))
        # runs before the page's own scripts: what the DOM sees once it is parsed
        context.add_init_script(
            "document.addEventListener('DOMContentLoaded', () => "
            "window.reportLocation(location.href + ' ' + history.length), {capture: true});"
        )
        page = context.pages[0] if context.pages else context.new_page()
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        _login(page, link)  # opening the link logged in
        assert posts == [f"{base}/login"]
        assert seen and not any("invite" in s for s in seen), seen
        page.go_back()  # the tab's history has no entry with the token
        page.wait_for_load_state()
        assert "invite" not in page.url
        # opened again in this browser: refused here, nothing sent
        posts.clear()
        page.goto(link)
        page.wait_for_selector("text=opened in this browser before")
        assert posts == [] and "invite" not in page.url
        context.close()
        stored = [u for u in _history_urls(profile) if "#invite=" in u]
        assert stored, "Chromium's history does not keep the link: the attack below is moot"
        # someone who reads the link back from the History database: used up on the server
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            thief = browser.new_context().new_page()
            thief.goto(stored[0])
            thief.wait_for_selector("text=ask the study organiser")
            assert thief.url == f"{base}/login"
            assert thief.goto(f"{base}/case/1").url == f"{base}/login"  # not logged in
        finally:
            browser.close()
    conn = db.connect(study / db.DB_NAME)
    try:
        logins = conn.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'login' AND reader_id = 1"
        ).fetchone()[0]
    finally:
        conn.close()
    assert logins == 1


def _probes(study: Path, tokens: list[str]) -> list[bytes]:
    """From each panel file, the 256-byte window with the most distinct bytes (a fingerprint no
    other file holds by chance)."""
    out = []
    for token in tokens:
        raw = (study / "data" / f"{token}.bin").read_bytes()
        best = max(range(0, len(raw) - 256, 128), key=lambda i: len(set(raw[i : i + 256])))
        out.append(raw[best : best + 256])
    return out


def test_image_data_never_reaches_the_disk_cache(sync_playwright, server, tmp_path):
    """Issue 30.8: panels are sent no-store, so after logout no byte of them is in the profile
    folder; the page fetches each volume once and keeps it in memory while the reader works."""
    base, study, links = server
    profile = tmp_path / "profile"
    with sync_playwright() as p:
        context = _persistent(p, profile)
        page = context.pages[0] if context.pages else context.new_page()
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url) if "/data/" in r.url else None)
        _login(page, links["Dr Reader"])
        _wait_loaded(page)
        case = next(c for c in load_study(study)["cases"] if c["id"] == page.inner_text(".case-id"))
        data = _case_data(page)
        urls = {data["fixed"], data["moving"], data["moving_subtraction"]}
        urls |= {u for kinds in data["panels"].values() for u in kinds.values()}
        # slices, planes, window: every panel redrawn from memory, nothing fetched again
        page.keyboard.press("ArrowUp")
        page.click("#plane-toggle button[data-plane='coronal']")
        page.click("button.preset[data-kind='image'] >> nth=1")
        page.click("#plane-toggle button[data-plane='axial']")
        assert sorted(fetched) == sorted(f"{base}{u}" for u in urls)
        response = page.request.get(f"{base}{data['fixed']}")
        assert response.headers["cache-control"] == "no-store"
        page.click("header form button")  # log out
        page.wait_for_url(f"{base}/login")
        context.close()
    probes = _probes(study, panel_tokens(case))
    found = [
        str(path.relative_to(profile))
        for path in profile.rglob("*")
        if path.is_file() and any(probe in path.read_bytes() for probe in probes)
    ]
    assert not found, f"image data in the browser profile: {found}"


def test_session_loss_keeps_the_ranking_and_the_reader_logs_in_again(
    sync_playwright, server, capsys
):
    """Issue 30.11: the organiser ends the session while the reader ranks; Save keeps the ranking
    in the page, says what happened in words, and after logging in again in the page (a link of
    another reader is refused for this ranking) the ranking is saved."""
    base, study, links = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
            _login(page, links["Dr Reader"])
            assert page.url.endswith("/case/1")
            _wait_loaded(page)
            _rank(page, CLICKS[1])
            assert main(["reader-study", "revoke", str(study), "Dr Reader"]) == 0
            page.click("#save-button")
            page.wait_for_selector("#session-ended", state="visible")
            text = page.inner_text("#session-ended")
            assert "session has ended" in text and "kept in this page" in text
            assert "organiser ended it" in text  # what happened, in words
            assert page.url.endswith("/case/1")
            assert all(page.is_checked(f"#rank_{k}_{r}") for k, r in CLICKS[1].items())
            # another reader's link: logged in as them, but this ranking is not theirs
            page.fill("#relogin-token", links["Dr Second 0"])
            page.click("#relogin-button")
            page.wait_for_selector("text=another reader's")
            assert page.url.endswith("/case/1")
            capsys.readouterr()
            assert main(["reader-study", "rotate", str(study), "Dr Reader"]) == 0
            page.fill("#relogin-token", _link(capsys.readouterr().out))
            page.click("#relogin-button")
            page.wait_for_url(re.compile(r"/case/2$"))
        finally:
            browser.close()
    conn = db.connect(study / db.DB_NAME)
    try:
        first = db.assignments(conn, 1)[0]
        answers = db.answers(conn, 1)
        assert db.answers(conn, 2) == {}
    finally:
        conn.close()
    assert answers == {first: {"state": "ranked", "comment": "", "ranks": CLICKS[1]}}
