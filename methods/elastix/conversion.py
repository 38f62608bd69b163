"""Conversions between the project's arrays and ITK/elastix images and fields.

The project keeps arrays in nibabel's ``(i, j, k)`` order with a RAS voxel-to-world affine; ITK
keeps them in ``(k, j, i)`` order with LPS spacing, origin and direction. ITK's index axis ``d``
(``x, y, z``) is the project's array axis ``d`` (``i, j, k``): only the memory order is reversed.

With ``F = diag(-1, -1, 1)`` (RAS <-> LPS), the voxel-to-LPS map of an image is
``p = o + M v`` with ``M = (F A)[:n, :n]`` and ``o = (F A)[:n, 3]`` for the RAS affine ``A``;
ITK stores ``M = direction @ diag(spacing)``. A physical displacement ``d`` (LPS, mm) that elastix
returns at a fixed-grid point moves that point by ``Delta v = M^-1 d`` voxels, which is
``u[c] = spacing[c] * Delta v[c]`` millimetres along array axis ``c``: the project's convention
(``docs/conventions.md``). The functions here that do not create ITK objects are pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.core.errors import BenchError

__all__ = [
    "ItkGeometry",
    "itk_geometry",
    "to_itk_image",
    "physical_to_array_mm",
    "array_mm_to_physical",
    "field_from_itk",
]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ItkGeometry:
    """Spacing, origin and direction of an ITK image (LPS), all in ITK's ``x, y, z`` axis order.

    Attributes
    ----------
    spacing : ndarray, shape (n,)
        mm per voxel along the array axes.
    origin : ndarray, shape (n,)
        LPS position of voxel 0 (mm).
    direction : ndarray, shape (n, n)
        Column ``c``: LPS unit vector of array axis ``c``.
    """

    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """``M = direction @ diag(spacing)``: voxel offsets to LPS mm, shape (n, n)."""
        return self.direction * self.spacing[None, :]


def itk_geometry(affine: np.ndarray, ndim: int) -> ItkGeometry:
    """ITK geometry (LPS) of an image with the RAS voxel-to-world ``affine``.

    The inverse of ``benchmark.core.images._read_itk``. For a 2D image the upper-left 2x2 block is used
    (like ``benchmark.core.images._write_itk``); when that block is singular or its columns are shorter
    than the affine's (a 2D slice oblique to the L/P plane) the image is placed in a canonical
    frame (identity direction, zero origin), which leaves the field in array-axis mm unchanged.
    ``spacing`` is always the project's spacing: the column norms of the affine's 3x3 part.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Voxel-to-world RAS affine.
    ndim : int
        2 or 3.

    Raises
    ------
    BenchError
        If ``ndim`` is not 2 or 3, or a spacing is zero.
    """
    if ndim not in (2, 3):
        raise BenchError(f"ndim must be 2 or 3, got {ndim}")
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    full_spacing = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))[:ndim]
    if not np.all(full_spacing > 0):
        raise BenchError(f"affine has a zero voxel spacing: {full_spacing.tolist()}")
    m = lps[:ndim, :ndim]
    spacing = np.sqrt((m**2).sum(axis=0))
    in_plane = np.allclose(spacing, full_spacing, rtol=1e-6, atol=0.0)
    if in_plane and abs(np.linalg.det(m)) > 1e-6 * float(np.prod(spacing)):
        return ItkGeometry(full_spacing, lps[:ndim, 3].copy(), m / full_spacing[None, :])
    return ItkGeometry(full_spacing, np.zeros(ndim), np.eye(ndim))


def to_itk_image(array: np.ndarray, affine: np.ndarray, *, dtype=np.float32):
    """An ITK image of ``array`` (``(i, j[, k])`` order) with the geometry of ``affine``.

    Parameters
    ----------
    array : ndarray, shape (I, J[, K])
        Voxel values; cast to ``dtype`` (float32 for intensities, uint8 for masks).
    affine : ndarray, shape (4, 4)
        RAS voxel-to-world affine.
    """
    import itk

    array = np.asarray(array)
    geom = itk_geometry(affine, array.ndim)
    img = itk.image_from_array(np.ascontiguousarray(array.astype(dtype, copy=False).T))
    img.SetSpacing([float(s) for s in geom.spacing])
    img.SetOrigin([float(o) for o in geom.origin])
    img.SetDirection(itk.matrix_from_array(np.ascontiguousarray(geom.direction)))
    return img


def physical_to_array_mm(vectors: np.ndarray, geometry: ItkGeometry) -> np.ndarray:
    """Convert physical (LPS, mm) displacement vectors to mm along the array axes.

    Parameters
    ----------
    vectors : ndarray, shape (..., n)
        Physical displacement vectors, components in ITK's ``x, y, z`` (LPS) order.
    geometry : ItkGeometry
        Geometry of the grid the vectors live on.

    Returns
    -------
    ndarray of float64, shape (..., n)
        ``spacing * M^-1 d`` per vector: component ``c`` along array axis ``c``, in mm.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = geometry.spacing.size
    if vectors.shape[-1] != n:
        raise BenchError(f"vectors have {vectors.shape[-1]} components, expected {n}")
    minv = np.linalg.inv(geometry.matrix)
    return (vectors @ minv.T) * geometry.spacing


def array_mm_to_physical(vectors: np.ndarray, geometry: ItkGeometry) -> np.ndarray:
    """The inverse of :func:`physical_to_array_mm`: array-axis mm to physical LPS mm."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = geometry.spacing.size
    if vectors.shape[-1] != n:
        raise BenchError(f"vectors have {vectors.shape[-1]} components, expected {n}")
    return (vectors / geometry.spacing) @ geometry.matrix.T


def field_from_itk(field, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The project's displacement array from an ITK vector image (e.g. transformix's field).

    Parameters
    ----------
    field : itk.Image of vectors, or ndarray of shape (K, J, I, n) / (J, I, 2)
        Physical LPS displacement (mm) per fixed-grid voxel, in ITK's memory order.
    affine : ndarray, shape (4, 4)
        RAS affine of the fixed image (the grid of ``field``).
    shape : tuple of int
        The fixed image's array shape ``(I, J[, K])``; checked against the field.

    Returns
    -------
    ndarray of float32, shape (n, I, J[, K])
        Fixed -> moving displacement in mm along the array axes.
    """
    if isinstance(field, np.ndarray):
        arr = field
    else:
        import itk

        arr = np.asarray(itk.array_view_from_image(field))
    n = len(shape)
    if arr.ndim != n + 1 or arr.shape[-1] != n:
        raise BenchError(f"field array shape {arr.shape} is not (*spatial[::-1], {n})")
    arr = arr.transpose(*reversed(range(n)), n)  # (k, j, i, c) -> (i, j, k, c)
    if tuple(arr.shape[:n]) != tuple(shape):
        raise BenchError(f"field grid {tuple(arr.shape[:n])} != fixed image shape {tuple(shape)}")
    u = physical_to_array_mm(arr, itk_geometry(affine, n))
    return np.ascontiguousarray(np.moveaxis(u, -1, 0), dtype=np.float32)
