"""Method comparisons on metrics: per structure and metric summaries (mean ± SD, median [IQR]) and
paired Wilcoxon signed-rank tests between methods, Holm-corrected per structure x metric, including
whether the NMI- and NCC-trained versions of one network differ.

The tests are at the level of the independent unit, the **case** (patient, study): repeated
measures of a case (ACDC's ED->ES and ES->ED pairs, several seeds) are averaged per case first
(:func:`case_level`), because testing them as independent pairs inflates the false-positive rate
(15 % instead of 5 % at 0.05 in a null simulation with two correlated pairs per patient;
``tests/test_stats_compare.py`` repeats it).

Pure functions on the tidy results table of ``docs/conventions.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from benchmark.stats.multitest import holm
from benchmark.stats.results import check_results, mean_over_seeds, ordered
from metrics.catalog import BEFORE_METRICS, HIGHER_IS_BETTER, LOWER_IS_BETTER, METRICS

#: What the tests of :func:`compare_methods` are over; printed with every table of them.
TEST_LEVEL_NOTE = (
    "Paired Wilcoxon signed-rank tests at the case level: the values of a case's pairs "
    "(both directions, seeds) are averaged per case first, so each patient counts once; a "
    "case where a method failed on any pair is left out of that method's tests"
)
#: The name of the aggregate over structures in :func:`case_level`.
ALL_STRUCTURES = "all structures"


def case_level(results: pd.DataFrame, *, over_structures: bool = False) -> pd.DataFrame:
    """One value per method, case, structure and metric: the mean over the case's pairs.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    over_structures : bool
        First average the label structures of each pair (structure becomes
        :data:`ALL_STRUCTURES` for label metrics; whole-image metrics keep ``image``).

    Returns
    -------
    DataFrame
        Columns ``method, case, structure, metric, value, n_pairs, failed``: ``value`` the mean
        of the finite pair values (NaN when none is finite, or when any pair of the case
        **failed**: a failure is never averaged away by the case's other pair), ``n_pairs`` the
        pairs with a finite value, ``failed`` whether any pair failed. NaN values of undefined
        metrics (``label-absent-*``) are skipped.
    """
    r = mean_over_seeds(check_results(results))
    r["failed"] = r["status"].str.startswith("failed")
    if over_structures:
        r["structure"] = r["structure"].where(r["structure"] == "image", ALL_STRUCTURES)
        r = (
            r.groupby(["method", "case", "pair", "structure", "metric"], sort=False)
            .agg(value=("value", "mean"), failed=("failed", "any"))
            .reset_index()
        )
    r["finite"] = np.isfinite(r["value"])
    out = (
        r.groupby(["method", "case", "structure", "metric"], sort=False)
        .agg(value=("value", "mean"), n_pairs=("finite", "sum"), failed=("failed", "any"))
        .reset_index()
    )
    out.loc[out["failed"], "value"] = np.nan
    out["n_pairs"] = out["n_pairs"].astype(int)
    return out


ZERO_METHODS = ("wilcox", "pratt", "zsplit")
SUMMARY_COLUMNS = [
    "structure",
    "metric",
    "method",
    "unit",
    "n",
    "n_nan",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "min",
    "max",
]
COMPARISON_COLUMNS = [
    "structure",
    "metric",
    "a",
    "b",
    "n_cases",
    "n",
    "n_nan",
    "n_zero",
    "median_a",
    "median_b",
    "median_diff",
    "statistic",
    "p",
    "p_holm",
    "favours",
    "nmi_vs_ncc",
]


def _order(results: pd.DataFrame, methods) -> tuple[list[str], list[str], list[str]]:
    methods = ordered(results["method"]) if methods is None else list(methods)
    structures = ordered(results["structure"])
    # label structures in order of appearance, whole-image rows last
    structures = [s for s in structures if s != "image"] + [s for s in structures if s == "image"]
    metrics = ordered(results["metric"], METRICS)
    return methods, structures, metrics


def _groups(frame: pd.DataFrame, structures: list[str], metrics: list[str]):
    """``(structure, metric, rows)`` of ``frame`` for each combination that has rows, in the
    order of ``structures``, then ``metrics``."""
    for structure in structures:
        for metric in metrics:
            sub = frame[(frame["structure"] == structure) & (frame["metric"] == metric)]
            if not sub.empty:
                yield structure, metric, sub


def summarize_metrics(results: pd.DataFrame, *, methods: list[str] | None = None) -> pd.DataFrame:
    """Descriptive statistics per structure, metric and method.

    Parameters
    ----------
    results : DataFrame
        The tidy results table.
    methods : list of str, optional
        Methods and their order; default: order of first appearance. A listed method without rows
        gets a row with ``n = 0`` and NaN statistics, so that its absence is visible.

    Returns
    -------
    DataFrame
        Columns ``structure, metric, method, unit, n, n_nan, mean, sd, median, q1, q3, min, max``:
        ``n`` finite values, ``n_nan`` NaN values (undefined metric or failed registration),
        ``sd`` with ``ddof=1`` (NaN for ``n < 2``), ``q1``/``q3`` the 25th/75th percentiles
        (linear interpolation). Only (structure, metric) combinations present in ``results``.
        With several seeds, each pair counts once, with its mean over seeds
        (:func:`~benchmark.stats.results.mean_over_seeds`).
    """
    results = mean_over_seeds(check_results(results))
    methods, structures, metrics = _order(results, methods)
    rows = []
    for structure, metric, sub in _groups(results, structures, metrics):
        unit = sub["unit"].iloc[0]
        for method in methods:
            v = sub.loc[sub["method"] == method, "value"].to_numpy(dtype=np.float64)
            finite = v[np.isfinite(v)]
            n = int(finite.size)
            stats = dict.fromkeys(("mean", "sd", "median", "q1", "q3", "min", "max"), np.nan)
            if n:
                q1, med, q3 = np.percentile(finite, [25, 50, 75])
                stats.update(
                    mean=float(finite.mean()),
                    sd=float(finite.std(ddof=1)) if n > 1 else np.nan,
                    median=float(med),
                    q1=float(q1),
                    q3=float(q3),
                    min=float(finite.min()),
                    max=float(finite.max()),
                )
            rows.append(
                {
                    "structure": structure,
                    "metric": metric,
                    "method": method,
                    "unit": unit,
                    "n": n,
                    "n_nan": int(v.size - n),
                    **stats,
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _is_nmi_ncc_pair(a: str, b: str) -> bool:
    """True for ``X-nmi`` vs ``X-ncc`` (either order): one network trained with both losses."""
    for x, y in ((a, b), (b, a)):
        if x.endswith("-nmi") and y.endswith("-ncc") and x[: -len("-nmi")] == y[: -len("-ncc")]:
            return True
    return False


def _favours(a: str, b: str, metric: str, median_diff: float) -> str:
    if not math.isfinite(median_diff) or median_diff == 0:
        return ""
    if metric in HIGHER_IS_BETTER:
        return a if median_diff > 0 else b
    if metric in LOWER_IS_BETTER:
        return a if median_diff < 0 else b
    return ""


def compare_methods(
    results: pd.DataFrame,
    *,
    methods: list[str] | None = None,
    metrics: list[str] | None = None,
    exclude_metrics: tuple[str, ...] = BEFORE_METRICS,
    zero_method: str = "wilcox",
) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests between every two methods, per structure and metric.

    The unit is the case: each method's values are first averaged over the pairs of a case
    (:func:`case_level`), then paired by case. A case where either value is NaN (or absent, or a
    pair failed) is skipped; ``n`` reports how many cases were used.

    Parameters
    ----------
    results : DataFrame
        The tidy results table; at most one row per (method, case, pair, structure, metric).
    methods : list of str, optional
        Methods compared, in order (pairs ``(a, b)`` with ``a`` listed first); default: order of
        first appearance.
    metrics : list of str, optional
        Metrics to compare; default all present except ``exclude_metrics``.
    exclude_metrics : tuple of str
        Default ``("dice_before", "nmi_before")``: values before registration do not depend on
        the method.
    zero_method : {"wilcox", "pratt", "zsplit"}
        Zero differences (ties between the methods, e.g. both 0 % folding) are handled as
        ``scipy.stats.wilcoxon`` does; the default ``"wilcox"`` discards them (``n_zero`` counts
        them). When every used difference is zero the test is undefined and reported as
        ``statistic = NaN, p = 1`` (no evidence of a difference).

    Returns
    -------
    DataFrame
        One row per structure, metric and method pair, columns ``structure, metric, a, b,
        n_cases`` (cases with rows for both), ``n`` (cases with finite values for both),
        ``n_nan`` (``n_cases - n``), ``n_zero`` (zero differences), ``median_a``, ``median_b``
        (over the ``n`` cases), ``median_diff`` (median of ``a - b`` over the ``n`` cases),
        ``statistic``, ``p``,
        ``p_holm`` (Holm over the method pairs of one structure x metric; NaN p left out),
        ``favours`` (the method the median difference favours given the metric's direction,
        ``""`` when zero or unknown) and ``nmi_vs_ncc`` (the pair is one network trained with NMI
        and with NCC, e.g. ``unet-nmi`` vs ``unet-ncc``).

    Raises
    ------
    BenchError
        For an unknown ``zero_method`` or duplicate rows.
    """
    from scipy import stats

    check_choice("zero_method", zero_method, ZERO_METHODS)
    results = mean_over_seeds(check_results(results))  # seeds are repeats, not duplicates
    key = ["method", "case", "pair", "structure", "metric"]
    dup = results.duplicated(key, keep=False)
    if dup.any():
        first = results.loc[dup, key].iloc[0].to_dict()
        raise BenchError(f"results: {int(dup.sum())} duplicate rows, e.g. {first}")
    methods, structures, all_metrics = _order(results, methods)
    if metrics is None:
        metrics = [m for m in all_metrics if m not in exclude_metrics]
    cases = case_level(results[results["metric"].isin(metrics)])
    rows = []
    for structure, metric, sub in _groups(cases, structures, metrics):
        wide = sub.pivot(index="case", columns="method", values="value")
        # a pivot cell is NaN both for a NaN value and for a missing row: track rows apart
        present = (
            sub.assign(_row=1.0).pivot(index="case", columns="method", values="_row").notna()
        )
        block = []
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                block.append(_paired_test(wide, present, a, b, metric, zero_method, stats))
                block[-1].update(structure=structure, metric=metric)
        adjusted = holm([r["p"] for r in block])
        for r, h in zip(block, adjusted, strict=True):
            r["p_holm"] = float(h)
        rows.extend(block)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _paired_test(
    wide: pd.DataFrame, present: pd.DataFrame, a: str, b: str, metric: str, zero_method: str, stats
) -> dict:
    nan = float("nan")
    out = {
        "a": a,
        "b": b,
        "n_cases": 0,
        "n": 0,
        "n_nan": 0,
        "n_zero": 0,
        "median_a": nan,
        "median_b": nan,
        "median_diff": nan,
        "statistic": nan,
        "p": nan,
        "favours": "",
        "nmi_vs_ncc": _is_nmi_ncc_pair(a, b),
    }
    if a not in wide.columns or b not in wide.columns:
        return out
    n_cases = int((present[a] & present[b]).sum())
    out["n_cases"] = n_cases
    x = wide[a].to_numpy(dtype=np.float64)
    y = wide[b].to_numpy(dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    d = x - y
    out["n"] = int(ok.sum())
    out["n_nan"] = n_cases - out["n"]
    out["n_zero"] = int((d == 0).sum())
    if out["n"] == 0:
        return out
    out["median_a"] = float(np.median(x))
    out["median_b"] = float(np.median(y))
    out["median_diff"] = float(np.median(d))
    out["favours"] = _favours(a, b, metric, out["median_diff"])
    if np.all(d == 0):
        out["p"] = 1.0
        return out
    res = stats.wilcoxon(x, y, zero_method=zero_method)
    out["statistic"] = float(res.statistic)
    out["p"] = float(res.pvalue)
    return out


def nmi_vs_ncc(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`compare_methods` that compare one network trained with NMI and with NCC."""
    return comparisons[comparisons["nmi_vs_ncc"].astype(bool)].reset_index(drop=True)
