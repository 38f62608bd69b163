"""Jacobian of a displacement field in torch: spatial gradient and determinant ``det(I + grad u)``,
batched and differentiable, for training code.

Derivatives follow :func:`numpy.gradient` with ``edge_order=1`` and physical spacing: central
differences in the interior, one-sided differences on the first and last voxel of each axis. Along an
axis of length 1 the derivative is defined as 0 (NumPy raises there). The metrics' NumPy version
(:func:`metrics.jacobian.jacobian_determinant`) uses the same differences; a test checks that
the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    disp: torch.Tensor, *, spacing: Sequence[float] | None = None
) -> torch.Tensor:
    """Jacobian determinant ``det(I + grad u)`` of the transformation ``x -> x + u(x)``.

    Parameters
    ----------
    disp : torch.Tensor, shape (N, ndim, *spatial), floating
        Displacement in mm along the array axes (voxels when ``spacing`` is None), ndim 2 or 3.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes.

    Returns
    -------
    torch.Tensor, shape (N, *spatial)
        The determinant, same dtype and device, differentiable: 1 for no deformation, ``< 1``
        compression, ``> 1`` expansion, ``<= 0`` folding.
    """
    return _determinant(displacement_gradient(disp, spacing=spacing))
