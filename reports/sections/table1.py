"""Reader study: Table 1 (ranks x methods as in the paper) of a reader study's rankings, its tests
(chi-square, Friedman, Kendall's W), the pairwise preferences and, with several readers, their
agreement (:func:`benchmark.stats.ranking.analyze_rankings`, computed once in the context)."""

from __future__ import annotations

import pandas as pd

from benchmark.core.numbers import format_p
from reports import figures, tables
from reports.context import Context, Section

TITLE = "Reader study: Table 1"


def build(ctx: Context) -> Section:
    """Table pages, the ``table1_ranks`` figure and the ``ranking_contingency``,
    ``ranking_pairwise`` and ``ranking_tests`` tables. Needs ``ctx.ranking_stats`` (a report with
    rankings)."""
    stats = ctx.ranking_stats
    contingency, table1 = stats.contingency, stats.contingency.T.copy()
    table1.index = [f"rank {r}" for r in table1.index]
    display = table1.reset_index().rename(columns={"index": "rank"}).astype(str)
    blocks = [
        (f"Table 1: ranks of {stats.n_rankings} rankings of {stats.n_cases} cases", display),
        ("Tests", _test_display(stats)),
        (
            "Pairwise preferences (P: 1-dof chi-square; P sign: exact binomial)",
            _pairwise_display(stats.pairwise),
        ),
    ]
    if stats.reader_agreement is not None:
        blocks.append(("Reader agreement", _agreement_display(stats.reader_agreement)))
    pages = tables.table_pages(
        TITLE,
        blocks,
        subtitle="Blinded forced ranking (1 = preferred). Holm corrections "
        "are over all method pairs.",
    )
    fig = figures.ranking_figure(contingency)
    return Section(
        pages=[*pages, fig],
        figures=[("table1_ranks", fig)],
        tables=[
            ("ranking_contingency", contingency.reset_index()),
            ("ranking_pairwise", stats.pairwise),
            ("ranking_tests", _tests(stats)),
        ],
    )


def _tests(stats) -> pd.DataFrame:
    """The tests of the rankings as numbers (the ``ranking_tests`` table)."""
    nan = float("nan")
    return pd.DataFrame(
        [
            {"test": "chi-square independence", "statistic": stats.chi2, "dof": stats.dof,
             "p": stats.p},
            {"test": "Friedman", "statistic": stats.friedman_statistic,
             "dof": len(stats.methods) - 1, "p": stats.friedman_p},
            {"test": "Kendall W", "statistic": stats.kendall_w, "dof": nan, "p": nan},
        ]
    )


def _test_display(stats) -> pd.DataFrame:
    """The tests of the rankings as display strings."""
    return pd.DataFrame(
        {
            "test": [
                "chi-square test of independence",
                "Friedman test over cases",
                "Kendall's W (Friedman)",
            ],
            "statistic": [
                f"{stats.chi2:.2f}",
                f"{stats.friedman_statistic:.2f}",
                f"{stats.kendall_w:.3f}",
            ],
            "dof": [str(stats.dof), str(len(stats.methods) - 1), ""],
            "P": [format_p(stats.p), format_p(stats.friedman_p), ""],
        }
    )


def _pairwise_display(pairwise: pd.DataFrame) -> pd.DataFrame:
    """The pairwise preferences of a reader ranking as display strings."""
    return pd.DataFrame(
        {
            "a": pairwise["a"],
            "b": pairwise["b"],
            "a above b": [
                f"{a} of {n} ({100 * a / n:.0f}%)" if n else "0 of 0"
                for a, n in zip(pairwise["a_above_b"], pairwise["n"], strict=True)
            ],
            "chi2": [tables.fmt_num(v, 3) for v in pairwise["chi2"]],
            "P": [format_p(v) for v in pairwise["p"]],
            "P Holm": [format_p(v) for v in pairwise["p_holm"]],
            "P sign": [format_p(v) for v in pairwise["p_binomial"]],
            "P sign Holm": [format_p(v) for v in pairwise["p_binomial_holm"]],
        }
    )


def _agreement_display(ra: dict) -> pd.DataFrame:
    """The agreement of several readers as one display row."""
    return pd.DataFrame(
        {
            "readers": [", ".join(ra["readers"])],
            "common cases": [str(ra["n_cases"])],
            "W (mean ranks)": [tables.fmt_num(ra["kendall_w_mean_ranks"], 3)],
            "W (per case, mean)": [tables.fmt_num(ra["kendall_w_per_case"], 3)],
            "Fleiss kappa": [tables.fmt_num(ra["fleiss_kappa"], 3)],
        }
    )
