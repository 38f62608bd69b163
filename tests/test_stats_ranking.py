"""Blinded-ranking statistics: the paper's Table 1, hand-made cases against scipy, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fake_run import paper_table1_rankings
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from benchmark.cli import main
from benchmark.core.errors import BenchError, ValidationError
from benchmark.stats.ranking import (
    analyze_rankings,
    friedman,
    kendall_w,
    read_rankings,
    validate_rankings,
)

TABLE1 = {"elastix": [17, 18, 15], "U-Net": [13, 12, 25], "PoolNet": [20, 20, 10]}


def _long(rankings: dict[str, list[int]], methods: list[str], reader: str | None = None):
    """{case: ranks in method order} -> long table."""
    rows = []
    for case, ranks in rankings.items():
        for m, r in zip(methods, ranks, strict=True):
            rows.append(
                {"case": case, "method": m, "rank": r, **({"reader": reader} if reader else {})}
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ paper's Table 1


def test_paper_rankings_reproduce_table1_and_32_of_50():
    table = paper_table1_rankings()
    assert table["case"].nunique() == 50
    res = analyze_rankings(table)
    for m, counts in TABLE1.items():
        assert res.contingency.loc[m].tolist() == counts
    wide = table.pivot(index="case", columns="method", values="rank")
    assert int((wide["elastix"] < wide["U-Net"]).sum()) == 32


def test_table1_chi_square_independence():
    res = analyze_rankings(paper_table1_rankings())
    assert round(res.chi2, 2) == 10.56
    assert res.dof == 4
    assert round(res.p, 3) == 0.032
    ref = stats.chi2_contingency(np.array(list(TABLE1.values())), correction=False)
    assert res.chi2 == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p == pytest.approx(ref.pvalue, abs=1e-12)


def test_table1_pairwise_elastix_over_unet():
    res = analyze_rankings(paper_table1_rankings())
    row = res.pairwise[(res.pairwise["a"] == "elastix") & (res.pairwise["b"] == "U-Net")].iloc[0]
    assert (row["a_above_b"], row["n"]) == (32, 50)
    # (32 - 25)^2/25 + (18 - 25)^2/25 = 3.92, 1 dof
    assert row["chi2"] == pytest.approx(3.92, abs=1e-12)
    assert round(row["p"], 3) == 0.048
    assert row["p"] == pytest.approx(stats.chi2.sf(3.92, 1), rel=1e-12)
    assert row["p_binomial"] == pytest.approx(stats.binomtest(32, 50, 0.5).pvalue, rel=1e-12)
    # Holm over the three chi-square P values, by hand: sorted p_(i) * (m - i + 1), cumulative max
    p = np.sort(res.pairwise["p"].to_numpy())
    holm = np.minimum(1, np.maximum.accumulate(p * np.array([3, 2, 1])))
    assert row["p_holm"] == pytest.approx(holm[0], rel=1e-12)
    assert sorted(res.pairwise["p_holm"]) == pytest.approx(sorted(holm))
    # no other pair is significant (as in the paper)
    others = res.pairwise[~((res.pairwise["a"] == "elastix") & (res.pairwise["b"] == "U-Net"))]
    assert (others["p"] > 0.05).all()


def test_table1_friedman_and_kendall_w():
    table = paper_table1_rankings()
    res = analyze_rankings(table)
    wide = table.pivot(index="case", columns="method", values="rank")[
        ["elastix", "U-Net", "PoolNet"]
    ]
    ref = stats.friedmanchisquare(*wide.to_numpy().T)
    assert res.friedman_statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.friedman_p == pytest.approx(ref.pvalue, rel=1e-12)
    # W by its definition with the 50 cases as judges (no ties)
    n, k = wide.shape
    sums = wide.sum(axis=0).to_numpy(dtype=float)
    w = 12 * ((sums - sums.mean()) ** 2).sum() / (n**2 * (k**3 - k))
    assert res.kendall_w == pytest.approx(w, rel=1e-12)
    assert res.kendall_w == pytest.approx(res.friedman_statistic / (n * (k - 1)), rel=1e-12)


# ------------------------------------------------------------------------------ hand-made cases


def test_hand_made_four_cases():
    methods = ["A", "B", "C"]
    table = _long({"c1": [1, 2, 3], "c2": [1, 3, 2], "c3": [2, 1, 3], "c4": [1, 2, 3]}, methods)
    res = analyze_rankings(table)
    expected = np.array([[3, 1, 0], [1, 2, 1], [0, 1, 3]])
    np.testing.assert_array_equal(res.contingency.to_numpy(), expected)
    ref = stats.chi2_contingency(expected, correction=False)
    assert res.chi2 == pytest.approx(ref.statistic)
    assert res.dof == 4
    assert res.p == pytest.approx(ref.pvalue)
    pw = res.pairwise.set_index(["a", "b"])
    assert pw.loc[("A", "B"), "a_above_b"] == 3
    assert pw.loc[("A", "C"), "a_above_b"] == 4
    assert pw.loc[("B", "C"), "a_above_b"] == 3
    assert pw.loc[("A", "C"), "chi2"] == pytest.approx(stats.chisquare([4, 0]).statistic)
    assert pw.loc[("A", "C"), "p_binomial"] == pytest.approx(0.125)  # 2 * 0.5^4
    np.testing.assert_allclose(res.mean_ranks.to_numpy(), [1.25, 2.0, 2.75])
    ref_f = stats.friedmanchisquare([1, 1, 2, 1], [2, 3, 1, 2], [3, 2, 3, 3])
    assert res.friedman_statistic == pytest.approx(ref_f.statistic)


def test_two_methods_friedman_equals_pairwise_chi_square():
    # k = 2 (scipy's friedmanchisquare refuses it): chi2_F = (2a - n)^2 / n = the 1-dof chi-square
    ranks = {f"c{i}": ([1, 2] if i < 7 else [2, 1]) for i in range(10)}
    res = analyze_rankings(_long(ranks, ["A", "B"]))
    assert res.friedman_statistic == pytest.approx((2 * 7 - 10) ** 2 / 10)
    assert res.friedman_statistic == pytest.approx(res.pairwise["chi2"].iloc[0])
    assert res.friedman_p == pytest.approx(res.pairwise["p"].iloc[0])
    assert res.kendall_w == pytest.approx(res.friedman_statistic / 10)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.integers(3, 5))
def test_random_rankings_margins_and_pair_counts(seed, n, k):
    rng = np.random.default_rng(seed)
    methods = [f"m{j}" for j in range(k)]
    table = _long({f"c{i}": list(rng.permutation(k) + 1) for i in range(n)}, methods)
    res = analyze_rankings(table)
    c = res.contingency.to_numpy()
    assert (c.sum(axis=0) == n).all() and (c.sum(axis=1) == n).all()
    pw = res.pairwise
    assert len(pw) == k * (k - 1) // 2
    assert ((pw["n"] == n) & (pw["a_above_b"] <= n)).all()
    assert (pw["p_holm"] >= pw["p"] - 1e-15).all() and (pw["p_holm"] <= 1).all()
    wide = table.pivot(index="case", columns="method", values="rank")[methods]
    ref = stats.friedmanchisquare(*wide.to_numpy().T)
    assert res.friedman_statistic == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
    assert 0 <= res.kendall_w <= 1 + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8), st.integers(3, 6))
def test_kendall_w_with_ties_equals_friedman(seed, m, k):
    # integer scores with ties: W (tie-corrected) = chi2_F / (m (k - 1)) with scipy's correction
    scores = np.random.default_rng(seed).integers(0, 3, size=(m, k)).astype(float)
    f_stat, _ = friedman(scores)
    w = kendall_w(scores)
    if math.isnan(f_stat):
        assert math.isnan(w)
    else:
        assert w == pytest.approx(f_stat / (m * (k - 1)), rel=1e-9, abs=1e-12)


def test_kendall_w_extremes():
    assert kendall_w(np.tile([1, 2, 3, 4], (5, 1))) == pytest.approx(1.0)
    assert kendall_w(np.array([[1, 2, 3], [3, 2, 1]])) == pytest.approx(0.0)
    assert math.isnan(kendall_w(np.ones((3, 4))))
    with pytest.raises(BenchError, match="shape"):
        kendall_w(np.arange(3))


def test_readers_agreement_identical_and_opposite():
    methods = ["A", "B", "C"]
    ranks = {"c1": [1, 2, 3], "c2": [2, 1, 3], "c3": [1, 3, 2], "c4": [3, 1, 2]}
    same = pd.concat([_long(ranks, methods, "r1"), _long(ranks, methods, "r2")])
    res = analyze_rankings(same)
    ra = res.reader_agreement
    assert ra["n_cases"] == 4 and ra["readers"] == ["r1", "r2"]
    assert ra["kendall_w_per_case"] == pytest.approx(1.0)
    assert ra["fleiss_kappa"] == pytest.approx(1.0)
    assert res.n_rankings == 8 and res.n_cases == 4
    assert res.contingency.to_numpy().sum() == 8 * 3
    opposite = {c: [4 - r for r in v] for c, v in ranks.items()}
    res2 = analyze_rankings(
        pd.concat([_long(ranks, methods, "r1"), _long(opposite, methods, "r2")])
    )
    assert res2.reader_agreement["kendall_w_per_case"] == pytest.approx(0.0)
    # Fleiss' kappa by its definition: subjects (case, method), categories ranks, 2 raters
    counts = np.zeros((12, 3))
    for i, (case, r1) in enumerate(ranks.items()):
        for j, (a, b) in enumerate(zip(r1, opposite[case], strict=True)):
            counts[3 * i + j, a - 1] += 1
            counts[3 * i + j, b - 1] += 1
    p_i = ((counts**2).sum(axis=1) - 2) / (2 * 1)
    p_j = counts.sum(axis=0) / counts.sum()
    kappa = (p_i.mean() - (p_j**2).sum()) / (1 - (p_j**2).sum())
    assert res2.reader_agreement["fleiss_kappa"] == pytest.approx(kappa)
    # Friedman over cases uses mean ranks over readers: all tied here -> undefined
    assert math.isnan(res2.friedman_statistic)
    d = res2.to_dict()
    assert d["friedman"]["statistic"] is None and "reader_agreement" in d
    json.dumps(d)


# ------------------------------------------------------------------------------ validation


def _problems(table: pd.DataFrame) -> list[str]:
    with pytest.raises(ValidationError) as info:
        validate_rankings(table.astype(str), source="r.csv")
    return info.value.problems


def test_validation_lists_every_problem_with_its_case():
    rows = [
        ("good", "A", "1"),
        ("good", "B", "2"),
        ("good", "C", "3"),
        ("tie", "A", "1"),
        ("tie", "B", "1"),
        ("tie", "C", "3"),
        ("missing", "A", "1"),
        ("missing", "B", "2"),
        ("range", "A", "1"),
        ("range", "B", "2"),
        ("range", "C", "4"),
        ("nonint", "A", "1.5"),
        ("nonint", "B", "x"),
        ("nonint", "C", "3"),
        ("dup", "A", "1"),
        ("dup", "A", "2"),
        ("dup", "B", "2"),
        ("dup", "C", "3"),
    ]
    problems = _problems(pd.DataFrame(rows, columns=["case", "method", "rank"]))
    text = "\n".join(problems)
    assert "case 'tie': tie, rank 1 given to 'A', 'B'" in text
    assert "case 'missing': method 'C' not ranked" in text
    assert "case 'range': method 'C' has rank 4" in text and "expected 1..3" in text
    assert "line 13 (case 'nonint'): rank '1.5' is not an integer" in text
    assert "line 14 (case 'nonint'): rank 'x' is not an integer" in text
    assert "case 'dup': method 'A' ranked 2 times" in text
    assert not any("'good'" in p for p in problems)


def test_validation_per_reader_and_columns():
    table = pd.DataFrame(
        {
            "reader": ["r1"] * 3 + ["r2"] * 3,
            "case": ["c"] * 6,
            "method": ["A", "B", "C"] * 2,
            "rank": [1, 2, 3, 1, 1, 2],
        }
    )
    problems = _problems(table)
    assert problems == ["case 'c' (reader 'r2'): tie, rank 1 given to 'A', 'B'"]
    assert "missing column(s) rank" in _problems(pd.DataFrame({"case": ["c"], "method": ["A"]}))[0]
    assert "empty" in _problems(pd.DataFrame(columns=["case", "method", "rank"]))[0]
    assert (
        "need at least 2"
        in _problems(pd.DataFrame({"case": ["c"], "method": ["A"], "rank": [1]}))[0]
    )
    assert (
        "empty method"
        in _problems(pd.DataFrame({"case": ["c", "c"], "method": ["A", " "], "rank": [1, 2]}))[0]
    )


def test_integral_floats_accepted():
    table = pd.DataFrame({"case": ["c", "c"], "method": ["A", "B"], "rank": ["1.0", "2"]})
    assert validate_rankings(table)["rank"].tolist() == [1, 2]


# ------------------------------------------------------------------------------ CLI


def test_cli_json_and_text(tmp_path, capsys):
    path = tmp_path / "rankings.csv"
    paper_table1_rankings().to_csv(path, index=False)
    assert main(["stats", "ranking", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"contingency", "chi2", "dof", "p", "pairwise", "friedman", "kendall_w"}
    assert out["contingency"] == TABLE1
    assert out["dof"] == 4 and round(out["chi2"], 2) == 10.56 and round(out["p"], 3) == 0.032
    pair = next(p for p in out["pairwise"] if (p["a"], p["b"]) == ("elastix", "U-Net"))
    assert set(pair) >= {"a", "b", "a_above_b", "n", "chi2", "p", "p_binomial", "p_holm"}
    assert (pair["a_above_b"], pair["n"], round(pair["p"], 3)) == (32, 50, 0.048)
    assert set(out["friedman"]) == {"statistic", "p"}
    assert main(["stats", "ranking", str(path)]) == 0
    text = capsys.readouterr().out
    assert "chi2 = 10.56, dof = 4, P = 0.032" in text and "Kendall's W" in text


def test_cli_reports_malformed_file(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("case,method,rank\nc1,A,1\nc1,B,1\nc2,A,1\n", encoding="utf-8")
    assert main(["stats", "ranking", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "case 'c1': tie" in err and "case 'c2': method 'B' not ranked" in err
    assert main(["stats", "ranking", str(tmp_path / "absent.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_read_rankings_with_reader_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "reader,case,method,rank\nann,c1,A,2\nann,c1,B,1\nbob,c1,A,2\nbob,c1,B,1\n",
        encoding="utf-8",
    )
    table = read_rankings(path)
    assert table.columns.tolist() == ["reader", "case", "method", "rank"]
    res = analyze_rankings(table, validate=False)
    assert res.readers == ["ann", "bob"] and res.n_rankings == 2 and res.n_cases == 1
    assert res.reader_agreement["fleiss_kappa"] == pytest.approx(1.0)
