"""Warping an image with a displacement field: ``warped(x) = image(x + u(x))``.

This is the one place of the project where the array axis order ``(I, J, K)`` is reversed into the
``(x, y, z) = (K, J, I)`` order that :func:`torch.nn.functional.grid_sample` expects
(``docs/conventions.md``). Every method is warped by the harness with :func:`warp_array`, so the
interpolation and the out-of-field handling are identical for all methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from methods.transforms._checks import check_spacing, check_tensor, spatial_ndim
from methods.transforms.bspline import bspline_prefilter, bspline_sample

__all__ = [
    "warp",
    "warp_array",
    "warp_image",
    "warp_labels",
    "sample_positions",
    "Warp",
    "MODES",
    "PADDINGS",
]

#: Interpolation modes accepted by :func:`warp`.
MODES = ("linear", "bspline", "nearest")
#: Out-of-field handling accepted by :func:`warp`.
PADDINGS = ("border", "zeros")


def _identity_grid(
    shape: Sequence[int], *, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Voxel index coordinates, shape ``(1, ndim, *shape)``: ``grid[0, d][x] = x[d]``."""
    axes = [torch.arange(n, dtype=dtype, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0)


def sample_positions(disp: torch.Tensor, *, spacing: Sequence[float] | None = None) -> torch.Tensor:
    """Voxel positions ``x + u(x) / spacing`` sampled by :func:`warp`.

    Parameters
    ----------
    disp : torch.Tensor, shape (N, ndim, *spatial), floating
        Displacement in mm along the array axes (voxels when ``spacing`` is None).
    spacing : sequence of float, optional
        Voxel size in mm along the array axes.

    Returns
    -------
    torch.Tensor, shape (N, ndim, *spatial)
        Positions in voxel index units, same dtype and device as ``disp``.
    """
    ndim = disp.shape[1]
    spacing_t = check_spacing(spacing, ndim)
    grid = _identity_grid(disp.shape[2:], dtype=disp.dtype, device=disp.device)
    if all(s == 1.0 for s in spacing_t):
        return grid + disp
    scale = torch.tensor(spacing_t, dtype=disp.dtype, device=disp.device).view(
        1, ndim, *([1] * ndim)
    )
    return grid + disp / scale


def _check_pair(image: torch.Tensor, disp: torch.Tensor) -> int:
    check_tensor("image", image)
    check_tensor("disp", disp)
    ndim = spatial_ndim("image", image)
    expected = f"(N, {ndim}, {', '.join(str(n) for n in image.shape[2:])})"
    if (
        disp.dim() != ndim + 2
        or disp.shape[1] != ndim
        or tuple(disp.shape[2:]) != tuple(image.shape[2:])
    ):
        raise BenchError(
            f"disp must have shape {expected} for image of shape {tuple(image.shape)}, "
            f"got {tuple(disp.shape)}"
        )
    n_img, n_disp = image.shape[0], disp.shape[0]
    if n_img != n_disp and 1 not in (n_img, n_disp):
        raise BenchError(
            f"batch sizes differ: image {tuple(image.shape)} and disp {tuple(disp.shape)} "
            "(expected equal, or one of them 1)"
        )
    return ndim


def warp(
    image: torch.Tensor,
    disp: torch.Tensor,
    *,
    spacing: Sequence[float] | None = None,
    mode: str = "linear",
    padding: str = "border",
) -> torch.Tensor:
    """Warp ``image`` with the displacement field ``disp``: ``out(x) = image(x + u(x))``.

    Parameters
    ----------
    image : torch.Tensor, shape (N, C, I, J) or (N, C, I, J, K), floating
        The moving image (any number of channels).
    disp : torch.Tensor, shape (N, ndim, I, J[, K]), floating
        Displacement field on the output (fixed) grid, fixed -> moving, in mm along the array axes
        (``disp[:, 0]`` is along ``I``); voxels when ``spacing`` is None. Its spatial shape must equal
        the image's. A batch size of 1 in either input is broadcast to the other.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1 (field in voxels). A field of
        ``k * spacing[d]`` mm along axis ``d`` shifts by ``k`` voxels.
    mode : {"linear", "bspline", "nearest"}, default "linear"
        ``"linear"``: (bi/tri)linear interpolation (training). ``"bspline"``: cubic B-spline
        interpolation with the exact prefilter (interpolating: reproduces the samples at integer
        positions and cubic polynomials in the interior; final evaluation of images).
        ``"nearest"``: nearest neighbour (labels; no new values; ties at exactly half-voxel positions
        round half to even as in ``grid_sample``).
    padding : {"border", "zeros"}, default "border"
        Value of samples that fall outside the image: ``"border"`` takes the nearest border voxel
        (images), ``"zeros"`` gives 0 (labels). With ``"zeros"``, linear and B-spline fade linearly to
        0 over the last voxel outside the image, nearest is 0 beyond half a voxel outside.

    Returns
    -------
    torch.Tensor, shape (N, C, I, J[, K])
        The warped image, dtype promoted from ``image`` and ``disp``, on their device. Differentiable
        with respect to ``image`` and ``disp`` (nearest: with respect to ``image`` only).

    Notes
    -----
    Linear and nearest use :func:`torch.nn.functional.grid_sample` with ``align_corners=True``
    (voxel centres at -1 and +1 of the normalised range); the grid is reversed to ``(K, J, I)``
    order here. An axis of length 1 is constant along itself: the displacement along it is ignored.

    Examples
    --------
    >>> import torch
    >>> image = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> disp = torch.zeros(1, 2, 4, 4)
    >>> disp[:, 1] = 1.0  # sample one voxel further along j; the border repeats
    >>> warp(image, disp)[0, 0, 0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    ndim = _check_pair(image, disp)
    check_choice("mode", mode, MODES)
    check_choice("padding", padding, PADDINGS)
    dtype = torch.promote_types(image.dtype, disp.dtype)
    image = image.to(dtype)
    disp = disp.to(dtype)
    positions = sample_positions(disp, spacing=spacing)
    if mode == "bspline":
        return bspline_sample(bspline_prefilter(image), positions, padding=padding)

    batch = max(image.shape[0], disp.shape[0])
    image = image.expand(batch, *image.shape[1:])
    positions = positions.expand(batch, *positions.shape[1:])
    shape = image.shape[2:]
    normalised = []
    for d in reversed(range(ndim)):  # (I, J, K) -> (x, y, z) = (K, J, I)
        n = shape[d]
        if n > 1:
            normalised.append(positions[:, d] * (2.0 / (n - 1)) - 1.0)
        else:
            normalised.append(positions[:, d] * 0.0)
    grid = torch.stack(normalised, dim=-1)
    return F.grid_sample(
        image,
        grid,
        mode="bilinear" if mode == "linear" else "nearest",
        padding_mode=padding,
        align_corners=True,
    )


class Warp(nn.Module):
    """Module form of :func:`warp` with fixed settings: ``Warp(mode=...)(image, disp)``.

    Parameters
    ----------
    spacing, mode, padding
        As in :func:`warp`.
    """

    def __init__(
        self,
        *,
        spacing: Sequence[float] | None = None,
        mode: str = "linear",
        padding: str = "border",
    ) -> None:
        super().__init__()
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)
        self.mode = check_choice("mode", mode, MODES)
        self.padding = check_choice("padding", padding, PADDINGS)

    def forward(self, image: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        return warp(image, disp, spacing=self.spacing, mode=self.mode, padding=self.padding)

    def extra_repr(self) -> str:
        return f"spacing={self.spacing}, mode={self.mode!r}, padding={self.padding!r}"


def warp_array(
    array: np.ndarray,
    disp: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    mode: str = "linear",
    padding: str | None = None,
) -> np.ndarray:
    """Warp one NumPy image or label map: ``out(x) = array(x + u(x))`` (the harness entry point).

    Parameters
    ----------
    array : np.ndarray, shape (I, J) or (I, J, K)
        Image (any real dtype) or label map (integer or bool dtype).
    disp : np.ndarray, shape (ndim, I, J[, K])
        Displacement on the grid of ``array``, fixed -> moving, mm along the array axes (voxels when
        ``spacing`` is None).
    spacing : sequence of float, optional
        Voxel size in mm along the array axes.
    mode : {"linear", "bspline", "nearest"}, default "linear"
        As in :func:`warp`; label maps use ``"nearest"``.
    padding : {"border", "zeros"}, optional
        Default: ``"zeros"`` for integer/bool arrays (labels, background 0), ``"border"`` otherwise.

    Returns
    -------
    np.ndarray, shape of ``array``
        Integer/bool input with ``mode="nearest"``: the input dtype (values are a subset of the
        input's values, plus 0 with zero padding). Everything else: float32.

    Notes
    -----
    Computes in float64 on the CPU, one volume at a time (a 256 x 256 x 20 volume in B-spline mode
    needs a few hundred MB at most).

    Examples
    --------
    >>> half = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.5)])  # 0.5 voxel along j
    >>> warp_array(np.arange(16.0).reshape(4, 4), half)[0].tolist()  # linear by default
    [0.5, 1.5, 2.5, 3.0]
    """
    array = np.asarray(array)
    disp = np.asarray(disp)
    if array.ndim not in (2, 3):
        raise BenchError(f"array must have shape (I, J) or (I, J, K), got {array.shape}")
    if disp.shape != (array.ndim, *array.shape):
        raise BenchError(
            f"disp must have shape {(array.ndim, *array.shape)} for array of shape {array.shape}, "
            f"got {disp.shape}"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise BenchError(f"array must have a numeric dtype, got {array.dtype}")
    check_choice("mode", mode, MODES)
    is_label = array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)
    if padding is None:
        padding = "zeros" if is_label else "border"
    check_choice("padding", padding, PADDINGS)
    image_t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))[None, None]
    disp_t = torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float64))[None]
    with torch.no_grad():
        out = warp(image_t, disp_t, spacing=spacing, mode=mode, padding=padding)[0, 0].numpy()
    if is_label and mode == "nearest":
        return out.astype(array.dtype)  # exact: nearest only copies input values (or 0)
    return out.astype(np.float32)


def warp_image(
    image: np.ndarray, disp: np.ndarray, *, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """The harness's warp of an intensity image for evaluation and display: cubic B-spline with
    the exact prefilter, border padding (``docs/conventions.md``, "Interpolation").

    Every method's moving image is warped with it, for scoring (``benchmark.runner.scoring``)
    and for the reader study's panels (``benchmark.reader_study.prepare``).

    Parameters
    ----------
    image : np.ndarray, shape (I, J) or (I, J, K)
        Moving image, any real dtype.
    disp : np.ndarray, shape (ndim, I, J[, K])
        Displacement on the fixed grid, fixed -> moving, mm along the array axes.
    spacing : sequence of float, optional
        Voxel size in mm along the array axes (1 when omitted).

    Returns
    -------
    np.ndarray, float32, shape of ``image``

    Examples
    --------
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> shift = np.stack([np.ones((4, 4)), np.zeros((4, 4))])  # 1 mm along i
    >>> warp_image(image, shift)[:, 0].tolist()  # row i shows row i + 1; the last keeps the border
    [4.0, 8.0, 12.0, 12.0]
    """
    return warp_array(image, disp, spacing=spacing, mode="bspline", padding="border")


def warp_labels(
    labels: np.ndarray, disp: np.ndarray, *, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """The harness's warp of a label map: nearest neighbour, background 0 outside the image.

    Parameters and return as :func:`warp_image`, but the result keeps the dtype of ``labels``
    (an integer label map).

    Examples
    --------
    >>> labels = np.array([[0, 1], [2, 3]], dtype=np.int16)
    >>> warp_labels(labels, np.stack([np.ones((2, 2)), np.zeros((2, 2))])).tolist()
    [[2, 3], [0, 0]]
    """
    return warp_array(labels, disp, spacing=spacing, mode="nearest", padding="zeros")
