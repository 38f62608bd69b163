"""The paper's claims, checked on a run: one declared table (:data:`CLAIMS`) and
:func:`evaluate_claims`, which gives each claim a verdict on a results table.

de Vos et al. (SPIE 2020) state findings for breast DCE-MRI (contrast that changes between the
fixed and the moving image) and for cardiac cine MRI (one contrast). Each :class:`Claim` names
the contrast it is about, the methods and metric it compares and how it is decided; a run gets
the rows it can test, and every other row says why it is ``not testable`` (a method not in the
run, no ground truth, the other contrast, too few cases for the test, no reader study).

Decisions, stated once here and in docs/methods.md ("The paper's claims"):

- A comparison is a two-sided paired Wilcoxon signed-rank test at the case level (a case's pairs
  averaged first, label structures averaged per pair; :func:`benchmark.stats.comparisons.case_level`)
  at ``alpha`` (0.05); fewer than :data:`MIN_CASES` complete cases cannot reach it (the exact test
  of 5 cases gives P >= 0.0625), so the claim is not testable.
- "On par" holds when the test finds no difference at ``alpha`` or the difference favours the
  method claimed to be on par; "behind" holds when the difference is significant and against it.
- "Higher / lower / most / least" claims compare the means over cases.
- Folding is counted as the paper counts it: registrations (pairs) with any folded voxel
  (``folding_pct > 0``).
- The accuracy of a registration is the displacement error against the ground truth when the
  dataset has one, else the mean Dice over the structures, else the landmark TRE.
- Claims about the expert's ranking read a reader study's rankings (Table 1's chi-square test and
  the pairwise preferences, :mod:`benchmark.stats.ranking`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.core.numbers import format_p
from benchmark.stats.comparisons import ALL_STRUCTURES, case_level
from benchmark.stats.ranking import RankingStats
from benchmark.stats.results import check_results
from metrics.catalog import HIGHER_IS_BETTER, IMAGE

#: The columns of ``claims.csv``.
CLAIM_COLUMNS = (
    "claim", "statement", "methods", "metric", "numbers", "test", "verdict", "reason",
)
HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable"
VERDICTS = (HOLDS, FAILS, UNTESTABLE)
#: Fewest complete cases for a paired test that can reach P < 0.05.
MIN_CASES = 6
#: The paper's contrasts: breast DCE-MRI and cardiac cine MRI.
DIFFERENT, SAME = "different", "same"
#: Accuracy metrics in order of preference (the first the run has is used).
ACCURACY_METRICS = ("disp_error_mm", "dice", "tre_mm")

UNET, POOLNET = "unet-nmi", "poolnet-nmi"
NETWORKS = ("unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc")


@dataclass(frozen=True)
class Verdict:
    """What one claim's evaluation found."""

    verdict: str
    numbers: str = ""
    test: str = ""
    reason: str = ""
    metric: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper.

    ``contrast`` is the data it is about (:data:`DIFFERENT`, :data:`SAME`); ``metric`` what it
    compares (``accuracy`` for :data:`ACCURACY_METRICS`, ``expert ranking`` for a reader study);
    ``evaluate`` decides it on a :class:`Evidence`.
    """

    id: str
    statement: str
    contrast: str
    methods: tuple[str, ...]
    metric: str
    evaluate: Callable[[Evidence], Verdict]


class Evidence:
    """What the claims are decided on: a run's results table (case level), the dataset's
    contrast, and optionally the statistics of a reader study's rankings."""

    def __init__(
        self,
        results: pd.DataFrame,
        *,
        contrast: str | None,
        rankings: RankingStats | None = None,
        alpha: float = 0.05,
    ):
        self.results = check_results(results)
        self.contrast = contrast
        self.rankings = rankings
        self.alpha = alpha
        self.methods = set(self.results["method"])
        self.cases = case_level(self.results, over_structures=True)

    def accuracy_metric(self) -> str | None:
        """The first of :data:`ACCURACY_METRICS` with a finite value in the run."""
        present = self.results.loc[np.isfinite(self.results["value"]), "metric"]
        return next((m for m in ACCURACY_METRICS if (present == m).any()), None)

    def per_case(self, metric: str, methods: Sequence[str]) -> pd.DataFrame:
        """Case x method table of one metric (label structures averaged), complete cases only."""
        structure = IMAGE if metric not in ("dice", "hd", "hd95") else ALL_STRUCTURES
        rows = self.cases[(self.cases["metric"] == metric) & (self.cases["structure"] == structure)]
        wide = rows.pivot(index="case", columns="method", values="value")
        return wide.reindex(columns=list(methods)).dropna()

    def means(self, metric: str, methods: Sequence[str]) -> pd.Series:
        return self.per_case(metric, methods).mean()

    def folded_pairs(self, method: str) -> tuple[int, int]:
        """(pairs with folding_pct > 0, pairs with a value) of one method, seeds kept apart."""
        r = self.results
        v = r.loc[(r["method"] == method) & (r["metric"] == "folding_pct"), "value"]
        v = v[np.isfinite(v)]
        return int((v > 0).sum()), int(len(v))


# ------------------------------------------------------------------------------ deciders


def _missing(evidence: Evidence, methods: Sequence[str], contrast: str) -> Verdict | None:
    """A ``not testable`` verdict when the run cannot test a claim about ``contrast`` with
    ``methods`` (no method: the contrast alone); None when it can."""
    if evidence.contrast is None:
        return Verdict(UNTESTABLE, reason="the dataset states no contrast (same or different)")
    if evidence.contrast != contrast:
        what = "changing contrast (breast DCE)" if contrast == DIFFERENT else "one contrast (cine)"
        return Verdict(
            UNTESTABLE, reason=f"the claim is about {what}; this dataset's is {evidence.contrast}"
        )
    absent = [m for m in methods if m not in evidence.methods]
    if absent:
        return Verdict(UNTESTABLE, reason=f"not in the run: {', '.join(absent)}")
    return None


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


def _means_text(means: pd.Series, metric: str, n: int) -> str:
    return "; ".join(f"{m} {_fmt(v)}" for m, v in means.items()) + f" (mean {metric}, {n} cases)"


def _paired(evidence: Evidence, metric: str, a: str, b: str) -> tuple[float, float, int] | None:
    """(P of the paired Wilcoxon test, mean of a - b, complete cases), or None for too few."""
    from scipy import stats

    wide = evidence.per_case(metric, [a, b])
    if len(wide) < MIN_CASES:
        return None
    d = (wide[a] - wide[b]).to_numpy()
    p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(wide[a], wide[b]).pvalue)
    return p, float(d.mean()), len(wide)


def _better(metric: str, difference: float) -> bool:
    """Whether a positive difference ``a - b`` of ``metric`` favours ``a``."""
    return difference > 0 if metric in HIGHER_IS_BETTER else difference < 0


def _comparison(evidence: Evidence, a: str, b: str, relation: str, metric: str | None) -> Verdict:
    """``a`` on par with ``b`` (``relation`` "on par") or ``a`` behind ``b`` ("behind") on
    ``metric`` (None: the run's accuracy metric)."""
    metric = metric or evidence.accuracy_metric()
    if metric is None:
        return Verdict(UNTESTABLE, reason="no ground truth, labels or landmarks in the run")
    tested = _paired(evidence, metric, a, b)
    if tested is None:
        n = len(evidence.per_case(metric, [a, b]))
        return Verdict(UNTESTABLE, metric=metric,
                       reason=f"too few cases for the test ({n} complete, {MIN_CASES} needed)")
    p, diff, n = tested
    means = evidence.means(metric, [a, b])
    a_better = _better(metric, diff)
    significant = p < evidence.alpha
    holds = (not significant or a_better) if relation == "on par" else (significant and not a_better)
    return Verdict(
        HOLDS if holds else FAILS,
        numbers=_means_text(means, metric, n) + f"; mean difference {a} - {b} {_fmt(diff)}",
        test=f"paired Wilcoxon signed-rank over {n} cases, P = {format_p(p)}",
        metric=metric,
    )


def _order(evidence: Evidence, metric: str, methods: Sequence[str], first: str,
           *, highest: bool, last: str | None = None) -> Verdict:
    """``first`` has the highest (or lowest) mean ``metric`` of ``methods`` (and ``last`` the
    other extreme, when given)."""
    wide = evidence.per_case(metric, methods)
    if wide.empty:
        return Verdict(UNTESTABLE, reason=f"no case with {metric} for every one of the methods")
    means = wide.mean()
    top = means.idxmax() if highest else means.idxmin()
    bottom = means.idxmin() if highest else means.idxmax()
    holds = means[first] == means[top] and (last is None or means[last] == means[bottom])
    return Verdict(HOLDS if holds else FAILS, numbers=_means_text(means, metric, len(wide)),
                   test="means over the cases", metric=metric)


def _comparison_claim(a: str, b: str, relation: str, contrast: str, metric: str | None = None):
    def evaluate(evidence: Evidence) -> Verdict:
        return _missing(evidence, (a, b), contrast) or _comparison(evidence, a, b, relation, metric)

    return evaluate


def _order_claim(methods, first, *, metric, highest, contrast, last=None):
    def evaluate(evidence: Evidence) -> Verdict:
        missing = _missing(evidence, methods, contrast)
        return missing or _order(evidence, metric, methods, first, highest=highest, last=last)

    return evaluate


def _folding_counts(evidence: Evidence) -> Verdict:
    """U-Net >= PoolNet >= elastix = 0 registrations with folding (the paper's 23, 14, 0 of 50)."""
    methods = (UNET, POOLNET, "elastix")
    missing = _missing(evidence, methods, DIFFERENT)
    if missing:
        return missing
    counts = {m: evidence.folded_pairs(m) for m in methods}
    (u, _), (p, _), (e, _) = counts[UNET], counts[POOLNET], counts["elastix"]
    text = "; ".join(f"{m} {k} of {n}" for m, (k, n) in counts.items())
    return Verdict(HOLDS if u >= p >= e == 0 else FAILS, numbers=text + " registrations folded",
                   test="counts of registrations with folding_pct > 0 (the paper's counting)",
                   metric="folding_pct")


def _networks_high_dice(evidence: Evidence) -> Verdict:
    """Every network ahead of no registration (paired test) and within 0.05 Dice of elastix."""
    methods = (*NETWORKS, "elastix", "identity")
    missing = _missing(evidence, methods, SAME)
    if missing:
        return missing
    wide = evidence.per_case("dice", methods)
    if len(wide) < MIN_CASES:
        return Verdict(UNTESTABLE, metric="dice",
                       reason=f"too few cases for the test ({len(wide)} complete, {MIN_CASES} needed)")
    means = wide.mean()
    tests = {n: _paired(evidence, "dice", n, "identity") for n in NETWORKS}
    ahead = all(t is not None and t[0] < evidence.alpha and t[1] > 0 for t in tests.values())
    close = all(means[n] >= means["elastix"] - 0.05 for n in NETWORKS)
    worst_p = max(t[0] for t in tests.values() if t is not None)
    return Verdict(
        HOLDS if ahead and close else FAILS,
        numbers=_means_text(means, "dice", len(wide)),
        test=f"each network vs identity, paired Wilcoxon over {len(wide)} cases, largest "
        f"P = {format_p(worst_p)}; within 0.05 Dice of elastix",
        metric="dice",
    )


def _nmi_ncc_on_par(evidence: Evidence) -> Verdict:
    """For both networks, the NMI- and NCC-trained versions on par on Dice (paired test)."""
    missing = _missing(evidence, NETWORKS, SAME)
    if missing:
        return missing
    parts, numbers, verdicts = [], [], []
    for net in ("unet", "poolnet"):
        v = _comparison(evidence, f"{net}-nmi", f"{net}-ncc", "on par", "dice")
        if v.verdict == UNTESTABLE:
            return v
        parts.append(f"{net}: {v.test}")
        numbers.append(v.numbers)
        verdicts.append(v.verdict)
    return Verdict(HOLDS if all(v == HOLDS for v in verdicts) else FAILS,
                   numbers=" | ".join(numbers), test="; ".join(parts), metric="dice")


def _ranking_claim(kind: str):
    """A claim about the expert's ranking (a reader study of the breast data)."""

    def evaluate(evidence: Evidence) -> Verdict:
        stats = evidence.rankings
        wrong_data = _missing(evidence, (), DIFFERENT)
        if wrong_data:
            return wrong_data
        if stats is None:
            return Verdict(UNTESTABLE, reason="no reader study given (bench report --rankings)")
        absent = sorted({UNET, POOLNET, "elastix"} - set(stats.methods))
        if absent:
            return Verdict(UNTESTABLE, reason=f"not ranked in the reader study: {', '.join(absent)}")
        if kind == "difference":
            holds = math.isfinite(stats.p) and stats.p < evidence.alpha
            return Verdict(HOLDS if holds else FAILS,
                           numbers=f"{stats.n_rankings} rankings of {len(stats.methods)} methods",
                           test=f"chi-square test of independence (Table 1): chi2 = "
                           f"{stats.chi2:.2f}, dof {stats.dof}, P = {format_p(stats.p)}",
                           metric="expert ranking")
        pair = stats.pairwise
        a, b = ("elastix", UNET) if kind == "elastix over unet" else (POOLNET, "elastix")
        row = pair[((pair["a"] == a) & (pair["b"] == b)) | ((pair["a"] == b) & (pair["b"] == a))]
        r = row.iloc[0]
        above = int(r["a_above_b"]) if r["a"] == a else int(r["n"] - r["a_above_b"])
        numbers = f"{a} above {b} in {above} of {int(r['n'])} rankings"
        test = f"1-dof chi-square of the pairwise preference, P = {format_p(r['p'])}"
        if kind == "elastix over unet":
            holds = r["p"] < evidence.alpha and above > r["n"] / 2
        else:  # PoolNet on par with elastix: no significant preference, or PoolNet preferred
            holds = not r["p"] < evidence.alpha or above > r["n"] / 2
        return Verdict(HOLDS if holds else FAILS, numbers=numbers, test=test,
                       metric="expert ranking")

    return evaluate


def _not_measured(reason: str, contrast: str):
    def evaluate(evidence: Evidence) -> Verdict:
        return _missing(evidence, (), contrast) or Verdict(UNTESTABLE, reason=reason)

    return evaluate


#: Every claim of the paper a run can test, in the order of claims.csv.
CLAIMS: tuple[Claim, ...] = (
    Claim("dce-expert-difference",
          "breast DCE: the expert's rankings differ among the methods (chi2 10.6, P 0.032)",
          DIFFERENT, (UNET, POOLNET, "elastix"), "expert ranking", _ranking_claim("difference")),
    Claim("dce-expert-elastix-over-unet",
          "breast DCE: the expert preferred elastix over U-Net (32 of 50, P 0.048)",
          DIFFERENT, ("elastix", UNET), "expert ranking", _ranking_claim("elastix over unet")),
    Claim("dce-expert-poolnet-on-par-elastix",
          "breast DCE: PoolNet and elastix on par in the expert's ranking (not significant)",
          DIFFERENT, (POOLNET, "elastix"), "expert ranking", _ranking_claim("poolnet on par")),
    Claim("dce-poolnet-on-par-elastix",
          "breast DCE: PoolNet (NMI) on par with elastix",
          DIFFERENT, (POOLNET, "elastix"), "accuracy",
          _comparison_claim(POOLNET, "elastix", "on par", DIFFERENT)),
    Claim("dce-unet-behind-elastix",
          "breast DCE: U-Net (NMI) behind elastix",
          DIFFERENT, (UNET, "elastix"), "accuracy",
          _comparison_claim(UNET, "elastix", "behind", DIFFERENT)),
    Claim("dce-nmi-unet-highest-elastix-lowest",
          "breast DCE: highest NMI after registration for U-Net, lowest for elastix",
          DIFFERENT, (UNET, POOLNET, "elastix"), "nmi",
          _order_claim((UNET, POOLNET, "elastix"), UNET, metric="nmi", highest=True,
                       contrast=DIFFERENT, last="elastix")),
    Claim("dce-folding-unet-poolnet-elastix",
          "breast DCE: folding in 23 of 50 U-Net, 14 of 50 PoolNet and no elastix registrations",
          DIFFERENT, (UNET, POOLNET, "elastix"), "folding_pct", _folding_counts),
    Claim("dce-unet-unrealistic-tumour",
          "breast DCE: the U-Net deforms the tumour unrealistically (Figure 1)",
          DIFFERENT, (UNET,), "visual",
          _not_measured("a visual finding of Figure 1; the results table measures no "
                        "realism of the deformation inside a structure", DIFFERENT)),
    Claim("cine-networks-high-dice",
          "cardiac cine: all networks reach high Dice (label propagation, Figure 4)",
          SAME, (*NETWORKS, "elastix", "identity"), "dice", _networks_high_dice),
    Claim("cine-nmi-ncc-on-par",
          "cardiac cine: NMI- and NCC-trained networks on par",
          SAME, NETWORKS, "dice", _nmi_ncc_on_par),
    Claim("cine-folding-unet-more",
          "cardiac cine: folding much more apparent in U-Nets than in PoolNets",
          SAME, NETWORKS, "folding_pct",
          lambda e: _missing(e, NETWORKS, SAME) or _unet_folds_more(e)),
    Claim("cine-folding-unet-ncc-most",
          "cardiac cine: most folding with the NCC-trained U-Net",
          SAME, NETWORKS, "folding_pct",
          _order_claim(NETWORKS, "unet-ncc", metric="folding_pct", highest=True, contrast=SAME)),
    Claim("cine-folding-poolnet-nmi-lowest",
          "cardiac cine: lowest folding for the NMI-trained PoolNet",
          SAME, NETWORKS, "folding_pct",
          _order_claim(NETWORKS, POOLNET, metric="folding_pct", highest=False, contrast=SAME)),
    Claim("cine-unet-nmi-least-smooth",
          "cardiac cine: the NMI-trained U-Net gives less smooth fields than the others",
          SAME, NETWORKS, "sdlogj",
          _order_claim(NETWORKS, UNET, metric="sdlogj", highest=True, contrast=SAME)),
)


def _unet_folds_more(evidence: Evidence) -> Verdict:
    """Each U-Net folds more than the PoolNet trained with the same loss (means over cases)."""
    wide = evidence.per_case("folding_pct", NETWORKS)
    if wide.empty:
        return Verdict(UNTESTABLE, reason="no case with folding_pct for every network")
    means = wide.mean()
    holds = all(means[f"unet-{s}"] > means[f"poolnet-{s}"] for s in ("nmi", "ncc"))
    return Verdict(HOLDS if holds else FAILS, numbers=_means_text(means, "folding_pct", len(wide)),
                   test="means over the cases", metric="folding_pct")


def evaluate_claims(
    results: pd.DataFrame,
    *,
    contrast: str | None,
    rankings: RankingStats | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per claim of :data:`CLAIMS` (columns :data:`CLAIM_COLUMNS`) with its verdict on
    ``results``.

    Parameters
    ----------
    results : DataFrame
        The tidy results table of a run.
    contrast : {"same", "different"} or None
        Whether the dataset's fixed and moving images share a contrast (the manifest's
        ``contrast``); None makes every claim not testable, saying so.
    rankings : RankingStats, optional
        The statistics of a reader study's rankings
        (:func:`benchmark.stats.ranking.analyze_rankings`), for the expert claims.
    alpha : float
        Significance level of the tests.
    """
    evidence = Evidence(results, contrast=contrast, rankings=rankings, alpha=alpha)
    rows = []
    for claim in CLAIMS:
        v = claim.evaluate(evidence)
        rows.append({
            "claim": claim.id,
            "statement": claim.statement,
            "methods": ", ".join(claim.methods),
            "metric": v.metric or claim.metric,
            "numbers": v.numbers,
            "test": v.test,
            "verdict": v.verdict,
            "reason": v.reason,
        })
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
