"""Comparison statistics: paired Wilcoxon tests over cases of every method pair, Holm-corrected
per structure and metric (:func:`benchmark.stats.comparisons.compare_methods`, computed once in
the context)."""

from __future__ import annotations

from reports import tables
from reports.context import Context, Section

TITLE = "Comparison statistics"


def build(ctx: Context) -> Section:
    """Table pages, one block per structure and metric, and the ``comparisons`` table."""
    from benchmark.stats.comparisons import TEST_LEVEL_NOTE

    blocks = [
        (f"{s} / {m}", frame)
        for (s, m), frame in tables.comparisons_display(ctx.comparisons).items()
    ]
    pages = tables.table_pages(
        TITLE,
        blocks,
        subtitle=TEST_LEVEL_NOTE + "; n = cases; zero differences discarded; P Holm: Holm over "
        "the method pairs of each block; favours: by the median difference and the metric's "
        "direction.",
    )
    return Section(pages=pages, tables=[("comparisons", ctx.comparisons)])
