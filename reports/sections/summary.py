"""Summary tables: per structure and metric, each method's n, NaN count, mean ± SD and median
[IQR] (:func:`benchmark.stats.comparisons.summarize_metrics`, computed once in the context)."""

from __future__ import annotations

import pandas as pd

from reports import tables
from reports.context import Context, Section

TITLE = "Summary tables"


def build(ctx: Context) -> Section:
    """Table pages, one block per structure and metric (headed with the unit; a method with a
    label on this dataset, e.g. "NCC on a multi-contrast dataset", marked ``*`` and its label
    under the title), and the ``summary`` table."""
    summary = ctx.summary
    labels = ctx.run.labels
    blocks = []
    for (s, m), frame in tables.summary_display(summary).items():
        frame = frame.assign(method=[f"{x} *" if x in labels else x for x in frame["method"]])
        blocks.append((f"{s} / {m}{_unit(summary, s, m)}", frame))
    subtitle = (
        "Per structure and metric: n finite values (pairs), NaN count, mean ± SD "
        "(ddof 1), median [25th, 75th percentile]."
    )
    if labels:
        subtitle += " * " + "; ".join(f"{m}: {label}" for m, label in labels.items()) + "."
    pages = tables.table_pages(TITLE, blocks, subtitle=subtitle)
    return Section(pages=pages, tables=[("summary", summary)])


def _unit(summary: pd.DataFrame, structure: str, metric: str) -> str:
    """`` [UNIT]`` of a structure and metric, empty for unitless ones."""
    u = summary.loc[(summary["structure"] == structure) & (summary["metric"] == metric), "unit"]
    u = u.iloc[0] if len(u) else ""
    return f" [{u}]" if u not in ("", "1") else ""
