"""Reader study versus metrics: the readers' ranks of each ranked case beside the metric-based
ranks of the same case, with Kendall's tau
(:func:`benchmark.stats.readers_vs_metrics.readers_vs_metrics`)."""

from __future__ import annotations

import pandas as pd

from benchmark.core.numbers import format_p
from reports import tables
from reports.context import Context, Section

TITLE = "Reader study versus metrics"


def build(ctx: Context) -> Section:
    """A table page (the summary as its subtitle, one row per ranked case) and the
    ``readers_vs_metrics`` table; a note page when the rankings cannot be compared (e.g. no
    ranked case has results). Needs ``ctx.rankings`` (a report with rankings)."""
    from benchmark.core.errors import BenchError
    from benchmark.stats.readers_vs_metrics import readers_vs_metrics

    try:
        per_case, summary = readers_vs_metrics(ctx.rankings, ctx.results)
    except BenchError as exc:
        return Section(pages=tables.text_page(TITLE, [f"Not compared: {exc}"]))
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
        TITLE, [("Per case", display)] if len(display) else [], subtitle=" ".join(lines)
    )
    return Section(pages=pages, tables=[("readers_vs_metrics", per_case)])
