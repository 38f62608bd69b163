"""Method comparisons on metrics: summaries and paired Wilcoxon tests against numpy/scipy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fake_run import make_fake_run
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.stats.comparisons import compare_methods, nmi_vs_ncc, summarize_metrics
from benchmark.stats.multitest import holm
from benchmark.stats.results import read_results

METHODS = ["elastix", "unet-nmi", "unet-ncc"]


def _table(values: dict[str, np.ndarray], *, structure="LVb", metric="dice", unit="1"):
    """Tidy rows from {method: values over cases}."""
    rows = []
    for method, v in values.items():
        for i, x in enumerate(v):
            rows.append(
                {
                    "method": method,
                    "fold": i % 2,
                    "case": f"p{i:03d}",
                    "pair": "ED-ES",
                    "structure": structure,
                    "metric": metric,
                    "value": x,
                    "unit": unit,
                    "status": "ok" if np.isfinite(x) else "label-absent-moving",
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(7)
    base = rng.uniform(0.7, 0.9, 15)
    values = {
        "elastix": base,
        "unet-nmi": base + rng.normal(0.03, 0.02, 15),
        "unet-ncc": base + rng.normal(0.0, 0.02, 15),
    }
    values["unet-ncc"][3] = np.nan
    return values


def test_summary_matches_numpy(synthetic):
    table = pd.concat(
        [
            _table(synthetic),
            _table(
                {m: v * 10 for m, v in synthetic.items()}, structure="image", metric="hd", unit="mm"
            ),
        ]
    )
    summary = summarize_metrics(table)
    assert summary[["structure", "metric"]].drop_duplicates().values.tolist() == [
        ["LVb", "dice"],
        ["image", "hd"],
    ]
    row = summary[(summary["method"] == "unet-ncc") & (summary["metric"] == "dice")].iloc[0]
    v = synthetic["unet-ncc"][np.isfinite(synthetic["unet-ncc"])]
    assert (row["n"], row["n_nan"]) == (14, 1)
    assert row["mean"] == pytest.approx(v.mean())
    assert row["sd"] == pytest.approx(v.std(ddof=1))
    assert row["median"] == pytest.approx(np.median(v))
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(v, [25, 75])))
    assert row["unit"] == "1"
    assert summary.loc[summary["metric"] == "hd", "unit"].eq("mm").all()


def test_summary_lists_absent_method():
    summary = summarize_metrics(_table({"a": np.array([0.5, 0.75])}), methods=["a", "ghost"])
    ghost = summary[summary["method"] == "ghost"].iloc[0]
    assert ghost["n"] == 0 and np.isnan(ghost["mean"])


def test_wilcoxon_and_holm_match_scipy_statsmodels(synthetic):
    result = compare_methods(_table(synthetic))
    assert result[["a", "b"]].values.tolist() == [
        ["elastix", "unet-nmi"],
        ["elastix", "unet-ncc"],
        ["unet-nmi", "unet-ncc"],
    ]
    ps = []
    for r in result.itertuples(index=False):
        x, y = synthetic[r.a], synthetic[r.b]
        ok = np.isfinite(x) & np.isfinite(y)
        ref = stats.wilcoxon(x[ok], y[ok])
        assert r.n == ok.sum() and r.n_nan == (~ok).sum() and r.n_cases == 15
        assert r.statistic == pytest.approx(ref.statistic)
        assert r.p == pytest.approx(ref.pvalue)
        assert r.median_diff == pytest.approx(np.median(x[ok] - y[ok]))
        ps.append(ref.pvalue)
    np.testing.assert_allclose(result["p_holm"], multipletests(ps, method="holm")[1])
    row = result[(result["a"] == "elastix") & (result["b"] == "unet-nmi")].iloc[0]
    assert row["favours"] == "unet-nmi"  # Dice: higher is better, elastix - unet-nmi < 0
    assert row["p"] < 0.05


def test_nmi_vs_ncc_rows(synthetic):
    values = dict(
        synthetic,
        **{"poolnet-nmi": synthetic["elastix"] + 0.01, "poolnet-ncc": synthetic["elastix"]},
    )
    result = compare_methods(_table(values))
    pairs = nmi_vs_ncc(result)[["a", "b"]].values.tolist()
    assert pairs == [["unet-nmi", "unet-ncc"], ["poolnet-nmi", "poolnet-ncc"]]
    assert result["nmi_vs_ncc"].sum() == 2


def test_zero_differences_and_all_equal():
    x = np.array([0.0, 0.0, 0.0, 0.1, 0.3, 0.0, 0.2, 0.5])
    y = np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0])
    table = _table({"a": x, "b": y}, structure="image", metric="folding_pct", unit="%")
    row = compare_methods(table).iloc[0]
    assert row["n_zero"] == 4 and row["n"] == 8
    assert row["p"] == pytest.approx(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    assert row["favours"] == "b"  # folding: lower is better
    pratt = compare_methods(table, zero_method="pratt").iloc[0]
    assert pratt["p"] == pytest.approx(stats.wilcoxon(x, y, zero_method="pratt").pvalue)
    same = compare_methods(_table({"a": y, "b": y}, metric="folding_pct", unit="%")).iloc[0]
    assert same["p"] == 1.0 and np.isnan(same["statistic"]) and same["favours"] == ""
    with pytest.raises(BenchError, match="zero_method"):
        compare_methods(table, zero_method="drop")


def test_missing_method_and_nmi_before_excluded():
    base = np.linspace(1.1, 1.3, 6)
    table = pd.concat(
        [
            _table({"a": base, "b": base + 0.01}, structure="image", metric="nmi"),
            _table({"a": base, "b": base}, structure="image", metric="nmi_before"),
        ]
    )
    result = compare_methods(table, methods=["a", "b", "ghost"])
    assert set(result["metric"]) == {"nmi"}
    ghost = result[result["b"] == "ghost"]
    assert len(ghost) == 2 and (ghost["n"] == 0).all() and ghost["p"].isna().all()
    assert ghost["p_holm"].isna().all()
    ab = result[(result["a"] == "a") & (result["b"] == "b")].iloc[0]
    assert ab["p_holm"] == pytest.approx(ab["p"])  # the only finite P of the block


def test_duplicates_and_bad_columns_rejected(synthetic):
    table = _table(synthetic)
    with pytest.raises(BenchError, match="row 45: repeats an earlier row"):
        compare_methods(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(BenchError, match="missing column"):
        compare_methods(table.drop(columns="status"))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 20))
def test_swapping_methods_is_symmetric(seed, n):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(10, 1, n), rng.normal(10.3, 1, n)  # distances: >= 0
    ab = compare_methods(_table({"a": x, "b": y}, metric="hd", unit="mm")).iloc[0]
    ba = compare_methods(_table({"b": y, "a": x}, metric="hd", unit="mm")).iloc[0]
    assert (ab["a"], ba["a"]) == ("a", "b")
    assert ab["p"] == pytest.approx(ba["p"])
    assert ab["median_diff"] == pytest.approx(-ba["median_diff"])
    assert ab["favours"] == ba["favours"]


@settings(max_examples=15, deadline=None)  # statsmodels' Holm runs gc.collect() on each call
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=12))
def test_holm_equals_statsmodels(p):
    p = np.array(p)
    ok = np.isfinite(p)
    out = holm(p)
    assert np.isnan(out[~ok]).all()
    if ok.any():
        np.testing.assert_allclose(out[ok], multipletests(p[ok], method="holm")[1], rtol=1e-12)


def test_fake_run_and_cli(tmp_path, capsys):
    run = make_fake_run(tmp_path, n_cases=4, shape=(16, 16, 4))
    results = read_results(run)
    assert len(results) == 4 * 6 * (3 * 3 + 5)
    comparisons = compare_methods(results)
    assert set(comparisons["structure"]) == {"RV", "LVm", "LVb", "image"}
    assert len(nmi_vs_ncc(comparisons)) == 2 * (3 * 3 + 4)
    assert main(["stats", "compare", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["comparisons"]) == len(comparisons)
    assert {r["method"] for r in out["summary"]} == set(results["method"])
    assert main(["stats", "compare", str(run / "results.csv")]) == 0
    text = capsys.readouterr().out
    assert "== LVb / dice" in text and "(NMI vs NCC)" in text and "median [IQR]" in text
    assert main(["stats", "compare", str(tmp_path / "nothing")]) == 2
    assert "results table not found" in capsys.readouterr().err


def _repeated_measures(rng, n_cases: int, effect: float) -> pd.DataFrame:
    """Two methods, two correlated pairs per case (ED-ES, ES-ED) sharing a per-case difference."""
    case_diff = rng.normal(effect, 1.0, n_cases)  # shared by both pairs of a case
    base = rng.normal(0.8, 0.05, (n_cases, 2))
    b = base + case_diff[:, None] * 0.02 + rng.normal(0, 0.002, (n_cases, 2))
    base, b = np.clip(base, 0, 1), np.clip(b, 0, 1)  # Dice values
    cases = np.repeat([f"p{i:03d}" for i in range(n_cases)], 2)
    pairs = np.tile(["ED-ES", "ES-ED"], n_cases)
    frames = [
        pd.DataFrame(
            {
                "method": m,
                "fold": 0,
                "case": cases,
                "pair": pairs,
                "structure": "LVb",
                "metric": "dice",
                "value": v.ravel(),
                "unit": "1",
                "status": "ok",
            }
        )
        for m, v in (("a", base), ("b", b))
    ]
    return pd.concat(frames, ignore_index=True)


def test_null_simulation_keeps_the_false_positive_rate_at_the_case_level():
    """No true difference, two pairs per patient with a shared patient effect: treating the pairs
    as independent gave about 15 % significant tests; the case-level test stays near 5 %."""
    rng = np.random.default_rng(2026)
    reps, pair_reps = 700, 200
    hits = pair_level_hits = 0
    for rep in range(reps):
        table = _repeated_measures(rng, 100, 0.0)
        hits += compare_methods(table)["p"].iloc[0] < 0.05
        if rep < pair_reps:  # the pair-level (wrong) test on the same data
            wide = table.pivot(index=["case", "pair"], columns="method", values="value")
            pair_level_hits += stats.wilcoxon(wide["a"], wide["b"]).pvalue < 0.05
    assert 0.03 <= hits / reps <= 0.07, hits / reps
    assert pair_level_hits / pair_reps > 0.1, pair_level_hits / pair_reps


def test_a_planted_difference_is_found_at_the_case_level():
    rng = np.random.default_rng(11)
    table = _repeated_measures(rng, 40, 0.8)  # b better by 0.8 SD of the per-case difference
    row = compare_methods(table).iloc[0]
    assert row["n"] == 40 and row["n_cases"] == 40
    assert row["p"] < 0.001 and row["favours"] == "b"


def test_a_failed_pair_removes_its_case_instead_of_being_averaged_away():
    rng = np.random.default_rng(3)
    table = _repeated_measures(rng, 10, 0.0)
    hit = (table["method"] == "b") & (table["case"] == "p000") & (table["pair"] == "ES-ED")
    table.loc[hit, ["value", "status"]] = [np.nan, "failed: diverged"]
    row = compare_methods(table).iloc[0]
    assert (row["n_cases"], row["n"], row["n_nan"]) == (10, 9, 1)
