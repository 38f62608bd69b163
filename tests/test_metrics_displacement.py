"""Displacement error: direct float64 reference, constant offsets, missing ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from metrics import STATUS_EMPTY_MASK, STATUS_NO_GROUND_TRUTH, STATUS_OK, displacement_error


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), two_d=st.booleans(), use_mask=st.booleans())
def test_matches_direct_float64_computation(seed, two_d, use_mask):
    rng = np.random.default_rng(seed)
    shape = (9, 8) if two_d else (9, 8, 5)
    u = rng.normal(0, 3, size=(len(shape), *shape)).astype(np.float32)
    t = rng.normal(0, 3, size=(len(shape), *shape)).astype(np.float32)
    mask = rng.random(shape) < 0.5 if use_mask else None
    if mask is not None:
        mask.flat[0] = True
    err = np.linalg.norm(u.astype(np.float64) - t.astype(np.float64), axis=0)
    sel = err[mask] if mask is not None else err.ravel()
    r = displacement_error(u, t, mask=mask)
    assert r.status == STATUS_OK and r.unit == "mm"
    assert r.mean == pytest.approx(sel.mean(), rel=1e-12)
    assert r.median == pytest.approx(np.median(sel), rel=1e-12)
    assert r.p95 == pytest.approx(np.percentile(sel, 95), rel=1e-12)
    assert r.max == pytest.approx(sel.max(), rel=1e-12)
    assert displacement_error(t, u, mask=mask) == r  # symmetric


def test_constant_offset_and_identical_fields():
    t = np.random.default_rng(0).normal(size=(3, 6, 5, 4))
    u = t.copy()
    u[0] += 3.0
    u[1] -= 4.0
    r = displacement_error(u, t)
    assert r.mean == pytest.approx(5.0) and r.median == pytest.approx(5.0)
    assert r.p95 == pytest.approx(5.0) and r.max == pytest.approx(5.0)
    assert r.value == r.mean and r.as_metric().unit == "mm"
    zero = displacement_error(t, t)
    assert (zero.mean, zero.median, zero.p95, zero.max) == (0.0, 0.0, 0.0, 0.0)


def test_missing_ground_truth_and_empty_mask():
    u = np.zeros((3, 4, 4, 4))
    r = displacement_error(u, None)
    assert r.status == STATUS_NO_GROUND_TRUTH and all(math.isnan(v) for v in r[:4])
    e = displacement_error(u, u, mask=np.zeros((4, 4, 4), dtype=bool))
    assert e.status == STATUS_EMPTY_MASK and math.isnan(e.mean)
    assert e.as_metric().status == STATUS_EMPTY_MASK


def test_rejects_bad_input():
    u = np.zeros((3, 4, 4, 4))
    with pytest.raises(BenchError, match=r"\(3, 4, 4, 4\).*\(3, 4, 4, 5\)"):
        displacement_error(u, np.zeros((3, 4, 4, 5)))
    with pytest.raises(BenchError, match="true_disp"):
        displacement_error(u, np.zeros((2, 4, 4, 4)))
    with pytest.raises(BenchError, match="mask"):
        displacement_error(u, u, mask=np.ones((4, 4), dtype=bool))
