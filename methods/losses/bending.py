"""Bending energy (Rueckert et al. 1999) of dense displacement fields and B-spline control grids.

For a displacement ``u`` (mm along the array axes, ``docs/conventions.md``) the energy density is
``sum_c sum_{i,j} (d^2 u_c / dx_i dx_j)^2`` over components ``c`` and axes ``i, j``, so each mixed
term ``i != j`` counts twice. Second derivatives are central finite differences in physical units
(mm), evaluated at the interior voxels (one voxel from every border), where every stencil exists:

- ``d^2u/dx_i^2 = (u[x + e_i] - 2 u[x] + u[x - e_i]) / h_i^2``
- ``d^2u/dx_i dx_j = (u[x+e_i+e_j] - u[x+e_i-e_j] - u[x-e_i+e_j] + u[x-e_i-e_j]) / (4 h_i h_j)``

Both stencils are exact for quadratic fields, so affine fields have zero energy. The energy is the
mean of the density over the interior voxels (units mm^-2 for fields in mm). The paper's weight
(0.05) is applied by the method, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchmark.core.errors import BenchError
from methods.losses._checks import check_reduction, check_tensor, reduce
from methods.transforms._checks import check_spacing

__all__ = ["bending_energy", "bspline_bending_energy", "BendingEnergy"]


def _check_field(name: str, field: object) -> int:
    field = check_tensor(name, field)
    ndim = field.dim() - 2
    if ndim not in (2, 3) or field.shape[1] != ndim:
        raise BenchError(
            f"{name} must have shape (N, 2, I, J) or (N, 3, I, J, K), got {tuple(field.shape)}"
        )
    if any(s < 3 for s in field.shape[2:]):
        raise BenchError(
            f"{name} needs at least 3 points along every spatial axis for second differences, "
            f"got {tuple(field.shape)}"
        )
    return ndim


def _shift(u: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """Interior crop of ``u`` shifted by ``offsets`` (each in -1, 0, 1) along the spatial axes."""
    index = [slice(None), slice(None)]
    for off, size in zip(offsets, u.shape[2:], strict=True):
        index.append(slice(1 + off, size - 1 + off))
    return u[tuple(index)]


def _energy_density(u: torch.Tensor, spacing: tuple[float, ...]) -> torch.Tensor:
    """Per-interior-voxel bending energy density, shape ``(N, *(spatial - 2))``."""
    ndim = len(spacing)
    zero = [0] * ndim
    centre = _shift(u, zero)
    total = torch.zeros_like(centre[:, 0])
    for i in range(ndim):
        plus, minus = list(zero), list(zero)
        plus[i], minus[i] = 1, -1
        d2 = (_shift(u, plus) - 2.0 * centre + _shift(u, minus)) / (spacing[i] ** 2)
        total = total + d2.square().sum(1)
        for j in range(i + 1, ndim):
            pp, pm, mp, mm = list(zero), list(zero), list(zero), list(zero)
            pp[i], pp[j] = 1, 1
            pm[i], pm[j] = 1, -1
            mp[i], mp[j] = -1, 1
            mm[i], mm[j] = -1, -1
            dij = (_shift(u, pp) - _shift(u, pm) - _shift(u, mp) + _shift(u, mm)) / (
                4.0 * spacing[i] * spacing[j]
            )
            total = total + 2.0 * dij.square().sum(1)
    return total


def bending_energy(
    disp: torch.Tensor,
    *,
    spacing: Sequence[float] | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Bending energy of a dense displacement field.

    Parameters
    ----------
    disp : torch.Tensor, shape (N, ndim, *spatial)
        Displacement in mm along the array axes (voxels when ``spacing`` is None), 2D or 3D, at
        least 3 voxels along every axis; floating, any device.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1 (derivatives per voxel).
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over the batch; ``"none"`` returns shape ``(N,)`` (each the mean density over
        the interior voxels).

    Returns
    -------
    torch.Tensor
        Mean over interior voxels of ``sum_c sum_{i,j} (d^2 u_c / dx_i dx_j)^2``; 0 for affine
        fields. Dtype of ``disp``.

    Examples
    --------
    >>> import torch
    >>> bending_energy(torch.zeros(1, 2, 8, 8)).item()  # no displacement, no bending
    0.0
    >>> u = torch.zeros(1, 2, 8, 8)
    >>> u[:, 1] = 0.25 * torch.arange(8.0)  # a translation plus a linear stretch: no bending either
    >>> bending_energy(u).item()
    0.0
    """
    reduction = check_reduction(reduction)
    ndim = _check_field("disp", disp)
    spacing_t = check_spacing(spacing, ndim, name="spacing")
    return reduce(_energy_density(disp, spacing_t).flatten(1).mean(1), reduction)


def bspline_bending_energy(
    control: torch.Tensor,
    *,
    grid_spacing: Sequence[int] | int,
    spacing: Sequence[float] | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Bending energy of a cubic B-spline control-point grid (DIRNet / PoolNet design).

    The control-point displacements are treated as samples of the field on the control grid, and
    :func:`bending_energy` is evaluated there with physical spacing ``grid_spacing * spacing`` mm
    (finite differences on the control grid, as in DIRNet's regulariser); this approximates the
    analytic integral of the B-spline field up to a constant factor and is exactly 0 for linear
    (affine) control grids.

    Parameters
    ----------
    control : torch.Tensor, shape (N, ndim, *grid)
        Displacements at the control points (mm along the array axes; voxels when ``spacing`` is
        None), at least 3 control points along every axis.
    grid_spacing : int or sequence of int
        Control-point spacing in voxels along each array axis.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over the batch.

    Returns
    -------
    torch.Tensor
        The energy (per mm^2), dtype of ``control``.
    """
    ndim = _check_field("control", control)
    if isinstance(grid_spacing, int) and not isinstance(grid_spacing, bool):
        grid_spacing = (grid_spacing,) * ndim
    grid = check_spacing(grid_spacing, ndim, name="grid_spacing")
    voxel = check_spacing(spacing, ndim, name="spacing")
    return bending_energy(
        control, spacing=tuple(g * v for g, v in zip(grid, voxel, strict=True)), reduction=reduction
    )


class BendingEnergy(nn.Module):
    """Module wrapper of :func:`bending_energy`; ``forward(disp, spacing=None)``."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, disp: torch.Tensor, spacing: Sequence[float] | None = None) -> torch.Tensor:
        return bending_energy(disp, spacing=spacing, reduction=self.reduction)
