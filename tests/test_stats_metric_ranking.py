"""Ranking across metrics: significance ranks, bootstrap stability, Friedman with post-hoc and the
critical difference (against scikit-posthocs' own example), DSC30 and readers versus metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from fake_run import make_fake_run
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.stats.metric_ranking import (
    _holm_rows,
    _wilcoxon_rows,
    dsc30,
    friedman_posthoc,
    rank_methods,
)
from benchmark.stats.multitest import holm
from benchmark.stats.readers_vs_metrics import readers_vs_metrics

#: The example of ``scikit_posthocs.posthoc_nemenyi_friedman``'s docstring (blocks x groups).
LIBRARY_EXAMPLE = np.array(
    [[31, 27, 24], [31, 28, 31], [45, 29, 46], [21, 18, 48], [42, 36, 46], [32, 17, 40]]
)


def _rows(method, case, pair, structure, metric, value, status="ok"):
    return {
        "method": method,
        "fold": 0,
        "case": case,
        "pair": pair,
        "structure": structure,
        "metric": metric,
        "value": value,
        "unit": "1",
        "status": status,
    }


def test_friedman_posthoc_and_critical_difference_match_the_library_example():
    matrix = pd.DataFrame(LIBRARY_EXAMPLE, columns=["a", "b", "c"], dtype=float)
    stat, p, mean_ranks, pvals, cd = friedman_posthoc(matrix, higher_is_better=False)
    # average ranks by hand (1 = smallest value in a row, ties averaged)
    np.testing.assert_allclose(mean_ranks.to_numpy(), [13.5 / 6, 7 / 6, 15.5 / 6])
    ref = stats.friedmanchisquare(*LIBRARY_EXAMPLE.T)
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue))
    np.testing.assert_allclose(pvals.to_numpy(), sp.posthoc_nemenyi_friedman(LIBRARY_EXAMPLE))
    # Demšar (2006), Table 5: q_0.05 = 2.343 for k = 3; CD = q sqrt(k (k + 1) / (6 n))
    assert cd == pytest.approx(2.343 * math.sqrt(3 * 4 / 36), abs=1e-3)
    # the diagram's bars and the CD agree: a pair differs at 0.05 exactly when its ranks are
    # more than CD apart
    for i, a in enumerate("abc"):
        for b in "abc"[i + 1 :]:
            far = abs(mean_ranks[a] - mean_ranks[b]) > cd
            assert far == (pvals.loc[a, b] < 0.05)
    # a higher-is-better metric: negating the values gives the same ranks
    _, _, flipped, _, _ = friedman_posthoc(-matrix, higher_is_better=True)
    np.testing.assert_allclose(flipped.to_numpy(), mean_ranks.to_numpy())
    conover = friedman_posthoc(matrix, higher_is_better=False, posthoc="conover")[3]
    np.testing.assert_allclose(conover.to_numpy(), sp.posthoc_conover_friedman(LIBRARY_EXAMPLE))
    with pytest.raises(BenchError, match="'nemenyi', 'conover'; got 'tukey'"):
        friedman_posthoc(matrix, higher_is_better=False, posthoc="tukey")


def test_vectorised_holm_matches_the_project_holm():
    p = np.random.default_rng(1).uniform(0, 0.2, (20, 6))
    np.testing.assert_allclose(_holm_rows(p), np.stack([holm(row) for row in p]))


def test_dsc30_on_a_constructed_table():
    """10 cases; the 3 hardest by Dice before registration (cases 7, 2, 9) decide DSC30."""
    before = {f"c{i}": 0.5 + 0.04 * i for i in range(10)}
    before |= {"c7": 0.10, "c2": 0.20, "c9": 0.30}
    rows = []
    for case, b in before.items():
        for pair in ("ED-ES", "ES-ED"):
            for s in ("RV", "LVb"):
                rows.append(_rows("m1", case, pair, s, "dice_before", b))
                rows.append(_rows("m2", case, pair, s, "dice_before", b))
                # m1: 0.9 everywhere; m2: RV 0.6 / LVb 0.8 (mean 0.7) on every case
                rows.append(_rows("m1", case, pair, s, "dice", 0.9))
                rows.append(_rows("m2", case, pair, s, "dice", 0.6 if s == "RV" else 0.8))
    table = pd.DataFrame(rows)
    # m1 failed on one pair of c9: the case drops out of m1's mean (and is counted)
    hit = (table["method"] == "m1") & (table["case"] == "c9") & (table["pair"] == "ES-ED")
    hit &= table["metric"] == "dice"
    table.loc[hit, ["value", "status"]] = [np.nan, "failed: x"]
    table.loc[
        (table["method"] == "m1") & (table["case"] == "c2") & (table["metric"] == "dice"), "value"
    ] = 0.3
    out = dsc30(table).set_index("method")
    assert out.loc["m1", "cases"] == "c7 c2 c9"
    assert out.loc["m1", "dsc30"] == pytest.approx((0.9 + 0.3) / 2)
    assert (out.loc["m1", "n"], out.loc["m1", "n_nan"]) == (3, 1)
    assert out.loc["m2", "dsc30"] == pytest.approx(0.7)


def _planted(n_cases=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    effects = {"worst": 0.0, "mid": 0.05, "best": 0.10, "best-twin": 0.10}
    for c in range(n_cases):
        case_effect = rng.normal(0, 0.05)
        for method, e in effects.items():
            for pair in ("ED-ES", "ES-ED"):
                v = 0.7 + case_effect + e + rng.normal(0, 0.01)
                rows.append(_rows(method, f"c{c:02d}", pair, "LVb", "dice", v))
                rows.append(
                    _rows(
                        method, f"c{c:02d}", pair, "image", "sdlogj", 0.1 + e + rng.normal(0, 0.01)
                    )
                )
    return pd.DataFrame(rows)


def test_rank_methods_finds_the_planted_order_and_is_stable():
    ranking = rank_methods(_planted(), n_boot=100, seed=3)
    r = ranking.ranks.set_index("method")
    # dice: best and its twin beat mid and worst; sdlogj (lower is better) reverses the order
    assert r.loc[["best", "best-twin", "mid", "worst"], "rank_dice"].tolist() == [1, 1, 3, 4]
    assert r.loc[["worst", "mid", "best", "best-twin"], "rank_sdlogj"].tolist() == [1, 2, 3, 3]
    # geometric means: best sqrt(3), mid sqrt(6), worst 2 -> ranks 1, 1, 4, 3
    np.testing.assert_allclose(r.loc["best", "geo_mean"], math.sqrt(3))
    assert r.loc[["best", "best-twin", "worst", "mid"], "rank"].tolist() == [1, 1, 3, 4]
    assert ((r["rank_lo"] <= r["rank"]) & (r["rank"] <= r["rank_hi"])).all()
    # clearly separated methods on one metric keep their places in (nearly) every resample
    separated = _planted()[lambda t: (t["metric"] == "dice") & (t["method"] != "best-twin")]
    kept = rank_methods(separated, n_boot=100, seed=3).ranks.set_index("method")
    assert kept.loc[["best", "mid", "worst"], "rank"].tolist() == [1, 2, 3]
    assert (kept["stability"] >= 0.95).all()
    assert set(ranking.tests["metric"]) == {"dice", "sdlogj"} and (ranking.tests["n"] == 30).all()
    assert ranking.friedman.set_index("metric").loc["dice", "p"] < 1e-6
    again = rank_methods(_planted(), n_boot=100, seed=3)
    pd.testing.assert_frame_equal(again.ranks, ranking.ranks)
    json.dumps(ranking.to_dict())
    with pytest.raises(BenchError, match="at least two methods"):
        rank_methods(_planted()[lambda t: t["method"] == "mid"])


def test_readers_ranks_beside_metric_ranks():
    table = _planted(n_cases=4)
    order = ["best", "mid", "worst"]  # the metric order of dice and (reversed) sdlogj ties...
    results = table[table["metric"] == "dice"]
    agree = pd.DataFrame(
        [
            {"reader": "r1", "case": f"c{c:02d}/ED-ES", "method": m, "rank": i + 1}
            for c in range(4)
            for i, m in enumerate(order)
        ]
    )
    per_case, summary = readers_vs_metrics(agree, results)
    assert (per_case["tau"] == 1.0).all() and per_case["same_best"].all()
    assert summary["n_cases"] == 4 and summary["tau_overall"] == pytest.approx(1.0)
    reverse = agree.assign(rank=4 - agree["rank"])
    per_case, summary = readers_vs_metrics(reverse, results)
    assert (per_case["tau"] == -1.0).all() and summary["share_same_best"] == 0.0
    whole_cases = agree.assign(case=agree["case"].str.split("/").str[0])  # case ids: all pairs
    assert readers_vs_metrics(whole_cases, results)[1]["n_cases"] == 4
    with pytest.raises(BenchError, match="no rows"):
        readers_vs_metrics(agree.assign(method="other"), results)


def test_bench_stats_rank_and_compare_say_they_test_cases(tmp_path, capsys):
    run = make_fake_run(tmp_path)
    assert main(["stats", "rank", str(run), "--bootstrap", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["level"] == "case" and out["n_boot"] == 20 and out["ranks"]
    assert main(["stats", "rank", str(run), "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "Friedman" in text and "geo mean" in text
    assert main(["stats", "compare", str(run)]) == 0
    assert "at the case level" in capsys.readouterr().out
    assert main(["stats", "compare", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_level"] == "case"
    assert main(["stats", "rank", str(run), "--posthoc", "tukey"]) == 2
    assert "'nemenyi', 'conover'; got 'tukey'" in capsys.readouterr().err


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 14))
def test_resampled_wilcoxon_is_scipys_exact_test_or_normal_approximation_per_row(seed, n):
    """Bootstrap rows: the exact test where a row has no ties or zeros (what SciPy's default
    gives such a row), the normal approximation with continuity correction where it has; the
    observed cases keep SciPy's default."""
    rng = np.random.default_rng(seed)
    cases = rng.normal(0.1, 1.0, n)
    d = cases[rng.integers(0, n, size=(30, n))]  # resamples: repeated cases are ties
    d[0] = cases  # one row without ties
    p = _wilcoxon_rows(d, resampled=True)
    for row, value in zip(d, p, strict=True):
        a = np.abs(row)
        tied = len(np.unique(a)) < n or (a == 0).any()
        method = "asymptotic" if tied else "exact"
        assert value == pytest.approx(stats.wilcoxon(row, method=method).pvalue, rel=1e-12)
        if not tied:
            assert value == pytest.approx(stats.wilcoxon(row).pvalue, rel=1e-12)
    assert _wilcoxon_rows(d[:1], resampled=False) == pytest.approx(stats.wilcoxon(cases).pvalue)
