"""Folding percentage and SDlogJ: hand-built folds, affine fields, np.linalg.det reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.core.errors import BenchError
from metrics import STATUS_EMPTY_MASK, STATUS_OK, folding_percentage, sdlogj

SPACING = (1.5, 0.8, 3.0)


def _reference_det(disp, spacing):
    """np.gradient (central inside, one-sided at borders) + np.linalg.det per voxel, float64."""
    ndim = disp.shape[0]
    grad = np.stack(
        [np.stack(np.gradient(disp[c].astype(np.float64), *spacing), axis=0) for c in range(ndim)]
    )
    jac = np.moveaxis(grad, (0, 1), (-2, -1)) + np.eye(ndim)
    return np.linalg.det(jac)


def _folded_field(shape, spacing, i_range, box, slope):
    """u_0 = -slope * spacing_0 * (clip(i, a, b) - a) inside a (j, k) box, u_1 = u_2 = 0.

    Only u_0 varies, so det J = 1 + d u_0 / d x_0 exactly. With central differences the
    derivative is -slope strictly inside (a, b), -slope / 2 at i = a and i = b and 0 elsewhere.
    """
    a, b = i_range
    i = np.arange(shape[0], dtype=np.float64)
    profile = -slope * spacing[0] * (np.clip(i, a, b) - a)
    disp = np.zeros((3, *shape))
    inside = np.zeros(shape[1:], dtype=bool)
    inside[box] = True
    disp[0] = profile[:, None, None] * inside[None]
    return disp


def test_hand_built_fold_is_counted_exactly():
    shape = (20, 12, 10)
    box = (slice(2, 9), slice(3, 7))  # 7 x 4 columns
    disp = _folded_field(shape, SPACING, (5, 12), box, slope=1.5)
    # det = 1 - 1.5 = -0.5 for i in 6..11 (6 slices), 1 - 0.75 = 0.25 at i = 5 and 12
    expected = 6 * 7 * 4
    result = folding_percentage(disp, spacing=SPACING)
    assert result.status == STATUS_OK and result.unit == "%"
    assert result.count == expected
    assert result.n_voxels == 20 * 12 * 10
    assert result.percent == pytest.approx(100.0 * expected / (20 * 12 * 10))
    assert result.value == result.percent
    # a steeper fold also folds at i = a and i = b (det = 1 - 1.5 = -0.5 there)
    steep = _folded_field(shape, SPACING, (5, 12), box, slope=3.0)
    assert folding_percentage(steep, spacing=SPACING).count == 8 * 7 * 4
    # the spacing matters: the same numbers read as voxels fold less along i (slope 1.5*1.5)
    assert folding_percentage(disp).count == 8 * 7 * 4


def test_zero_field_has_no_folding_and_zero_sdlogj():
    disp = np.zeros((3, 16, 12, 8), dtype=np.float32)
    result = folding_percentage(disp, spacing=SPACING)
    assert (result.percent, result.count, result.status) == (0.0, 0, STATUS_OK)
    assert sdlogj(disp, spacing=SPACING) == (0.0, STATUS_OK, "1")
    assert folding_percentage(np.zeros((2, 9, 9))).count == 0


def test_affine_fields():
    """u(x) = (A - I) x has det J = det A everywhere, borders included."""
    shape = (10, 9, 8)
    x = np.indices(shape, dtype=np.float64) * np.asarray(SPACING)[:, None, None, None]
    shear = np.array([[1.2, 0.3, 0.0], [0.0, 0.9, 0.1], [0.2, 0.0, 1.1]])
    disp = np.einsum("rc,c...->r...", shear - np.eye(3), x)
    assert folding_percentage(disp, spacing=SPACING).count == 0
    assert sdlogj(disp, spacing=SPACING).value == pytest.approx(0.0, abs=1e-12)
    flip = np.diag([-1.0, 1.0, 1.0])  # a mirror: every voxel folds
    disp = np.einsum("rc,c...->r...", flip - np.eye(3), x)
    result = folding_percentage(disp, spacing=SPACING)
    assert result.count == result.n_voxels == 10 * 9 * 8 and result.percent == 100.0
    # det = -1 everywhere is clipped to 1e-9 everywhere: a constant log, SD 0
    assert sdlogj(disp, spacing=SPACING).value == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), amplitude=st.floats(0.5, 4.0), two_d=st.booleans())
def test_matches_numpy_gradient_and_linalg_det_reference(seed, amplitude, two_d):
    rng = np.random.default_rng(seed)
    shape = (14, 12) if two_d else (14, 12, 9)
    spacing = SPACING[: len(shape)]
    disp = ndimage.gaussian_filter(
        rng.normal(size=(len(shape), *shape)), (0, *([1.5] * len(shape)))
    )
    disp *= (
        amplitude
        / max(np.abs(disp).max(), 1e-12)
        * np.asarray(spacing).reshape((-1,) + (1,) * len(shape))
    )
    det = _reference_det(disp, spacing)
    result = folding_percentage(disp, spacing=spacing)
    assert result.count == int(np.count_nonzero(det <= 0))
    expected_sd = np.log(np.clip(det, 1e-9, 1e9)).std()
    assert sdlogj(disp, spacing=spacing).value == pytest.approx(expected_sd, rel=1e-9, abs=1e-12)


def test_sdlogj_of_a_known_two_valued_determinant():
    shape = (20, 12, 10)
    box = (slice(None), slice(None))  # the whole (j, k) plane
    disp = _folded_field(shape, SPACING, (4, 14), box, slope=0.5)
    # det: 1 outside, 0.75 at i = 4 and 14, 0.5 for i = 5..13
    per_slice = np.ones(20)
    per_slice[[4, 14]] = 0.75
    per_slice[5:14] = 0.5
    assert sdlogj(disp, spacing=SPACING).value == pytest.approx(np.log(per_slice).std(), rel=1e-12)


def test_mask_restricts_the_count():
    shape = (20, 12, 10)
    box = (slice(2, 9), slice(3, 7))
    disp = _folded_field(shape, SPACING, (5, 12), box, slope=1.5)
    mask = np.zeros(shape, dtype=bool)
    mask[:8] = True  # keeps folded slices i = 6, 7
    result = folding_percentage(disp, spacing=SPACING, mask=mask)
    assert result.count == 2 * 7 * 4 and result.n_voxels == 8 * 12 * 10
    assert result.percent == pytest.approx(100.0 * 56 / 960)
    empty = np.zeros(shape, dtype=bool)
    r = folding_percentage(disp, spacing=SPACING, mask=empty)
    assert math.isnan(r.percent) and r.count == 0 and r.status == STATUS_EMPTY_MASK
    assert r.as_metric().status == STATUS_EMPTY_MASK
    s = sdlogj(disp, spacing=SPACING, mask=empty)
    assert math.isnan(s.value) and s.status == STATUS_EMPTY_MASK


def test_rejects_bad_input():
    with pytest.raises(BenchError, match=r"disp.*\(3, 8, 8\)"):
        folding_percentage(np.zeros((3, 8, 8)))
    with pytest.raises(BenchError, match="spacing"):
        folding_percentage(np.zeros((3, 4, 4, 4)), spacing=(1.0, 1.0))
    bad = np.zeros((2, 5, 5))
    bad[0, 1, 1] = np.inf
    with pytest.raises(BenchError, match="NaN or infinite"):
        sdlogj(bad)
    with pytest.raises(BenchError, match="mask"):
        folding_percentage(np.zeros((2, 5, 5)), mask=np.ones((5, 4), dtype=bool))
