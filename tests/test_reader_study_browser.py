"""End-to-end test of the reader-study app in a real browser.

Playwright drives Debian's Chromium headless (no browser download: ``executable_path`` points at
``/usr/bin/chromium``, or at ``$READER_STUDY_CHROMIUM``) against the real server started with
``bench reader-study serve`` on a free loopback port. A reader logs in with the link printed by
``add-reader``, scrolls slices, changes window/level, switches views, is stopped by the browser
on an invalid ranking, ranks every case, reloads and logs in again (the study resumes at the
first unranked case), finishes; the export then matches what was clicked. A screenshot of a case
page is saved to ``test-artifacts/reader_study_case.png``.

Marked ``browser`` so it can be selected (``-m browser``); it runs by default and is skipped
only when the ``playwright`` package or Chromium is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
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
from benchmark.reader_study.prepare import decode, load_key

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


@pytest.fixture
def server(tmp_path, capsys):
    """A study (3 pairs, 3 methods), one reader, and `bench reader-study serve` on a free port."""
    run = make_fake_run(tmp_path / "fake", n_cases=N_CASES, seed=2)
    study = tmp_path / "study"
    assert (
        main(
            [
                "reader-study",
                "create",
                str(run),
                "--methods",
                "elastix,unet-nmi,poolnet-nmi",
                "--seed",
                "5",
                "--out",
                str(study),
            ]
        )
        == 0
    )
    assert main(["reader-study", "add-reader", str(study), "Dr Reader"]) == 0
    token = re.search(r"login\?token=(\S+)", capsys.readouterr().out).group(1)
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
        yield base, study, token
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


def _check_pixels(page, study: Path) -> None:
    data = page.evaluate("JSON.parse(document.getElementById('case-data').textContent)")
    shape = tuple(data["shape"])
    raw = (study / "data" / f"{data['fixed'].rsplit('/', 1)[1]}.bin").read_bytes()
    volume = decode(raw, shape, offset=data["offset"], scale=data["scale"])
    k = int(page.get_attribute("#viewer", "data-slice"))
    lo, hi = (float(v) for v in page.get_attribute("#viewer", "data-image-window").split(","))
    expected = np.clip((volume[:, :, k] - lo) * 255.0 / (hi - lo), 0, 255)  # (I, J)
    rgba = page.eval_on_selector(
        "canvas[data-volume='fixed']",
        """c => Array.from(
        c.getContext('2d').getImageData(0, 0, c.width, c.height).data)""",
    )
    grey = np.asarray(rgba, dtype=np.float64).reshape(shape[1], shape[0], 4)[..., 0]  # (y, x)
    np.testing.assert_allclose(grey[::-1, :].T, expected, atol=1.0)


def _login(page, base, token):
    page.goto(f"{base}/login?token={token}")
    page.click("#login-button")
    page.wait_for_url(re.compile(r"/case/\d+$"))


def _wait_loaded(page):
    page.wait_for_selector("#viewer[data-loaded='true']", timeout=15000)


def _rank(page, ranks: dict[str, int]):
    for label, r in ranks.items():
        page.check(f"#rank_{label}_{r}")


def test_reader_session_in_chromium(sync_playwright, server):
    base, study, token = server
    shown: dict[int, str] = {}
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    console_errors.append(f"{m.text} {m.location}") if m.type == "error" else None
                ),
            )
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            _login(page, base, token)
            assert page.url.endswith("/case/1")
            _wait_loaded(page)
            assert page.inner_text("#position") == "1" and page.inner_text("#n-cases") == "3"
            shown[1] = page.inner_text(".case-id")
            canvases = page.locator("canvas.panel")
            assert canvases.count() == 2 * (1 + 3)
            # every panel drawn, with contrast, and all panels the same size (aligned)
            boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
            assert len({(round(b["width"]), round(b["height"])) for b in boxes}) == 1
            assert len({round(b["y"]) for b in boxes[:4]}) == 1  # warped row on one line
            for i in range(canvases.count()):
                assert _canvas_signature(page, f"canvas.panel >> nth={i}")[1] > 5
            # the fixed panel shows the stored volume: slice k, i to the right, j upwards, grey =
            # window-mapped value (checked against the decoded file, independently of the script)
            _check_pixels(page, study)
            # slices: wheel over a panel and keys move every panel together
            first = page.inner_text("#slice-readout")
            k0 = int(page.get_attribute("#viewer", "data-slice"))
            before = _canvas_signature(page, "canvas[data-volume='B:warped']")
            page.hover("canvas[data-volume='A:warped']")
            page.mouse.wheel(0, 120)
            page.wait_for_function(f"document.getElementById('viewer').dataset.slice == '{k0 + 1}'")
            assert page.inner_text("#slice-readout") != first
            assert _canvas_signature(page, "canvas[data-volume='B:warped']") != before
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
            assert page.get_attribute("#viewer", "data-slice") == str(k0 - 1)
            # window/level: preset buttons and dragging, synchronised across panels
            sub_before = page.get_attribute("#viewer", "data-subtraction-window")
            page.click("button.preset[data-kind='subtraction'] >> nth=2")
            assert page.get_attribute("#viewer", "data-subtraction-window") != sub_before
            win_before = page.get_attribute("#viewer", "data-image-window")
            sig_a, sig_c = (
                _canvas_signature(page, f"canvas[data-volume='{v}']")
                for v in ("A:warped", "C:warped")
            )
            box = page.locator("canvas[data-volume='A:warped']").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx - 60, cy + 40, steps=5)
            page.mouse.up()
            win_after = page.get_attribute("#viewer", "data-image-window")
            assert win_after != win_before
            lo, hi = (float(v) for v in win_after.split(","))
            lo0, hi0 = (float(v) for v in win_before.split(","))
            assert hi - lo < hi0 - lo0 and (lo + hi) < (lo0 + hi0)  # narrower and lower level
            assert _canvas_signature(page, "canvas[data-volume='A:warped']") != sig_a
            assert _canvas_signature(page, "canvas[data-volume='C:warped']") != sig_c
            # view toggle
            page.click("#view-toggle button[data-view='subtraction']")
            assert not page.is_visible("canvas[data-volume='A:warped']")
            assert page.is_visible("canvas[data-volume='A:subtraction']")
            page.click("#view-toggle button[data-view='both']")
            assert page.is_visible("canvas[data-volume='A:warped']")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "reader_study_case.png"), full_page=True)
            # the browser refuses incomplete and tied rankings
            assert page.is_disabled("#save-button")
            _rank(page, {"A": 1, "B": 1})
            assert page.is_disabled("#save-button")
            assert "must differ" in page.inner_text("#rank-message")
            _rank(page, CLICKS[1])
            assert page.is_enabled("#save-button")
            page.click("#save-button")
            page.wait_for_url(re.compile(r"/case/2$"))
            _wait_loaded(page)
            shown[2] = page.inner_text(".case-id")
            _rank(page, CLICKS[2])
            page.click("#save-button")
            page.wait_for_url(re.compile(r"/case/3$"))
            # stop here: reload, then a fresh browser session logs in and resumes at case 3
            page.reload()
            _wait_loaded(page)
            assert page.url.endswith("/case/3")
            context.close()
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            _login(page, base, token)
            assert page.url.endswith("/case/3")
            _wait_loaded(page)
            shown[3] = page.inner_text(".case-id")
            # earlier answers are kept and can be revised
            page.goto(f"{base}/case/1")
            assert page.is_checked(f"#rank_A_{CLICKS[1]['A']}")
            page.goto(f"{base}/case/3")
            _wait_loaded(page)
            _rank(page, CLICKS[3])
            page.click("#save-button")
            page.wait_for_url(re.compile(r"/$"))
            page.click("#finish-button")
            page.wait_for_selector("#finished")
            context.close()
        finally:
            browser.close()
    assert all(urls.startswith(base) for urls in requested), "request outside the app"
    assert not console_errors, console_errors
    # the export unblinds exactly what was clicked
    out = study / "export.csv"
    assert main(["reader-study", "export", str(study), "--out", str(out)]) == 0
    key = load_key(study)["cases"]
    want = pd.DataFrame(
        [
            {"case": shown[pos], "method": key[shown[pos]][label], "rank": r, "reader": "Dr Reader"}
            for pos, ranks in CLICKS.items()
            for label, r in ranks.items()
        ]
    )
    got = pd.read_csv(out)
    cols = ["case", "method"]
    pd.testing.assert_frame_equal(
        got.sort_values(cols).reset_index(drop=True),
        want.sort_values(cols).reset_index(drop=True)[got.columns],
        check_dtype=False,
    )
