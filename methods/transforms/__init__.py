"""Spatial transforms of the registration core (torch, 2D and 3D, batched, CPU and CUDA).

- :mod:`methods.transforms.warp`: :func:`warp` (``out(x) = image(x + u(x))``; linear, cubic B-spline,
  nearest; border or zero padding), :func:`warp_array` (NumPy), :func:`warp_image` / :func:`warp_labels` (the harness's
  evaluation warp of images and label maps), :class:`Warp`;
- :mod:`methods.transforms.bspline`: the exact cubic B-spline prefilter and spline evaluation;
- :mod:`methods.transforms.ffd`: cubic B-spline free-form deformation (control grid to dense field);
- :mod:`methods.transforms.jacobian`: displacement gradient and Jacobian determinant.

Conventions (``docs/conventions.md``): tensors ``(N, C, I, J[, K])``, fields ``(N, ndim, *spatial)`` on
the fixed grid, fixed -> moving, in mm along the array axes (voxels when ``spacing`` is None).
"""

from methods.transforms.bspline import bspline_prefilter, bspline_sample
from methods.transforms.ffd import BSplineFFD, bspline_ffd, control_grid_shape
from methods.transforms.jacobian import displacement_gradient, jacobian_determinant
from methods.transforms.warp import (
    Warp,
    sample_positions,
    warp,
    warp_array,
    warp_image,
    warp_labels,
)

__all__ = [
    "BSplineFFD",
    "Warp",
    "bspline_ffd",
    "bspline_prefilter",
    "bspline_sample",
    "control_grid_shape",
    "displacement_gradient",
    "jacobian_determinant",
    "sample_positions",
    "warp",
    "warp_array",
    "warp_image",
    "warp_labels",
]
