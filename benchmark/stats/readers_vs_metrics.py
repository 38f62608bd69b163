"""The reader study next to the numbers: readers' ranks of a case beside the metric-based ranks of
the same case, with their agreement (Kendall's tau per case and overall).

A rankings case id is matched to the results as ``case/pair`` (the reader study's ids) or, when it
has no ``/``, as a case (all its pairs averaged). The metric-based rank of a case: per metric of
:data:`~benchmark.stats.metric_ranking.RANKING_METRICS` present, the methods' values (mean over
structures) ranked within the case (1 = best, ties averaged); these ranks are combined by their
geometric mean and ranked again. The readers' rank: the mean over readers of their ranks, ranked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.stats.metric_ranking import RANKING_METRICS, better_sign
from benchmark.stats.results import check_results

PER_CASE_COLUMNS = [
    "case",
    "readers",
    "reader_ranks",
    "metric_ranks",
    "reader_best",
    "metric_best",
    "same_best",
    "tau",
]


def _unit_values(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``(unit, method) -> value`` with units ``case/pair`` and ``case`` (means over structures,
    then pairs); failed pairs NaN."""
    sub = results[results["metric"] == metric].copy()
    sub.loc[sub["status"].str.startswith("failed"), "value"] = np.nan
    per_pair = sub.groupby(["method", "case", "pair"], sort=False)["value"].mean().reset_index()
    per_pair["unit"] = per_pair["case"] + "/" + per_pair["pair"]
    per_case = per_pair.groupby(["method", "case"], sort=False)["value"].mean().reset_index()
    per_case["unit"] = per_case["case"]
    both = pd.concat([per_pair[["unit", "method", "value"]], per_case[["unit", "method", "value"]]])
    return both.pivot_table(index="unit", columns="method", values="value", aggfunc="first")


def readers_vs_metrics(
    rankings: pd.DataFrame, results: pd.DataFrame, *, metrics: list[str] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Readers' and metric-based ranks of the ranked cases, and their agreement.

    Parameters
    ----------
    rankings : DataFrame
        A validated rankings table (``reader, case, method, rank``).
    results : DataFrame
        The tidy results table of the run the readers saw.
    metrics : list of str, optional
        Metrics combined into the metric-based rank; default those of ``RANKING_METRICS`` present.

    Returns
    -------
    per_case : DataFrame
        ``case, readers`` (number), ``reader_ranks`` / ``metric_ranks`` (``method rank`` pairs,
        text), ``reader_best``, ``metric_best``, ``same_best``, ``tau`` (Kendall's tau-b of the two
        rankings of the case; NaN when either is constant).
    summary : dict
        ``metrics``, ``n_cases`` (cases matched), ``unmatched`` (rankings cases without results),
        ``mean_tau``, ``share_same_best``, ``tau_overall`` and ``p_overall`` (Kendall's tau of
        the readers' and the metrics' mean ranks over all matched cases).

    Raises
    ------
    BenchError
        When a ranked method has no results.
    """
    from scipy import stats

    results = check_results(results)
    methods = list(dict.fromkeys(rankings["method"]))
    absent = [m for m in methods if m not in set(results["method"])]
    if absent:
        raise BenchError(f"rankings: method(s) {', '.join(absent)} have no rows in the results")
    present = set(results["metric"])
    metrics = [m for m in RANKING_METRICS if m in present] if metrics is None else list(metrics)
    values = {m: _unit_values(results, m).reindex(columns=methods) for m in metrics}
    readers = rankings.pivot_table(
        index="case", columns="method", values="rank", aggfunc="mean", sort=False
    )[methods]
    n_readers = rankings.groupby("case", sort=False)["reader"].nunique()
    rows, unmatched = [], []
    reader_all, metric_all = [], []
    for case in readers.index:
        per_metric = []
        for m in metrics:
            if case in values[m].index:
                v = values[m].loc[case].to_numpy(dtype=np.float64)
                if np.isfinite(v).all():
                    per_metric.append(stats.rankdata(-better_sign(m) * v))
        if not per_metric:
            unmatched.append(case)
            continue
        geo = np.exp(np.log(np.array(per_metric)).mean(axis=0))
        metric_rank = stats.rankdata(geo)
        reader_rank = stats.rankdata(readers.loc[case].to_numpy(dtype=np.float64))
        with np.errstate(all="ignore"):
            tau = float(stats.kendalltau(reader_rank, metric_rank).statistic)
        reader_all.append(reader_rank)
        metric_all.append(metric_rank)
        rows.append(
            {
                "case": case,
                "readers": int(n_readers[case]),
                "reader_ranks": " ".join(
                    f"{m} {r:g}" for m, r in zip(methods, reader_rank, strict=True)
                ),
                "metric_ranks": " ".join(
                    f"{m} {r:g}" for m, r in zip(methods, metric_rank, strict=True)
                ),
                "reader_best": " / ".join(
                    m for m, r in zip(methods, reader_rank, strict=True) if r == reader_rank.min()
                ),
                "metric_best": " / ".join(
                    m for m, r in zip(methods, metric_rank, strict=True) if r == metric_rank.min()
                ),
                "tau": tau,
            }
        )
        rows[-1]["same_best"] = rows[-1]["reader_best"] == rows[-1]["metric_best"]
    per_case = pd.DataFrame(rows, columns=PER_CASE_COLUMNS)
    nan = float("nan")
    summary: dict[str, Any] = {
        "metrics": metrics,
        "n_cases": len(per_case),
        "unmatched": unmatched,
        "mean_tau": float(np.nanmean(per_case["tau"])) if per_case["tau"].notna().any() else nan,
        "share_same_best": float(per_case["same_best"].mean()) if len(per_case) else nan,
        "tau_overall": nan,
        "p_overall": nan,
    }
    if len(per_case) and len(methods) > 1:
        res = stats.kendalltau(np.mean(reader_all, axis=0), np.mean(metric_all, axis=0))
        summary["tau_overall"] = float(res.statistic)
        summary["p_overall"] = float(res.pvalue) if math.isfinite(res.pvalue) else nan
    return per_case, summary
