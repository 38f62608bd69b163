"""Symmetric Hausdorff distance (maximum and percentile) between two structures' surfaces, in mm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from metrics._common import (
    NAN,
    STATUS_OK,
    MetricValue,
    absence_status,
    as_mask,
    check_same_shape,
    check_spacing,
)

#: Allowed values of ``percentile_mode``.
PERCENTILE_MODES = ("max-directed", "pooled")


class HausdorffResult(NamedTuple):
    """Both Hausdorff numbers of one structure.

    Attributes
    ----------
    hd : MetricValue
        Symmetric (maximum) Hausdorff distance in mm.
    hd_percentile : MetricValue
        The robust Hausdorff distance at ``percentile`` (the ``hd95`` metric by default), in mm.
    """

    hd: MetricValue
    hd_percentile: MetricValue


def surface(mask: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Boundary voxels of a boolean mask: the mask minus its binary erosion.

    Parameters
    ----------
    mask : ndarray of bool, shape (*spatial)
    connectivity : int
        Neighbourhood of the erosion, as ``scipy.ndimage.generate_binary_structure(ndim,
        connectivity)``: 1 = face neighbours (6 in 3D; the default, as MONAI and medpy), ``ndim`` =
        full neighbourhood (26 in 3D; gives a thicker surface).

    Returns
    -------
    ndarray of bool, same shape
        Voxels of ``mask`` with at least one neighbour outside it. Outside the array counts as
        background, so mask voxels on the array border are boundary voxels.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _union_bbox(a: np.ndarray, b: np.ndarray, margin: int) -> tuple[slice, ...]:
    union = a | b
    slices = []
    for axis in range(union.ndim):
        others = tuple(i for i in range(union.ndim) if i != axis)
        idx = np.flatnonzero(union.any(axis=others))
        slices.append(
            slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, union.shape[axis]))
        )
    return tuple(slices)


def directed_surface_distances(
    fixed: np.ndarray,
    warped: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    connectivity: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of one mask to the nearest surface voxel of the other.

    Both masks must be non-empty boolean arrays of one shape (else BenchError). The arrays are cropped to the
    bounding box of their union (plus one voxel) before the erosion; the nearest-neighbour search
    is a KD-tree over the surface voxel centres scaled by ``spacing`` (exact Euclidean distances,
    anisotropic spacing included).

    Returns
    -------
    (d_fixed_to_warped, d_warped_to_fixed) : tuple of float64 ndarrays
        One distance per surface voxel of ``fixed`` (resp. ``warped``), in mm.
    """
    check_same_shape(fixed, warped, ("fixed", "warped"))
    if fixed.dtype != bool or warped.dtype != bool or not fixed.any() or not warped.any():
        raise BenchError(
            f"fixed, warped: expected two non-empty boolean masks, got dtypes {fixed.dtype}, "
            f"{warped.dtype} with {int(np.count_nonzero(fixed))} and "
            f"{int(np.count_nonzero(warped))} voxels set"
        )
    s = check_spacing(spacing, fixed.ndim)
    crop = _union_bbox(fixed, warped, margin=1)
    sa = surface(fixed[crop], connectivity=connectivity)
    sb = surface(warped[crop], connectivity=connectivity)
    pa = np.argwhere(sa) * s
    pb = np.argwhere(sb) * s
    d_ab = cKDTree(pb, leafsize=32).query(pa, k=1)[0]
    d_ba = cKDTree(pa, leafsize=32).query(pb, k=1)[0]
    return np.asarray(d_ab, dtype=np.float64), np.asarray(d_ba, dtype=np.float64)


def hausdorff_distance(
    fixed: np.ndarray,
    warped: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    label: int | None = None,
    percentile: float = 95.0,
    percentile_mode: str = "max-directed",
    connectivity: int = 1,
) -> HausdorffResult:
    """Symmetric Hausdorff distance between the surfaces of two structures, in mm.

    Surfaces are the boundary voxels of each mask (the mask minus its erosion with the
    ``connectivity`` neighbourhood, face neighbours by default, as MONAI and medpy); a voxel is
    represented by its centre at ``index * spacing``. For every surface voxel of one mask the
    Euclidean distance to the nearest surface voxel of the other mask is taken, in both
    directions.

    - ``hd`` is the maximum over both directions (same in both modes).
    - ``hd_percentile`` with ``percentile_mode="max-directed"`` (default, MONAI's
      ``compute_hausdorff_distance(..., percentile=95, directed=False)``): the larger of the two
      directed ``percentile``-th percentiles. With ``"pooled"`` (medpy's ``hd95``): the
      percentile of both directions' distances pooled together. Percentiles use linear
      interpolation (``numpy.percentile`` default, equal to ``torch.quantile``).

    Parameters
    ----------
    fixed : ndarray, shape (*spatial), 2D or 3D
        Reference mask (bool) or integer label map with ``label``: the fixed labels.
    warped : ndarray, same shape
        The warped moving labels, same kind as ``fixed``.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1 (distances in voxels).
    label : int, optional
        Label value selected from label maps; without it both arrays must be boolean.
    percentile : float
        In ``(0, 100]``; 95 by default. ``100`` gives ``hd_percentile == hd``.
    percentile_mode : {"max-directed", "pooled"}
        The 95th-percentile convention, see above.
    connectivity : int
        Erosion neighbourhood, 1 (faces) to ``ndim`` (full), see :func:`surface`.

    Returns
    -------
    HausdorffResult
        Two :class:`MetricValue` with unit ``"mm"``. Identical non-empty masks give 0. A structure
        empty in either array gives NaN for both with status ``"label-absent-fixed"``,
        ``"label-absent-moving"`` or ``"label-absent-both"`` (the distance to an empty set is
        undefined; no infinity, no crash).

    Raises
    ------
    BenchError
        Shape mismatch, bad spacing, ``percentile`` outside ``(0, 100]``, unknown
        ``percentile_mode``, ``connectivity`` outside ``1..ndim``, mask/label mix-ups.

    Examples
    --------
    >>> square = np.pad(np.ones((2, 2), np.int16), 1)  # 4 x 4, labels in the middle
    >>> wider = np.pad(np.ones((2, 3), np.int16), ((1, 1), (1, 0)))  # one more column along j
    >>> hausdorff_distance(square, wider, label=1, spacing=(1.0, 2.0)).hd  # one voxel of 2 mm
    MetricValue(value=2.0, status='ok', unit='mm')
    """
    check_choice("percentile_mode", percentile_mode, PERCENTILE_MODES)
    if not 0.0 < float(percentile) <= 100.0:
        raise BenchError(f"percentile: expected a number in (0, 100], got {percentile!r}")
    a = as_mask(fixed, label=label, name="fixed")
    b = as_mask(warped, label=label, name="warped")
    check_same_shape(a, b, ("fixed", "warped"))
    if a.ndim not in (2, 3):
        raise BenchError(f"fixed: expected a 2D or 3D array, got shape {a.shape}")
    if not 1 <= int(connectivity) <= a.ndim:
        raise BenchError(f"connectivity: expected an integer in 1..{a.ndim}, got {connectivity!r}")
    check_spacing(spacing, a.ndim)
    status = absence_status(bool(a.any()), bool(b.any()))
    if status != STATUS_OK:
        return HausdorffResult(MetricValue(NAN, status, "mm"), MetricValue(NAN, status, "mm"))
    d_ab, d_ba = directed_surface_distances(a, b, spacing=spacing, connectivity=int(connectivity))
    hd = max(float(d_ab.max()), float(d_ba.max()))
    if percentile_mode == "max-directed":
        hp = max(float(np.percentile(d_ab, percentile)), float(np.percentile(d_ba, percentile)))
    else:
        hp = float(np.percentile(np.concatenate([d_ab, d_ba]), percentile))
    return HausdorffResult(MetricValue(hd, STATUS_OK, "mm"), MetricValue(hp, STATUS_OK, "mm"))
