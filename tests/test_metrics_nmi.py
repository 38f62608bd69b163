"""Histogram NMI: direct np.histogram2d reference, analytic values, symmetry, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from benchmark.core.normalize import percentile_normalize
from metrics import STATUS_CONSTANT_IMAGE, STATUS_EMPTY_MASK, STATUS_OK, histogram_nmi


def _reference(a, b, bins=64, normalize=True, mask=None):
    """Independent float64 computation: np.histogram2d, then entropies in bits."""
    if normalize:
        a = percentile_normalize(a, mask=mask)
        b = percentile_normalize(b, mask=mask)
    if mask is not None:
        a, b = a[mask], b[mask]
    kwargs = {"range": [[0.0, 1.0], [0.0, 1.0]]} if normalize else {}
    joint, _, _ = np.histogram2d(
        a.ravel().astype(np.float64), b.ravel().astype(np.float64), bins=bins, **kwargs
    )
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)

    def h(q):
        q = q[q > 0]
        return -np.sum(q * np.log2(q))

    h_a, h_b, h_ab = h(pa), h(pb), h(p.ravel())
    return (h_a + h_b - h_ab) / (h_a + h_b), (h_a + h_b) / h_ab


def _images(seed, shape=(20, 18, 9)):
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 50.0, size=shape).astype(np.float32)
    b = (0.6 * a + rng.normal(0, 30, size=shape)).astype(np.float32)
    return a, b


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bins=st.sampled_from([8, 32, 64]), normalize=st.booleans())
def test_matches_histogram2d_reference_and_is_symmetric(seed, bins, normalize):
    a, b = _images(seed)
    paper, studholme = _reference(a, b, bins=bins, normalize=normalize)
    r = histogram_nmi(a, b, bins=bins, normalize=normalize)
    assert r.status == STATUS_OK and r.unit == "1"
    assert r.value == pytest.approx(paper, rel=1e-10)
    assert histogram_nmi(a, b, bins=bins, normalize=normalize, definition="studholme").value == (
        pytest.approx(studholme, rel=1e-10)
    )
    assert histogram_nmi(b, a, bins=bins, normalize=normalize).value == pytest.approx(
        r.value, rel=1e-12
    )
    assert 0.0 <= r.value <= 0.5


def test_masked_nmi_matches_reference():
    a, b = _images(7)
    mask = np.zeros(a.shape, dtype=bool)
    mask[3:15, 2:12, 1:8] = True
    paper, _ = _reference(a, b, mask=mask)
    assert histogram_nmi(a, b, mask=mask).value == pytest.approx(paper, rel=1e-10)
    assert histogram_nmi(a, b, mask=mask).value != pytest.approx(histogram_nmi(a, b).value)


def test_identical_images_give_one_half_and_two():
    a, _ = _images(1)
    assert histogram_nmi(a, a).value == pytest.approx(0.5, abs=1e-12)
    assert histogram_nmi(a, a, definition="studholme").value == pytest.approx(2.0, abs=1e-12)
    # scaling by a power of two is exact in floating point: the normalised images are identical
    assert histogram_nmi(a, 4.0 * a).value == pytest.approx(0.5, abs=1e-12)


def test_analytic_binary_images():
    a = np.zeros((8, 8), dtype=np.float32)
    a[:4] = 1.0
    b = np.zeros((8, 8), dtype=np.float32)
    b[:, :4] = 1.0  # independent of a: I = 0
    assert histogram_nmi(a, b, normalize=False).value == pytest.approx(0.0, abs=1e-15)
    assert histogram_nmi(a, b, normalize=False, definition="studholme").value == pytest.approx(1.0)
    assert histogram_nmi(a, 1.0 - a, normalize=False).value == pytest.approx(0.5)
    # 3/4 of the voxels agree: I = H(A) + H(B) - H(A,B) with p = (3/8, 1/8, 1/8, 3/8)
    c = a.copy()
    c[:2, :4] = 0.0
    c[4:6, :4] = 1.0
    p = np.array([3, 1, 1, 3]) / 8
    expected = (2 * math.log(2) + np.sum(p * np.log(p))) / (2 * math.log(2))
    assert histogram_nmi(a, c, normalize=False).value == pytest.approx(expected, rel=1e-12)


def test_exact_invariance_to_a_positive_affine_remapping_without_normalisation():
    """Integer-valued images and an exactly representable affine map keep every bin assignment.

    (NMI is only approximately invariant to general monotone remappings with fixed-width bins,
    so that is not asserted.)
    """
    rng = np.random.default_rng(2)
    a = rng.integers(0, 64, size=(16, 16, 8)).astype(np.float64)
    b = np.clip(a + rng.integers(-5, 6, size=a.shape), 0, 63)
    base = histogram_nmi(a, b, normalize=False).value
    assert histogram_nmi(2.0 * a + 10.0, b, normalize=False).value == pytest.approx(base, rel=1e-12)
    assert histogram_nmi(a, 4.0 * b - 8.0, normalize=False).value == pytest.approx(base, rel=1e-12)


def test_constant_images():
    a, _ = _images(3)
    const = np.full(a.shape, 5.0, dtype=np.float32)
    both = histogram_nmi(const, const * 2)
    assert math.isnan(both.value) and both.status == STATUS_CONSTANT_IMAGE
    assert histogram_nmi(const, const, normalize=False).status == STATUS_CONSTANT_IMAGE
    assert histogram_nmi(const, const, definition="studholme").status == STATUS_CONSTANT_IMAGE
    one = histogram_nmi(a, const)  # only one constant: I = 0, defined
    assert one.status == STATUS_OK and one.value == 0.0
    assert histogram_nmi(const, a, definition="studholme").value == pytest.approx(1.0)


def test_empty_mask_is_nan_with_status():
    a, b = _images(4)
    r = histogram_nmi(a, b, mask=np.zeros(a.shape, dtype=bool))
    assert math.isnan(r.value) and r.status == STATUS_EMPTY_MASK


def test_rejects_bad_input():
    a, b = _images(5)
    with pytest.raises(BenchError, match="definition"):
        histogram_nmi(a, b, definition="elastix")
    with pytest.raises(BenchError, match="bins"):
        histogram_nmi(a, b, bins=1)
    with pytest.raises(BenchError, match=r"\(20, 18, 9\).*\(20, 18\)"):
        histogram_nmi(a, b[..., 0])
    with pytest.raises(BenchError, match="mask"):
        histogram_nmi(a, b, mask=np.ones((2, 2), dtype=bool))
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(BenchError, match="finite"):
        histogram_nmi(bad, b)
