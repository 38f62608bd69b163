"""Known deformations of the demo phantoms and their numerical inverse.

A *map* here is a callable ``w(points) -> displacement``: ``points`` and the result have shape
``(3, ...)`` in mm along the array axes, and ``w`` is analytic (no grid, no interpolation), so it
can be evaluated at any position. A phantom frame rendered as ``frame(y) = anatomy(y + w(y))`` has
the ground-truth field ``w`` for the pair (fixed = that frame, moving = the anatomy's own frame),
and the inverse field ``v`` with ``v(x) = -w(x + v(x))`` for the opposite pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmark.core.errors import BenchError

DisplacementMap = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GaussianBumps:
    """A smooth random displacement: a sum of Gaussian bumps with random vector amplitudes.

    ``w(p) = sum_g a_g exp(-|p - c_g|^2 / (2 sigma_g^2))``; the largest displacement gradient is
    about ``max|a_g| / sigma_g * 0.61`` per bump, far below 1 for the settings used by the demos.

    Attributes
    ----------
    centres : ndarray, shape (G, 3)
        Bump centres (mm).
    amplitudes : ndarray, shape (G, 3)
        Displacement vectors at the centres (mm).
    sigmas : ndarray, shape (G,)
        Bump widths (mm).
    """

    centres: np.ndarray
    amplitudes: np.ndarray
    sigmas: np.ndarray

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        extent_mm: np.ndarray,
        *,
        bumps: int,
        amplitude_mm: float,
        sigma_mm: tuple[float, float],
    ) -> GaussianBumps:
        """Draw ``bumps`` bumps centred uniformly in the box ``[0, extent_mm]``.

        Amplitudes are Gaussian with std ``amplitude_mm`` per component; widths are uniform in
        ``sigma_mm``.
        """
        extent_mm = np.asarray(extent_mm, dtype=np.float64)
        centres = rng.uniform(0.0, 1.0, size=(bumps, 3)) * extent_mm
        amplitudes = rng.normal(0.0, amplitude_mm, size=(bumps, 3))
        sigmas = rng.uniform(*sigma_mm, size=bumps)
        return cls(centres, amplitudes, sigmas)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        out = np.zeros_like(points, dtype=np.float64)
        for c, a, s in zip(self.centres, self.amplitudes, self.sigmas, strict=True):
            d2 = sum((points[i] - c[i]) ** 2 for i in range(3))
            g = np.exp(-d2 / (2.0 * s * s))
            for i in range(3):
                out[i] += a[i] * g
        return out


@dataclass(frozen=True)
class Rigid:
    """A rigid motion as a displacement: ``w(p) = R (p - centre) + centre + t - p``."""

    rotation: np.ndarray
    translation: np.ndarray
    centre: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        rel = points - self.centre.reshape(3, *([1] * (points.ndim - 1)))
        rotated = np.einsum("ab,b...->a...", self.rotation, rel)
        return rotated - rel + self.translation.reshape(3, *([1] * (points.ndim - 1)))


def compose_sum(*maps: DisplacementMap) -> DisplacementMap:
    """The displacement ``sum_m w_m(p)`` (all evaluated at the same point)."""

    def total(points: np.ndarray) -> np.ndarray:
        out = maps[0](points)
        for m in maps[1:]:
            out = out + m(points)
        return out

    return total


def invert_map(
    w: DisplacementMap,
    points: np.ndarray,
    spacing: tuple[float, ...],
    *,
    tol_voxels: float = 0.01,
    max_iterations: int = 200,
) -> np.ndarray:
    """Inverse displacement of an analytic map by fixed-point iteration.

    Solves ``v(x) = -w(x + v(x))`` at every ``x`` in ``points``, so that ``x + v(x)`` is the point
    that ``y -> y + w(y)`` sends to ``x``. The iteration ``v <- -w(x + v)`` converges when the
    displacement gradient of ``w`` has norm < 1 (true for the demos' smooth, invertible maps);
    points stop being updated once their residual ``|v + w(x + v)|`` is below ``tol_voxels`` along
    every axis (in voxels of ``spacing``).

    Parameters
    ----------
    w : callable
        ``(3, ...) mm -> (3, ...) mm``.
    points : ndarray, shape (3, ...)
        Where to evaluate the inverse (mm along the array axes).
    spacing : tuple of float, length 3
        Voxel size in mm, for the tolerance.
    tol_voxels : float, default 0.01
        Largest accepted residual in voxels along any axis.
    max_iterations : int, default 200

    Returns
    -------
    ndarray, shape like ``points``
        ``v`` in mm.

    Raises
    ------
    BenchError
        If some points have not converged after ``max_iterations`` (the map is not invertible
        there, which would be a generator bug).
    """
    shape = points.shape
    x = points.reshape(3, -1)
    scale = np.asarray(spacing, dtype=np.float64)[:, None]
    v = -w(x)
    active = np.arange(x.shape[1])
    for _ in range(max_iterations):
        xa = x[:, active]
        residual = v[:, active] + w(xa + v[:, active])
        bad = np.any(np.abs(residual) / scale > tol_voxels, axis=0)
        active = active[bad]
        if active.size == 0:
            return v.reshape(shape)
        # update the unconverged points: v <- -w(x + v)  (= v - residual)
        v[:, active] = v[:, active] - residual[:, bad]
    raise BenchError(
        f"invert_map: {active.size} of {x.shape[1]} points did not converge to {tol_voxels} voxel "
        f"in {max_iterations} iterations; the deformation is not invertible there"
    )


#: Stored ground-truth fields are rounded to this step (mm): an error of at most 0.0005 mm, far
#: below the inversion tolerance, and the float32 files compress 3-4x better and faster.
QUANTUM_MM = 2.0**-10


def quantize(disp: np.ndarray, *, step: float = QUANTUM_MM) -> np.ndarray:
    """Round a displacement (mm) to multiples of ``step`` and return it as float32.

    With a power-of-two ``step`` the result is exact in float32 for |values| < 2**14 mm.
    """
    return (np.round(np.asarray(disp, dtype=np.float64) / step) * step).astype(np.float32)
