"""Learn2Reg's conventions (``metrics.learn2reg`` and the ranking of ``benchmark.stats.learn2reg``)
against known answers and against re-implementations written here from the formulas of the
challenge's code (github.com/MDL-UzL/L2R, commit 88475095):

- ``utils.jacobian_determinant`` (L11-38): ``scipy.ndimage.correlate`` with ``[-0.5, 0, 0.5]``,
  zero padding, crop 2, determinant of ``I + grad``; here via ``np.linalg.det`` of the stacked
  matrices;
- ``evaluation.py`` L139-147: ``std(log(clip(J + 3, 1e-9, 1e9)))``, num_foldings after the clip;
- ``utils.compute_dice`` / ``compute_hd95`` (L52-70) with the surface-distance library
  (``metrics.py`` L136-290, L324-362): here with explicit corner loops, brute-force distances and
  Python's ``sorted`` of ``(distance, area)`` tuples;
- ``utils.compute_tre`` (L40-49);
- ``ranking_utils.scores_better`` / ``rankscore_avgtie`` (L26-52): the rank-sum z statistic from
  its formula and the tie-averaged rank scores.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial.distance import cdist
from scipy.stats import norm

from metrics import folding_percentage, hausdorff_distance, sdlogj
from metrics.learn2reg import (
    _surfel_areas,
    l2r_dice,
    l2r_hd95,
    l2r_jacobian_determinant,
    l2r_pair_scores,
    l2r_sdlogj,
    l2r_tre,
    l2r_warp_labels,
)


# ------------------------------------------------------------------------------ references
def reference_jacobian(disp: np.ndarray) -> np.ndarray:
    """Learn2Reg's determinant from its formula, another way: correlate, crop, np.linalg.det."""
    kernel = np.array([-0.5, 0.0, 0.5])
    grad = np.empty((3, 3, *disp.shape[:3]))
    for a in range(3):  # derivative axis
        k = kernel.reshape([3 if b == a else 1 for b in range(3)])
        for c in range(3):  # component
            grad[c, a] = ndimage.correlate(disp[..., c], k, mode="constant", cval=0.0)
    jac = grad + np.eye(3).reshape(3, 3, 1, 1, 1)
    jac = jac[:, :, 2:-2, 2:-2, 2:-2]
    return np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))


def reference_hd95(a: np.ndarray, b: np.ndarray) -> float:
    """The surface-distance library's robust Hausdorff (95 %) at spacing 1, from its formulas."""
    table = _surfel_areas()
    union = np.argwhere(a | b)
    lo, hi = union.min(axis=0), union.max(axis=0)
    sides = []
    for mask in (a, b):
        crop = np.zeros(tuple(hi - lo + 2), dtype=np.int64)
        crop[:-1, :-1, :-1] = mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
        padded = np.pad(crop, ((1, 0), (1, 0), (1, 0)))  # the cell at x covers x - 1 .. x
        code = np.zeros(crop.shape, dtype=np.int64)
        for bit, (da, db, dc) in enumerate(np.ndindex(2, 2, 2)):
            code += padded[da : da + crop.shape[0], db : db + crop.shape[1],
                           dc : dc + crop.shape[2]] << (7 - bit)
        border = (code != 0) & (code != 255)
        sides.append((np.argwhere(border), table[code[border]]))
    out = []
    for (pts, areas), (other, _) in ((sides[0], sides[1]), (sides[1], sides[0])):
        if len(other) == 0:
            out.append(math.inf)
            continue
        d = cdist(pts, other).min(axis=1)
        pairs = sorted(zip(d.tolist(), areas.tolist(), strict=True))
        dist = np.array([p[0] for p in pairs])
        area = np.array([p[1] for p in pairs])
        cum = np.cumsum(area) / np.sum(area)
        out.append(float(dist[min(int(np.searchsorted(cum, 0.95)), len(dist) - 1)]))
    return max(out)


def reference_rank_sum(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The Wilcoxon rank-sum z statistic (no tie correction) and its two-sided normal P."""
    both = np.concatenate([x, y])
    order = np.argsort(both, kind="stable")
    r = np.empty(len(both))
    r[order] = np.arange(1, len(both) + 1)
    for v in np.unique(both):  # mid-ranks for ties
        r[both == v] = r[both == v].mean()
    n1, n2 = len(x), len(y)
    z = (r[:n1].sum() - n1 * (n1 + n2 + 1) / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return z, 2 * norm.sf(abs(z))


def blob(shape, centre, radius) -> np.ndarray:
    g = np.indices(shape).astype(float)
    c = np.asarray(centre, dtype=float).reshape(3, 1, 1, 1)
    return ((g - c) ** 2).sum(axis=0) <= radius**2


# ------------------------------------------------------------------------------ Jacobian
@settings(max_examples=20, deadline=None)
@given(matrix=st.lists(st.floats(-0.4, 0.4), min_size=9, max_size=9),
       shift=st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_jacobian_of_an_affine_map_is_its_determinant(matrix, shift):
    a = np.eye(3) + np.asarray(matrix).reshape(3, 3)
    x = np.moveaxis(np.indices((9, 8, 7)).astype(float), 0, -1)
    disp = x @ (a - np.eye(3)).T + np.asarray(shift)  # x -> A x + t, in voxels
    det = l2r_jacobian_determinant(disp)
    assert det.shape == (5, 4, 3)
    np.testing.assert_allclose(det, np.linalg.det(a), atol=1e-12)
    np.testing.assert_allclose(det, reference_jacobian(disp), atol=1e-12)
    # log(J + 3) of a constant J: SD 0 both ways; no folding counted by either convention
    value, folds = l2r_sdlogj(disp)
    assert value == pytest.approx(0.0, abs=1e-12) and folds == 0


def test_jacobian_of_a_random_field_matches_the_formula():
    rng = np.random.default_rng(3)
    disp = ndimage.gaussian_filter(rng.normal(0, 3, (14, 12, 10, 3)), (1.5, 1.5, 1.5, 0))
    np.testing.assert_allclose(
        l2r_jacobian_determinant(disp, slab=3), reference_jacobian(disp), rtol=1e-12, atol=1e-12
    )


def folded_field(shape=(14, 9, 8), a=5, b=8) -> np.ndarray:
    """u_i = -2 clip(i, a, b): J = -1 for a < i < b, 0 at i = a, b, 1 elsewhere (central
    differences)."""
    disp = np.zeros((*shape, 3))
    disp[..., 0] = -2.0 * np.clip(np.arange(shape[0]), a, b)[:, None, None]
    return disp


def test_a_field_with_a_known_folded_volume_both_ways():
    disp = folded_field()
    n0, n1, n2 = disp.shape[:3]
    plane = n1 * n2
    # MIRBench: J <= 0 on planes 5..8 (4 planes), the whole grid, log(clip(J, 1e-9))
    fold = folding_percentage(np.moveaxis(disp, -1, 0))
    assert fold.count == 4 * plane and fold.percent == pytest.approx(100 * 4 / n0)
    logs = np.array([math.log(1e-9)] * 4 * plane + [0.0] * (n0 - 4) * plane)
    assert sdlogj(np.moveaxis(disp, -1, 0)).value == pytest.approx(logs.std(), rel=1e-12)
    # Learn2Reg: the cropped grid (planes 2..n0-3 along i, 2 voxels off the other faces),
    # values log(J + 3): log 2 (J = -1, planes 6, 7), log 3 (J = 0, planes 5, 8), log 4
    cropped_plane = (n1 - 4) * (n2 - 4)
    counts = {math.log(2): 2, math.log(3): 2, math.log(4): (n0 - 4) - 4}
    values = np.concatenate([np.full(k * cropped_plane, v) for v, k in counts.items()])
    value, folds = l2r_sdlogj(disp)
    assert value == pytest.approx(values.std(), rel=1e-12)
    assert folds == 0  # counted after the clip: never a fold (issues #6, #8)
    assert (reference_jacobian(disp) <= 0).sum() == 4 * cropped_plane  # yet 4 planes fold


def test_masked_sdlogj_uses_the_cropped_mask_where_it_is_one():
    disp = folded_field()
    mask = np.zeros(disp.shape[:3])
    mask[:, :, :] = 1
    mask[6:8] = 2  # not 1: left out, as 1 - mask != 0 masks it in the evaluation
    value, _ = l2r_sdlogj(disp, mask=mask)
    cropped_plane = (disp.shape[1] - 4) * (disp.shape[2] - 4)
    values = np.concatenate([np.full(2 * cropped_plane, math.log(3)),
                             np.full((disp.shape[0] - 8) * cropped_plane, math.log(4))])
    assert value == pytest.approx(values.std(), rel=1e-12)


# ------------------------------------------------------------------------------ labels
def test_warp_dice_and_absence_rules():
    shape = (12, 10, 8)
    fixed = np.zeros(shape, np.int16)
    fixed[2:6, 2:6, 2:6] = 1
    fixed[7:10, 6:9, 1:4] = 3
    moving = np.zeros(shape, np.int16)
    moving[4:8, 2:6, 2:6] = 1  # label 1 two voxels further along i
    moving[0:2, 0:2, 0:2] = 2  # 2 only in the moving labels
    moving[9:11, 8:10, 6:8] = 4  # 4 in the moving labels, warped away below
    disp = np.zeros((*shape, 3))
    disp[..., 0] = 1.0  # warped(x) = moving(x + 1 along i)
    warped = l2r_warp_labels(moving, disp)
    np.testing.assert_array_equal(warped[:-1], moving[1:])
    assert (warped[-1] == 0).all()  # outside the moving image: 0
    fixed[0, 9, 7] = 4
    d = l2r_dice(fixed, moving, warped, [1, 2, 3, 4])
    # label 1: fixed i in 2..5, warped i in 3..6: 3 of 4 planes overlap
    assert d[0] == pytest.approx(2 * 3 / (4 + 4))
    assert math.isnan(d[1])  # absent from the fixed labels
    assert math.isnan(d[2])  # absent from the moving labels (utils.py L55)
    assert d[3] == 0.0  # in both, warped onto other voxels: 0
    h = l2r_hd95(fixed, moving, warped, [1, 2, 3])
    assert math.isnan(h[1]) and math.isnan(h[2])


@pytest.mark.parametrize("t", [1, 2, 5])
def test_hd95_of_a_shifted_voxel_is_the_shift_in_voxels(t):
    shape = (16, 7, 7)
    fixed = np.zeros(shape, np.int16)
    fixed[3, 3, 3] = 1
    warped = np.roll(fixed, t, axis=0)
    # 8 surface cells of equal area round each voxel; 4 at t - 1 and 4 at t from the other's
    assert l2r_hd95(fixed, fixed, warped, [1]) == [float(t)]
    spacing = (2.5, 1.0, 1.0)
    mm = hausdorff_distance(fixed, warped, label=1, spacing=spacing).hd_percentile.value
    assert mm == pytest.approx(t * 2.5)  # MIRBench: millimetres


def test_hd95_of_a_warped_away_structure_is_inf():
    fixed = np.zeros((8, 8, 8), np.int16)
    fixed[2:4, 2:4, 2:4] = 1
    assert l2r_hd95(fixed, fixed, np.zeros_like(fixed), [1]) == [math.inf]


@pytest.mark.parametrize("seed", range(4))
def test_hd95_and_dice_match_the_formulas_on_random_structures(seed):
    rng = np.random.default_rng(seed)
    shape = (18, 16, 14)
    fixed = np.zeros(shape, np.int16)
    warped = np.zeros(shape, np.int16)
    for v in (1, 2, 3):
        c = rng.uniform(4, 10, 3)
        fixed[blob(shape, c, rng.uniform(2, 4))] = v
        warped[blob(shape, c + rng.normal(0, 1.5, 3), rng.uniform(2, 4))] = v
    noise = rng.random(shape) < 0.03
    warped[noise] = rng.integers(0, 4, int(noise.sum()))
    hd = l2r_hd95(fixed, fixed, warped, [1, 2, 3])
    for v, h in zip((1, 2, 3), hd, strict=True):
        assert h == reference_hd95(fixed == v, warped == v)
    d = l2r_dice(fixed, fixed, warped, [1, 2, 3])
    for v, x in zip((1, 2, 3), d, strict=True):
        a, b = fixed == v, warped == v
        assert x == 2 * (a & b).sum() / (a.sum() + b.sum())


def test_surfel_areas_are_the_marching_cubes_table():
    table = _surfel_areas()
    assert table.shape == (256,) and table[0] == 0 and table[255] == 0
    assert table[1] == pytest.approx(math.sqrt(3) / 8)  # one corner: a triangle
    assert table[0b11110000] == pytest.approx(1.0)  # half the cell: a unit square
    monai = pytest.importorskip("monai.metrics.utils")
    public = monai.get_code_to_measure_table((1.0, 1.0, 1.0))[0].cpu().numpy()
    np.testing.assert_allclose(table, public, atol=1e-6)


# ------------------------------------------------------------------------------ TRE
def test_tre_uses_cubic_interpolation_and_the_moving_spacing():
    shape = (16, 14, 12)
    disp = np.zeros((*shape, 3))
    disp[..., 0] = 1.0
    disp[..., 2] = -0.5
    fixed = np.array([[5.0, 6.0, 4.0], [7.0, 7.0, 6.0]])  # grid points: the spline interpolates
    moving = fixed + np.array([[1.0, 0.0, -0.5], [3.0, 0.0, -0.5]])
    spacing = (2.0, 1.0, 3.0)
    tre = l2r_tre(fixed, moving, disp, spacing_moving=spacing)
    np.testing.assert_allclose(tre, [0.0, 4.0], atol=1e-9)  # second: 2 voxels of 2 mm
    # off the grid: the formula with the same interpolation
    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.normal(0, 2, (*shape, 3)), (2, 2, 2, 0))
    p = rng.uniform(3, 9, (6, 3))
    q = rng.uniform(3, 9, (6, 3))
    at = np.stack([ndimage.map_coordinates(smooth[..., c], p.T, order=3) for c in range(3)], 1)
    expected = np.linalg.norm((p + at - q) * np.asarray(spacing), axis=1)
    np.testing.assert_allclose(l2r_tre(p, q, smooth, spacing_moving=spacing), expected)


def test_pair_scores_collect_every_number():
    shape = (10, 9, 8)
    labels = np.zeros(shape, np.int16)
    labels[2:7, 2:7, 2:6] = 1
    scores = l2r_pair_scores(
        np.zeros((*shape, 3)), labels={"a": 1}, fixed_labels=labels, moving_labels=labels,
        landmarks=(np.array([[4.0, 4.0, 4.0]]), np.array([[5.0, 4.0, 4.0]])),
        spacing_moving=(1.5, 1.0, 1.0),
    )
    assert scores.dice == [1.0] and scores.hd95 == [0.0] and scores.sdlogj == 0.0
    assert scores.tre_mean == pytest.approx(1.5) and scores.num_foldings == 0


# ------------------------------------------------------------------------------ ranking
def test_beaten_by_counts_significant_rank_sum_wins():
    from benchmark.stats.learn2reg import beaten_by

    rng = np.random.default_rng(1)
    values = np.stack([rng.normal(mu, 1.0, 40) for mu in (0.0, 0.2, 1.5, 1.6)])
    expected = np.zeros(4)
    for i in range(4):
        for j in range(4):
            z, p = reference_rank_sum(values[i], values[j])
            expected[j] += z > 0 and p < 0.05
    np.testing.assert_array_equal(beaten_by(values), expected)
    assert beaten_by(values).tolist()[:2] == [2.0, 2.0]  # the two low ones are beaten by both


def test_rank_scores_average_tied_places():
    from benchmark.stats.learn2reg import rank_scores

    # places by ascending -beaten: 2, 4 (tie) | 3 | 1 | 0, 5 (tie) on linspace(0.1, 1, 6)
    np.testing.assert_allclose(
        rank_scores([0, 2, 4, 3, 4, 0]), [0.91, 0.64, 0.19, 0.46, 0.19, 0.91]
    )
    assert rank_scores([0]).tolist() == [0.1]


def _handmade_run(methods, l2r, initial, runtimes):
    """An :class:`~benchmark.stats.learn2reg.L2RRun` without files: per-pair scores given."""
    import pandas as pd

    from benchmark.stats.learn2reg import L2RRun
    from metrics.catalog import RESULT_COLUMNS

    n = len(initial)
    pairs = [(0, f"c{k}", "p") for k in range(n)]
    rows = [[m, 0, c, p, "image", "runtime_s", runtimes[m][k], "s", "ok"]
            for m in methods for k, (_, c, p) in enumerate(pairs)]
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    return L2RRun(run_dir=Path("."), task="X", labels={"a": 1, "b": 2} if initial[0].dice else {},
                  methods=list(methods), pairs=pairs, masked=False, results=results,
                  l2r=l2r, initial=initial)


def test_l2r_ranking_of_a_label_task_by_hand():
    from benchmark.stats.learn2reg import l2r_ranking, method_table
    from metrics.learn2reg import L2RPairScores

    initial_dice = [[0.1, 0.4], [0.2, 0.45], [0.15, 0.3], [0.35, 0.25], [0.05, 0.42], [0.33, 0.38]]
    initial = [L2RPairScores(dice=d, hd95=[5.0, 5.0]) for d in initial_dice]
    identity = [L2RPairScores(dice=d, hd95=[5.0, np.inf], sdlogj=0.0) for d in initial_dice]
    good = [L2RPairScores(dice=[0.9, 0.9], hd95=[1.0, 1.0], sdlogj=0.05) for _ in range(6)]
    bad = [L2RPairScores(dice=[0.5, 0.5], hd95=[3.0, 3.0], sdlogj=0.3) for _ in range(6)]
    run = _handmade_run(
        ["identity", "good", "bad"], {"identity": identity, "good": good, "bad": bad}, initial,
        {"identity": [1e-5] * 6, "good": [2.0] * 6, "bad": [np.nan] * 6},
    )
    table = l2r_ranking(run).set_index("method")
    for metric in ("DSC", "DSC30", "HD95", "SDlogJ"):  # good > bad > identity everywhere
        assert table[f"score {metric}"].tolist() == pytest.approx([0.1, 1.0, 0.55])
    # runtime: identity (the Initial team) and bad (not measured) both get 5000 s: a tie
    assert table["score runtime"].tolist() == pytest.approx([0.325, 1.0, 0.325])
    geo = {"identity": (0.1**4 * 0.325) ** 0.2, "good": 1.0, "bad": (0.55**4 * 0.325) ** 0.2}
    assert table["L2R score"].to_dict() == pytest.approx(geo)
    assert table["L2R rank"].to_dict() == {"identity": 3, "good": 1, "bad": 2}
    assert table["L2R score without runtime"].to_dict() == pytest.approx(
        {"identity": 0.1, "good": 1.0, "bad": 0.55})
    # DSC30 of the ranking: the round(12 * 0.3) = 4 entries hardest before registration
    # (0.05, 0.1, 0.15, 0.2); of the evaluator: the 0.3-quantile of the pair means
    means = method_table(run).set_index("method")
    assert means.loc["identity", "DSC30 (L2R ranking)"] == pytest.approx(0.125)
    pair_means = np.mean(initial_dice, axis=1)
    assert means.loc["identity", "DSC30 (L2R evaluator)"] == pytest.approx(
        np.quantile(pair_means, 0.3))
    assert means.loc["identity", "HD95 voxels (L2R)"] == np.inf  # a warped-away structure
    assert means.loc["bad", "runtime s (L2R ranking)"] == 5000.0


def test_l2r_ranking_of_a_landmark_task_counts_tre_twice_and_a_failure_as_perfect():
    from benchmark.stats.learn2reg import l2r_ranking
    from metrics.learn2reg import L2RPairScores

    initial = [L2RPairScores(tre=np.array([4.0, 5.0, 6.0])) for _ in range(4)]
    good = [L2RPairScores(tre=np.array([1.0, 1.2, 1.1]), sdlogj=0.1) for _ in range(4)]
    failing = [None] + [L2RPairScores(tre=np.array([3.0, 3.5, 3.2]), sdlogj=0.1)] * 3
    run = _handmade_run(["identity", "good", "failing"],
                        {"identity": [L2RPairScores(tre=t.tre, sdlogj=0.0) for t in initial],
                         "good": good, "failing": failing},
                        initial, {m: [1.0] * 4 for m in ("identity", "good", "failing")})
    table = l2r_ranking(run)
    assert [c for c in table.columns if c.startswith("score ")] == [
        "score TRE", "score TRE (again)", "score TRE30", "score SDlogJ", "score runtime"]
    # the failed pair's TRE enters as 0 (Ranking_LungCT.ipynb: tre[tre != tre] = 0)
    from benchmark.stats.learn2reg import _ranking_inputs

    tre = dict(zip(run.methods, _ranking_inputs(run)[0][1], strict=True))
    assert tre["failing"][:3].tolist() == [0.0, 0.0, 0.0]

