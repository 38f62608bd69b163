"""Target registration error (TRE) of corresponding landmarks, in mm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.core.errors import BenchError
from metrics._common import (
    NAN,
    STATUS_NO_LANDMARKS,
    STATUS_OK,
    MetricValue,
    check_field,
    check_spacing,
)


def target_registration_error(
    fixed_points: np.ndarray | None,
    moving_points: np.ndarray | None,
    disp: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
) -> MetricValue:
    """Mean Euclidean distance in mm between mapped fixed landmarks and their moving partners.

    A fixed landmark ``p`` (voxel coordinates on the fixed grid) is mapped by the estimated field
    to ``p * s + u(p)`` mm (project convention: ``u`` on the fixed grid, fixed -> moving, mm along
    the array axes); its error is ``|| p * s + u(p) - q * s ||`` with ``q`` the corresponding
    moving landmark (voxel coordinates on the moving grid, which is the fixed grid). ``u(p)`` is
    interpolated linearly between voxel centres (``scipy.ndimage.map_coordinates``, order 1).
    Computed in float64.

    Parameters
    ----------
    fixed_points, moving_points : ndarray, shape (n, ndim), or None
        Corresponding points in voxel index coordinates ``(i, j[, k])`` (0-based, voxel centres at
        integers), row ``r`` of one matching row ``r`` of the other.
    disp : ndarray, shape (ndim, *spatial)
        Estimated displacement, mm.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1.

    Returns
    -------
    MetricValue
        Mean TRE in mm (unit ``"mm"``); the identity field gives the landmarks' initial distance.
        No landmarks (``None`` or zero rows) give NaN with status ``"no-landmarks"``.

    Raises
    ------
    BenchError
        Point arrays of different or wrong shapes (both printed), non-finite points, points
        outside the grid ``[0, n - 1]`` along an axis.

    Examples
    --------
    >>> fixed_points = np.array([[1.0, 1.0]])
    >>> moving_points = np.array([[2.0, 1.0]])  # one voxel further along i
    >>> target_registration_error(fixed_points, moving_points, np.zeros((2, 4, 4)), spacing=(2.0, 1.0))
    MetricValue(value=2.0, status='ok', unit='mm')
    """
    from scipy.ndimage import map_coordinates

    u = check_field(disp, name="disp")
    nd = u.ndim - 1
    s = np.asarray(check_spacing(spacing, nd), dtype=np.float64)
    if fixed_points is None or moving_points is None:
        return MetricValue(NAN, STATUS_NO_LANDMARKS, "mm")
    p = np.asarray(fixed_points, dtype=np.float64)
    q = np.asarray(moving_points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != nd or p.shape != q.shape:
        raise BenchError(
            f"landmarks: fixed points of shape {p.shape} and moving points of shape {q.shape}; "
            f"expected two arrays of shape (n, {nd})"
        )
    if len(p) == 0:
        return MetricValue(NAN, STATUS_NO_LANDMARKS, "mm")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise BenchError("landmarks: non-finite coordinates")
    upper = np.asarray(u.shape[1:], dtype=np.float64) - 1
    outside = np.any((p < 0) | (p > upper), axis=1)
    if outside.any():
        raise BenchError(
            f"landmarks: fixed point {p[outside][0].tolist()} is outside the grid of shape "
            f"{u.shape[1:]} (voxel coordinates must lie in [0, n - 1])"
        )
    u_at = np.stack(
        [map_coordinates(u[c].astype(np.float64), p.T, order=1, mode="nearest") for c in range(nd)],
        axis=1,
    )
    err = np.linalg.norm(p * s + u_at - q * s, axis=1)
    return MetricValue(float(err.mean()), STATUS_OK, "mm")
