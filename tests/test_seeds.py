"""Seeds as repeated runs: statistics use the per-case mean over seeds."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.stats.comparisons import case_level, summarize_metrics
from benchmark.stats.results import RESULT_COLUMNS, mean_over_seeds


def table(values: np.ndarray, *, failed: tuple[int, int] | None = None) -> pd.DataFrame:
    """``values[seed, case, pair]`` of one method and metric as a results table with seeds."""
    rows = []
    for s, c, p in np.ndindex(values.shape):
        status = "failed: x" if failed == (s, c) else "ok"
        rows.append(
            {"method": "m", "fold": 0, "case": f"c{c}", "pair": f"p{p}", "structure": "RV",
             "metric": "dice", "value": np.nan if status != "ok" else values[s, c, p],
             "unit": "1", "status": status, "seed": s}
        )
    return pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "seed"])


@settings(max_examples=30, deadline=None)
@given(
    seeds=st.integers(2, 4), cases=st.integers(1, 4), pairs=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_case_level_is_the_mean_over_seeds_of_the_per_case_means(seeds, cases, pairs, seed):
    values = np.random.default_rng(seed).random((seeds, cases, pairs))
    got = case_level(table(values)).sort_values("case")["value"].to_numpy()
    np.testing.assert_allclose(got, values.mean(axis=2).mean(axis=0), rtol=1e-12)
    summary = summarize_metrics(table(values))
    assert int(summary["n"].iloc[0]) == cases * pairs  # each pair counts once
    np.testing.assert_allclose(summary["mean"].iloc[0], values.mean(), rtol=1e-12)


def test_a_failed_seed_is_not_averaged_away_and_one_seed_is_unchanged():
    values = np.arange(8, dtype=float).reshape(2, 2, 2)
    merged = mean_over_seeds(table(values, failed=(1, 0)))
    c0 = merged[merged["case"] == "c0"]
    assert c0["value"].isna().all() and (c0["status"] == "failed: x").all()
    c1 = merged[merged["case"] == "c1"]
    np.testing.assert_allclose(c1["value"], [(2 + 6) / 2, (3 + 7) / 2])
    single = table(values[:1])
    assert mean_over_seeds(single) is single


def test_seed_spread_against_direct_computation():
    from benchmark.stats.results import seed_spread

    rows = []
    values = {0: [0.70, 0.80], 1: [0.74, 0.90], 2: [0.72, 0.85]}  # seed -> values of two pairs
    for seed, vals in values.items():
        for case, v in zip(("p1", "p2"), vals, strict=True):
            rows.append({"method": "unet-nmi", "fold": 0, "case": case, "pair": "ED-ES",
                         "structure": "LVb", "metric": "dice", "value": v, "unit": "1",
                         "status": "ok", "seed": seed})
            rows.append({"method": "identity", "fold": 0, "case": case, "pair": "ED-ES",
                         "structure": "LVb", "metric": "dice", "value": 0.6, "unit": "1",
                         "status": "ok", "seed": 0})
    table = pd.DataFrame(rows).drop_duplicates()
    spread = seed_spread(table)
    assert list(spread["method"]) == ["unet-nmi"]  # identity ran once: no spread
    row = spread.iloc[0]
    expected_sd = np.mean([np.std([0.70, 0.74, 0.72], ddof=1), np.std([0.80, 0.90, 0.85], ddof=1)])
    assert row["seeds"] == 3
    assert row["pair_sd"] == pytest.approx(expected_sd)
    assert row["seed_mean_min"] == pytest.approx(0.75) and row["seed_mean_max"] == pytest.approx(0.82)
    assert seed_spread(table.drop(columns="seed")).empty
