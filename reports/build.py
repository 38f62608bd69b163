"""Building the report of a run folder: load the run, compute once what several sections read
(:class:`reports.context.Context`: summaries, comparisons, the example pairs, a reader study's
statistics), run the sections of :data:`reports.sections.SECTIONS` in order, and write the PDF and,
beside it, every figure as PNG (``figures/``) and every table as CSV (``tables/``), removing the
outputs of an earlier build that this one did not write. What each section shows lives in its
module of :mod:`reports.sections`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from benchmark import __version__
from benchmark.core.atomic import write_text
from reports import sections
from reports.cases import select_cases
from reports.context import Context
from reports.pdf import report_style, write_pdf, write_png
from reports.runfolder import RunFolder, load_run

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What :func:`build_report` wrote: the PDF, the figures and tables beside it, the page count,
    and ``(section id, pages)`` of every section in the PDF's order."""

    pdf: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    pages: int = 0
    sections: list[tuple[str, int]] = field(default_factory=list)


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

    run = load_run(run_dir)
    pdf_path = Path(out) if out is not None else run.path / "report" / "report.pdf"
    fig_dir, tab_dir = pdf_path.parent / "figures", pdf_path.parent / "tables"
    report = Report(pdf=pdf_path)
    ctx = make_context(run, rankings=rankings, n_cases=n_cases, progress=progress)
    pages: list[Figure] = []
    named: list[tuple[str, Figure]] = []
    with report_style():
        for spec in sections.active(ctx):
            section = spec.build(ctx)
            report.sections.append((spec.id, len(section.pages)))
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
    _remove_stale(report)
    report.pages = len(pages)
    log.info(
        "report: %s (%d pages), %d figures, %d tables",
        pdf_path,
        report.pages,
        len(report.figures),
        len(report.tables),
    )
    return report


def make_context(
    run: RunFolder,
    *,
    rankings: str | os.PathLike | None = None,
    n_cases: int = 2,
    progress: bool = False,
) -> Context:
    """What every section reads, computed once: the summaries and comparisons of the results, the
    example pairs, a reader study's rankings and statistics, and the table of contents
    (:func:`reports.sections.table_of_contents`). Arguments as for :func:`build_report`."""
    from benchmark.stats.comparisons import compare_methods, summarize_metrics

    table = ranking_stats = None
    if rankings is not None:
        from benchmark.stats.ranking import analyze_rankings, check_ranked_methods, read_rankings

        table = read_rankings(rankings)
        check_ranked_methods(table, run.methods, source=str(rankings))
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
    ctx.contents = sections.table_of_contents(ctx)
    return ctx


def _remove_stale(report: Report) -> None:
    """Delete report outputs of an earlier build that this build did not write (e.g. case figures
    of a build with more ``--cases``), so that the folders match the PDF. Only the names of
    :data:`reports.sections.VARIABLE_OUTPUTS` are touched."""
    written = set(report.figures) | set(report.tables)
    for pattern in sections.VARIABLE_OUTPUTS:
        for path in sorted(report.pdf.parent.glob(pattern)):
            if path not in written:
                log.info("removing stale %s", path)
                path.unlink()
