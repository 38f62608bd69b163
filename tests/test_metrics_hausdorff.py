"""Hausdorff distance: shifted shapes (analytic), brute force, MONAI and medpy, edge cases, rows."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from benchmark.core.errors import BenchError
from metrics import (
    STATUS_ABSENT_BOTH,
    STATUS_ABSENT_FIXED,
    STATUS_ABSENT_MOVING,
    STATUS_OK,
    directed_surface_distances,
    hausdorff_distance,
    label_metrics,
)


def _ellipsoid(shape, centre, radii):
    grid = np.indices(shape, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64).reshape((-1,) + (1,) * len(shape))
    r = np.asarray(radii, dtype=np.float64).reshape((-1,) + (1,) * len(shape))
    return (((grid - c) / r) ** 2).sum(axis=0) <= 1.0


def _boundary_bruteforce(mask: np.ndarray, full: bool) -> np.ndarray:
    """Mask voxels with a neighbour outside the mask (outside the array counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    out = np.zeros_like(mask)
    for offset in itertools.product((-1, 0, 1), repeat=mask.ndim):
        if not any(offset) or (not full and sum(map(abs, offset)) != 1):
            continue
        sl = tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, mask.shape, strict=True))
        out |= mask & ~padded[sl]
    return out


def _reference(a, b, spacing, percentile=95.0, full=False):
    pa = np.argwhere(_boundary_bruteforce(a, full)) * np.asarray(spacing)
    pb = np.argwhere(_boundary_bruteforce(b, full)) * np.asarray(spacing)
    dist = cdist(pa, pb)
    d_ab, d_ba = dist.min(axis=1), dist.min(axis=0)
    hd = max(d_ab.max(), d_ba.max())
    max_directed = max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile))
    pooled = np.percentile(np.concatenate([d_ab, d_ba]), percentile)
    return hd, max_directed, pooled


@settings(max_examples=25, deadline=None)
@given(
    shift=st.integers(1, 6),
    axis=st.integers(0, 2),
    sign=st.sampled_from([-1, 1]),
    spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 1.5, 2.5, 10.0])] * 3),
    radii=st.tuples(*[st.floats(2.0, 7.0)] * 3),
)
def test_shifted_shape_hausdorff_equals_shift_in_mm(shift, axis, sign, spacing, radii):
    """Any shape shifted by k whole voxels along an axis has Hausdorff distance k * spacing[axis]."""
    shape = (30, 30, 30)
    a = _ellipsoid(shape, (15, 15, 15), radii)
    b = np.roll(a, sign * shift, axis=axis)  # no wrap-around: the shape stays inside the array
    result = hausdorff_distance(a, b, spacing=spacing)
    assert result.hd.status == STATUS_OK and result.hd.unit == "mm"
    assert result.hd.value == pytest.approx(shift * spacing[axis], rel=1e-12)
    # every directed distance is <= the shift, so any percentile is too
    assert result.hd_percentile.value <= result.hd.value + 1e-12


def test_sphere_shift_isotropic_and_anisotropic_examples():
    a = _ellipsoid((40, 40, 24), (20, 20, 12), (9, 9, 6))
    b = np.roll(a, 3, axis=2)
    assert hausdorff_distance(a, b, spacing=(1.25, 1.25, 10.0)).hd.value == pytest.approx(30.0)
    b = np.roll(a, -2, axis=0)
    assert hausdorff_distance(a, b, spacing=(1.25, 1.25, 10.0)).hd.value == pytest.approx(2.5)
    assert hausdorff_distance(a, b).hd.value == pytest.approx(2.0)  # spacing None = voxels


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    spacing=st.tuples(*[st.floats(0.5, 4.0)] * 3),
    percentile=st.sampled_from([50.0, 90.0, 95.0, 100.0]),
    full=st.booleans(),
)
def test_matches_bruteforce_both_modes_and_connectivities(seed, spacing, percentile, full):
    rng = np.random.default_rng(seed)
    shape = (9, 8, 7)
    a = rng.random(shape) < 0.3
    b = rng.random(shape) < 0.3
    a[4, 4, 3] = b[1, 1, 1] = True
    hd, max_directed, pooled = _reference(a, b, spacing, percentile, full)
    conn = 3 if full else 1
    r1 = hausdorff_distance(a, b, spacing=spacing, percentile=percentile, connectivity=conn)
    r2 = hausdorff_distance(
        a, b, spacing=spacing, percentile=percentile, percentile_mode="pooled", connectivity=conn
    )
    assert r1.hd.value == pytest.approx(hd, rel=1e-12)
    assert r2.hd.value == pytest.approx(hd, rel=1e-12)
    assert r1.hd_percentile.value == pytest.approx(max_directed, rel=1e-12)
    assert r2.hd_percentile.value == pytest.approx(pooled, rel=1e-12)
    # symmetric in its two arguments
    s1 = hausdorff_distance(b, a, spacing=spacing, percentile=percentile, connectivity=conn)
    assert s1 == r1


def test_2d_masks_against_bruteforce():
    rng = np.random.default_rng(11)
    a = _ellipsoid((40, 30), (20, 15), (10, 7)) & (rng.random((40, 30)) < 0.95)
    b = _ellipsoid((40, 30), (22, 14), (8, 9))
    hd, max_directed, pooled = _reference(a, b, (0.8, 1.7))
    r = hausdorff_distance(a, b, spacing=(0.8, 1.7))
    assert r.hd.value == pytest.approx(hd) and r.hd_percentile.value == pytest.approx(max_directed)


def test_masks_touching_the_array_border_are_not_affected_by_cropping():
    a = np.zeros((12, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[:5, :7, 3:] = True
    b[2:9, :4, :] = True
    padded = [np.pad(m, 3) for m in (a, b)]
    r = hausdorff_distance(a, b, spacing=(1.0, 2.0, 0.5))
    rp = hausdorff_distance(*padded, spacing=(1.0, 2.0, 0.5))
    assert r.hd.value == pytest.approx(_reference(a, b, (1.0, 2.0, 0.5))[0])
    assert r == rp


def _monai_hd(a, b, spacing, percentile):
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = monai_metrics.compute_hausdorff_distance(
            torch.from_numpy(b)[None, None],
            torch.from_numpy(a)[None, None],
            include_background=True,
            spacing=list(spacing),
            percentile=percentile,
            directed=False,
        )
    return float(out[0, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_monai_compute_hausdorff_distance(seed):
    rng = np.random.default_rng(seed)
    shape = (48, 44, 20)
    spacing = (1.4, 1.1, 3.0)
    a = _ellipsoid(shape, (24, 22, 10), (14, 11, 6)) & (rng.random(shape) < 0.97)
    b = _ellipsoid(shape, rng.uniform(20, 26, 3) * (1, 1, 0.45), (12, 13, 5))
    ours = hausdorff_distance(a, b, spacing=spacing)
    # MONAI works in float32: equal to float32 precision
    assert ours.hd.value == pytest.approx(_monai_hd(a, b, spacing, None), rel=1e-6)
    assert ours.hd_percentile.value == pytest.approx(_monai_hd(a, b, spacing, 95), rel=1e-5)


def test_matches_medpy_pooled_convention():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(5)
    shape = (40, 36, 18)
    spacing = (1.2, 0.9, 2.5)
    a = _ellipsoid(shape, (20, 18, 9), (12, 10, 5)) & (rng.random(shape) < 0.97)
    b = _ellipsoid(shape, (22, 17, 8), (10, 12, 6))
    ours = hausdorff_distance(a, b, spacing=spacing, percentile_mode="pooled")
    assert ours.hd.value == pytest.approx(binary.hd(b, a, voxelspacing=spacing), rel=1e-12)
    assert ours.hd_percentile.value == pytest.approx(
        binary.hd95(b, a, voxelspacing=spacing), rel=1e-12
    )


def test_identical_masks_give_zero():
    a = _ellipsoid((20, 20, 20), (10, 10, 10), (6, 4, 5))
    r = hausdorff_distance(a, a.copy(), spacing=(1.0, 2.0, 3.0))
    assert r.hd.value == 0.0 and r.hd_percentile.value == 0.0 and r.hd.status == STATUS_OK
    single = np.zeros((5, 5), dtype=bool)
    single[2, 2] = True
    assert hausdorff_distance(single, single).hd.value == 0.0


@pytest.mark.parametrize(
    ("in_fixed", "in_warped", "status"),
    [
        (False, False, STATUS_ABSENT_BOTH),
        (False, True, STATUS_ABSENT_FIXED),
        (True, False, STATUS_ABSENT_MOVING),
    ],
)
def test_empty_masks_give_nan_with_status(in_fixed, in_warped, status):
    fixed = np.zeros((6, 6, 6), dtype=np.uint8)
    warped = np.zeros((6, 6, 6), dtype=np.uint8)
    fixed[2:4, 2:4, 2:4] = 1
    warped[2:5, 2:4, 2:4] = 1
    if in_fixed:
        fixed[0, 0, 0] = 2
    if in_warped:
        warped[5, 5, 5] = 2
    r = hausdorff_distance(fixed, warped, label=2, spacing=(1, 1, 1))
    for mv in r:
        assert math.isnan(mv.value) and mv.status == status and mv.unit == "mm"


def test_rejects_bad_options():
    a = np.ones((4, 4, 4), dtype=bool)
    with pytest.raises(BenchError, match="percentile_mode"):
        hausdorff_distance(a, a, percentile_mode="medpy")
    with pytest.raises(BenchError, match="percentile"):
        hausdorff_distance(a, a, percentile=0)
    with pytest.raises(BenchError, match="spacing"):
        hausdorff_distance(a, a, spacing=(1.0, 1.0))
    with pytest.raises(BenchError, match="spacing"):
        hausdorff_distance(a, a, spacing=(1.0, -1.0, 1.0))
    with pytest.raises(BenchError, match="connectivity"):
        hausdorff_distance(a, a, connectivity=4)
    with pytest.raises(BenchError, match=r"\(4, 4, 4\).*\(4, 4\)"):
        hausdorff_distance(a, np.ones((4, 4), dtype=bool))
    with pytest.raises(BenchError, match="non-empty"):
        directed_surface_distances(a, np.zeros_like(a))


def test_label_metrics_rows_and_statuses():
    fixed = np.zeros((20, 20, 10), dtype=np.uint8)
    warped = np.zeros_like(fixed)
    fixed[4:10, 4:10, 2:6] = 1
    warped[5:11, 4:10, 2:6] = 1  # shifted by one voxel along i
    fixed[12:16, 12:16, 2:6] = 2  # LVm absent from the warped labels
    warped[1:3, 15:18, 7:9] = 3  # LVb absent from the fixed labels
    rows = label_metrics(
        fixed, warped, {"RV": 1, "LVm": 2, "LVb": 3, "x": 4}, spacing=(1.5, 1.5, 8.0)
    )
    assert [(r["structure"], r["metric"]) for r in rows] == [
        (s, m) for s in ("RV", "LVm", "LVb", "x") for m in ("dice", "hd", "hd95")
    ]
    by_key = {(r["structure"], r["metric"]): r for r in rows}
    assert by_key["RV", "dice"]["value"] == pytest.approx(2 * 5 / 12)
    assert by_key["RV", "hd"]["value"] == pytest.approx(1.5) and by_key["RV", "hd"]["unit"] == "mm"
    assert by_key["RV", "dice"]["unit"] == "1" and by_key["RV", "dice"]["status"] == STATUS_OK
    for metric in ("dice", "hd", "hd95"):
        assert by_key["LVm", metric]["status"] == STATUS_ABSENT_MOVING
        assert by_key["LVb", metric]["status"] == STATUS_ABSENT_FIXED
        assert by_key["x", metric]["status"] == STATUS_ABSENT_BOTH
        assert math.isnan(by_key["x", metric]["value"])
    assert set(rows[0]) == {"structure", "metric", "value", "unit", "status"}
    with pytest.raises(BenchError, match="integer label map"):
        label_metrics(fixed.astype(np.float32), warped, {"RV": 1}, spacing=None)
