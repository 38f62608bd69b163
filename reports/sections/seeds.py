"""Spread over seeds: how much each learned method's results change from one training seed to
another (``bench run --seeds``; :func:`benchmark.stats.results.seed_spread`)."""

from __future__ import annotations

from reports import tables
from reports.context import Context, Section

TITLE = "Spread over seeds"


def build(ctx: Context) -> Section:
    """A table page and the ``seed_spread`` table (one row per method, structure and metric run
    with two or more seeds); a note page when every method ran with one seed."""
    from benchmark.stats.results import seed_spread

    spread = seed_spread(ctx.results)
    if spread.empty:
        return Section(pages=tables.text_page(TITLE, [
            "Every method ran with one seed: no spread to show (bench run --seeds 0,1,2 trains "
            "each learned method once per seed; the tests use the per-case mean over seeds)."
        ]))
    shown = spread.copy()
    for col in ("pair_sd", "seed_mean_min", "seed_mean_max"):
        shown[col] = [tables.fmt_num(v) for v in shown[col]]
    pages = tables.table_pages(
        TITLE,
        [("per method, structure and metric", shown.astype(str))],
        subtitle="pair_sd: SD over seeds of each pair's value, averaged over the pairs; "
        "seed_mean_min/max: the lowest and highest mean over the pairs of one seed.",
    )
    return Section(pages=pages, tables=[("seed_spread", spread)])
