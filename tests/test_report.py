"""``bench report``: a PDF with the expected sections, tables and figures from a synthetic run
folder, deterministic bytes, and a report that says what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_run import RUN_NAMES, make_fake_run, paper_table1_rankings
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement
from reports.build import build_report, make_context
from reports.cases import select_cases
from reports.dvf_colour import dvf_rgba
from reports.runfolder import load_run
from reports.sections import SECTIONS

METHODS = ["identity", "elastix", "unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc"]


@pytest.fixture(scope="module")
def fake_run(fake_run_dir, tmp_path_factory):
    run = fake_run_dir  # the session fixture of conftest.py (tests/fake_run.py, default arguments)
    rankings = tmp_path_factory.mktemp("rankings") / "rankings.csv"
    paper_table1_rankings(names=RUN_NAMES).to_csv(rankings, index=False)
    return run, rankings


@pytest.fixture(scope="module")
def full_report(fake_run):
    run, rankings = fake_run
    out = rankings.parent / "report" / "report.pdf"
    return build_report(run, out=out, rankings=rankings, n_cases=2, progress=False)


def _text(pdf) -> list[str]:
    return [page.extract_text() for page in PdfReader(str(pdf)).pages]


# ------------------------------------------------------------------------------ colour coding


def test_dvf_rgba_mapping():
    u = np.zeros((3, 4, 5))
    u[0, 0, 0], u[1, 1, 1], u[2, 2, 2] = 2.0, -2.0, 1.0
    rgba = dvf_rgba(u, max_component=2.0, max_length=2.0)
    assert rgba.shape == (4, 5, 4)
    np.testing.assert_allclose(rgba[3, 3], [0.5, 0.5, 0.5, 0.0])  # zero vector: mid grey, clear
    np.testing.assert_allclose(rgba[0, 0], [1.0, 0.5, 0.5, 1.0])  # +max along i: red
    np.testing.assert_allclose(rgba[1, 1], [0.5, 0.0, 0.5, 1.0])  # -max along j: no green
    np.testing.assert_allclose(rgba[2, 2], [0.5, 0.5, 0.75, 0.5])  # half length: alpha 0.5
    clipped = dvf_rgba(10 * u, max_component=2.0, max_length=2.0)
    assert clipped.min() >= 0 and clipped.max() <= 1
    flat = dvf_rgba(np.zeros((2, 3, 3)))
    np.testing.assert_allclose(flat[..., 2], 0.5)
    np.testing.assert_allclose(flat[..., 3], 0.0)
    with pytest.raises(BenchError, match="shape"):
        dvf_rgba(np.zeros((4, 3, 3)))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_dvf_rgba_inverts_to_the_field(seed, scale):
    u = np.random.default_rng(seed).normal(0, scale, (3, 5, 6))
    top = float(np.abs(u).max())
    length = np.sqrt((u**2).sum(axis=0))
    rgba = dvf_rgba(u)  # defaults: the field's own maxima
    np.testing.assert_allclose((np.moveaxis(rgba[..., :3], -1, 0) - 0.5) * 2 * top, u, atol=1e-9)
    np.testing.assert_allclose(rgba[..., 3] * length.max(), length, atol=1e-9)


# ------------------------------------------------------------------------------ run folder


def test_load_run_and_case_selection(fake_run):
    run_dir, _ = fake_run
    run = load_run(run_dir)
    assert run.methods == METHODS
    assert run.missing.empty
    assert run.dataset == "demo-acdc" and run.date.startswith("2026-11-20")
    top, criterion = select_cases(run, 2, progress=False)
    assert "displacement" in criterion
    # independent: mean over methods but identity of the mean vector length
    scores = {}
    for p in run.pairs.itertuples(index=False):
        lengths = [
            np.linalg.norm(
                read_displacement(run.pair_dir(m, p.fold, p.case, p.pair) / "displacement.nii.gz")[
                    0
                ],
                axis=0,
            ).mean()
            for m in METHODS[1:]
        ]
        scores[p.case] = np.mean(lengths)
    expected = sorted(scores, key=scores.get, reverse=True)[:2]
    assert top["case"].tolist() == expected
    np.testing.assert_allclose(top["score"], [scores[c] for c in expected], rtol=1e-6)


# ------------------------------------------------------------------------------ the report


def test_report_sections_tables_and_figures(full_report):
    pages = _text(full_report.pdf)
    text = "\n".join(pages)
    for spec in SECTIONS:  # with rankings: every section but the Learn2Reg one
        assert (spec.title in text) == (spec.id != "learn2reg"), spec.title
    for method in METHODS:
        assert method in text
    assert "demo-acdc" in pages[0] and "2026-11-20" in pages[0] and "torch: 2.13.0" in pages[0]
    assert "mean ± SD" in text and "median [IQR]" in text
    assert "10.56" in text and "32 of 50 (64%)" in text and "0.048" in text
    assert "Nothing is missing" in text
    assert "1 model(s) are worse than no" in text and "WORSE: similarity" in text
    names = sorted(p.name for p in full_report.figures)
    assert sum(n.startswith("fig1_case") for n in names) == 2
    assert {"fig2_nmi_folding.png", "fig4_boxplots.png", "table1_ranks.png"} <= set(names)
    for png in full_report.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = {p.stem: pd.read_csv(p) for p in full_report.tables}
    assert {
        "summary",
        "comparisons",
        "nmi_vs_ncc",
        "ranking_contingency",
        "ranking_pairwise",
        "folding_counts",
        "missing_data",
        "case_selection",
        "validation",
    } <= set(tables)
    assert sum(n.startswith("training_") for n in names) == 4 * 2  # 4 learned methods x 2 folds
    flagged = tables["validation"].fillna("")
    assert (flagged["worse_than_identity"] != "").sum() == 1
    summary = tables["summary"]
    assert set(summary["method"]) == set(METHODS)
    assert set(summary["structure"]) == {"RV", "LVm", "LVb", "image"}
    assert tables["ranking_contingency"].set_index("method").loc["unet-nmi"].tolist() == [13, 12, 25]
    assert len(tables["nmi_vs_ncc"]) == 2 * (3 * 3 + 4)


def test_the_declared_sections_are_the_contents_and_the_page_order(fake_run, full_report):
    """The title page lists the table-of-contents line of every section of ``SECTIONS`` in the
    declared order, and the PDF's pages are the sections' pages in that order, each section's
    first page headed with its title."""
    run, rankings = fake_run
    pages = _text(full_report.pdf)
    listed = pages[0][pages[0].index("Contents") :].splitlines()[1:]
    ctx = make_context(load_run(run), rankings=rankings, n_cases=2, progress=False)
    present = [spec for spec in SECTIONS if spec.when(ctx)]
    assert [spec.id for spec in SECTIONS if spec not in present] == ["learn2reg"]  # demo-acdc
    declared = [spec.contents_line(ctx) for spec in present if spec.contents is not None]
    assert [line.removeprefix("- ") for line in listed] == declared == list(ctx.contents)
    assert "Figure 1/3 analogue: 2 example case(s)" in declared
    assert [sid for sid, _ in full_report.sections] == [spec.id for spec in present]
    assert sum(n for _, n in full_report.sections) == full_report.pages == len(pages)
    first = 0
    for spec, (_, n) in zip(present, full_report.sections, strict=True):
        assert n > 0, spec.id  # every section has pages in this run
        assert spec.title in pages[first], (spec.id, pages[first][:80])
        first += n
    figure_names = [p.name for p in full_report.figures]
    table_names = [p.name for p in full_report.tables]
    assert len(set(figure_names)) == len(figure_names)  # no section overwrites another's output
    assert len(set(table_names)) == len(table_names)


def test_report_page_images(full_report, tmp_path):
    reader = PdfReader(str(full_report.pdf))
    case_pages = [
        i
        for i, p in enumerate(reader.pages)
        if "fixed, warped, subtraction and displacement field" in p.extract_text()
    ]
    assert len(case_pages) == 2
    # the case page embeds images (fixed, warped, subtraction, RGBA field per column)
    assert len(reader.pages[case_pages[0]].images) >= 4 * 5
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed; embedded images checked only")
    prefix = tmp_path / "page"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "40",
            "-png",
            "-f",
            str(case_pages[0] + 1),
            "-l",
            str(case_pages[0] + 1),
            str(full_report.pdf),
            str(prefix),
        ],
        check=True,
    )
    from matplotlib.image import imread

    png = imread(next(tmp_path.glob("page*.png")))[..., :3]
    assert png.std() > 0.1  # not a blank page
    saturation = png.max(axis=2) - png.min(axis=2)
    assert (saturation > 0.3).mean() > 0.01  # the colour-coded fields are there


def test_same_inputs_same_bytes(fake_run, full_report, tmp_path):
    run, rankings = fake_run
    again = build_report(
        run, out=tmp_path / "again.pdf", rankings=rankings, n_cases=2, progress=False
    )
    assert again.pdf.read_bytes() == full_report.pdf.read_bytes()
    for a, b in zip(sorted(full_report.figures), sorted(again.figures), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_missing_method_and_nan_metric(tmp_path, capsys):
    run = make_fake_run(
        tmp_path, n_cases=3, missing_method="poolnet-ncc", nan_metric=("elastix", "LVb", "hd")
    )
    out = tmp_path / "out" / "r.pdf"
    assert main(["report", str(run), "--out", str(out), "--cases", "1"]) == 0
    assert str(out) in capsys.readouterr().out
    text = "\n".join(_text(out))
    assert "Missing data" in text
    assert "poolnet-ncc: no rows in the results table" in text
    assert "poolnet-ncc: no pairs/poolnet-ncc folder" in text
    assert "elastix: LVb / hd: 1 NaN (failed: synthetic: 1)" in text
    assert "missing:" in text  # the case figure marks the absent method's panels
    summary = pd.read_csv(out.parent / "tables" / "summary.csv")
    ghost = summary[summary["method"] == "poolnet-ncc"]
    assert len(ghost) and (ghost["n"] == 0).all()
    hd = summary[
        (summary["method"] == "elastix")
        & (summary["structure"] == "LVb")
        & (summary["metric"] == "hd")
    ].iloc[0]
    assert (hd["n"], hd["n_nan"]) == (2, 1)
    missing = pd.read_csv(out.parent / "tables" / "missing_data.csv")
    assert set(missing["what"]) == {"method-no-results", "method-no-pairs", "nan-metric"}


def test_results_from_result_json_and_errors(tmp_path):
    run = make_fake_run(tmp_path, n_cases=2, methods=("identity", "elastix"), shape=(16, 16, 4))
    expected = pd.read_csv(run / "results.csv")
    # results.csv older than the pair outputs (interrupted run): the result.json rows fill in
    expected[expected["method"] == "identity"].to_csv(run / "results.csv", index=False)
    folder = load_run(run)
    assert len(folder.results) == len(expected)
    assert folder.missing["what"].tolist() == ["results.csv"]
    assert "lacks 2 finished (method, pair) result(s)" in folder.missing["detail"].iloc[0]
    (run / "results.csv").unlink()
    # an incomplete pair: its result.json is absent
    next((run / "pairs" / "elastix").glob("fold*/*/*/result.json")).unlink()
    folder = load_run(run)
    assert len(folder.results) == len(expected) - len(expected) // 4
    assert set(folder.missing["what"]) == {"results.csv", "incomplete-pairs"}
    build_report(run, n_cases=2, progress=False)
    assert len(list((run / "report" / "figures").glob("fig1_case*.png"))) == 2
    report = build_report(run, n_cases=0, progress=False)
    assert not list((run / "report" / "figures").glob("fig1_case*.png"))  # stale ones removed
    assert report.pdf == run / "report" / "report.pdf"  # the default place
    assert (run / "report" / "figures" / "fig4_boxplots.png").is_file()
    assert (run / "report" / "tables" / "summary.csv").is_file()
    text = "\n".join(_text(report.pdf))
    assert "1 of 2 test pairs without result.json" in text
    assert "No example cases" in text
    # without displacement files the cases are chosen by NMI gain
    for f in (run / "pairs").glob("*/*/*/*/displacement.nii.gz"):
        f.unlink()
    top, criterion = select_cases(load_run(run), 2, progress=False)
    assert "NMI gain" in criterion
    res = folder.results[folder.results["structure"] == "image"]
    gain = (
        res[res["metric"] == "nmi"].groupby("case")["value"].mean()
        - res[res["metric"] == "nmi_before"].groupby("case")["value"].mean()
    )
    assert top["case"].tolist() == gain.sort_values(ascending=False).index.tolist()
    np.testing.assert_allclose(top["score"], gain.sort_values(ascending=False).to_numpy())
    with pytest.raises(BenchError, match="run folder not found"):
        load_run(tmp_path / "absent")
    assert main(["report", str(tmp_path / "absent")]) == 2
    with pytest.raises(BenchError, match="nothing to report"):
        load_run(tmp_path / "data")


def test_report_sets_readers_ranks_beside_the_metrics(fake_run_dir, tmp_path):
    """Rankings of the run's own methods and pairs: the readers-versus-metrics section lists every
    ranked pair with both rankings and Kendall's tau; the ranking section has its CD diagram."""
    results = pd.read_csv(fake_run_dir / "results.csv", dtype={"case": str, "pair": str})
    keys = sorted(set(results["case"] + "/" + results["pair"]))
    methods = ["elastix", "unet-nmi", "poolnet-nmi"]
    rankings = pd.DataFrame(
        [
            {"case": key, "method": m, "rank": (i + r) % 3 + 1, "reader": "r1"}
            for r, key in enumerate(keys)
            for i, m in enumerate(methods)
        ]
    )
    path = tmp_path / "rankings.csv"
    rankings.to_csv(path, index=False)
    report = build_report(
        fake_run_dir, out=tmp_path / "r" / "report.pdf", rankings=path, n_cases=0, progress=False
    )
    text = "\n".join(_text(report.pdf))
    assert "Reader study versus metrics" in text and "Kendall tau" in text
    table = pd.read_csv(tmp_path / "r" / "tables" / "readers_vs_metrics.csv")
    assert table["case"].tolist() == keys
    assert table["tau"].between(-1, 1).all()
    assert "critical_difference.png" in {p.name for p in report.figures}
    assert {"metric_ranks.csv", "dsc30.csv"} <= {p.name for p in report.tables}


def test_a_section_left_out_leaves_no_outputs_behind(tmp_path):
    """A build without rankings after one with them removes the reader-study sections' figure and
    tables (their ``variable_outputs``) and keeps files the report does not write."""
    run = make_fake_run(tmp_path, n_cases=2, methods=("identity", "elastix"), shape=(16, 16, 4))
    rankings = tmp_path / "rankings.csv"
    pd.DataFrame(
        [
            {"case": f"patient00{c}/ED-ES", "method": m, "rank": (i + c) % 2 + 1}
            for c in (1, 2)
            for i, m in enumerate(("identity", "elastix"))
        ]
    ).to_csv(rankings, index=False)
    folder = run / "report"
    reader_outputs = [
        folder / "figures" / "table1_ranks.png",
        *(folder / "tables" / f"ranking_{n}.csv" for n in ("contingency", "pairwise", "tests")),
        folder / "tables" / "readers_vs_metrics.csv",
    ]
    first = build_report(run, rankings=rankings, n_cases=1, progress=False)
    assert all(p.is_file() for p in reader_outputs)
    assert {"table1", "readers_vs_metrics"} <= {sid for sid, _ in first.sections}
    (folder / "tables" / "mine.csv").write_text("x\n")
    again = build_report(run, n_cases=1, progress=False)
    assert not any(p.exists() for p in reader_outputs)
    assert (folder / "tables" / "mine.csv").is_file()
    assert not {"table1", "readers_vs_metrics"} & {sid for sid, _ in again.sections}
    assert again.pages == first.pages - sum(
        n for sid, n in first.sections if sid in ("table1", "readers_vs_metrics")
    )


CD_SCRIPT = """
import sys
import pandas as pd
from reports import figures
from reports.pdf import report_style, write_png
methods = ["identity", "elastix", "unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc"]
ranks = pd.Series([3.5, 1.2, 2.0, 2.4, 4.8, 5.1], index=methods)
p = pd.DataFrame(0.9, index=methods, columns=methods)  # no pair differs: one bar joins all
with report_style():
    fig = figures.critical_difference_figure({"dice": ranks}, {"dice": p}, {"dice": 3.8})
    write_png(sys.argv[1], fig)
"""


def test_critical_difference_bytes_do_not_depend_on_the_hash_seed(tmp_path):
    """scikit-posthocs draws each bar through a set of method names, whose order changes with
    Python's string hashing: the figure sorts the bars' points, so that two processes give the
    same bytes (the report's promise of byte-identical files for the same inputs)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "MPLBACKEND": "Agg"}
    outputs = []
    for seed in ("1", "2", "3"):
        png = tmp_path / f"cd{seed}.png"
        subprocess.run(
            [sys.executable, "-c", CD_SCRIPT, str(png)],
            env={**env, "PYTHONHASHSEED": seed}, check=True, timeout=300,
        )
        outputs.append(png.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
