"""Intensity normalisation of the paper: percentile rescaling to [0, 1) (section 3)."""

from __future__ import annotations

import numpy as np

from benchmark.core.errors import BenchError

#: Largest float32 below 1: the paper's interval [0, 1) is closed at 0 and open at 1.
ONE_BELOW = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def percentile_normalize(
    array: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    lower: float = 1.0,
    upper: float = 99.0,
) -> np.ndarray:
    """Rescale intensities by two percentiles and clamp to ``[0, 1)``.

    ``(x - p_lower) / (p_upper - p_lower)`` with the percentiles taken over the whole image, or over
    the voxels where ``mask`` is true; the result is clipped to ``[0, ONE_BELOW]``.

    Parameters
    ----------
    array : ndarray, any shape
        Intensities. NaN voxels are not allowed.
    mask : ndarray of bool, same shape, optional
        Voxels that define the percentiles (all voxels are rescaled).
    lower, upper : float
        Percentiles in ``[0, 100]``, ``lower < upper``. The paper uses 1 and 99.

    Returns
    -------
    ndarray of float32, same shape
        Values in ``[0, 1)``. Edge cases: a constant image (or constant inside the mask, or
        ``p_upper == p_lower``) gives all zeros; an empty mask falls back to the whole image.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise BenchError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}")
    x = np.asarray(array, dtype=np.float32)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != x.shape:
            raise BenchError(f"mask shape {mask.shape} does not match image shape {x.shape}")
    if x.size == 0:
        return np.zeros_like(x)
    if not np.isfinite(x).all():
        raise BenchError("image has NaN or infinite voxels; cannot normalise")
    values = x[mask] if mask is not None and mask.any() else x.ravel()
    lo, hi = np.percentile(values.astype(np.float64), [lower, upper])
    if not hi > lo:
        return np.zeros_like(x)
    out = (x.astype(np.float64) - lo) / (hi - lo)
    return np.clip(out, 0.0, ONE_BELOW).astype(np.float32)


#: Intensities further than ``OUTLIER_FACTOR`` times the ``p1..p99`` range outside that range are
#: outliers (a single 1e30 voxel, a corrupted slice). The harness clips them to the bounds on load
#: (``benchmark.core.pairs.PairSpec.load``), because the cubic B-spline warp spreads one huge value over
#: its neighbourhood; data validation warns about every image that gets clipped.
OUTLIER_PERCENTILES = (1.0, 99.0)
OUTLIER_FACTOR = 10.0


def outlier_bounds(array: np.ndarray) -> tuple[float, float] | None:
    """``(low, high)`` clip bounds for outlier intensities of ``array``, or None when there is none.

    ``low = p1 - F (p99 - p1)`` and ``high = p99 + F (p99 - p1)`` with ``F =``
    :data:`OUTLIER_FACTOR`. None when no finite voxel lies outside the bounds, when ``p99 == p1``
    (no range to judge by) or when the image has non-finite voxels (refused elsewhere).
    """
    x = np.asarray(array)
    if x.size == 0:
        return None
    lo_p, hi_p = np.percentile(x, OUTLIER_PERCENTILES)
    if not (np.isfinite(lo_p) and np.isfinite(hi_p)) or not hi_p > lo_p:
        return None
    span = float(hi_p - lo_p)
    low, high = float(lo_p) - OUTLIER_FACTOR * span, float(hi_p) + OUTLIER_FACTOR * span
    if x.min() >= low and x.max() <= high:
        return None
    return low, high


def clip_outliers(array: np.ndarray) -> np.ndarray:
    """``array`` with outlier intensities (:func:`outlier_bounds`) clipped; unchanged otherwise."""
    bounds = outlier_bounds(array)
    if bounds is None:
        return array
    return np.clip(array, *bounds).astype(array.dtype, copy=False)
