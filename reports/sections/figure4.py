"""The Figure 4 analogue: folding %, Dice and Hausdorff distance per structure and method as
boxplots (:func:`reports.figures.boxplot_figure`), with the folding counts beside."""

from __future__ import annotations

from reports import figures
from reports.context import Context, Section

TITLE = "Figure 4 analogue"


def build(ctx: Context) -> Section:
    """One page, the ``fig4_boxplots`` figure and the ``folding_counts`` table."""
    fig = figures.boxplot_figure(ctx.results, ctx.methods)
    return Section(
        pages=[fig],
        figures=[("fig4_boxplots", fig)],
        tables=[("folding_counts", figures.folding_counts(ctx.results, ctx.methods))],
    )
