"""The Figure 2 analogue: NMI before and after each method, and folding per method
(:func:`reports.figures.nmi_folding_figure`)."""

from __future__ import annotations

from reports import figures
from reports.context import Context, Section

TITLE = "Figure 2 analogue"


def build(ctx: Context) -> Section:
    """One page and the ``fig2_nmi_folding`` figure."""
    fig = figures.nmi_folding_figure(ctx.results, ctx.methods)
    return Section(pages=[fig], figures=[("fig2_nmi_folding", fig)])
