"""Intensity normalisation of the paper: percentile rescaling to [0, 1) (section 3)."""

from __future__ import annotations

import numpy as np

from benchmark.errors import BenchError

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
