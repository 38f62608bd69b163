"""Known answers for the metrics added for a trustworthy evaluation: a lost structure scores
Dice 0, the displacement error inside the foreground, forward-difference folding, TRE on shifted
landmarks, the landmark files and the demos' landmarks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from benchmark.core.landmarks import corresponding_landmarks, read_landmarks, write_landmarks
from metrics import (
    STATUS_ABSENT_MOVING,
    STATUS_LOST,
    displacement_error,
    folding_forward_percentage,
    folding_percentage,
    foreground_mask,
    label_metrics,
    target_registration_error,
)


def _rows(rows):
    return {(r["structure"], r["metric"]): (r["value"], r["status"]) for r in rows}


def test_a_structure_warped_away_scores_dice_zero_with_its_own_status():
    fixed = np.zeros((8, 8, 3), np.int16)
    fixed[2:5, 2:5] = 1
    fixed[5:7, 5:7] = 2
    moving = fixed.copy()
    warped = fixed.copy()
    warped[warped == 1] = 0  # the method lost structure 1
    rows = _rows(label_metrics(fixed, warped, {"A": 1, "B": 2}, spacing=None, moving_labels=moving))
    assert rows["A", "dice"] == (0.0, STATUS_LOST)
    assert math.isnan(rows["A", "hd"][0]) and rows["A", "hd"][1] == STATUS_LOST
    assert rows["B", "dice"] == (1.0, "ok")
    # absent from the moving labels in the first place: undefined, not a failure of the method
    moving[moving == 1] = 0
    rows = _rows(label_metrics(fixed, warped, {"A": 1}, spacing=None, moving_labels=moving))
    assert math.isnan(rows["A", "dice"][0]) and rows["A", "dice"][1] == STATUS_ABSENT_MOVING


def test_foreground_displacement_error_on_a_hand_built_field():
    """Error 3 mm inside a 4x4 structure, 0 elsewhere; spacing 2 x 1 mm; 2 mm margin."""
    shape = (12, 20)
    labels = np.zeros(shape, np.int16)
    labels[4:8, 8:12] = 1
    true = np.zeros((2, *shape))
    est = true.copy()
    est[0][labels == 1] = 3.0  # 3 mm along i inside the structure
    fg = foreground_mask(mask=None, fixed_labels=labels, spacing=(2.0, 1.0), margin_mm=2.0)
    # dilation by 2 mm: one voxel along i (2 mm), two along j (1 mm each), corners by distance
    i, j = np.indices(shape)
    di = np.maximum(np.maximum(4 - i, i - 7), 0) * 2.0
    dj = np.maximum(np.maximum(8 - j, j - 11), 0) * 1.0
    np.testing.assert_array_equal(fg, np.hypot(di, dj) <= 2.0)
    inside = displacement_error(est, true, mask=fg)
    assert inside.mean == pytest.approx(3.0 * 16 / fg.sum())
    grid = displacement_error(est, true)
    assert grid.mean == pytest.approx(3.0 * 16 / (12 * 20))
    # the dataset mask wins over the labels; no mask and no labels: no foreground
    m = labels > 0
    assert foreground_mask(mask=m, fixed_labels=labels).sum() == 16
    assert (
        displacement_error(est, true, mask=foreground_mask(mask=m, fixed_labels=None)).mean == 3.0
    )
    assert foreground_mask(mask=None, fixed_labels=None) is None


def test_forward_differences_see_the_alternating_field_that_central_differences_miss():
    n = 9
    u = np.zeros((3, n, 6, 5))
    u[0] = (0.8 * (-1.0) ** np.arange(n))[:, None, None]  # +0.8, -0.8, ... voxel along i
    inside = np.zeros((n, 6, 5), bool)
    inside[1:-1] = True
    central = folding_percentage(u, mask=inside)
    forward = folding_forward_percentage(u)
    assert central.percent == 0.0  # u[i+1] - u[i-1] = 0 inside (one-sided at the borders)
    # cells between i (even) and i + 1 reverse: det = 1 - 1.6 < 0; odd i: 1 + 1.6 > 0
    assert forward.n_voxels == (n - 1) * 5 * 4
    assert forward.count == 4 * 5 * 4 and forward.percent == pytest.approx(50.0)
    # spacing: the same field in mm on a 2 mm grid is 0.4 voxel: no reversal
    assert folding_forward_percentage(u, spacing=(2.0, 1.0, 1.0)).count == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), scale=st.floats(0.05, 2.0))
def test_forward_folding_matches_a_float64_per_cell_determinant(seed, scale):
    rng = np.random.default_rng(seed)
    u = rng.normal(0, scale, (2, 5, 6))
    s = (1.5, 0.7)
    res = folding_forward_percentage(u, spacing=s)
    count = 0
    for i in range(4):
        for j in range(5):
            jac = np.eye(2) + np.array(
                [
                    [(u[0, i + 1, j] - u[0, i, j]) / s[0], (u[0, i, j + 1] - u[0, i, j]) / s[1]],
                    [(u[1, i + 1, j] - u[1, i, j]) / s[0], (u[1, i, j + 1] - u[1, i, j]) / s[1]],
                ]
            )
            count += np.linalg.det(jac) <= 0
    assert res.count == count and res.n_voxels == 20


def test_tre_on_shifted_points():
    spacing = (1.5, 1.5, 8.0)
    fixed = np.array([[10.0, 12.0, 2.0], [20.5, 7.25, 3.0], [0.0, 0.0, 0.0]])
    moving = fixed + np.array([2.0, -1.0, 0.5])  # voxels: (3, -1.5, 4) mm
    zero = np.zeros((3, 32, 32, 6))
    expected = math.sqrt(3.0**2 + 1.5**2 + 4.0**2)
    assert target_registration_error(fixed, moving, zero, spacing=spacing).value == pytest.approx(
        expected
    )
    exact = zero + np.array([3.0, -1.5, 4.0])[:, None, None, None]
    assert target_registration_error(fixed, moving, exact, spacing=spacing).value == pytest.approx(
        0.0, abs=1e-12
    )
    # a linear field is interpolated exactly between voxel centres
    i = np.arange(32, dtype=np.float64)[:, None, None] * np.ones((32, 32, 6))
    linear = np.stack([0.1 * i, np.zeros_like(i), np.zeros_like(i)])
    err = target_registration_error(fixed, fixed, linear, spacing=(1.0, 1.0, 1.0)).value
    assert err == pytest.approx(np.mean(0.1 * fixed[:, 0]))
    assert math.isnan(target_registration_error(None, None, zero).value)
    with pytest.raises(BenchError, match="outside the grid"):
        target_registration_error(fixed + 40, moving, zero)
    with pytest.raises(BenchError, match=r"\(3, 3\).*\(2, 3\)"):
        target_registration_error(fixed, moving[:2], zero)


def test_landmark_files_round_trip_and_match_by_id(tmp_path):
    pts = np.array([[1.0, 2.5, 3.0], [4.0, 5.0, 6.25]])
    write_landmarks(tmp_path / "f.csv", ["a", "b"], pts)
    write_landmarks(tmp_path / "m.csv", ["b", "c", "a"], pts[[1, 0, 0]] + 1)
    ids, read = read_landmarks(tmp_path / "f.csv")
    assert ids == ["a", "b"]
    np.testing.assert_allclose(read, pts)
    f, m = corresponding_landmarks(tmp_path / "f.csv", tmp_path / "m.csv")
    np.testing.assert_allclose(f, pts)
    np.testing.assert_allclose(m, pts[[0, 1]] + 1)
    (tmp_path / "bad.csv").write_text("id,i,j,k\na,1,2,x\n")
    with pytest.raises(BenchError, match=r"bad.csv:2"):
        read_landmarks(tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("id,i,j\na,1,2\na,3,4\n")
    with pytest.raises(BenchError, match="duplicate"):
        read_landmarks(tmp_path / "dup.csv")


def test_demo_landmarks_follow_the_ground_truth(tmp_path):
    """The demo's landmarks are where the ground truth sends them: TRE of the true field is ~0
    in both directions, and of no registration the true motion."""
    from benchmark.data.demo import generate
    from benchmark.data.manifest import load_manifest

    manifest = load_manifest("demo-acdc", root=generate("demo-acdc", tmp_path, cases=1))
    specs = manifest.pairs()
    assert all(s.fixed_landmarks is not None for s in specs)
    for spec in specs[:2]:  # ED-ES and ES-ED of one patient
        pair = spec.load()
        f, m = pair.landmarks
        assert len(f) >= 8
        truth = target_registration_error(f, m, pair.true_displacement, spacing=pair.spacing)
        none = target_registration_error(f, m, 0 * pair.true_displacement, spacing=pair.spacing)
        assert truth.value < 0.1 * none.value and none.value > 1.0


def _pair():
    from benchmark.core.images import Image
    from benchmark.core.pairs import RegistrationPair

    rng = np.random.default_rng(0)
    labels = np.zeros((16, 16, 4), np.int16)
    labels[4:9, 4:9] = 1
    labels[10:13, 10:13] = 2
    image = rng.random((16, 16, 4)).astype(np.float32)
    truth = np.zeros((3, 16, 16, 4), np.float32)
    truth[0] = 1.0
    pts = np.array([[5.0, 5.0, 1.0], [11.0, 11.0, 2.0]])
    return RegistrationPair(
        fixed=Image(image),
        moving=Image(image),
        fixed_labels=Image(labels),
        moving_labels=Image(labels.copy()),
        true_displacement=truth,
        landmarks=(pts, pts + [1.0, 0.0, 0.0]),
        case="p1",
        pair="ED-ES",
    )


def test_scoring_reports_lost_structures_foreground_error_tre_and_failures():
    from benchmark.runner.scoring import failure_rows, score_pair
    from metrics.catalog import METRIC_UNITS

    pair = _pair()
    disp = np.zeros((3, 16, 16, 4), np.float32)
    warped_labels = pair.moving_labels.array.copy()
    warped_labels[warped_labels == 2] = 0  # the "method" lost structure B
    rows = _rows(
        score_pair(
            pair,
            disp,
            labels={"A": 1, "B": 2},
            runtime_s=1.0,
            warped=pair.moving.array,
            warped_labels=warped_labels,
        )
    )
    assert rows["B", "dice"] == (0.0, STATUS_LOST) and rows["B", "dice_before"] == (1.0, "ok")
    assert rows["image", "disp_error_mm"] == (1.0, "ok")  # 1 mm everywhere, inside too
    assert rows["image", "disp_error_grid_mm"] == (1.0, "ok")
    assert rows["image", "tre_mm"] == (1.0, "ok")
    assert rows["image", "folding_fwd_pct"] == (0.0, "ok")
    failed = failure_rows({"A": 1, "B": 2}, "diverged\nbadly", pair=pair)
    keys = {(r["structure"], r["metric"]) for r in failed}
    assert keys == set(rows)  # every metric a scored pair has, none more
    assert all(math.isnan(r["value"]) and r["status"] == "failed: diverged badly" for r in failed)
    assert all(r["unit"] == METRIC_UNITS[r["metric"]] for r in failed)


def test_every_scored_metric_has_a_unit_a_convention_a_direction_and_a_docs_row():
    from pathlib import Path

    from metrics.catalog import (
        BEFORE_METRICS,
        HIGHER_IS_BETTER,
        LOWER_IS_BETTER,
        METRIC_CONVENTIONS,
        METRIC_UNITS,
        METRICS,
    )

    assert tuple(METRIC_UNITS) == METRICS == tuple(METRIC_CONVENTIONS)
    for metric in METRICS:
        assert (metric in HIGHER_IS_BETTER | LOWER_IS_BETTER) != (metric in BEFORE_METRICS)
    docs = (Path(__file__).parents[1] / "docs" / "conventions.md").read_text()
    table = docs[docs.index("## Metrics") : docs.index("## Statistics")]
    assert {
        line.split("|")[1].strip(" `") for line in table.splitlines() if line.startswith("| `")
    } == set(METRICS)


def test_the_metric_catalog_agrees_with_the_docs_table():
    from pathlib import Path

    from metrics.catalog import METRIC_TABLE

    docs = (Path(__file__).parents[1] / "docs" / "conventions.md").read_text()
    table = docs[docs.index("## Metrics") : docs.index("## Statistics")]
    rows = {
        cells[1].strip(" `"): (cells[2].strip(), cells[3].strip())
        for cells in (line.split("|") for line in table.splitlines() if line.startswith("| `"))
    }
    assert rows == {
        name: (info.unit, info.better or "-") for name, info in METRIC_TABLE.items()
    }
