"""Cubic B-spline free-form deformation (FFD): control-point displacements to a dense field.

Grid layout (per axis ``d`` with image size ``n`` and control-point spacing ``s`` in voxels):

- control point ``k = 0 .. G - 1`` sits at voxel position ``(k - 1) * s``: point 1 is on voxel 0, and
  there is one extra point before the image and enough after it that the cubic support (4 points)
  covers every voxel, ``G = ceil((n - 1) / s) + 3`` (:func:`control_grid_shape`);
- the field at voxel ``x`` is the tensor product sum
  ``u(x) = sum_k c[k] prod_d beta3(x_d / s_d + 1 - k_d)`` with the cubic B-spline ``beta3``.

The control values are B-spline *coefficients*, not samples: the field is the smooth B-spline
approximation of them. It reproduces constant and linear (affine) fields exactly when the control
values are sampled from them at the control-point positions. With ``s = 1`` along an axis there is a
control point on every voxel (plus one on each side) and the field there is
``(c[x] + 4 c[x + 1] + c[x + 2]) / 6``: still smoothed between neighbours. PoolNet's ``8 x 8 x 1`` grid
therefore has one control plane per slice plus one above and below the volume, and each slice's field
mixes its own control plane (weight 2/3) with its neighbours' (1/6 each).

Implementation: the sum is separable, so it is one ``(n x G)`` basis-matrix product per axis (the
matrices are cached in float64 per ``(n, s)``), exact to the rounding of the working dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import BenchError
from methods.transforms._checks import check_int_tuple, check_tensor

__all__ = ["control_grid_shape", "bspline_ffd", "ffd_basis_matrix", "BSplineFFD"]


def _grid_size(n: int, s: int) -> int:
    return (n - 1 + s - 1) // s + 3


def control_grid_shape(shape: Sequence[int], grid_spacing: Sequence[int]) -> tuple[int, ...]:
    """Size of the control grid for an image of ``shape`` with a control point every ``grid_spacing``.

    Parameters
    ----------
    shape : sequence of int
        Image size in voxels along the array axes, e.g. ``(128, 128, 6)``.
    grid_spacing : sequence of int
        Control-point spacing in voxels along the array axes, e.g. ``(8, 8, 8)`` or ``(8, 8, 1)``.

    Returns
    -------
    tuple of int
        ``ceil((n - 1) / s) + 3`` per axis, e.g. ``(19, 19, 8)`` for ``(128, 128, 6)`` and ``(8, 8, 1)``.
    """
    shape_t = check_int_tuple("shape", shape)
    spacing_t = check_int_tuple("grid_spacing", grid_spacing, len(shape_t))
    return tuple(_grid_size(n, s) for n, s in zip(shape_t, spacing_t, strict=True))


@functools.lru_cache(maxsize=64)
def _basis_cached(n: int, s: int) -> np.ndarray:
    size = _grid_size(n, s)
    basis = np.zeros((n, size), dtype=np.float64)
    x = np.arange(n)
    base, rem = np.divmod(x, s)  # control coordinate x / s + 1 = (base + 1) + rem / s
    t = rem / s
    weights = (
        (1 - t) ** 3 / 6,
        (3 * t**3 - 6 * t**2 + 4) / 6,
        (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
        t**3 / 6,
    )
    for k, w in enumerate(weights):
        index = base + k  # taps (base + 1) - 1 .. (base + 1) + 2
        inside = index < size
        # The only tap that can fall past the grid is the last one at t == 0, where its weight is 0.
        assert np.all(w[~inside] == 0.0)
        basis[x[inside], index[inside]] = w[inside]
    basis.setflags(write=False)
    return basis


def ffd_basis_matrix(n: int, grid_spacing: int) -> np.ndarray:
    """The ``(n, G)`` float64 matrix ``B`` of one axis: ``field = B @ control`` along that axis.

    ``B[x, k] = beta3(x / grid_spacing + 1 - k)``; rows sum to 1 (partition of unity).
    """
    (n,) = check_int_tuple("n", (n,))
    (s,) = check_int_tuple("grid_spacing", (grid_spacing,))
    return _basis_cached(n, s)


def _apply_bases(control: torch.Tensor, bases: Sequence[torch.Tensor]) -> torch.Tensor:
    out = control
    for axis, basis in enumerate(bases):
        out = torch.matmul(out.movedim(2 + axis, -1), basis.T).movedim(-1, 2 + axis)
    return out.contiguous()


def _check_control(control: torch.Tensor, shape: tuple[int, ...], spacing: tuple[int, ...]) -> None:
    check_tensor("control", control)
    ndim = len(shape)
    grid = tuple(_grid_size(n, s) for n, s in zip(shape, spacing, strict=True))
    if control.dim() != ndim + 2 or tuple(control.shape[2:]) != grid:
        raise BenchError(
            f"control must have shape (N, C, {', '.join(map(str, grid))}) for shape={shape} and "
            f"grid_spacing={spacing} (see control_grid_shape), got {tuple(control.shape)}"
        )


def bspline_ffd(
    control: torch.Tensor, *, grid_spacing: Sequence[int], shape: Sequence[int]
) -> torch.Tensor:
    """Dense displacement field of a cubic B-spline free-form deformation.

    Parameters
    ----------
    control : torch.Tensor, shape (N, C, *grid), floating
        Control-point values, usually ``C = ndim`` displacement components (any ``C`` works; each
        channel is interpolated independently). ``grid == control_grid_shape(shape, grid_spacing)``.
    grid_spacing : sequence of int
        Control-point spacing in voxels along the array axes (module docstring: grid layout).
    shape : sequence of int
        Spatial shape of the output field (the image), 2 or 3 axes.

    Returns
    -------
    torch.Tensor, shape (N, C, *shape)
        The dense field, in the units of ``control`` (mm in, mm out), same dtype and device;
        differentiable with respect to ``control``.
    """
    shape_t = check_int_tuple("shape", shape)
    if len(shape_t) not in (2, 3):
        raise BenchError(f"shape={tuple(shape)} must have 2 or 3 axes")
    spacing_t = check_int_tuple("grid_spacing", grid_spacing, len(shape_t))
    _check_control(control, shape_t, spacing_t)
    bases = [
        torch.tensor(_basis_cached(n, s), dtype=control.dtype, device=control.device)
        for n, s in zip(shape_t, spacing_t, strict=True)
    ]
    return _apply_bases(control, bases)


class BSplineFFD(nn.Module):
    """Module form of :func:`bspline_ffd` for a fixed output ``shape``; basis matrices are buffers.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape of the output field.
    grid_spacing : sequence of int
        Control-point spacing in voxels.

    Attributes
    ----------
    grid_shape : tuple of int
        The control grid the input must have (:func:`control_grid_shape`).
    """

    def __init__(self, shape: Sequence[int], *, grid_spacing: Sequence[int]) -> None:
        super().__init__()
        self.shape = check_int_tuple("shape", shape)
        if len(self.shape) not in (2, 3):
            raise BenchError(f"shape={tuple(shape)} must have 2 or 3 axes")
        self.grid_spacing = check_int_tuple("grid_spacing", grid_spacing, len(self.shape))
        self.grid_shape = control_grid_shape(self.shape, self.grid_spacing)
        for axis, (n, s) in enumerate(zip(self.shape, self.grid_spacing, strict=True)):
            basis = torch.from_numpy(np.array(_basis_cached(n, s)))  # float64
            self.register_buffer(f"basis{axis}", basis, persistent=False)

    def forward(self, control: torch.Tensor) -> torch.Tensor:
        _check_control(control, self.shape, self.grid_spacing)
        bases = [getattr(self, f"basis{axis}").to(control.dtype) for axis in range(len(self.shape))]
        return _apply_bases(control, bases)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, grid_spacing={self.grid_spacing}, grid_shape={self.grid_shape}"
