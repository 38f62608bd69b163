"""Jacobian determinant of a displacement field in NumPy (float64): ``det(I + grad u)`` of
``x -> x + u(x)``, the input of the folding metrics and SDlogJ.

Derivatives follow :func:`numpy.gradient` with ``edge_order=1`` and physical spacing: central
differences in the interior, one-sided differences on the first and last voxel of each axis; along
an axis of length 1 the derivative is 0 (NumPy raises there). The same differences as the torch
version that training uses (:func:`methods.transforms.jacobian_determinant`), which a test
checks; this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metrics._common import check_field, check_spacing

__all__ = ["jacobian_determinant"]


def jacobian_determinant(disp: np.ndarray, *, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Jacobian determinant of ``x -> x + u(x)`` at every voxel.

    Parameters
    ----------
    disp : ndarray, shape (ndim, *spatial), ndim 2 or 3
        Displacement in mm along the array axes (voxels when ``spacing`` is None), finite.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1.

    Returns
    -------
    ndarray of float64, shape (*spatial)
        1 for no deformation, ``< 1`` compression, ``> 1`` expansion, ``<= 0`` folding.

    Raises
    ------
    BenchError
        A field of another shape, a non-numeric dtype, non-finite values, bad spacing.

    Examples
    --------
    >>> u = np.zeros((2, 3, 4))
    >>> u[0] = 0.5 * np.arange(3)[:, None]  # stretched by 1.5 along axis 0
    >>> float(jacobian_determinant(u)[1, 2])
    1.5
    """
    u = check_field(disp, name="disp")
    s = check_spacing(spacing, u.ndim - 1)
    return _determinant(np.asarray(u, dtype=np.float64), tuple(float(v) for v in s))


def _gradient_into(out: np.ndarray, values: np.ndarray, axis: int, step: float) -> None:
    """``out[...] = np.gradient(values, step, axis=axis, edge_order=1)`` without temporaries
    (0 along an axis of length 1)."""
    n = values.shape[axis]
    if n == 1:
        out[...] = 0.0
        return

    def sl(start, stop):
        index = [slice(None)] * values.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    if n > 2:
        np.subtract(values[sl(2, n)], values[sl(0, n - 2)], out=out[sl(1, n - 1)])
        out[sl(1, n - 1)] *= 0.5 / step
    np.subtract(values[sl(1, 2)], values[sl(0, 1)], out=out[sl(0, 1)])
    np.subtract(values[sl(n - 1, n)], values[sl(n - 2, n - 1)], out=out[sl(n - 1, n)])
    out[sl(0, 1)] /= step
    out[sl(n - 1, n)] /= step


def _determinant(disp: np.ndarray, spacing: Sequence[float], *, slab: int = 16) -> np.ndarray:
    """:func:`jacobian_determinant` of a checked float64 field, written with preallocated buffers
    and in-place products.

    The volume is processed in slabs of ``slab`` planes along axis 0 (plus one plane of halo on
    each side, so every difference is the one of the whole volume) to keep the working set in the
    CPU caches: together 6-10x faster than ``np.gradient`` + ``np.linalg.det`` (perf/).
    """
    n0 = disp.shape[1]
    out = np.empty(disp.shape[1:], dtype=np.float64)
    for start in range(0, n0, slab):
        stop = min(n0, start + slab)
        lo, hi = max(0, start - 1), min(n0, stop + 1)
        det = _determinant_block(disp[:, lo:hi], spacing)
        out[start:stop] = det[start - lo : stop - lo]
    return out


def _determinant_block(disp: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    ndim = disp.shape[0]
    a = np.empty((ndim, ndim, *disp.shape[1:]), dtype=np.float64)
    for r in range(ndim):
        for c in range(ndim):
            _gradient_into(a[r, c], disp[r], c, float(spacing[c]))
        a[r, r] += 1.0
    if ndim == 2:
        det = a[0, 0] * a[1, 1]
        det -= a[0, 1] * a[1, 0]
        return det
    tmp = np.empty(disp.shape[1:], dtype=np.float64)
    minor = np.multiply(a[1, 1], a[2, 2])
    minor -= np.multiply(a[1, 2], a[2, 1], out=tmp)
    det = np.multiply(a[0, 0], minor)
    np.multiply(a[1, 0], a[2, 2], out=minor)
    minor -= np.multiply(a[1, 2], a[2, 0], out=tmp)
    minor *= a[0, 1]
    det -= minor
    np.multiply(a[1, 0], a[2, 1], out=minor)
    minor -= np.multiply(a[1, 1], a[2, 0], out=tmp)
    minor *= a[0, 2]
    det += minor
    return det
