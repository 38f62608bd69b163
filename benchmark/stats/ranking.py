"""Statistics of a blinded forced-ranking study (the paper's Table 1 and its tests).

Input is a long table with one row per ranked result: ``case``, ``method``, ``rank`` (1 = best) and
optionally ``reader``. One *ranking* is what one reader gave one case: every method exactly once,
ranks ``1..k`` without ties. From the rankings this module computes

* the method x rank contingency table and the chi-square test of independence on it
  (``scipy.stats.chi2_contingency`` without continuity correction), as reported in the paper
  (chi-square 10.56, 4 dof, P = 0.032 on its Table 1);
* for every pair of methods ``(a, b)`` how often ``a`` was ranked above ``b`` out of ``n`` rankings,
  with the paper's 1-dof chi-square goodness-of-fit test of ``[a_above_b, n - a_above_b]`` against
  ``n/2`` each (``scipy.stats.chisquare``), the exact two-sided binomial sign test
  (``scipy.stats.binomtest``), and Holm-corrected P values over all pairs: ``p_holm`` corrects the
  chi-square ``p`` values, ``p_binomial_holm`` the binomial ones (:func:`~benchmark.stats.multitest.holm`,
  equal to ``statsmodels`` ``multipletests(method="holm")``);
* the Friedman test over cases, which respects that each case ranks all methods, and Kendall's
  coefficient of concordance ``W = chi2_F / (n (k - 1))``;
* with several readers, their agreement: Kendall's W across readers (on the readers' mean ranks per
  method, and the mean over cases of the per-case W) and Fleiss' kappa with ranks as categories.

With several readers the contingency table and the pairwise counts pool every (reader, case)
ranking as one observation; the Friedman test uses one block per case, with each method's rank
averaged over the readers of that case (ties are then possible and corrected for).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.csvfile import ENCODING, check_fields
from benchmark.core.errors import BenchError, ValidationError
from benchmark.core.numbers import format_p, json_value
from benchmark.stats.multitest import holm

REQUIRED_COLUMNS = ("case", "method", "rank")
SINGLE_READER = ""  # the reader id used when the table has no reader column


# --------------------------------------------------------------------------------------------
# reading and validation


def read_rankings(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a rankings CSV (see :func:`validate_rankings`).

    Raises
    ------
    BenchError
        If the file is missing or not a readable CSV, or a line has more or fewer fields than the
        header.
    ValidationError
        Listing every problem found in the table, each with its line and case.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: rankings file not found")
    check_fields(path, what="rankings CSV")
    try:
        table = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding=ENCODING
        )
    except Exception as exc:  # pandas raises several types for damaged CSVs
        raise BenchError(f"{path}: cannot read rankings CSV ({type(exc).__name__}: {exc})") from exc
    return validate_rankings(table, source=str(path))


def check_ranked_methods(
    rankings: pd.DataFrame, methods: Sequence[str], *, source: str = "rankings"
) -> None:
    """BenchError naming ``source`` when the rankings rank a method that is not among ``methods``
    (a reader study of another run, or a renamed method), listing both."""
    ranked = list(dict.fromkeys(rankings["method"]))
    strange = [m for m in ranked if m not in set(methods)]
    if strange:
        raise BenchError(
            f"{source}: ranks method(s) {', '.join(strange)} that the run does not have; the "
            f"run's methods are {', '.join(methods)}"
        )


def _parse_rank(text: Any) -> int | None:
    """An integer rank from a cell (``"2"``, ``2``, ``"2.0"``), or None when it is not one."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text)
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def validate_rankings(table: pd.DataFrame, *, source: str = "rankings") -> pd.DataFrame:
    """Check a long rankings table and return it cleaned.

    Parameters
    ----------
    table : DataFrame
        Columns ``case``, ``method``, ``rank`` and optionally ``reader``; other columns are ignored.
        Cells may be strings (as read from CSV) or numbers.
    source : str
        Name used in messages (the file path).

    Returns
    -------
    DataFrame
        Columns ``reader, case, method, rank`` (``rank`` int, the others str; ``reader`` is ``""``
        when the input has no reader column), in input order.

    Raises
    ------
    ValidationError
        With every problem at once: missing columns; empty case, method or reader cells; ranks that
        are not integers; per (reader,) case: a method ranked twice, a method not ranked, a rank
        outside ``1..k`` (``k`` = number of distinct methods in the table), and ties (one rank given
        to several methods). Each message names the CSV line and/or the case.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValidationError(
            source,
            [
                f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, table.columns))}"
                f"; expected case, method, rank[, reader]"
            ],
        )
    if len(table) == 0:
        raise ValidationError(source, ["no rankings (the table is empty)"])
    has_reader = "reader" in table.columns
    problems: list[str] = []
    rows = []
    unusable: set[tuple[str, str, str]] = set()
    for index, row in enumerate(table.itertuples(index=False)):
        line = index + 2  # header is line 1
        rec = row._asdict()
        case = str(rec["case"]).strip()
        method = str(rec["method"]).strip()
        reader = str(rec["reader"]).strip() if has_reader else SINGLE_READER
        where = f"line {line} (case {case!r})" if case else f"line {line}"
        ok = True
        if not case:
            problems.append(f"{where}: empty case")
            ok = False
        if not method:
            problems.append(f"{where}: empty method")
            ok = False
        if has_reader and not reader:
            problems.append(f"{where}: empty reader")
            ok = False
        rank = _parse_rank(rec["rank"])
        if rank is None:
            problems.append(
                f"{where}: rank {rec['rank']!r} is not an integer (method {method!r}; ranks "
                "are whole numbers, 1 = best)"
            )
            ok = False
        if ok:
            rows.append((reader, case, method, rank, line))
        elif case and method:
            unusable.add((reader, case, method))  # reported above: not also "not ranked"
    clean = pd.DataFrame(rows, columns=["reader", "case", "method", "rank", "line"])
    methods = list(dict.fromkeys(clean["method"]))
    k = len(methods)
    if k < 2 and not problems:
        problems.append(f"only {k} method(s) ranked ({', '.join(methods)}); need at least 2")
    for (reader, case), group in clean.groupby(["reader", "case"], sort=False):
        who = f"case {case!r}" + (f" (reader {reader!r})" if has_reader else "")
        counts = group["method"].value_counts()
        for method, count in counts.items():
            if count > 1:
                lines = ", ".join(str(v) for v in group.loc[group["method"] == method, "line"])
                problems.append(f"{who}: method {method!r} ranked {count} times (lines {lines})")
        for method in methods:
            if method not in counts.index and (reader, case, method) not in unusable:
                problems.append(f"{who}: method {method!r} not ranked")
        for r in group.itertuples(index=False):
            if not 1 <= r.rank <= k:
                problems.append(
                    f"{who}: method {r.method!r} has rank {r.rank} (line {r.line}); expected 1..{k}"
                )
        in_range = group[(group["rank"] >= 1) & (group["rank"] <= k)]
        for rank, sub in in_range.groupby("rank"):
            if sub["method"].nunique() > 1:
                problems.append(
                    f"{who}: tie, rank {rank} given to {', '.join(map(repr, sub['method']))}"
                )
    if problems:
        raise ValidationError(source, problems)
    return clean.drop(columns="line").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# statistics building blocks


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance of ``m`` judges ranking ``k`` objects.

    Parameters
    ----------
    ranks : array_like, shape (m, k)
        Row ``i`` holds judge ``i``'s ranks (or scores; each row is re-ranked with average ranks for
        ties, so lower = better is kept and only the order matters).

    Returns
    -------
    float
        ``W = 12 S / (m^2 (k^3 - k) - m sum_i T_i)`` with ``S`` the sum of squared deviations of the
        objects' rank sums from their mean and ``T_i = sum (t^3 - t)`` over the tie groups of judge
        ``i`` (the tie-corrected W). 1 = complete agreement, 0 = none. NaN when undefined
        (``k < 2``, ``m < 1``, or every judge ties all objects). Equals ``chi2_F / (m (k - 1))`` of
        the Friedman test with the judges as blocks.

    Examples
    --------
    >>> kendall_w(np.array([[1, 2, 3], [1, 2, 3]]))  # two readers in full agreement
    1.0
    """
    from scipy.stats import rankdata

    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 2:
        raise BenchError(f"kendall_w: expected ranks of shape (m, k), got shape {ranks.shape}")
    m, k = ranks.shape
    if m < 1 or k < 2:
        return float("nan")
    r = rankdata(ranks, axis=1)
    sums = r.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    ties = 0.0
    for row in r:
        _, t = np.unique(row, return_counts=True)
        ties += float((t**3 - t).sum())
    denom = m**2 * (k**3 - k) - m * ties
    if denom <= 0:
        return float("nan")
    return 12.0 * s / denom


def friedman(blocks: np.ndarray) -> tuple[float, float]:
    """Friedman test of ``k`` treatments over ``n`` blocks.

    Parameters
    ----------
    blocks : array_like, shape (n, k)
        One row per block (case), one column per method; values are ranks or scores (re-ranked per
        row, ties averaged and corrected for).

    Returns
    -------
    statistic, p : float
        ``scipy.stats.friedmanchisquare`` for ``k >= 3``; for ``k = 2`` (which scipy refuses) the
        same tie-corrected formula ``chi2_F = (12 / (n k (k+1)) sum_j R_j^2 - 3 n (k+1)) / C`` with
        ``C = 1 - sum (t^3 - t) / (n k (k^2 - 1))``, ``P`` from chi-square with ``k - 1`` dof.
        NaN, NaN when every block is a complete tie or ``n < 1``.
    """
    from scipy import stats

    blocks = np.asarray(blocks, dtype=np.float64)
    if blocks.ndim != 2 or blocks.shape[1] < 2:
        raise BenchError(f"friedman: expected blocks of shape (n, k>=2), got shape {blocks.shape}")
    n, k = blocks.shape
    if n < 1:
        return float("nan"), float("nan")
    r = stats.rankdata(blocks, axis=1)
    ties = sum(
        float((t**3 - t).sum()) for t in (np.unique(row, return_counts=True)[1] for row in r)
    )
    correction = 1.0 - ties / (n * k * (k * k - 1))
    if correction <= 1e-12:
        return float("nan"), float("nan")
    if k >= 3:
        res = stats.friedmanchisquare(*blocks.T)
        return float(res.statistic), float(res.pvalue)
    sums = r.sum(axis=0)
    stat = (12.0 / (n * k * (k + 1)) * float((sums**2).sum()) - 3.0 * n * (k + 1)) / correction
    return float(stat), float(stats.chi2.sf(stat, k - 1))


def pairwise_preferences(wide: pd.DataFrame) -> pd.DataFrame:
    """Pairwise preference counts and tests from a rankings matrix.

    Parameters
    ----------
    wide : DataFrame, shape (rankings, k)
        One row per ranking (a reader's ranking of a case), one column per method, integer ranks.

    Returns
    -------
    DataFrame
        One row per method pair ``(a, b)``, ``a`` before ``b`` in column order, with ``a_above_b``
        (rankings where ``a`` got the better, lower rank), ``n`` (rankings), ``fraction``, ``chi2``
        and ``p`` (1-dof chi-square goodness of fit of ``[a_above_b, n - a_above_b]`` against equal
        counts: ``(a - n/2)^2/(n/2) + (n - a - n/2)^2/(n/2)``), ``p_binomial`` (exact two-sided
        binomial test of ``a_above_b`` of ``n`` against 1/2), ``p_holm`` (Holm over the ``p`` of
        all pairs) and ``p_binomial_holm`` (Holm over ``p_binomial``).
    """
    from scipy import stats

    methods = list(wide.columns)
    rows = []
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            ra = wide[a].to_numpy()
            rb = wide[b].to_numpy()
            valid = np.isfinite(ra) & np.isfinite(rb)
            n = int(valid.sum())
            above = int((ra[valid] < rb[valid]).sum())
            if n > 0:
                gof = stats.chisquare([above, n - above])
                chi2, p = float(gof.statistic), float(gof.pvalue)
                p_bin = float(stats.binomtest(above, n, 0.5).pvalue)
            else:
                chi2 = p = p_bin = float("nan")
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "a_above_b": above,
                    "n": n,
                    "fraction": above / n if n else float("nan"),
                    "chi2": chi2,
                    "p": p,
                    "p_binomial": p_bin,
                }
            )
    table = pd.DataFrame(
        rows, columns=["a", "b", "a_above_b", "n", "fraction", "chi2", "p", "p_binomial"]
    )
    table["p_holm"] = holm(table["p"].to_numpy())
    table["p_binomial_holm"] = holm(table["p_binomial"].to_numpy())
    return table


# --------------------------------------------------------------------------------------------
# the analysis


@dataclass
class RankingStats:
    """Everything :func:`analyze_rankings` computes; :meth:`to_dict` gives the ``--json`` object.

    Attributes
    ----------
    methods : list of str
        In order of first appearance in the rankings table.
    readers : list of str
        Reader ids (``[""]`` without a reader column).
    n_cases, n_rankings : int
        Distinct cases; (reader, case) rankings.
    contingency : DataFrame, shape (k, k)
        Index = methods, columns = ranks 1..k, counts of rankings.
    chi2, dof, p : float, int, float
        Chi-square test of independence on ``contingency`` (no continuity correction).
    pairwise : DataFrame
        See :func:`pairwise_preferences`.
    friedman_statistic, friedman_p : float
        Friedman test over cases (see :func:`friedman`).
    kendall_w : float
        ``friedman_statistic / (n_cases (k - 1))``.
    reader_agreement : dict or None
        With two or more readers: ``readers``, ``n_cases`` (cases ranked by all of them),
        ``kendall_w_mean_ranks`` (W of the readers' mean rank per method), ``kendall_w_per_case``
        (mean over those cases of W of the readers' rankings of the case) and ``fleiss_kappa``
        (subjects = (case, method), categories = ranks, raters = readers).
    """

    methods: list[str]
    readers: list[str]
    n_cases: int
    n_rankings: int
    contingency: pd.DataFrame
    chi2: float
    dof: int
    p: float
    pairwise: pd.DataFrame
    friedman_statistic: float
    friedman_p: float
    kendall_w: float
    reader_agreement: dict[str, Any] | None = field(default=None)
    #: what could not be tested with this table, and why (those statistics are NaN)
    warnings: list[str] = field(default_factory=list)

    @property
    def mean_ranks(self) -> pd.Series:
        """Mean rank per method over all rankings."""
        ranks = np.arange(1, len(self.methods) + 1)
        counts = self.contingency.to_numpy(dtype=np.float64)
        return pd.Series(counts @ ranks / counts.sum(axis=1), index=self.methods, name="mean rank")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None) with the keys promised by ``bench stats ranking``."""
        out: dict[str, Any] = {
            "methods": list(self.methods),
            "n_cases": self.n_cases,
            "n_rankings": self.n_rankings,
            "readers": [r for r in self.readers if r != SINGLE_READER],
            "contingency": {m: [int(v) for v in self.contingency.loc[m]] for m in self.methods},
            "mean_rank": {m: json_value(v) for m, v in self.mean_ranks.items()},
            "chi2": json_value(self.chi2),
            "dof": int(self.dof),
            "p": json_value(self.p),
            "pairwise": [
                {
                    k: (
                        json_value(v)
                        if isinstance(v, float)
                        else (int(v) if k in ("a_above_b", "n") else v)
                    )
                    for k, v in row.items()
                }
                for row in self.pairwise.to_dict(orient="records")
            ],
            "friedman": {"statistic": json_value(self.friedman_statistic), "p": json_value(self.friedman_p)},
            "kendall_w": json_value(self.kendall_w),
            "warnings": list(self.warnings),
        }
        if self.reader_agreement is not None:
            out["reader_agreement"] = {
                k: (json_value(v) if isinstance(v, float) else v)
                for k, v in self.reader_agreement.items()
            }
        return out

    def to_text(self) -> str:
        """A plain-text report: contingency table, tests, pairwise preferences."""
        k = len(self.methods)
        width = max(8, *(len(m) for m in self.methods))
        n_readers = len([r for r in self.readers if r != SINGLE_READER]) or 1
        lines = [
            f"Rankings: {self.n_cases} cases, {k} methods, {n_readers} reader(s), "
            f"{self.n_rankings} rankings",
            "",
            "Contingency table (rankings per rank; rank 1 = best)",
            f"{'method':<{width}} "
            + " ".join(f"{'rank ' + str(r):>7}" for r in range(1, k + 1))
            + f" {'mean rank':>9}",
        ]
        means = self.mean_ranks
        for m in self.methods:
            counts = " ".join(f"{int(v):>7d}" for v in self.contingency.loc[m])
            lines.append(f"{m:<{width}} {counts} {means[m]:>9.2f}")
        lines += [
            "",
            f"Chi-square test of independence: chi2 = {self.chi2:.2f}, dof = {self.dof}, "
            f"P = {format_p(self.p)}",
            f"Friedman test over cases: chi2_F = {self.friedman_statistic:.2f}, "
            f"dof = {k - 1}, P = {format_p(self.friedman_p)}; Kendall's W = {self.kendall_w:.3f}",
        ]
        if self.reader_agreement is not None:
            ra = self.reader_agreement
            lines.append(
                f"Reader agreement ({len(ra['readers'])} readers, {ra['n_cases']} common cases): "
                f"Kendall's W of mean ranks = {ra['kendall_w_mean_ranks']:.3f}, "
                f"mean per-case W = {ra['kendall_w_per_case']:.3f}, "
                f"Fleiss' kappa = {ra['fleiss_kappa']:.3f}"
            )
        lines += [
            "",
            "Pairwise preferences (P: 1-dof chi-square of a>b vs n/2; P Holm: Holm over those P; "
            "P sign: exact binomial)",
            f"{'a':<{width}} {'b':<{width}} {'a>b':>5} {'n':>5} {'%':>5} {'chi2':>7} {'P':>7} "
            f"{'P Holm':>7} {'P sign':>7} {'sign Holm':>9}",
        ]
        for r in self.pairwise.itertuples(index=False):
            lines.append(
                f"{r.a:<{width}} {r.b:<{width}} {r.a_above_b:>5d} {r.n:>5d} "
                f"{100 * r.fraction:>5.0f} {r.chi2:>7.2f} {format_p(r.p):>7} {format_p(r.p_holm):>7} "
                f"{format_p(r.p_binomial):>7} {format_p(r.p_binomial_holm):>9}"
            )
        return "\n".join(lines)


def contingency_table(rankings: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """Counts of rankings per method (rows) and rank (columns ``1..k``) of a validated table."""
    methods = list(dict.fromkeys(rankings["method"])) if methods is None else list(methods)
    k = len(methods)
    table = pd.crosstab(rankings["method"], rankings["rank"])
    table = table.reindex(index=methods, columns=range(1, k + 1), fill_value=0)
    table.index.name, table.columns.name = "method", "rank"
    return table.astype(int)


def analyze_rankings(rankings: pd.DataFrame, *, validate: bool = True) -> RankingStats:
    """All ranking statistics of a long rankings table.

    Parameters
    ----------
    rankings : DataFrame
        Columns ``case, method, rank[, reader]`` (validated with :func:`validate_rankings` unless
        ``validate=False`` and it already is).

    Returns
    -------
    RankingStats
    """
    from scipy import stats

    if validate:
        rankings = validate_rankings(rankings)
    methods = list(dict.fromkeys(rankings["method"]))
    k = len(methods)
    readers = list(dict.fromkeys(rankings["reader"]))
    contingency = contingency_table(rankings, methods)
    test = stats.chi2_contingency(contingency.to_numpy(), correction=False)
    wide = rankings.pivot_table(
        index=["reader", "case"], columns="method", values="rank", aggfunc="first", sort=False
    )[methods].astype(np.float64)
    pairwise = pairwise_preferences(wide)
    per_case = wide.groupby(level="case", sort=False).mean()
    f_stat, f_p = friedman(per_case.to_numpy())
    n_cases = int(per_case.shape[0])
    w = f_stat / (n_cases * (k - 1)) if math.isfinite(f_stat) else float("nan")
    agreement = _reader_agreement(wide, readers, methods) if len(readers) > 1 else None
    warnings = []
    chi2, p = float(test.statistic), float(test.pvalue)
    if wide.shape[0] < 2:
        warnings.append(
            "only 1 ranking: the chi-square test and the pairwise tests are not computed (one "
            "ranking puts each method in exactly one rank, whatever the methods' quality, so it "
            "carries no evidence); rank more cases"
        )
        chi2 = p = float("nan")
        for col in ("chi2", "p", "p_binomial", "p_holm", "p_binomial_holm"):
            pairwise[col] = float("nan")
    if n_cases < 2:
        warnings.append(
            "only 1 case: the Friedman test and Kendall's W are not computed (with one case "
            f"chi2_F is always k - 1 = {k - 1} and W = 1, whatever the rankings); rank more cases"
        )
        f_stat = f_p = w = float("nan")
    return RankingStats(
        methods=methods,
        readers=readers,
        n_cases=n_cases,
        n_rankings=int(wide.shape[0]),
        contingency=contingency,
        chi2=chi2,
        dof=int(test.dof),
        p=p,
        pairwise=pairwise,
        friedman_statistic=f_stat,
        friedman_p=f_p,
        kendall_w=float(w),
        reader_agreement=agreement,
        warnings=warnings,
    )


def _reader_agreement(wide: pd.DataFrame, readers: list[str], methods: list[str]) -> dict:
    """Agreement among readers on the cases that all of them ranked."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    k = len(methods)
    cases_by_reader = [set(wide.loc[r].index) for r in readers]
    common = [
        c
        for c in dict.fromkeys(wide.index.get_level_values("case"))
        if all(c in s for s in cases_by_reader)
    ]
    out: dict[str, Any] = {"readers": list(readers), "n_cases": len(common)}
    if not common:
        out.update(
            kendall_w_mean_ranks=float("nan"),
            kendall_w_per_case=float("nan"),
            fleiss_kappa=float("nan"),
        )
        return out
    cube = np.stack([wide.loc[r].loc[common, methods].to_numpy() for r in readers])  # (m, n, k)
    out["kendall_w_mean_ranks"] = kendall_w(cube.mean(axis=1))
    out["kendall_w_per_case"] = float(
        np.nanmean([kendall_w(cube[:, i]) for i in range(len(common))])
    )
    # subjects = (case, method); categories = rank 1..k; entries = readers giving that rank
    counts = np.stack([(cube == r).sum(axis=0).ravel() for r in range(1, k + 1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fleiss_kappa"] = float(fleiss_kappa(counts, method="fleiss"))
    return out
