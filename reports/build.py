"""Assembling the report of a run folder: title page, missing-data note, summary and case-level
comparison tables, the ranking across metrics (with its critical-difference diagram and DSC30), the
Figure 4, 2 and 1/3 analogues, and (with rankings) Table 1 with its statistics and the readers'
ranks beside the metrics' ranks. Each section has its own builder (:data:`SECTION_BUILDERS`)
returning a :class:`Section` (pages, figures, tables); :func:`build_report` runs them in the order
of :data:`SECTION_TITLES`. Writes the PDF and, beside it, every figure as PNG (``figures/``) and
every table as CSV (``tables/``).
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
from benchmark.core.atomic import write_text
from benchmark.core.layout import RunLayout
from benchmark.core.numbers import format_p
from reports import figures, tables
from reports.cases import load_case_view, select_cases, shown_methods
from reports.pdf import new_page, report_style, write_pdf, write_png
from reports.runfolder import RunFolder, load_run

log = logging.getLogger(__name__)

SECTION_TITLES = (
    "MIRBench report",
    "Methods and settings",
    "Training and validation",
    "Missing data",
    "Summary tables",
    "Comparison statistics",
    "Cost per method",
    "Spread over seeds",
    "Ranking across metrics",
    "NMI- versus NCC-trained networks",
    "Figure 4 analogue",
    "Figure 2 analogue",
    "Figure 1/3 analogue",
    "Reader study: Table 1",
    "Reader study versus metrics",
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


@dataclass
class Section:
    """What one section builder returns: PDF pages, named figures (also written as PNG) and named
    tables (written as CSV), in order."""

    pages: list[Figure] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


@dataclass
class Context:
    """The inputs every section builder reads (computed once by :func:`build_report`)."""

    run: RunFolder
    methods: list[str]
    results: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    selection: pd.DataFrame
    criterion: str
    rankings: pd.DataFrame | None
    ranking_stats: object | None
    progress: bool


def _contents(ctx: Context) -> list[str]:
    items = [
        "Methods and settings",
        "Training and validation (curves; models worse than no registration flagged)",
        "Missing data",
        "Summary tables (mean ± SD, median [IQR] per method)",
        "Comparison statistics (paired Wilcoxon over cases, Holm)",
        "Cost per method (training time, time per registration, peak memory)",
        "Spread over seeds",
        "Ranking across metrics (significance ranks, bootstrap stability, Friedman, DSC30)",
        "NMI- versus NCC-trained networks",
        "Figure 4 analogue: folding, Dice, Hausdorff",
        "Figure 2 analogue: NMI and folding",
        f"Figure 1/3 analogue: {len(ctx.selection)} example case(s)",
    ]
    if ctx.rankings is not None:
        items += ["Reader study: Table 1 and its statistics", "Reader study versus metrics"]
    return items


def _title_section(ctx: Context) -> Section:
    return Section(pages=[_title_page(ctx.run, _contents(ctx))])


def _methods_section(ctx: Context) -> Section:
    return Section(pages=_methods_page(ctx.run))


def _training_section(ctx: Context) -> Section:
    """Each trained model's validation beside no registration (``validation.csv``), flagged when
    worse, and what each method adds of its trainings (a learned method: the training curves,
    :meth:`methods.base.Method.report_figures`)."""
    from methods.registry import available_methods

    known = available_methods()
    validation = ctx.run.validation
    if validation.empty:
        return Section()
    flagged = validation[validation["worse_than_identity"].fillna("") != ""]
    display = pd.DataFrame(
        {
            "method": validation["method"],
            "fold": validation["fold"].astype(str),
            "seed": validation["seed"].astype(str),
            "best it.": validation["best_iteration"].astype(str),
            "val. similarity": [tables.fmt_num(v) for v in validation["val_similarity"]],
            "no registration": [tables.fmt_num(v) for v in validation["identity_similarity"]],
            "val. Dice": [tables.fmt_num(v) for v in validation["val_dice"]],
            "no reg. Dice": [tables.fmt_num(v) for v in validation["identity_dice"]],
            "worse than no registration": [
                "WORSE: " + w if w else "no" for w in validation["worse_than_identity"].fillna("")
            ],
        }
    )
    subtitle = (
        "Best model by validation loss; similarity = the training loss term (lower is better) on "
        "whole validation pairs. "
        + (
            f"{len(flagged)} model(s) are worse than no registration on their validation pairs."
            if len(flagged)
            else "Every model is better than no registration on its validation pairs."
        )
    )
    pages = tables.table_pages("Training and validation", [("Models", display)], subtitle=subtitle)
    figs = []
    for row in validation.itertuples():
        cls = known.get(row.method)
        if cls is None:  # a plug-in no longer installed: its table row stays
            continue
        folder = RunLayout(ctx.run.path).model_dir(row.method, int(row.fold), int(row.seed))
        flag = " (WORSE THAN NO REGISTRATION)" if row.worse_than_identity else ""
        where, name = f"fold {row.fold}", f"fold{row.fold}"
        if row.seed:
            where, name = f"{where}, seed {row.seed}", f"{name}-seed{row.seed}"
        for kind, fig in cls.report_figures(folder, title=f"{row.method}, {where}{flag}"):
            figs.append((f"{kind}_{_safe(row.method)}_{name}", fig))
    return Section(
        pages=pages + [f for _, f in figs], figures=figs, tables=[("validation", validation)]
    )


def _missing_section(ctx: Context) -> Section:
    return Section(pages=_missing_pages(ctx.run), tables=[("missing_data", ctx.run.missing)])


def _summary_section(ctx: Context) -> Section:
    summary = ctx.summary
    blocks = [
        (f"{s} / {m}{_unit(summary, s, m)}", frame)
        for (s, m), frame in tables.summary_display(summary).items()
    ]
    pages = tables.table_pages(
        "Summary tables",
        blocks,
        subtitle="Per structure and metric: n finite values (pairs), NaN count, mean ± SD "
        "(ddof 1), median [25th, 75th percentile].",
    )
    return Section(pages=pages, tables=[("summary", summary)])


def _comparison_section(ctx: Context) -> Section:
    from benchmark.stats.comparisons import TEST_LEVEL_NOTE

    blocks = [
        (f"{s} / {m}", frame)
        for (s, m), frame in tables.comparisons_display(ctx.comparisons).items()
    ]
    pages = tables.table_pages(
        "Comparison statistics",
        blocks,
        subtitle=TEST_LEVEL_NOTE + "; n = cases; zero differences discarded; P Holm: Holm over "
        "the method pairs of each block; favours: by the median difference and the metric's "
        "direction.",
    )
    return Section(pages=pages, tables=[("comparisons", ctx.comparisons)])


def _cost_section(ctx: Context) -> Section:
    costs = ctx.run.costs
    if costs.empty:
        return Section(pages=tables.text_page(
            "Cost per method", ["No cost records (costs.csv) in this run folder."]
        ))
    summary = tables.cost_summary(costs)
    shown = summary.copy()
    for col in ("train_s", "train_it_per_s", "train_gpu_mib", "reg_s_mean", "reg_s_median",
                "reg_gpu_mib", "peak_rss_mib"):
        shown[col] = [tables.fmt_num(v) for v in shown[col]]
    pages = tables.table_pages(
        "Cost per method",
        [("per method", shown.astype(str))],
        subtitle="Wall seconds per training and per registration (mean, median), iterations/s, "
        "peak GPU memory (torch.cuda.max_memory_allocated, MiB; 0 on CPU) and the peak RSS of "
        "the worker processes (MiB).",
    )
    return Section(pages=pages, tables=[("costs", summary)])


def _seed_section(ctx: Context) -> Section:
    """The spread of each learned method's results over training seeds (``bench run --seeds``)."""
    from benchmark.stats.results import seed_spread

    title = "Spread over seeds"
    spread = seed_spread(ctx.results)
    if spread.empty:
        return Section(pages=tables.text_page(title, [
            "Every method ran with one seed: no spread to show (bench run --seeds 0,1,2 trains "
            "each learned method once per seed; the tests use the per-case mean over seeds)."
        ]))
    shown = spread.copy()
    for col in ("pair_sd", "seed_mean_min", "seed_mean_max"):
        shown[col] = [tables.fmt_num(v) for v in shown[col]]
    pages = tables.table_pages(
        title,
        [("per method, structure and metric", shown.astype(str))],
        subtitle="pair_sd: SD over seeds of each pair's value, averaged over the pairs; "
        "seed_mean_min/max: the lowest and highest mean over the pairs of one seed.",
    )
    return Section(pages=pages, tables=[("seed_spread", spread)])


def _metric_ranking_section(ctx: Context) -> Section:
    """Significance ranks per metric and overall with bootstrap stability, Friedman with
    Nemenyi post-hoc and the critical-difference diagram, DSC30."""
    from benchmark.core.errors import BenchError
    from benchmark.stats.metric_ranking import SCHEME_NOTE, rank_methods

    title = "Ranking across metrics"
    try:
        ranking = rank_methods(ctx.results, methods=ctx.methods)
    except BenchError as exc:
        return Section(pages=tables.text_page(title, [f"No ranking: {exc}"]))
    ranks = ranking.ranks
    rank_frame = pd.DataFrame(
        {
            "method": ranks["method"],
            **{m: ranks[f"rank_{m}"].astype(str) for m in ranking.metrics},
            "geo mean": [tables.fmt_num(v, 3) for v in ranks["geo_mean"]],
            "rank": ranks["rank"].astype(str),
            "kept": [f"{100 * v:.0f}%" for v in ranks["stability"]],
            "95% rank": [
                f"{lo:g}-{hi:g}" for lo, hi in zip(ranks["rank_lo"], ranks["rank_hi"], strict=True)
            ],
        }
    )
    friedman = ranking.friedman
    friedman_frame = pd.DataFrame(
        {
            "metric": friedman["metric"],
            "cases": friedman["n"].astype(str),
            "chi2": [tables.fmt_num(v, 4) for v in friedman["statistic"]],
            "P": [format_p(v) for v in friedman["p"]],
            "CD": [tables.fmt_num(v, 3) for v in friedman["cd"]],
            "average ranks (1 = best)": [
                ", ".join(f"{k} {v:.2f}" for k, v in ranking.mean_ranks[m].sort_values().items())
                for m in friedman["metric"]
            ],
        }
    )
    blocks = [
        (
            f"Ranks ({ranking.n_boot} bootstrap resamples of the cases, alpha {ranking.alpha:g})",
            rank_frame,
        ),
        (f"Friedman tests, {ranking.posthoc} post-hoc", friedman_frame),
    ]
    if len(ranking.dsc30):
        d = ranking.dsc30
        blocks.append(
            (
                f"DSC30: mean Dice over the {d['n'].iloc[0]} hardest cases (lowest Dice before "
                "registration)",
                pd.DataFrame(
                    {
                        "method": d["method"],
                        "DSC30": [tables.fmt_num(v, 4) for v in d["dsc30"]],
                        "NaN": d["n_nan"].astype(str),
                    }
                ),
            )
        )
    pages = tables.table_pages(title, blocks, subtitle=SCHEME_NOTE)
    fig = figures.critical_difference_figure(
        ranking.mean_ranks,
        ranking.posthoc_p,
        dict(zip(friedman["metric"], friedman["cd"], strict=True)),
        alpha=ranking.alpha,
    )
    return Section(
        pages=[*pages, fig],
        figures=[("critical_difference", fig)],
        tables=[
            ("metric_ranks", ranks),
            ("metric_rank_tests", ranking.tests),
            ("metric_rank_friedman", friedman),
            ("dsc30", ranking.dsc30),
        ],
    )


def _loss_section(ctx: Context) -> Section:
    from benchmark.stats.comparisons import nmi_vs_ncc

    loss_pairs = nmi_vs_ncc(ctx.comparisons)
    loss_frame = pd.DataFrame(
        {
            "structure": loss_pairs["structure"],
            "metric": loss_pairs["metric"],
            "NMI vs NCC": [
                f"{a} vs {b}" for a, b in zip(loss_pairs["a"], loss_pairs["b"], strict=True)
            ],
            "n": loss_pairs["n"].astype(str),
            "median a-b": [tables.fmt_num(v) for v in loss_pairs["median_diff"]],
            "P": [format_p(v) for v in loss_pairs["p"]],
            "P Holm": [format_p(v) for v in loss_pairs["p_holm"]],
            "favours": loss_pairs["favours"],
        }
    )
    pages = tables.table_pages(
        "NMI- versus NCC-trained networks",
        [("The same network trained with either loss", loss_frame)] if len(loss_frame) else [],
        subtitle="Rows of the comparison statistics where both methods are one architecture "
        "(unet-nmi vs unet-ncc, poolnet-nmi vs poolnet-ncc).",
    )
    return Section(pages=pages, tables=[("nmi_vs_ncc", loss_pairs)])


def _figure4_section(ctx: Context) -> Section:
    fig = figures.boxplot_figure(ctx.results, ctx.methods)
    return Section(
        pages=[fig],
        figures=[("fig4_boxplots", fig)],
        tables=[("folding_counts", figures.folding_counts(ctx.results, ctx.methods))],
    )


def _figure2_section(ctx: Context) -> Section:
    fig = figures.nmi_folding_figure(ctx.results, ctx.methods)
    return Section(pages=[fig], figures=[("fig2_nmi_folding", fig)])


def _case_section(ctx: Context) -> Section:
    from tqdm.auto import tqdm

    selection, run = ctx.selection, ctx.run
    named: list[tuple[str, Figure]] = []
    shown = shown_methods(run)
    for i, row in enumerate(
        tqdm(
            list(selection.itertuples(index=False)),
            desc="case figures",
            unit="case",
            disable=not ctx.progress,
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
                *textwrap.wrap(f"Pairs shown: {len(selection)}, chosen by {ctx.criterion}.", 95),
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
    return Section(
        pages=[*note, *(f for _, f in named)],
        figures=named,
        tables=[("case_selection", selection)],
    )


def _reader_table1_section(ctx: Context) -> Section:
    if ctx.ranking_stats is None:
        return Section()
    return _ranking_pages(ctx.ranking_stats)


def _readers_vs_metrics_section(ctx: Context) -> Section:
    """Readers' ranks of each ranked case beside the metric-based ranks, Kendall's tau."""
    from benchmark.core.errors import BenchError
    from benchmark.stats.readers_vs_metrics import readers_vs_metrics

    if ctx.rankings is None:
        return Section()
    title = "Reader study versus metrics"
    try:
        per_case, summary = readers_vs_metrics(ctx.rankings, ctx.results)
    except BenchError as exc:
        return Section(pages=tables.text_page(title, [f"Not compared: {exc}"]))
    lines = [
        f"Metric-based rank of a case: geometric mean of the within-case ranks on "
        f"{', '.join(summary['metrics']) or 'no metric'} (means over structures), ranked.",
        f"Cases compared: {summary['n_cases']}; without results: {len(summary['unmatched'])}.",
        f"Same best method: {tables.fmt_num(100 * summary['share_same_best'], 3)} % of cases; "
        f"mean Kendall tau per case: {tables.fmt_num(summary['mean_tau'], 3)}; "
        f"tau of mean ranks: {tables.fmt_num(summary['tau_overall'], 3)} "
        f"(P {format_p(summary['p_overall'])}).",
    ]
    display = pd.DataFrame(
        {
            "case": per_case["case"],
            "readers": per_case["readers"].astype(str),
            "readers' ranks": per_case["reader_ranks"],
            "metric ranks": per_case["metric_ranks"],
            "same best": per_case["same_best"].map({True: "yes", False: "no"}),
            "tau": [tables.fmt_num(v, 3) for v in per_case["tau"]],
        }
    )
    pages = tables.table_pages(
        title, [("Per case", display)] if len(display) else [], subtitle=" ".join(lines)
    )
    return Section(pages=pages, tables=[("readers_vs_metrics", per_case)])


#: One builder per entry of :data:`SECTION_TITLES`, in that order.
SECTION_BUILDERS = {
    "MIRBench report": _title_section,
    "Methods and settings": _methods_section,
    "Training and validation": _training_section,
    "Missing data": _missing_section,
    "Summary tables": _summary_section,
    "Comparison statistics": _comparison_section,
    "Cost per method": _cost_section,
    "Spread over seeds": _seed_section,
    "Ranking across metrics": _metric_ranking_section,
    "NMI- versus NCC-trained networks": _loss_section,
    "Figure 4 analogue": _figure4_section,
    "Figure 2 analogue": _figure2_section,
    "Figure 1/3 analogue": _case_section,
    "Reader study: Table 1": _reader_table1_section,
    "Reader study versus metrics": _readers_vs_metrics_section,
}


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
        statistics, and the readers' ranks beside the metric-based ranks of the same cases.
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

    from benchmark.stats.comparisons import compare_methods, summarize_metrics

    run = load_run(run_dir)
    pdf_path = Path(out) if out is not None else run.path / "report" / "report.pdf"
    fig_dir, tab_dir = pdf_path.parent / "figures", pdf_path.parent / "tables"
    report = Report(pdf=pdf_path)

    table = ranking_stats = None
    if rankings is not None:
        from benchmark.stats.ranking import analyze_rankings, read_rankings

        table = read_rankings(rankings)
        ranking_stats = analyze_rankings(table, validate=False)
    selection, criterion = select_cases(run, n_cases, progress=progress)
    ctx = Context(
        run=run,
        methods=run.methods,
        results=run.results,
        summary=summarize_metrics(run.results, methods=run.methods),
        comparisons=compare_methods(run.results, methods=run.methods),
        selection=selection,
        criterion=criterion,
        rankings=table,
        ranking_stats=ranking_stats,
        progress=progress,
    )
    pages: list[Figure] = []
    named: list[tuple[str, Figure]] = []
    with report_style():
        for title in SECTION_TITLES:
            section = SECTION_BUILDERS[title](ctx)
            pages += section.pages
            named += section.figures
            for name, frame in section.tables:
                path = tab_dir / f"{name}.csv"
                write_text(path, frame.to_csv(index=False, lineterminator="\n"))
                report.tables.append(path)
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
    ("tables", "readers_vs_metrics.csv"),
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


def _pairwise_display(pairwise: pd.DataFrame) -> pd.DataFrame:
    """The pairwise preferences of a reader ranking as display strings."""
    return pd.DataFrame(
        {
            "a": pairwise["a"],
            "b": pairwise["b"],
            "a above b": [
                f"{a} of {n} ({100 * a / n:.0f}%)" if n else "0 of 0"
                for a, n in zip(pairwise["a_above_b"], pairwise["n"], strict=True)
            ],
            "chi2": [tables.fmt_num(v, 3) for v in pairwise["chi2"]],
            "P": [format_p(v) for v in pairwise["p"]],
            "P Holm": [format_p(v) for v in pairwise["p_holm"]],
            "P sign": [format_p(v) for v in pairwise["p_binomial"]],
            "P sign Holm": [format_p(v) for v in pairwise["p_binomial_holm"]],
        }
    )


def _ranking_pages(stats) -> Section:
    """Table 1 (ranks x methods as in the paper), its tests, and the pairwise preferences."""
    contingency, table1 = stats.contingency, stats.contingency.T.copy()
    table1.index = [f"rank {r}" for r in table1.index]
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
    display = table1.reset_index().rename(columns={"index": "rank"}).astype(str)
    pair_display = _pairwise_display(stats.pairwise)
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
            "P": [format_p(stats.p), format_p(stats.friedman_p), ""],
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
    return Section(
        pages=[*pages, fig],
        figures=[("table1_ranks", fig)],
        tables=[
            ("ranking_contingency", contingency.reset_index()),
            ("ranking_pairwise", stats.pairwise),
            ("ranking_tests", tests),
        ],
    )
