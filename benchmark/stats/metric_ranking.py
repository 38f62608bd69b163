"""Ranking methods across metrics, with uncertainty (``bench stats rank`` and the report).

Scheme (Learn2Reg-like, but paired and at the case level):

1. **Case values.** Per metric, every method's value of a case is the mean over the case's pairs
   of the mean over the label structures (:func:`~benchmark.stats.comparisons.case_level` with
   ``over_structures=True``). Only cases with a finite value for every method enter the ranking
   of a metric (complete blocks, as the Friedman test needs); failed pairs make their case NaN,
   and the cases dropped are counted per method (``n_missing``).
2. **Significance rank per metric.** Paired two-sided Wilcoxon signed-rank tests between every
   two methods over those cases, Holm-corrected over the method pairs of the metric. A method
   *beats* another when the Holm-adjusted P is below ``alpha`` and the median difference favours
   it (given the metric's direction). ``wins`` = methods beaten; rank = 1 + number of methods with
   more wins (ties share the better rank).
3. **Aggregate rank.** The geometric mean of a method's per-metric ranks (as Learn2Reg), ranked
   again the same way (rank 1 = smallest geometric mean).
4. **Stability.** ``n_boot`` bootstrap resamples of the cases (with replacement, seeded; one
   draw for all metrics, a drawn case missing from a metric replaced by a random case of that
   metric) redo steps 2-3; per method the share of resamples in which it keeps its rank, and
   the 2.5-97.5 % interval of its rank. A resample with tied differences (repeated cases) is
   tested with the normal approximation instead of SciPy's permutation test
   (:func:`_wilcoxon_rows`).
5. **Friedman and post-hoc.** Per metric, Friedman's test on the case x method table and the
   Nemenyi (or Conover) post-hoc test of scikit-posthocs, with each method's average rank within
   cases (1 = best) and Nemenyi's critical difference ``q_alpha sqrt(k (k + 1) / (6 n))``
   (``q_alpha`` from ``scipy.stats.studentized_range``), drawn as a critical-difference diagram
   by :func:`reports.figures.critical_difference_figure`.

Plus **DSC30** (:func:`dsc30`): each method's mean Dice over the 30 % hardest cases, hardest by
the Dice before registration, the same cases for every method.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.checks import check_choice, check_int, check_number
from benchmark.core.errors import BenchError
from benchmark.core.numbers import format_p, json_value
from benchmark.stats.comparisons import ALL_STRUCTURES, case_level
from benchmark.stats.results import check_results, ordered
from metrics.catalog import HIGHER_IS_BETTER, LOWER_IS_BETTER

#: Metrics ranked by default, when present in the results (in this order).
RANKING_METRICS = ("dice", "hd95", "tre_mm", "disp_error_mm", "folding_fwd_pct", "sdlogj")
POSTHOC = ("nemenyi", "conover")
#: Share of hardest cases in :func:`dsc30`.
DSC30_FRACTION = 0.3


def better_sign(metric: str) -> float:
    """+1 for a higher-is-better metric, -1 for lower-is-better; BenchError for neither.

    Examples
    --------
    >>> better_sign("dice"), better_sign("hd95")
    (1.0, -1.0)
    """
    if metric in HIGHER_IS_BETTER:
        return 1.0
    if metric in LOWER_IS_BETTER:
        return -1.0
    raise BenchError(
        f"metric {metric!r} has no direction; rankable metrics: "
        f"{', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}"
    )


def case_matrix(results: pd.DataFrame, metric: str, methods: list[str]) -> pd.DataFrame:
    """Cases x methods table of one metric (mean over structures, then over the case's pairs);
    NaN where undefined, failed or absent."""
    sub = results[results["metric"] == metric]
    cases = case_level(sub, over_structures=True)
    cases = cases[cases["structure"].isin([ALL_STRUCTURES, "image"])]
    wide = cases.pivot_table(index="case", columns="method", values="value", aggfunc="first")
    return wide.reindex(columns=methods).astype(np.float64)


def _holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm adjustment along the last axis of ``p`` (shape (..., m)); NaN treated as 1."""
    p = np.where(np.isfinite(p), p, 1.0)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    sorted_p = np.take_along_axis(p, order, axis=-1)
    adj = np.maximum.accumulate(sorted_p * (m - np.arange(m)), axis=-1).clip(max=1.0)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def _ranks_from_wins(wins: np.ndarray) -> np.ndarray:
    """Rank 1 + number of methods with more wins, along the last axis."""
    return 1 + (wins[..., None, :] > wins[..., :, None]).sum(axis=-1)


def _wilcoxon_rows(d: np.ndarray, *, resampled: bool) -> np.ndarray:
    """Two-sided Wilcoxon signed-rank P of each row of ``d`` (differences, shape (r, n)).

    The observed cases (``resampled`` False): SciPy's default (``method="auto"``: exact without
    ties or zeros, a permutation test with them up to 13 cases, else the normal approximation),
    as :func:`~benchmark.stats.comparisons.compare_methods` tests. Bootstrap resamples repeat
    cases, so most rows have ties: there each row without ties or zeros gets the exact test and
    each one with them the normal approximation (with continuity correction), since SciPy's
    permutation route for 13 or fewer cases costs 2^n statistics per row (minutes for 200
    resamples of 12 cases, against milliseconds).
    """
    from scipy import stats

    if not resampled:
        return stats.wilcoxon(d, axis=1).pvalue
    a = np.sort(np.abs(d), axis=1)
    tied = (a[:, 1:] == a[:, :-1]).any(axis=1) | (a[:, 0] == 0)
    p = np.empty(len(d))
    exact = ~tied & (d.shape[1] <= 50)  # as SciPy's "auto" without ties
    for rows, method in ((exact, "exact"), (~exact, "asymptotic")):
        if rows.any():
            p[rows] = stats.wilcoxon(d[rows], axis=1, method=method).pvalue
    return p


def _significance(values: np.ndarray, sign: float, alpha: float, *, resampled: bool = False):
    """Pairwise tests, wins and ranks of ``values`` (shape (B, n, k), oriented later by ``sign``;
    ``resampled``: bootstrap resamples of the cases, :func:`_wilcoxon_rows`).

    Returns ``(pairs, p, p_holm, median_diff, ranks)`` with ``p`` etc. of shape (B, n_pairs) and
    ``ranks`` (B, k).
    """
    b, _, k = values.shape
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    p = np.ones((b, len(pairs)))
    med = np.zeros((b, len(pairs)))
    for c, (i, j) in enumerate(pairs):
        d = values[:, :, i] - values[:, :, j]
        med[:, c] = np.median(d, axis=1)
        nonzero = np.any(d != 0, axis=1)
        if nonzero.any():
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                p[nonzero, c] = _wilcoxon_rows(d[nonzero], resampled=resampled)
    p_holm = _holm_rows(p)
    wins = np.zeros((b, k))
    for c, (i, j) in enumerate(pairs):
        sig = p_holm[:, c] < alpha
        wins[:, i] += sig & (sign * med[:, c] > 0)
        wins[:, j] += sig & (sign * med[:, c] < 0)
    return pairs, p, p_holm, med, _ranks_from_wins(wins)


def _aggregate(per_metric_ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geometric mean over metrics (axis -2 of shape (..., m, k)) and its rank."""
    geo = np.exp(np.log(per_metric_ranks).mean(axis=-2))
    return geo, _ranks_from_wins(-geo)


@dataclass
class MetricRanking:
    """What :func:`rank_methods` computes; :meth:`to_dict` is the ``--json`` object.

    Attributes
    ----------
    methods, metrics : list of str
    tests : DataFrame
        ``metric, a, b, n, median_diff, p, p_holm, favours`` (paired Wilcoxon, case level).
    ranks : DataFrame
        One row per method: ``rank_<metric>`` per metric, ``geo_mean``, ``rank``, ``stability``
        (share of bootstrap resamples keeping ``rank``), ``rank_lo``/``rank_hi`` (2.5/97.5 %),
        and ``stability_<metric>`` per metric.
    cases : dict metric -> int
        Complete cases per metric.
    missing : DataFrame
        ``metric, method, n_missing``: cases left out because the method's value is NaN.
    friedman : DataFrame
        ``metric, n, k, statistic, p, cd, posthoc``.
    mean_ranks : dict metric -> Series
        Average within-case rank per method (1 = best).
    posthoc_p : dict metric -> DataFrame
        k x k post-hoc P values.
    dsc30 : DataFrame
        See :func:`dsc30`.
    """

    methods: list[str]
    metrics: list[str]
    alpha: float
    n_boot: int
    seed: int
    posthoc: str
    tests: pd.DataFrame
    ranks: pd.DataFrame
    cases: dict[str, int]
    missing: pd.DataFrame
    friedman: pd.DataFrame
    mean_ranks: dict[str, pd.Series] = field(default_factory=dict)
    posthoc_p: dict[str, pd.DataFrame] = field(default_factory=dict)
    dsc30: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""

        def records(frame: pd.DataFrame) -> list[dict]:
            rows = frame.to_dict(orient="records")
            return [{k: json_value(v) for k, v in row.items()} for row in rows]

        return {
            "level": "case",
            "scheme": SCHEME_NOTE,
            "methods": self.methods,
            "metrics": self.metrics,
            "alpha": self.alpha,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "posthoc": self.posthoc,
            "cases": self.cases,
            "ranks": records(self.ranks),
            "tests": records(self.tests),
            "missing": records(self.missing),
            "friedman": records(self.friedman),
            "mean_ranks": {
                m: {k: json_value(v) for k, v in s.items()} for m, s in self.mean_ranks.items()
            },
            "posthoc_p": {
                m: {a: {b: json_value(v) for b, v in row.items()} for a, row in f.iterrows()}
                for m, f in self.posthoc_p.items()
            },
            "dsc30": records(self.dsc30),
        }

    def to_text(self) -> str:
        """Plain-text tables: ranks with stability, Friedman tests, DSC30, pairwise tests."""
        width = max(8, *(len(m) for m in self.methods))
        lines = [
            f"Ranking over {', '.join(self.metrics)} (alpha {self.alpha:g}, {self.n_boot} "
            f"bootstrap resamples of the cases, seed {self.seed})",
            "",
            f"{'method':<{width}} "
            + " ".join(f"{m[:10]:>10}" for m in self.metrics)
            + f" {'geo mean':>8} {'rank':>4} {'kept':>5} {'95% rank':>8}",
        ]
        for r in self.ranks.itertuples(index=False):
            row = r._asdict()
            lines.append(
                f"{r.method:<{width}} "
                + " ".join(f"{row['rank_' + m]:>10d}" for m in self.metrics)
                + f" {r.geo_mean:>8.2f} {r.rank:>4d} {100 * r.stability:>4.0f}% "
                f"{f'{r.rank_lo:g}-{r.rank_hi:g}':>8}"
            )
        lines += ["", f"Friedman tests and {self.posthoc} post-hoc (average rank, 1 = best)"]
        for f in self.friedman.itertuples(index=False):
            ranks = self.mean_ranks.get(f.metric)
            shown = (
                ", ".join(f"{m} {v:.2f}" for m, v in ranks.sort_values().items())
                if ranks is not None
                else ""
            )
            lines.append(
                f"  {f.metric}: n = {f.n} cases, chi2 = {_fmt(f.statistic)}, P = {format_p(f.p)}, "
                f"CD = {_fmt(f.cd)}; {shown}"
            )
        if len(self.dsc30):
            lines += [
                "",
                "DSC30: mean Dice over the 30 % hardest cases (by Dice before registration)",
            ]
            for r in self.dsc30.itertuples(index=False):
                lines.append(f"  {r.method:<{width}} {_fmt(r.dsc30)} (n = {r.n}, NaN {r.n_nan})")
        lines += ["", "Pairwise tests (paired Wilcoxon over cases, Holm within a metric)"]
        for t in self.tests.itertuples(index=False):
            lines.append(
                f"  {t.metric:<16} {t.a:<{width}} {t.b:<{width}} n = {t.n:>3d} "
                f"median a-b {_fmt(t.median_diff):>9}  P {format_p(t.p):>7}  "
                f"P Holm {format_p(t.p_holm):>7}  {t.favours}"
            )
        lines += ["", SCHEME_NOTE]
        return "\n".join(lines)


SCHEME_NOTE = (
    "Case level: a case's pairs (both directions, seeds) and structures are averaged first; "
    "per metric, paired Wilcoxon tests between methods over the cases complete for all methods, "
    "Holm-corrected; a method's rank = 1 + methods with more significant wins; aggregate = "
    "geometric mean of the per-metric ranks, ranked again; stability = share of case bootstrap "
    "resamples keeping the rank."
)


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.4g}"


def friedman_posthoc(
    matrix: pd.DataFrame, *, higher_is_better: bool, posthoc: str = "nemenyi", alpha: float = 0.05
) -> tuple[float, float, pd.Series, pd.DataFrame, float]:
    """Friedman test, average ranks, post-hoc P values and Nemenyi's critical difference.

    Parameters
    ----------
    matrix : DataFrame, shape (n cases, k methods)
        Complete blocks (no NaN).
    higher_is_better : bool
        Direction of the metric: rank 1 goes to the best value of a case.
    posthoc : {"nemenyi", "conover"}
        ``scikit_posthocs.posthoc_nemenyi_friedman`` or ``posthoc_conover_friedman``.

    Returns
    -------
    statistic, p, mean_ranks, posthoc_p, cd
        ``cd`` = ``q_alpha sqrt(k (k + 1) / (6 n))``, ``q_alpha`` the studentized range quantile
        over sqrt(2) (Demšar 2006); NaN statistics for fewer than 3 methods or 2 cases.
    """
    import scikit_posthocs as sp
    from scipy import stats

    check_choice("posthoc", posthoc, POSTHOC)
    n, k = matrix.shape
    oriented = -matrix if higher_is_better else matrix
    mean_ranks = pd.Series(
        stats.rankdata(oriented.to_numpy(), axis=1).mean(axis=0), index=matrix.columns
    )
    nan = float("nan")
    if k < 3 or n < 2:
        return nan, nan, mean_ranks, pd.DataFrame(np.nan, matrix.columns, matrix.columns), nan
    fn = sp.posthoc_nemenyi_friedman if posthoc == "nemenyi" else sp.posthoc_conover_friedman
    # every case tied (e.g. no folding anywhere): the statistics are 0/0, reported as NaN
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.friedmanchisquare(*oriented.to_numpy().T)
        p = fn(oriented.reset_index(drop=True))
    p.index, p.columns = list(matrix.columns), list(matrix.columns)
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(k * (k + 1) / (6.0 * n)))
    return float(res.statistic), float(res.pvalue), mean_ranks, p.astype(np.float64), cd


def dsc30(
    results: pd.DataFrame, *, methods: list[str] | None = None, fraction: float = DSC30_FRACTION
) -> pd.DataFrame:
    """Mean Dice over the hardest ``fraction`` of the cases, hardest by the Dice before
    registration (``dice_before``), the same cases for every method.

    Case values are means over structures and pairs (:func:`case_level`). The
    ``ceil(fraction * n)`` cases with the lowest ``dice_before`` are taken (ties: case id order).

    Returns
    -------
    DataFrame
        ``method, dsc30, n, n_nan, cases`` (``n`` hardest cases; ``n_nan`` of them without a
        finite Dice for the method, e.g. failed, which the mean leaves out). Empty when the
        results have no ``dice_before``/``dice``.
    """
    columns = ["method", "dsc30", "n", "n_nan", "cases"]
    results = check_results(results)
    methods = ordered(results["method"]) if methods is None else list(methods)
    before = case_matrix(results, "dice_before", methods)
    if before.empty or not results["metric"].eq("dice").any():
        return pd.DataFrame(columns=columns)
    unregistered = before.mean(axis=1, skipna=True).dropna().sort_index()
    n = math.ceil(fraction * len(unregistered))
    hardest = list(unregistered.sort_values(kind="stable").index[:n])
    dice = case_matrix(results, "dice", methods).reindex(hardest)
    rows = []
    for m in methods:
        v = dice[m].to_numpy()
        finite = v[np.isfinite(v)]
        rows.append(
            {
                "method": m,
                "dsc30": float(finite.mean()) if finite.size else float("nan"),
                "n": n,
                "n_nan": int(v.size - finite.size),
                "cases": " ".join(hardest),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _check_options(methods: list[str], *, alpha: float, n_boot: int, posthoc: str) -> None:
    """BenchError for fewer than two methods, ``alpha`` outside (0, 1), ``n_boot < 0`` or an
    unknown ``posthoc``."""
    if len(methods) < 2:
        raise BenchError(f"ranking needs at least two methods, got {methods}")
    check_number("alpha", alpha, minimum=0, maximum=1, open_minimum=True, open_maximum=True)
    check_int("n_boot", n_boot, minimum=0)
    check_choice("posthoc", posthoc, POSTHOC)


def _complete_matrices(
    results: pd.DataFrame, metrics: list[str], methods: list[str]
) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """Per metric, the case x method matrix of the cases complete for every method (metrics
    with fewer than two such cases left out), and the rows of ``missing`` (cases per metric and
    method without a value). BenchError for a metric without a direction, or when no metric is
    left."""
    for m in metrics:
        better_sign(m)
    matrices = {}
    missing = []
    for m in metrics:
        mat = case_matrix(results, m, methods)
        for meth in methods:
            missing.append({"metric": m, "method": meth, "n_missing": int(mat[meth].isna().sum())})
        mat = mat.dropna()
        if len(mat) >= 2:
            matrices[m] = mat
    if not matrices:
        raise BenchError(
            "no metric with at least two cases complete for every method; ranked metrics are "
            f"{', '.join(RANKING_METRICS)}"
        )
    return matrices, missing


def _rank_table(
    methods: list[str], metrics: list[str], ranks: np.ndarray, boot: np.ndarray | None
) -> pd.DataFrame:
    """One row per method: per-metric ranks, geometric mean, overall rank and, from the
    bootstrap ranks ``boot`` (metric, resample, method), the stability and 95 % rank interval
    (NaN without a bootstrap)."""
    geo, final = _aggregate(ranks.astype(np.float64))
    table = pd.DataFrame({"method": methods})
    for mi, m in enumerate(metrics):
        table[f"rank_{m}"] = ranks[mi]
    table["geo_mean"] = geo
    table["rank"] = final
    if boot is not None:
        _, boot_final = _aggregate(np.moveaxis(boot, 0, 1).astype(np.float64))  # (B, k)
        table["stability"] = (boot_final == final[None]).mean(axis=0)
        table["rank_lo"] = np.percentile(boot_final, 2.5, axis=0)
        table["rank_hi"] = np.percentile(boot_final, 97.5, axis=0)
        for mi, m in enumerate(metrics):
            table[f"stability_{m}"] = (boot[mi] == ranks[mi][None]).mean(axis=0)
    else:
        table["stability"] = table["rank_lo"] = table["rank_hi"] = np.nan
    return table


def _test_rows(
    metric: str,
    methods: list[str],
    n: int,
    sign: int,
    pairs: list[tuple[int, int]],
    median_diff: np.ndarray,
    p: np.ndarray,
    p_holm: np.ndarray,
) -> list[dict]:
    """Rows of ``tests`` for one metric: each method pair, its median difference, P values and
    the method the difference favours (empty for a zero median)."""
    rows = []
    for c, (i, j) in enumerate(pairs):
        med = median_diff[c]
        rows.append(
            {
                "metric": metric,
                "a": methods[i],
                "b": methods[j],
                "n": n,
                "median_diff": float(med),
                "p": float(p[c]),
                "p_holm": float(p_holm[c]),
                "favours": "" if med == 0 else (methods[i] if sign * med > 0 else methods[j]),
            }
        )
    return rows


def rank_methods(
    results: pd.DataFrame,
    *,
    methods: list[str] | None = None,
    metrics: list[str] | None = None,
    alpha: float = 0.05,
    n_boot: int = 200,
    seed: int = 0,
    posthoc: str = "nemenyi",
) -> MetricRanking:
    """Rank methods per metric and overall, with bootstrap stability and Friedman post-hoc tests.

    See the module docstring for the scheme. ``metrics`` default: those of
    :data:`RANKING_METRICS` present in ``results``.

    Raises
    ------
    BenchError
        Fewer than two methods, no rankable metric, ``n_boot < 0``, ``alpha`` outside (0, 1),
        an unknown ``posthoc``.
    """
    results = check_results(results)
    methods = ordered(results["method"]) if methods is None else list(methods)
    _check_options(methods, alpha=alpha, n_boot=n_boot, posthoc=posthoc)
    present = set(results["metric"])
    metrics = [m for m in RANKING_METRICS if m in present] if metrics is None else list(metrics)
    matrices, missing = _complete_matrices(results, metrics, methods)
    metrics = list(matrices)
    k = len(methods)
    rng = np.random.default_rng(seed)
    tests, friedman = [], []
    ranks = np.empty((len(metrics), k), dtype=int)
    boot = np.empty((len(metrics), n_boot, k), dtype=int)
    out = MetricRanking(
        methods=methods,
        metrics=metrics,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        posthoc=posthoc,
        tests=pd.DataFrame(),
        ranks=pd.DataFrame(),
        cases={m: len(matrices[m]) for m in metrics},
        missing=pd.DataFrame(missing, columns=["metric", "method", "n_missing"]),
        friedman=pd.DataFrame(),
    )
    all_cases = sorted(set().union(*(matrices[m].index for m in metrics)))
    draws = rng.integers(0, len(all_cases), size=(n_boot, len(all_cases)))
    for mi, m in enumerate(metrics):
        mat = matrices[m]
        sign = better_sign(m)
        values = mat.to_numpy()
        pairs, p, p_holm, med, r = _significance(values[None], sign, alpha)
        ranks[mi] = r[0]
        tests += _test_rows(m, methods, len(mat), sign, pairs, med[0], p[0], p_holm[0])
        if n_boot:
            # one draw of cases for all metrics; a drawn case that has no complete value for
            # this metric is replaced by a random case that has
            pos = {c: n for n, c in enumerate(mat.index)}
            idx = np.array([pos.get(c, -1) for c in all_cases])[draws]
            absent = idx < 0
            idx[absent] = rng.integers(0, len(mat), size=int(absent.sum()))
            boot[mi] = _significance(values[idx], sign, alpha, resampled=True)[4]
        stat, pf, mean_ranks, pp, cd = friedman_posthoc(
            mat, higher_is_better=sign > 0, posthoc=posthoc, alpha=alpha
        )
        out.mean_ranks[m] = mean_ranks
        out.posthoc_p[m] = pp
        friedman.append(
            {
                "metric": m,
                "n": len(mat),
                "k": k,
                "statistic": stat,
                "p": pf,
                "cd": cd,
                "posthoc": posthoc,
            }
        )
    table = _rank_table(methods, metrics, ranks, boot if n_boot else None)
    out.tests = pd.DataFrame(
        tests, columns=["metric", "a", "b", "n", "median_diff", "p", "p_holm", "favours"]
    )
    out.ranks = table.sort_values(["rank", "method"], kind="stable").reset_index(drop=True)
    out.friedman = pd.DataFrame(
        friedman, columns=["metric", "n", "k", "statistic", "p", "cd", "posthoc"]
    )
    out.dsc30 = dsc30(results, methods=methods)
    return out
