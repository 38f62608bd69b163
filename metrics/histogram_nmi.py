"""Normalised mutual information from a hard joint histogram (evaluation, not the training loss)."""

from __future__ import annotations

import numpy as np

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from benchmark.core.normalize import percentile_normalize
from metrics._common import (
    NAN,
    STATUS_CONSTANT_IMAGE,
    STATUS_EMPTY_MASK,
    STATUS_OK,
    MetricValue,
    check_mask,
    check_same_shape,
)

#: Allowed values of ``definition``.
NMI_DEFINITIONS = ("paper", "studholme")


def _bin_indices(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """Bin index of each value on ``bins`` equal bins over ``[lo, hi]``, as ``np.histogram2d``.

    The last bin is closed on the right; a degenerate range (``lo == hi``) puts everything into
    bin 0. Uses the same edges and ``searchsorted`` rule as ``numpy.histogramdd``.
    """
    if not hi > lo:
        return np.zeros(x.shape, dtype=np.intp)
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.searchsorted(edges, x, side="right") - 1
    idx[x == edges[-1]] = bins - 1
    return idx


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0].astype(np.float64) / n
    return float(-(p * np.log(p)).sum())


def histogram_nmi(
    a: np.ndarray,
    b: np.ndarray,
    *,
    bins: int = 64,
    mask: np.ndarray | None = None,
    normalize: bool = True,
    definition: str = "paper",
) -> MetricValue:
    """Normalised mutual information of two images from a hard joint histogram.

    With ``definition="paper"`` (default) this is de Vos et al.'s (SPIE 2020, eq. 1)
    ``NMI = I(A, B) / (H(A) + H(B))`` with ``I = H(A) + H(B) - H(A, B)``: range ``[0, 0.5]``,
    0 for independent images and 0.5 when ``B`` is a one-to-one function of ``A`` at the
    histogram's resolution (e.g. ``NMI(A, A) = 0.5``). ``definition="studholme"`` gives the
    different, more common ``(H(A) + H(B)) / H(A, B)`` in ``[1, 2]`` (elastix's and ITK's
    "normalized mutual information"); the two are monotonically related
    (``paper = 1 - 1 / studholme``) but not equal. Entropies use the natural logarithm (the ratio
    does not depend on the base).

    The joint histogram counts every (masked) voxel once in one of ``bins x bins`` equal-width
    bins (no Parzen window; the training loss is a different, smooth estimate). With
    ``normalize=True`` each image is first rescaled with
    :func:`benchmark.core.normalize.percentile_normalize` (1st/99th percentiles, computed inside
    ``mask`` when given, clamped to ``[0, 1)``) and the bins cover ``[0, 1]``; with
    ``normalize=False`` the bins cover each image's own ``[min, max]`` over the masked voxels,
    exactly as ``numpy.histogram2d`` with its default range.

    Used as ``nmi_before`` (fixed vs moving) and ``nmi`` (fixed vs warped).

    Parameters
    ----------
    a, b : ndarray, same shape (*spatial)
        Intensity images (fixed and moving or warped), finite values.
    bins : int
        Bins per image axis, >= 2; 64 as in the paper.
    mask : ndarray of bool, same shape, optional
        Voxels that enter the histogram (and the normalisation percentiles).
    normalize : bool
        Percentile-normalise both images first (default).
    definition : {"paper", "studholme"}
        Which normalisation of the mutual information, see above.

    Returns
    -------
    MetricValue
        Unit ``"1"``. Edge cases: an empty ``mask`` gives NaN with status ``"empty-mask"``. When
        *both* images put every voxel into a single bin (constant images; after percentile
        normalisation this includes images whose 1st and 99th percentiles are equal), NMI is
        ``0 / 0`` and the result is NaN with status ``"constant-image"``. When only *one* image is
        constant, ``I = 0`` and ``H(A) + H(B) = H(A, B) > 0``, so the value is well defined:
        0 (``"paper"``) or 1 (``"studholme"``), status ``"ok"``.

    Raises
    ------
    BenchError
        Shape mismatch, non-finite intensities, bad ``bins`` or ``definition``, a mask that is not
        boolean or has another shape.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((16, 16))
    >>> histogram_nmi(image, image)  # identical images: I = H_A = H_B, so I / (H_A + H_B) = 0.5
    MetricValue(value=0.5, status='ok', unit='1')
    >>> histogram_nmi(image, rng.random((16, 16))).value < 0.5
    True
    """
    check_choice("definition", definition, NMI_DEFINITIONS)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise BenchError(f"bins: expected an integer >= 2, got {bins!r}")
    x = np.asarray(a)
    y = np.asarray(b)
    check_same_shape(x, y, ("a", "b"))
    if mask is not None:
        m = check_mask(mask, x.shape)
        if not m.any():
            return MetricValue(NAN, STATUS_EMPTY_MASK, "1")
    else:
        m = None
    for name, arr in (("a", x), ("b", y)):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise BenchError(f"{name}: expected finite numeric intensities (dtype {arr.dtype})")
    if normalize:
        x = percentile_normalize(x, mask=m)
        y = percentile_normalize(y, mask=m)
    xv = (x[m] if m is not None else x.ravel()).astype(np.float64)
    yv = (y[m] if m is not None else y.ravel()).astype(np.float64)
    if normalize:
        ix = _bin_indices(xv, bins, 0.0, 1.0)
        iy = _bin_indices(yv, bins, 0.0, 1.0)
    else:
        ix = _bin_indices(xv, bins, float(xv.min()), float(xv.max()))
        iy = _bin_indices(yv, bins, float(yv.min()), float(yv.max()))
    n = xv.size
    joint = np.bincount(ix * bins + iy, minlength=bins * bins)
    h_ab = _entropy(joint, n)
    h_a = _entropy(np.bincount(ix, minlength=bins), n)
    h_b = _entropy(np.bincount(iy, minlength=bins), n)
    if h_ab == 0.0:  # both images in a single bin: H(A) = H(B) = H(A, B) = 0
        return MetricValue(NAN, STATUS_CONSTANT_IMAGE, "1")
    if definition == "paper":
        value = (h_a + h_b - h_ab) / (h_a + h_b)
    else:
        value = (h_a + h_b) / h_ab
    return MetricValue(float(value), STATUS_OK, "1")
