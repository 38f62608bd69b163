"""Ranking across metrics: significance ranks per metric and overall with their bootstrap
stability, Friedman tests with the Nemenyi post-hoc and the critical-difference diagram, and DSC30
(:func:`benchmark.stats.metric_ranking.rank_methods`)."""

from __future__ import annotations

import pandas as pd

from benchmark.core.numbers import format_p
from reports import figures, tables
from reports.context import Context, Section

TITLE = "Ranking across metrics"


def build(ctx: Context) -> Section:
    """Table pages (ranks, Friedman tests, DSC30 when the run has Dice before registration), the
    ``critical_difference`` figure and the ``metric_ranks``, ``metric_rank_tests``,
    ``metric_rank_friedman`` and ``dsc30`` tables; a note page when the methods cannot be ranked
    (the reason from :func:`~benchmark.stats.metric_ranking.rank_methods`)."""
    from benchmark.core.errors import BenchError
    from benchmark.stats.metric_ranking import SCHEME_NOTE, rank_methods

    try:
        ranking = rank_methods(ctx.results, methods=ctx.methods)
    except BenchError as exc:
        return Section(pages=tables.text_page(TITLE, [f"No ranking: {exc}"]))
    blocks = [
        (
            f"Ranks ({ranking.n_boot} bootstrap resamples of the cases, alpha {ranking.alpha:g})",
            _rank_frame(ranking),
        ),
        (f"Friedman tests, {ranking.posthoc} post-hoc", _friedman_frame(ranking)),
    ]
    if len(ranking.dsc30):
        blocks.append(_dsc30_block(ranking.dsc30))
    pages = tables.table_pages(TITLE, blocks, subtitle=SCHEME_NOTE)
    friedman = ranking.friedman
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
            ("metric_ranks", ranking.ranks),
            ("metric_rank_tests", ranking.tests),
            ("metric_rank_friedman", friedman),
            ("dsc30", ranking.dsc30),
        ],
    )


def _rank_frame(ranking) -> pd.DataFrame:
    """The ranks per metric, overall, and their bootstrap stability, as display strings."""
    ranks = ranking.ranks
    return pd.DataFrame(
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


def _friedman_frame(ranking) -> pd.DataFrame:
    """One Friedman test per metric with its critical difference and average ranks."""
    friedman = ranking.friedman
    return pd.DataFrame(
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


def _dsc30_block(d: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The DSC30 table block (mean Dice over the hardest cases)."""
    return (
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
