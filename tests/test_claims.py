"""The paper's claims on synthetic results tables in which each claim is known to hold or not
(benchmark.stats.claims): every verdict, the numbers and tests it reports, and every reason a
claim is not testable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fake_run import RUN_NAMES, paper_table1_rankings

from benchmark.stats.claims import (
    CLAIM_COLUMNS,
    CLAIMS,
    FAILS,
    HOLDS,
    MIN_CASES,
    UNTESTABLE,
    evaluate_claims,
)
from benchmark.stats.ranking import analyze_rankings
from metrics.catalog import METRIC_UNITS

NETWORKS = ("unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc")
STRUCTURES = ("RV", "LVm", "LVb")


def table(values: dict[str, dict[str, float]], *, cases: int = 8, noise: float = 0.01,
          seed: int = 0, folded: dict[str, int] | None = None) -> pd.DataFrame:
    """Results of ``cases`` cases x 2 pairs: ``values[method][metric]`` is the mean of each
    metric (label metrics per structure), with small per-pair noise; ``folded[method]`` pairs get
    folding_pct > 0, the others exactly 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, metrics in values.items():
        fold_left = (folded or {}).get(method, 0)
        for c in range(cases):
            for pair in ("A-B", "B-A"):
                for metric, mean in metrics.items():
                    structures = STRUCTURES if metric == "dice" else ("image",)
                    for structure in structures:
                        value = mean + noise * rng.standard_normal()
                        if metric == "folding_pct":
                            value = 0.0
                            if fold_left:
                                value, fold_left = mean or 0.1, fold_left - 1
                        if metric == "dice":
                            value = float(np.clip(value, 0, 1))
                        rows.append({
                            "method": method, "fold": c % 2, "case": f"c{c:02d}", "pair": pair,
                            "structure": structure, "metric": metric, "value": max(value, 0.0),
                            "unit": METRIC_UNITS[metric], "status": "ok",
                        })
    return pd.DataFrame(rows)


def verdicts(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["claim"], frame["verdict"], strict=True))


def breast(poolnet_error: float, unet_error: float, *, nmi=(0.30, 0.28, 0.26), folded=(23, 14, 0)):
    """A breast-like run: elastix error 0.55 mm; NMI after registration of U-Net, PoolNet,
    elastix; folded pairs of U-Net, PoolNet, elastix (of 16)."""
    values = {
        "identity": {"disp_error_mm": 3.0, "nmi": 0.2, "folding_pct": 0.0},
        "elastix": {"disp_error_mm": 0.55, "nmi": nmi[2], "folding_pct": 0.0},
        "poolnet-nmi": {"disp_error_mm": poolnet_error, "nmi": nmi[1], "folding_pct": 0.1},
        "unet-nmi": {"disp_error_mm": unet_error, "nmi": nmi[0], "folding_pct": 0.2},
    }
    counts = {"unet-nmi": folded[0], "poolnet-nmi": folded[1], "elastix": folded[2]}
    return table(values, folded={k: min(v, 16) for k, v in counts.items()}, noise=0.05)


def test_every_claim_has_one_row_with_the_columns_and_a_known_verdict():
    frame = evaluate_claims(breast(0.56, 2.5), contrast="different")
    assert list(frame.columns) == list(CLAIM_COLUMNS)
    assert frame["claim"].tolist() == [c.id for c in CLAIMS]
    assert frame["verdict"].isin([HOLDS, FAILS, UNTESTABLE]).all()
    assert (frame.loc[frame["verdict"] == UNTESTABLE, "reason"] != "").all()
    assert (frame.loc[frame["verdict"] != UNTESTABLE, "numbers"] != "").all()


def test_breast_claims_that_hold():
    frame = evaluate_claims(breast(0.56, 2.5), contrast="different")
    v = verdicts(frame)
    assert v["dce-poolnet-on-par-elastix"] == HOLDS
    assert v["dce-unet-behind-elastix"] == HOLDS
    assert v["dce-nmi-unet-highest-elastix-lowest"] == HOLDS
    assert v["dce-folding-unet-poolnet-elastix"] == HOLDS
    row = frame.set_index("claim").loc["dce-folding-unet-poolnet-elastix"]
    assert "unet-nmi 16 of 16; poolnet-nmi 14 of 16; elastix 0 of 16" in row["numbers"]
    behind = frame.set_index("claim").loc["dce-unet-behind-elastix"]
    assert "paired Wilcoxon signed-rank over 8 cases" in behind["test"]
    assert behind["metric"] == "disp_error_mm"
    # the cardiac claims are about one contrast
    cine = frame[frame["claim"].str.startswith("cine-")]
    assert (cine["verdict"] == UNTESTABLE).all()
    assert cine["reason"].str.contains("about one contrast").all(), cine["reason"].tolist()


def test_breast_claims_that_do_not_hold():
    # PoolNet far behind elastix, U-Net ahead of it, elastix folds, NMI order reversed
    frame = evaluate_claims(
        breast(2.5, 0.3, nmi=(0.26, 0.28, 0.30), folded=(2, 5, 3)), contrast="different"
    )
    v = verdicts(frame)
    assert v["dce-poolnet-on-par-elastix"] == FAILS
    assert v["dce-unet-behind-elastix"] == FAILS
    assert v["dce-nmi-unet-highest-elastix-lowest"] == FAILS
    assert v["dce-folding-unet-poolnet-elastix"] == FAILS


def test_on_par_holds_when_the_test_finds_no_difference_even_if_the_mean_is_worse():
    frame = evaluate_claims(breast(0.57, 2.5), contrast="different")  # 0.02 mm worse, noise 0.05
    row = frame.set_index("claim").loc["dce-poolnet-on-par-elastix"]
    assert row["verdict"] == HOLDS and "P = " in row["test"]


def cardiac(*, dice=None, folding=None, sdlogj=None) -> pd.DataFrame:
    dice = dice or {"identity": 0.6, "elastix": 0.92, **dict.fromkeys(NETWORKS, 0.89)}
    folding = folding or {"unet-nmi": 0.3, "unet-ncc": 0.6, "poolnet-nmi": 0.01, "poolnet-ncc": 0.05}
    sdlogj = sdlogj or {"unet-nmi": 0.4, "unet-ncc": 0.3, "poolnet-nmi": 0.1, "poolnet-ncc": 0.2}
    values = {m: {"dice": d, "folding_pct": folding.get(m, 0.0), "sdlogj": sdlogj.get(m, 0.0)}
              for m, d in dice.items()}
    return table(values, noise=0.005, folded=dict.fromkeys(NETWORKS, 16))


def test_cardiac_claims_that_hold():
    v = verdicts(evaluate_claims(cardiac(), contrast="same"))
    for claim in ("cine-networks-high-dice", "cine-nmi-ncc-on-par", "cine-folding-unet-more",
                  "cine-folding-unet-ncc-most", "cine-folding-poolnet-nmi-lowest",
                  "cine-unet-nmi-least-smooth"):
        assert v[claim] == HOLDS, claim
    assert all(v[c.id] == UNTESTABLE for c in CLAIMS if c.id.startswith("dce-"))


def test_cardiac_claims_that_do_not_hold():
    dice = {"identity": 0.6, "elastix": 0.92, "unet-nmi": 0.80, "unet-ncc": 0.88,
            "poolnet-nmi": 0.89, "poolnet-ncc": 0.89}
    folding = {"unet-nmi": 0.01, "unet-ncc": 0.02, "poolnet-nmi": 0.6, "poolnet-ncc": 0.3}
    sdlogj = {"unet-nmi": 0.1, "unet-ncc": 0.3, "poolnet-nmi": 0.2, "poolnet-ncc": 0.2}
    v = verdicts(evaluate_claims(cardiac(dice=dice, folding=folding, sdlogj=sdlogj),
                                 contrast="same"))
    for claim in ("cine-networks-high-dice", "cine-nmi-ncc-on-par", "cine-folding-unet-more",
                  "cine-folding-unet-ncc-most", "cine-folding-poolnet-nmi-lowest",
                  "cine-unet-nmi-least-smooth"):
        assert v[claim] == FAILS, claim


def test_reasons_for_not_testable():
    results = breast(0.56, 2.5)
    no_unet = results[results["method"] != "unet-nmi"]
    frame = evaluate_claims(no_unet, contrast="different").set_index("claim")
    assert frame.loc["dce-unet-behind-elastix", "reason"] == "not in the run: unet-nmi"
    frame = evaluate_claims(results, contrast=None).set_index("claim")
    assert (frame["verdict"] == UNTESTABLE).all()
    assert frame.loc["dce-poolnet-on-par-elastix", "reason"] == (
        "the dataset states no contrast (same or different)"
    )
    few = results[results["case"].isin([f"c{i:02d}" for i in range(MIN_CASES - 1)])]
    row = evaluate_claims(few, contrast="different").set_index("claim").loc[
        "dce-poolnet-on-par-elastix"]
    assert row["verdict"] == UNTESTABLE and "too few cases for the test (5 complete" in row["reason"]
    no_truth = results[results["metric"] != "disp_error_mm"]
    row = evaluate_claims(no_truth, contrast="different").set_index("claim").loc[
        "dce-poolnet-on-par-elastix"]
    assert row["reason"] == "no ground truth, labels or landmarks in the run"
    with_contrast = evaluate_claims(results, contrast="different").set_index("claim")
    assert with_contrast.loc["dce-expert-elastix-over-unet", "reason"].startswith("no reader study")


def test_expert_claims_from_the_papers_rankings():
    rankings = paper_table1_rankings(names=RUN_NAMES)
    frame = evaluate_claims(breast(0.56, 2.5), contrast="different",
                            rankings=analyze_rankings(rankings))
    rows = frame.set_index("claim")
    assert rows.loc["dce-expert-difference", "verdict"] == HOLDS
    assert "chi2 = 10.56, dof 4, P = 0.032" in rows.loc["dce-expert-difference", "test"]
    assert rows.loc["dce-expert-elastix-over-unet", "verdict"] == HOLDS
    assert "elastix above unet-nmi in 32 of 50" in rows.loc["dce-expert-elastix-over-unet", "numbers"]
    assert rows.loc["dce-expert-poolnet-on-par-elastix", "verdict"] == HOLDS
    # reversed preferences: elastix never above the U-Net
    flipped = rankings.copy()
    swap = {"elastix": "unet-nmi", "unet-nmi": "elastix"}
    flipped["method"] = flipped["method"].map(lambda m: swap.get(m, m))
    rows = evaluate_claims(breast(0.56, 2.5), contrast="different",
                           rankings=analyze_rankings(flipped))
    assert verdicts(rows)["dce-expert-elastix-over-unet"] == FAILS


@pytest.mark.parametrize("contrast", ["same", "different"])
def test_a_run_with_only_identity_gets_every_row_not_testable(contrast):
    only = table({"identity": {"dice": 0.6, "folding_pct": 0.0}})
    frame = evaluate_claims(only, contrast=contrast)
    assert len(frame) == len(CLAIMS) and (frame["verdict"] == UNTESTABLE).all()
