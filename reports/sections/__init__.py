"""The report's sections, declared once: :data:`SECTIONS` lists them in the order of the PDF, with
the title each prints, its line in the title page's table of contents, its builder and when it
applies. :func:`reports.build.build_report` runs :func:`active` in order, the title page lists
:func:`table_of_contents`, and the tests read both.

Each section is one module of this package with a ``TITLE`` and a ``build(ctx) -> Section``
function: it reads :class:`reports.context.Context` (the run folder and the statistics computed
once per report) and returns a :class:`reports.context.Section` (PDF pages, named figures written
as ``figures/NAME.png``, named tables written as ``tables/NAME.csv``; names unique in the report).

How to add a section
--------------------
1. Write ``reports/sections/NAME.py``: a module docstring saying what the section shows, ``TITLE``
   (the page heading) and ``build(ctx)``. Lay pages out with :func:`reports.tables.table_pages` or
   :func:`reports.tables.text_page`, draw figures in :mod:`reports.figures`; a figure is both a
   page and a named figure. A statistic that several sections need becomes a field of
   :class:`~reports.context.Context`, computed once in :func:`reports.build.build_report`.
2. Add one :class:`SectionSpec` to :data:`SECTIONS` where the section goes in the PDF (e.g. "The
   paper's claims on this run" right after ``summary``), with ``contents`` (its table-of-contents
   line: a string, a function of the context, or ``None`` for none), ``when`` for a section that
   applies only to some runs (e.g. ``when=lambda ctx: ...`` true for a Learn2Reg dataset), and
   ``variable_outputs`` (globs below the report's folder, e.g. ``"figures/fig1_case*.png"``) for
   outputs whose number or presence varies between builds, so that those of an earlier build are
   removed.
3. Test the section alone in ``tests/test_report_sections.py`` (its ``section_context`` fixture
   builds a context of a fake run). The tests of the table of contents and of the page order read
   :data:`SECTIONS` and need no change.

A figure added to an existing section (e.g. a task timeline in ``costs``) changes only that
module: append it to the ``pages`` and ``figures`` its ``build`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.context import Context, Section
from reports.sections import (
    cases,
    claims,
    comparisons,
    costs,
    figure2,
    figure4,
    learn2reg,
    method_settings,
    metric_ranking,
    missing,
    nmi_vs_ncc,
    readers_vs_metrics,
    seeds,
    summary,
    table1,
    title,
    training,
)


def always(ctx: Context) -> bool:
    """Every report has the section."""
    return True


def with_rankings(ctx: Context) -> bool:
    """Only a report of a reader study's rankings (``--rankings``) has the section."""
    return ctx.rankings is not None


@dataclass(frozen=True)
class SectionSpec:
    """One section of the report.

    Attributes
    ----------
    id : str
        Short name (the module's name).
    title : str
        The heading its first page prints (the module's ``TITLE``).
    build : callable
        ``build(ctx) -> Section``.
    contents : str, callable or None
        Its line in the title page's table of contents, or a function of the context that
        returns it; ``None``: not listed.
    when : callable
        ``when(ctx) -> bool``: whether the report has the section (default :func:`always`).
    variable_outputs : tuple of str
        Globs, relative to the PDF's folder, of the outputs whose number or presence varies
        between builds: files matching them that this build did not write are removed.
    """

    id: str
    title: str
    build: Callable[[Context], Section]
    contents: str | Callable[[Context], str] | None = None
    when: Callable[[Context], bool] = always
    variable_outputs: tuple[str, ...] = ()

    def contents_line(self, ctx: Context) -> str | None:
        """The table-of-contents line of this section in the report of ``ctx``."""
        return self.contents(ctx) if callable(self.contents) else self.contents


def _cases_line(ctx: Context) -> str:
    return f"Figure 1/3 analogue: {len(ctx.selection)} example case(s)"


#: The sections in the order of the PDF.
SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("title", title.TITLE, title.build),
    SectionSpec(
        "method_settings", method_settings.TITLE, method_settings.build, "Methods and settings"
    ),
    SectionSpec(
        "training",
        training.TITLE,
        training.build,
        "Training and validation (curves; models worse than no registration flagged)",
    ),
    SectionSpec("missing", missing.TITLE, missing.build, "Missing data"),
    SectionSpec(
        "summary", summary.TITLE, summary.build, "Summary tables (mean ± SD, median [IQR] per method)"
    ),
    SectionSpec(
        "claims",
        claims.TITLE,
        claims.build,
        "The paper's claims on this run (holds, does not hold, not testable)",
    ),
    SectionSpec(
        "learn2reg",
        learn2reg.TITLE,
        learn2reg.build,
        "L2R conventions (both conventions side by side, Learn2Reg's ranking beside MIRBench's)",
        when=learn2reg.is_learn2reg,
        variable_outputs=("tables/l2r_*.csv",),
    ),
    SectionSpec(
        "comparisons",
        comparisons.TITLE,
        comparisons.build,
        "Comparison statistics (paired Wilcoxon over cases, Holm)",
    ),
    SectionSpec(
        "costs",
        costs.TITLE,
        costs.build,
        "Cost per method (training time, time per registration, peak memory, task timeline)",
        variable_outputs=(
            "figures/task_timeline.png", "tables/task_timeline.csv", "tables/workers.csv",
        ),
    ),
    SectionSpec("seeds", seeds.TITLE, seeds.build, "Spread over seeds"),
    SectionSpec(
        "metric_ranking",
        metric_ranking.TITLE,
        metric_ranking.build,
        "Ranking across metrics (significance ranks, bootstrap stability, Friedman, DSC30)",
    ),
    SectionSpec("nmi_vs_ncc", nmi_vs_ncc.TITLE, nmi_vs_ncc.build, "NMI- versus NCC-trained networks"),
    SectionSpec(
        "figure4", figure4.TITLE, figure4.build, "Figure 4 analogue: folding, Dice, Hausdorff"
    ),
    SectionSpec("figure2", figure2.TITLE, figure2.build, "Figure 2 analogue: NMI and folding"),
    SectionSpec(
        "cases", cases.TITLE, cases.build, _cases_line, variable_outputs=("figures/fig1_case*.png",)
    ),
    SectionSpec(
        "table1",
        table1.TITLE,
        table1.build,
        "Reader study: Table 1 and its statistics",
        when=with_rankings,
        variable_outputs=("figures/table1_ranks.png", "tables/ranking_*.csv"),
    ),
    SectionSpec(
        "readers_vs_metrics",
        readers_vs_metrics.TITLE,
        readers_vs_metrics.build,
        "Reader study versus metrics",
        when=with_rankings,
        variable_outputs=("tables/readers_vs_metrics.csv",),
    ),
)


def active(ctx: Context) -> list[SectionSpec]:
    """The sections of :data:`SECTIONS` that the report of ``ctx`` has, in order."""
    return [spec for spec in SECTIONS if spec.when(ctx)]


def table_of_contents(ctx: Context) -> tuple[str, ...]:
    """The title page's table of contents: the line of every active section that has one."""
    lines = (spec.contents_line(ctx) for spec in active(ctx))
    return tuple(line for line in lines if line)


#: Every section's :attr:`SectionSpec.variable_outputs`, active or not.
VARIABLE_OUTPUTS: tuple[str, ...] = tuple(p for spec in SECTIONS for p in spec.variable_outputs)
