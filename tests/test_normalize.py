"""Percentile normalisation (paper section 3): against a float64 reference, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmark.core.errors import BenchError
from benchmark.core.normalize import ONE_BELOW, percentile_normalize


def reference(x: np.ndarray, mask=None, lower=1.0, upper=99.0) -> np.ndarray:
    """Dense float64 version of the definition: (x - p1) / (p99 - p1), clipped to [0, 1)."""
    x = np.asarray(x, dtype=np.float64)
    values = np.sort(x[mask] if mask is not None and mask.any() else x.ravel())

    # percentile by linear interpolation between order statistics (numpy's default method)
    def pct(q):
        pos = q / 100 * (values.size - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, values.size - 1)
        return values[lo] + (pos - lo) * (values[hi] - values[lo])

    p_lo, p_hi = pct(lower), pct(upper)
    if p_hi <= p_lo:
        return np.zeros(x.shape)
    return np.clip((x - p_lo) / (p_hi - p_lo), 0.0, 1.0 - 2.0**-24)


def test_one_below_is_largest_float32_below_one():
    assert ONE_BELOW == 1.0 - 2.0**-24
    assert np.float32(ONE_BELOW) < 1.0
    assert np.nextafter(np.float32(ONE_BELOW), np.float32(2.0)) == np.float32(1.0)


def test_matches_reference_and_range():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 50.0, (20, 18, 7)).astype(np.float32)
    out = percentile_normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, reference(x), atol=2e-7)
    assert out.min() == 0.0 and out.max() == np.float32(ONE_BELOW) and out.max() < 1.0
    # about 1 % of voxels at each clamp
    assert 0.005 < (out == 0).mean() < 0.02 and 0.005 < (out == out.max()).mean() < 0.02


def test_linear_ramp_exact():
    x = np.arange(101, dtype=np.float32)  # p1 = 1, p99 = 99
    out = percentile_normalize(x)
    np.testing.assert_allclose(out[1:100], (np.arange(1, 100) - 1) / 98, atol=1e-7)
    assert out[0] == 0.0 and out[100] == np.float32(ONE_BELOW)


def test_custom_percentiles():
    x = np.arange(101, dtype=np.float32)
    out = percentile_normalize(x, lower=0, upper=100)
    np.testing.assert_allclose(out[:100], np.arange(100) / 100, atol=1e-7)
    assert out[100] == np.float32(ONE_BELOW)


@pytest.mark.parametrize("value", [0.0, 7.5, -3.0, 1e6])
def test_constant_image_is_zero_not_nan(value):
    out = percentile_normalize(np.full((4, 5, 3), value, np.float32))
    assert out.dtype == np.float32 and not np.isnan(out).any() and (out == 0).all()


def test_nearly_constant_image():
    x = np.zeros((10, 10, 10), np.float32)
    x[0, 0, 0] = 1.0  # one outlier: p1 == p99 == 0
    out = percentile_normalize(x)
    assert (out == 0).all()


def test_mask_defines_the_percentiles():
    rng = np.random.default_rng(1)
    x = np.zeros((16, 16, 4), np.float32)
    mask = np.zeros(x.shape, bool)
    mask[4:12, 4:12] = True
    x[mask] = rng.uniform(100.0, 200.0, mask.sum())
    out = percentile_normalize(x, mask=mask)
    np.testing.assert_allclose(out, reference(x, mask), atol=2e-7)
    assert (out[~mask] == 0).all()  # background below p1 of the mask
    inside = out[mask]
    assert 0.005 < (inside == 0).mean() < 0.03 and inside.max() == np.float32(ONE_BELOW)
    # without the mask the zero background dominates the low percentile
    assert not np.allclose(percentile_normalize(x), out)


def test_constant_inside_mask_is_zero():
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    mask = np.zeros(x.shape, bool)
    mask[0, 0, 0] = True
    assert (percentile_normalize(x, mask=mask) == 0).all()


def test_empty_mask_falls_back_to_whole_image():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 7, 5)).astype(np.float32)
    out = percentile_normalize(x, mask=np.zeros(x.shape, bool))
    np.testing.assert_array_equal(out, percentile_normalize(x))


def test_empty_array():
    out = percentile_normalize(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(bad):
    x = np.ones((4, 4, 4), np.float32)
    x[0, 1, 2] = bad
    x[1] = 2.0
    with pytest.raises(BenchError, match="NaN or infinite"):
        percentile_normalize(x)


def test_nan_outside_mask_rejected():
    x = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    x[3, 3, 3] = np.nan
    mask = np.zeros(x.shape, bool)
    mask[:2] = True
    with pytest.raises(BenchError, match="NaN"):
        percentile_normalize(x, mask=mask)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lower": 99.0, "upper": 1.0}, "0 <= lower < upper <= 100"),
        ({"lower": -1.0}, "0 <= lower < upper <= 100"),
        ({"upper": 101.0}, "0 <= lower < upper <= 100"),
        (
            {"mask": np.ones((2, 2), bool)},
            r"mask shape \(2, 2\) does not match image shape \(3, 3\)",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(BenchError, match=message):
        percentile_normalize(np.ones((3, 3), np.float32), **kwargs)


@settings(max_examples=80, deadline=None)
@given(
    x=arrays(
        np.float32,
        st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)),
        elements=st.floats(-1e4, 1e4, width=32),
    )
)
def test_properties(x):
    out = percentile_normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() < 1.0
    np.testing.assert_allclose(out, reference(x), atol=1e-5)
    # monotone: the order of intensities is kept (ties allowed)
    order = np.argsort(x.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order]) >= 0).all()
    # invariant to a positive rescaling (MR intensities are arbitrary); x4 is exact in floats
    np.testing.assert_allclose(percentile_normalize(x * 4.0), out, atol=1e-6)


def test_invariant_to_intensity_shift_and_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(300.0, 40.0, (9, 8, 7)).astype(np.float32)
    np.testing.assert_allclose(
        percentile_normalize(x * 2.5 + 1000.0), percentile_normalize(x), atol=1e-4
    )
