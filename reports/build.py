"""Assembling the report of a run folder: title page, missing-data note, summary and comparison
tables, the Figure 4, 2 and 1/3 analogues, and (with rankings) Table 1 with its statistics. Writes
the PDF and, beside it, every figure as PNG (``figures/``) and every table as CSV (``tables/``).
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmark import __version__
from benchmark.atomic import write_text
from reports import figures, tables
from reports.cases import load_case_view, select_cases, shown_methods
from reports.pdf import new_page, report_style, write_pdf, write_png
from reports.runfolder import RunFolder, load_run

log = logging.getLogger(__name__)

SECTION_TITLES = (
    "MIRBench report",
    "Methods and settings",
    "Missing data",
    "Summary tables",
    "Comparison statistics",
    "NMI- versus NCC-trained networks",
    "Figure 4 analogue",
    "Figure 2 analogue",
    "Figure 1/3 analogue",
    "Reader study: Table 1",
)


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    pdf: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    pages: int = 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _fmt_mapping(value) -> str:
    if value is None or value == {} or value == []:
        return "not recorded"
    if isinstance(value, dict):
        return ", ".join(
            f"{k}: {_fmt_mapping(v) if isinstance(v, dict) else v}" for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _command(command) -> str:
    if isinstance(command, (list, tuple)):
        import shlex

        return shlex.join(str(c) for c in command)
    return str(command) if command else "not recorded"


def _methods_page(run: RunFolder) -> list[Figure]:
    """Each method's description and settings as recorded in ``run.json``."""
    cfg = run.run.get("methods")
    lines = []
    for method in run.methods:
        lines.append(method)
        entry = cfg.get(method) if isinstance(cfg, dict) else None
        if not isinstance(entry, dict) or not entry:
            lines += ["    no configuration recorded", ""]
            continue
        for key, value in entry.items():
            text = _fmt_mapping(value) if isinstance(value, (dict, list, tuple)) else str(value)
            for i, part in enumerate(textwrap.wrap(f"{key}: {text}", 100) or [f"{key}:"]):
                lines.append(("    " if i == 0 else "        ") + part)
        lines.append("")
    return tables.text_page("Methods and settings", lines)


def _fold_summary(run: RunFolder) -> str:
    if run.folds:
        parts = []
        for k in sorted(run.folds, key=lambda x: (not str(x).isdigit(), len(str(x)), str(x))):
            f = run.folds[k]
            if isinstance(f, dict):
                val = f" / {len(f['val'])} val" if f.get("val") else ""
                parts.append(
                    f"fold {k}: {len(f.get('train', []))} train{val} / "
                    f"{len(f.get('test', []))} test"
                )
        return f"{len(run.folds)} folds ({'; '.join(parts)})"
    if len(run.pairs):
        counts = run.pairs.groupby("fold").size()
        return (
            f"{len(counts)} folds ("
            + "; ".join(f"fold {k}: {v} test pairs" for k, v in counts.items())
            + ")"
        )
    folds = sorted(set(run.results["fold"]))
    return f"{len(folds)} folds ({', '.join(map(str, folds))})" if folds else "not recorded"


def _title_page(run: RunFolder, contents: list[str]) -> Figure:
    fig = new_page()
    w, h = fig.get_size_inches()
    fig.text(0.5, 1 - 1.2 / h, "MIRBench report", ha="center", fontsize=22, weight="bold")
    fig.text(
        0.5,
        1 - 1.6 / h,
        "Unsupervised deep-learning image registration with mutual "
        "information (after de Vos et al., SPIE Medical Imaging 2020)",
        ha="center",
        fontsize=9,
        color="0.3",
    )
    ds = run.run.get("dataset")
    manifest = ""
    if isinstance(ds, dict) and (ds.get("manifest") or ds.get("path")):
        manifest = f"{ds.get('manifest') or ds['path']}" + (
            f" (sha256 {str(ds['sha256'])[:16]}...)" if ds.get("sha256") else ""
        )
    methods_cfg = run.run.get("methods")
    presets = run.run.get("presets") or run.run.get("preset")
    if presets is None and isinstance(methods_cfg, dict):
        presets = {
            m: c.get("preset")
            for m, c in methods_cfg.items()
            if isinstance(c, dict) and c.get("preset")
        } or None
    n_pairs = run.results[["case", "pair"]].drop_duplicates().shape[0]
    fields = [
        ("Run folder", run.path.name),
        ("Date of the run", run.date),
        ("Dataset", run.dataset),
        ("Manifest", manifest or "not recorded"),
        ("Methods", ", ".join(run.methods)),
        ("Folds", _fold_summary(run)),
        (
            "Test pairs",
            f"{len(run.pairs) if len(run.pairs) else n_pairs} "
            f"({run.results['case'].nunique()} cases)",
        ),
        ("Presets", _fmt_mapping(presets)),
        ("Seeds", _fmt_mapping(run.run.get("seeds", run.run.get("seed")))),
        ("Versions", _fmt_mapping(run.run.get("versions"))),
        ("Command", _command(run.run.get("command"))),
        ("Report", f"mirbench {__version__}"),
    ]
    y = 2.4
    for label, value in fields:
        lines = textwrap.wrap(str(value), 80) or [""]
        fig.text(0.9 / w, 1 - y / h, label, fontsize=9, weight="bold", va="top")
        for line in lines:
            fig.text(2.5 / w, 1 - y / h, line, fontsize=9, va="top")
            y += 0.2
        y += 0.08
    y += 0.3
    fig.text(0.9 / w, 1 - y / h, "Contents", fontsize=11, weight="bold", va="top")
    y += 0.3
    for item in contents:
        fig.text(1.1 / w, 1 - y / h, f"- {item}", fontsize=9, va="top")
        y += 0.2
    return fig


def _missing_pages(run: RunFolder) -> list[Figure]:
    miss = run.missing
    if miss.empty:
        lines = [
            "Nothing is missing: every method has results and an output folder for every test",
            "pair, and no metric value is NaN.",
        ]
    else:
        lines = []
        labels = {
            "method-no-results": "Methods without results",
            "method-no-pairs": "Methods without pair outputs",
            "incomplete-pairs": "Incomplete methods",
            "nan-metric": "NaN metric values (counted in the tables' NaN column)",
            "results.csv": "Results table",
        }
        for what, group in miss.groupby("what", sort=False):
            lines.append(labels.get(what, what) + ":")
            for r in group.itertuples(index=False):
                text = f"{r.method}: {r.detail}" if r.method else r.detail
                for i, part in enumerate(textwrap.wrap(text, 110)):
                    lines.append(("  - " if i == 0 else "    ") + part)
            lines.append("")
    return tables.text_page("Missing data", lines)


def _unit(summary: pd.DataFrame, structure: str, metric: str) -> str:
    u = summary.loc[(summary["structure"] == structure) & (summary["metric"] == metric), "unit"]
    u = u.iloc[0] if len(u) else ""
    return f" [{u}]" if u not in ("", "1") else ""


def build_report(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    rankings: str | os.PathLike | None = None,
    n_cases: int = 2,
    progress: bool = True,
) -> Report:
    """Build the PDF report of a run folder.

    Parameters
    ----------
    run_dir : path-like
        The run folder (``docs/conventions.md``, "Run folder").
    out : path-like, optional
        The PDF; default ``RUN_DIR/report/report.pdf``. Figures go to ``figures/*.png`` and tables
        to ``tables/*.csv`` in the PDF's folder.
    rankings : path-like, optional
        A rankings CSV of a reader study (``case, method, rank[, reader]``): adds Table 1 and its
        statistics.
    n_cases : int
        Pairs shown in the Figure 1/3 analogue (default 2; the largest deformations, see
        :mod:`reports.cases`).
    progress : bool
        Show tqdm progress bars on stderr.

    Returns
    -------
    Report
        The paths written and the page count. The same inputs give byte-identical files.
    """
    from tqdm.auto import tqdm

    from benchmark.stats.comparisons import compare_methods, nmi_vs_ncc, summarize_metrics

    run = load_run(run_dir)
    pdf_path = Path(out) if out is not None else run.path / "report" / "report.pdf"
    fig_dir, tab_dir = pdf_path.parent / "figures", pdf_path.parent / "tables"
    report = Report(pdf=pdf_path)
    methods = run.methods
    results = run.results

    def save_table(name: str, frame: pd.DataFrame) -> None:
        path = tab_dir / f"{name}.csv"
        write_text(path, frame.to_csv(index=False, lineterminator="\n"))
        report.tables.append(path)

    ranking_stats = None
    if rankings is not None:
        from benchmark.stats.ranking import analyze_rankings, read_rankings

        ranking_stats = analyze_rankings(read_rankings(rankings), validate=False)

    summary = summarize_metrics(results, methods=methods)
    comparisons = compare_methods(results, methods=methods)
    loss_pairs = nmi_vs_ncc(comparisons)
    selection, criterion = select_cases(run, n_cases, progress=progress)
    save_table("summary", summary)
    save_table("comparisons", comparisons)
    save_table("nmi_vs_ncc", loss_pairs)
    save_table("folding_counts", figures.folding_counts(results, methods))
    save_table("missing_data", run.missing)
    save_table("case_selection", selection)

    contents = [
        "Methods and settings",
        "Missing data",
        "Summary tables (mean ± SD, median [IQR] per method)",
        "Comparison statistics (paired Wilcoxon, Holm)",
        "NMI- versus NCC-trained networks",
        "Figure 4 analogue: folding, Dice, Hausdorff",
        "Figure 2 analogue: NMI and folding",
        f"Figure 1/3 analogue: {len(selection)} example case(s)",
    ]
    if ranking_stats is not None:
        contents.append("Reader study: Table 1 and its statistics")

    with report_style():
        pages: list[Figure] = [_title_page(run, contents)]
        pages += _methods_page(run)
        pages += _missing_pages(run)
        blocks = [
            (f"{s} / {m}{_unit(summary, s, m)}", frame)
            for (s, m), frame in tables.summary_display(summary).items()
        ]
        pages += tables.table_pages(
            "Summary tables",
            blocks,
            subtitle="Per structure and metric: n finite values, NaN count, mean ± SD (ddof 1), "
            "median [25th, 75th percentile].",
        )
        blocks = [
            (f"{s} / {m}", frame)
            for (s, m), frame in tables.comparisons_display(comparisons).items()
        ]
        pages += tables.table_pages(
            "Comparison statistics",
            blocks,
            subtitle="Paired Wilcoxon signed-rank tests over (case, pair); pairs with a NaN "
            "skipped, zero differences discarded; P Holm: Holm over the method pairs "
            "of each block; favours: by the median difference and the metric's direction.",
        )
        loss_frame = pd.DataFrame(
            {
                "structure": loss_pairs["structure"],
                "metric": loss_pairs["metric"],
                "NMI vs NCC": [
                    f"{a} vs {b}" for a, b in zip(loss_pairs["a"], loss_pairs["b"], strict=True)
                ],
                "n": loss_pairs["n"].astype(str),
                "median a-b": [tables.fmt_num(v) for v in loss_pairs["median_diff"]],
                "P": [tables.fmt_p(v) for v in loss_pairs["p"]],
                "P Holm": [tables.fmt_p(v) for v in loss_pairs["p_holm"]],
                "favours": loss_pairs["favours"],
            }
        )
        pages += tables.table_pages(
            "NMI- versus NCC-trained networks",
            [("The same network trained with either loss", loss_frame)] if len(loss_frame) else [],
            subtitle="Rows of the comparison statistics where both methods are one architecture "
            "(unet-nmi vs unet-ncc, poolnet-nmi vs poolnet-ncc).",
        )

        named: list[tuple[str, Figure]] = [
            ("fig4_boxplots", figures.boxplot_figure(results, methods)),
            ("fig2_nmi_folding", figures.nmi_folding_figure(results, methods)),
        ]
        shown = shown_methods(run)
        for i, row in enumerate(
            tqdm(
                list(selection.itertuples(index=False)),
                desc="case figures",
                unit="case",
                disable=not progress,
                leave=False,
            )
        ):
            view = load_case_view(
                run, int(row.fold), str(row.case), str(row.pair), score=float(row.score)
            )
            named.append(
                (
                    f"fig1_case{i + 1}_{_safe(row.case)}_{_safe(row.pair)}",
                    figures.case_figure(view, shown),
                )
            )
        if len(selection):
            note = tables.text_page(
                "Figure 1/3 analogue",
                [
                    *textwrap.wrap(f"Pairs shown: {len(selection)}, chosen by {criterion}.", 95),
                    "Columns: no registration (moving image) and every method but identity. Rows: fixed,",
                    "warped, warped - fixed, and the displacement field as RGBA (i, j, k components",
                    "as red, green, blue; vector length as alpha). Scales are shared within a page.",
                ],
            )
        else:
            note = tables.text_page(
                "Figure 1/3 analogue",
                ["No example cases: pairs.csv lists no test pairs or --cases is 0."],
            )
        figure_pages = [named[0][1], named[1][1], *note, *(f for _, f in named[2:])]
        pages += figure_pages

        if ranking_stats is not None:
            pages += _ranking_pages(ranking_stats, save_table, named)

        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in tqdm(named, desc="figures", unit="fig", disable=not progress, leave=False):
            report.figures.append(write_png(fig_dir / f"{name}.png", fig))
        write_pdf(
            pdf_path,
            tqdm(pages, desc="pdf pages", unit="page", disable=not progress, leave=False),
            title=f"MIRBench report: {run.path.name}",
            creator=f"MIRBench {__version__}",
        )
    _remove_stale(report, fig_dir, tab_dir)
    report.pages = len(pages)
    log.info(
        "report: %s (%d pages), %d figures, %d tables",
        pdf_path,
        report.pages,
        len(report.figures),
        len(report.tables),
    )
    return report


# outputs whose number or presence varies between builds (cases shown, rankings given)
_VARIABLE_OUTPUTS = (
    ("figures", "fig1_case*.png"),
    ("figures", "table1_ranks.png"),
    ("tables", "ranking_*.csv"),
)


def _remove_stale(report: Report, fig_dir: Path, tab_dir: Path) -> None:
    """Delete report outputs of an earlier build that this build did not write (e.g. case figures
    of a build with more ``--cases``), so that the folders match the PDF. Only names this module
    writes are touched."""
    written = set(report.figures) | set(report.tables)
    folders = {"figures": fig_dir, "tables": tab_dir}
    for folder, pattern in _VARIABLE_OUTPUTS:
        for path in sorted(folders[folder].glob(pattern)):
            if path not in written:
                log.info("removing stale %s", path)
                path.unlink()


def _ranking_pages(stats, save_table, named: list) -> list[Figure]:
    """Table 1 (ranks x methods as in the paper), its tests, and the pairwise preferences."""
    contingency = stats.contingency
    table1 = contingency.T.copy()
    table1.index = [f"rank {r}" for r in table1.index]
    save_table("ranking_contingency", contingency.reset_index())
    save_table("ranking_pairwise", stats.pairwise)
    tests = pd.DataFrame(
        [
            {
                "test": "chi-square independence",
                "statistic": stats.chi2,
                "dof": stats.dof,
                "p": stats.p,
            },
            {
                "test": "Friedman",
                "statistic": stats.friedman_statistic,
                "dof": len(stats.methods) - 1,
                "p": stats.friedman_p,
            },
            {
                "test": "Kendall W",
                "statistic": stats.kendall_w,
                "dof": float("nan"),
                "p": float("nan"),
            },
        ]
    )
    save_table("ranking_tests", tests)
    display = table1.reset_index().rename(columns={"index": "rank"}).astype(str)
    pair_display = pd.DataFrame(
        {
            "a": stats.pairwise["a"],
            "b": stats.pairwise["b"],
            "a above b": [
                f"{a} of {n} ({100 * a / n:.0f}%)" if n else "0 of 0"
                for a, n in zip(stats.pairwise["a_above_b"], stats.pairwise["n"], strict=True)
            ],
            "chi2": [tables.fmt_num(v, 3) for v in stats.pairwise["chi2"]],
            "P": [tables.fmt_p(v) for v in stats.pairwise["p"]],
            "P Holm": [tables.fmt_p(v) for v in stats.pairwise["p_holm"]],
            "P sign": [tables.fmt_p(v) for v in stats.pairwise["p_binomial"]],
            "P sign Holm": [tables.fmt_p(v) for v in stats.pairwise["p_binomial_holm"]],
        }
    )
    test_display = pd.DataFrame(
        {
            "test": [
                "chi-square test of independence",
                "Friedman test over cases",
                "Kendall's W (Friedman)",
            ],
            "statistic": [
                f"{stats.chi2:.2f}",
                f"{stats.friedman_statistic:.2f}",
                f"{stats.kendall_w:.3f}",
            ],
            "dof": [str(stats.dof), str(len(stats.methods) - 1), ""],
            "P": [tables.fmt_p(stats.p), tables.fmt_p(stats.friedman_p), ""],
        }
    )
    blocks = [
        (f"Table 1: ranks of {stats.n_rankings} rankings of {stats.n_cases} cases", display),
        ("Tests", test_display),
        ("Pairwise preferences (P: 1-dof chi-square; P sign: exact binomial)", pair_display),
    ]
    if stats.reader_agreement is not None:
        ra = stats.reader_agreement
        blocks.append(
            (
                "Reader agreement",
                pd.DataFrame(
                    {
                        "readers": [", ".join(ra["readers"])],
                        "common cases": [str(ra["n_cases"])],
                        "W (mean ranks)": [tables.fmt_num(ra["kendall_w_mean_ranks"], 3)],
                        "W (per case, mean)": [tables.fmt_num(ra["kendall_w_per_case"], 3)],
                        "Fleiss kappa": [tables.fmt_num(ra["fleiss_kappa"], 3)],
                    }
                ),
            )
        )
    pages = tables.table_pages(
        "Reader study: Table 1",
        blocks,
        subtitle="Blinded forced ranking (1 = preferred). Holm corrections "
        "are over all method pairs.",
    )
    fig = figures.ranking_figure(contingency)
    named.append(("table1_ranks", fig))
    return [*pages, fig]
