"""Missing data: what the run folder lacks (:attr:`reports.runfolder.RunFolder.missing`): methods
without results or pair outputs, incomplete methods, NaN metric values, an out-of-date results
table; or that nothing is missing."""

from __future__ import annotations

import textwrap

from reports import tables
from reports.context import Context, Section

TITLE = "Missing data"

#: The heading of each kind of missing item (``what`` of the missing-data table).
LABELS = {
    "method-no-results": "Methods without results",
    "method-no-pairs": "Methods without pair outputs",
    "incomplete-pairs": "Incomplete methods",
    "nan-metric": "NaN metric values (counted in the tables' NaN column)",
    "results.csv": "Results table",
}


def build(ctx: Context) -> Section:
    """Text pages, one block per kind of missing item, and the ``missing_data`` table."""
    miss = ctx.run.missing
    if miss.empty:
        lines = [
            "Nothing is missing: every method has results and an output folder for every test",
            "pair, and no metric value is NaN.",
        ]
    else:
        lines = []
        for what, group in miss.groupby("what", sort=False):
            lines.append(LABELS.get(what, what) + ":")
            for r in group.itertuples(index=False):
                text = f"{r.method}: {r.detail}" if r.method else r.detail
                for i, part in enumerate(textwrap.wrap(text, 110)):
                    lines.append(("  - " if i == 0 else "    ") + part)
            lines.append("")
    return Section(pages=tables.text_page(TITLE, lines), tables=[("missing_data", miss)])
