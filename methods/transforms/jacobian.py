"""Jacobian of a displacement field: spatial gradient and determinant ``det(I + grad u)``.

One implementation serves training code (torch, batched, differentiable) and the metrics
(folding percentage, std of log-Jacobian; NumPy in, NumPy float64 out).

Derivatives follow :func:`numpy.gradient` with ``edge_order=1`` and physical spacing: central
differences in the interior, one-sided differences on the first and last voxel of each axis. Along an
axis of length 1 the derivative is defined as 0 (NumPy raises there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from benchmark.core.errors import BenchError
from methods.transforms._checks import check_spacing, check_tensor

__all__ = ["displacement_gradient", "jacobian_determinant"]


def _diff(values: torch.Tensor, dim: int, step: float) -> torch.Tensor:
    """Derivative along ``dim`` like ``np.gradient(values, step, axis=dim, edge_order=1)``."""
    n = values.shape[dim]
    if n == 1:
        return torch.zeros_like(values)
    first = values.narrow(dim, 1, 1) - values.narrow(dim, 0, 1)
    last = values.narrow(dim, n - 1, 1) - values.narrow(dim, n - 2, 1)
    if n == 2:
        return torch.cat([first, last], dim=dim) / step
    interior = (values.narrow(dim, 2, n - 2) - values.narrow(dim, 0, n - 2)) * 0.5
    return torch.cat([first, interior, last], dim=dim) / step


def displacement_gradient(
    disp: torch.Tensor, *, spacing: Sequence[float] | None = None
) -> torch.Tensor:
    """Spatial gradient of a displacement field, ``grad[:, c, d] = d u_c / d x_d`` (mm / mm).

    Parameters
    ----------
    disp : torch.Tensor, shape (N, ndim, *spatial), floating
        Displacement in mm along the array axes (voxels when ``spacing`` is None), ndim 2 or 3.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes.

    Returns
    -------
    torch.Tensor, shape (N, ndim, ndim, *spatial)
        Unitless derivatives; central differences inside, one-sided at the borders.
    """
    check_tensor("disp", disp)
    ndim = disp.dim() - 2
    if ndim not in (2, 3) or disp.shape[1] != ndim:
        raise BenchError(
            f"disp must have shape (N, ndim, *spatial) with ndim 2 or 3, got {tuple(disp.shape)}"
        )
    spacing_t = check_spacing(spacing, ndim)
    columns = [_diff(disp, 2 + d, spacing_t[d]) for d in range(ndim)]  # each (N, ndim, *spatial)
    return torch.stack(columns, dim=2)


def _determinant(grad: torch.Tensor) -> torch.Tensor:
    """``det(I + grad)`` per voxel for ``grad`` shaped (N, ndim, ndim, *spatial), written out."""
    ndim = grad.shape[1]
    a = [[grad[:, r, c] + (1.0 if r == c else 0.0) for c in range(ndim)] for r in range(ndim)]
    if ndim == 2:
        return a[0][0] * a[1][1] - a[0][1] * a[1][0]
    return (
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    )


def jacobian_determinant(
    disp: torch.Tensor | np.ndarray, *, spacing: Sequence[float] | None = None
) -> torch.Tensor | np.ndarray:
    """Jacobian determinant ``det(I + grad u)`` of the transformation ``x -> x + u(x)``.

    Parameters
    ----------
    disp : torch.Tensor of shape (N, ndim, *spatial), or np.ndarray of shape (ndim, *spatial)
        Displacement in mm along the array axes (voxels when ``spacing`` is None), ndim 2 or 3.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes.

    Returns
    -------
    torch.Tensor of shape (N, *spatial), or np.ndarray of shape (*spatial)
        The determinant: 1 for no deformation, ``< 1`` compression, ``> 1`` expansion, ``<= 0``
        folding. Torch input: same dtype and device, differentiable. NumPy input: computed and
        returned in float64.
    """
    if isinstance(disp, np.ndarray):
        if disp.ndim not in (3, 4) or disp.shape[0] != disp.ndim - 1:
            raise BenchError(
                f"disp must have shape (ndim, *spatial) with ndim 2 or 3, got {disp.shape}"
            )
        if not (np.issubdtype(disp.dtype, np.floating) or np.issubdtype(disp.dtype, np.integer)):
            raise BenchError(f"disp must have a real dtype, got {disp.dtype}")
        ndim = disp.shape[0]
        spacing_t = check_spacing(spacing, ndim)
        return _determinant_numpy(np.asarray(disp, dtype=np.float64), spacing_t)
    return _determinant(displacement_gradient(disp, spacing=spacing))


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


def _determinant_numpy(disp: np.ndarray, spacing: Sequence[float], *, slab: int = 16) -> np.ndarray:
    """The NumPy path of :func:`jacobian_determinant`: the same differences and determinant as
    the torch path, in float64, written with preallocated buffers and in-place products.

    The volume is processed in slabs of ``slab`` planes along axis 0 (plus one plane of halo on
    each side, so every difference is the one of the whole volume) to keep the working set in the
    CPU caches: together 6-10x faster than ``np.gradient`` + ``np.linalg.det`` (benchmarks/).
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
