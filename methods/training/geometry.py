"""Patch size, U-Net factors and B-spline grid from the training data, where no preset sets them.

The built-in presets leave these three settings open (``None``); the shipped dataset manifests
set them (the paper's protocol for ACDC and breast DCE, measured recipes for the demos). For any
other data they follow the data's grid, the way the paper chose them per dataset:

- an axis is *thick* when its voxel spacing is more than :data:`THICK_RATIO` times the finest
  spacing of the image (cine MRI: 10 mm slices, 1.5 mm in-plane); the others are *thin*;
- thin axes: U-Net factor 2 at every level, B-spline control points every 8 voxels, patches of
  :data:`THIN_PATCH` voxels (the paper's breast patches), or the whole axis of the smallest
  training image, rounded down to a multiple of 8, when it is shorter;
- thick axes: no down-sampling (factor 1) and a control point on every slice (grid 1), as the
  paper's 2x2x1 and 8x8x1 for ACDC; patches of :data:`THICK_PATCH` slices, or fewer when the
  smallest training image has fewer.

Spacing per axis is the median over the training images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from benchmark.core.errors import BenchError
from methods.training.config import GEOMETRY_SETTINGS, TrainingConfig

#: An axis whose spacing exceeds this multiple of the finest spacing is treated as thick.
THICK_RATIO = 2.0
#: Patch length (voxels) along thin axes; the paper's breast patches are 64^3.
THIN_PATCH = 64
#: Patch length (slices) along thick axes; the ACDC volumes have 6 to 18 slices (paper: 6).
THICK_PATCH = 8


def data_geometry(
    shapes: Sequence[Sequence[int]], spacings: Sequence[Sequence[float]]
) -> dict[str, tuple[int, ...]]:
    """Patch size, U-Net factors and B-spline grid for images of these grids.

    Parameters
    ----------
    shapes : sequence of int tuples
        Spatial shape ``(I, J[, K])`` of each training image; all of one dimensionality.
    spacings : sequence of float tuples
        Voxel size in mm along the array axes, one per shape.

    Returns
    -------
    dict
        ``{"patch_size": ..., "unet_factors": ..., "poolnet_grid": ...}``, one int per axis.
    """
    if not shapes or len(shapes) != len(spacings):
        raise BenchError(
            f"data_geometry needs one spacing per image shape, got {len(shapes)} shapes and "
            f"{len(spacings)} spacings"
        )
    ndims = sorted({len(s) for s in shapes} | {len(s) for s in spacings})
    if len(ndims) != 1 or ndims[0] not in (2, 3):
        raise BenchError(
            f"training images must all be 2D or all be 3D, with one spacing per axis; got "
            f"dimensionalities {ndims}"
        )
    smallest = np.min(np.asarray(shapes, dtype=np.int64), axis=0)
    spacing = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
    thick = spacing > THICK_RATIO * spacing.min()
    patch = tuple(
        int(min(n, THICK_PATCH)) if is_thick else int(min(THIN_PATCH, max(8, n // 8 * 8), n))
        for n, is_thick in zip(smallest, thick, strict=True)
    )
    return {
        "patch_size": patch,
        "unet_factors": tuple(1 if t else 2 for t in thick),
        "poolnet_grid": tuple(1 if t else 8 for t in thick),
    }


def resolve_geometry(
    config: TrainingConfig,
    shapes: Sequence[Sequence[int]],
    spacings: Sequence[Sequence[float]],
) -> TrainingConfig:
    """``config`` with each of :data:`GEOMETRY_SETTINGS` that is ``None`` taken from the data.

    Settings already given are kept as they are (and checked against the data by the trainer).
    """
    missing = [name for name in GEOMETRY_SETTINGS if getattr(config, name) is None]
    if not missing:
        return config
    derived = data_geometry(shapes, spacings)
    return dataclasses.replace(config, **{name: derived[name] for name in missing})
