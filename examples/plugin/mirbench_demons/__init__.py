"""An example MIRBench plug-in: Thirion's demons with Gaussian smoothing of the field.

It shows the whole method contract in a few lines: settings as keyword-only arguments recorded
through ``super().__init__``, and a field on the fixed grid, fixed -> moving, in mm along the array
axes (``docs/conventions.md``).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from benchmark.core.errors import BenchError
from benchmark.core.normalize import percentile_normalize
from methods.base import Method, RegistrationResult

__all__ = ["Demons"]


class Demons(Method):
    """Thirion's demons: ``u -= (w - f) grad f / (|grad f|^2 + (w - f)^2)`` per iteration, with
    ``w`` the moving image warped by ``u`` (linear interpolation), then Gaussian smoothing of ``u``.

    Parameters
    ----------
    iterations : int
        Demons iterations (>= 1).
    sigma_vox : float
        Gaussian smoothing of the field after each iteration, in voxels (> 0).
    """

    name = "demons"
    description = "Thirion's demons with Gaussian field smoothing (example plug-in)"
    learns = False

    def __init__(self, *, iterations: int = 50, sigma_vox: float = 1.5):
        if not isinstance(iterations, int) or iterations < 1:
            raise BenchError(f"demons iterations must be an integer >= 1, got {iterations!r}")
        if not float(sigma_vox) > 0:
            raise BenchError(f"demons sigma_vox must be > 0, got {sigma_vox!r}")
        super().__init__(iterations=iterations, sigma_vox=float(sigma_vox))

    def register(self, pair):
        start = time.perf_counter()
        fixed = percentile_normalize(pair.fixed.array).astype(np.float64)
        moving = percentile_normalize(pair.moving.array).astype(np.float64)
        grid = np.indices(fixed.shape, dtype=np.float64)
        u = np.zeros_like(grid)  # voxels, fixed -> moving
        grad = np.stack(np.gradient(fixed))
        sigma = (0.0, *[self.params["sigma_vox"]] * fixed.ndim)
        for _ in range(self.params["iterations"]):
            warped = ndimage.map_coordinates(moving, grid + u, order=1, mode="nearest")
            diff = warped - fixed
            u -= diff * grad / ((grad**2).sum(0) + diff**2 + 1e-6)
            u = ndimage.gaussian_filter(u, sigma)
        spacing = np.asarray(pair.spacing).reshape((-1,) + (1,) * fixed.ndim)
        return RegistrationResult(
            displacement=(u * spacing).astype(np.float32),  # voxels -> mm along the array axes
            runtime_s=time.perf_counter() - start,
        )
