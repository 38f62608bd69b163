"""Building blocks of the analytic phantoms: grids, smooth random fields, soft shapes, MR noise.

Everything here is a function of continuous positions (millimetres along the array axes, shape
``(3, ...)``), so a phantom can be evaluated on a voxel grid *and* at the deformed positions of a
known transformation; that is what makes the demo ground truth exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def grid_points(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """Voxel-centre positions in mm along the array axes.

    Parameters
    ----------
    shape : tuple of int, length 3
        Grid shape ``(I, J, K)``.
    spacing : tuple of float, length 3
        Millimetres per voxel along ``i, j, k``.

    Returns
    -------
    ndarray, shape (3, I, J, K), float64
        ``points[c, i, j, k] = index_c * spacing[c]`` (voxel 0 at the origin).
    """
    axes = [np.arange(n, dtype=np.float64) * s for n, s in zip(shape, spacing, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


@dataclass(frozen=True)
class FourierField:
    """A smooth random scalar field: a sum of random plane waves (random Fourier features).

    ``f(p) = sqrt(2 / M) * sum_m cos(omega_m . p + phi_m)`` has zero mean and unit variance over
    space; its correlation length is about ``wavelength / (2 pi)``. It is analytic, so it can be
    sampled anywhere (on a grid or at warped positions) without interpolation.

    Attributes
    ----------
    omega : ndarray, shape (M, 3)
        Angular frequencies in rad/mm.
    phase : ndarray, shape (M,)
        Phases in rad.
    """

    omega: np.ndarray
    phase: np.ndarray

    @classmethod
    def random(
        cls, rng: np.random.Generator, *, wavelength_mm: float, terms: int = 16
    ) -> FourierField:
        """Draw a field whose waves have wavelengths between 0.7x and 1.4x ``wavelength_mm``.

        Directions are uniform on the sphere.
        """
        if wavelength_mm <= 0 or terms < 1:
            raise ValueError(
                f"wavelength_mm must be > 0 and terms >= 1, got {wavelength_mm}, {terms}"
            )
        direction = rng.normal(size=(terms, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        wavelengths = wavelength_mm * rng.uniform(0.7, 1.4, size=terms)
        omega = direction * (2 * np.pi / wavelengths)[:, None]
        phase = rng.uniform(0, 2 * np.pi, size=terms)
        return cls(omega, phase)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Evaluate at ``points`` of shape (3, ...); returns float32 of shape (...).

        Computed in float32 (a texture needs no more, and float32 ``cos`` is many times faster),
        term by term in a fixed order, so the result does not depend on threading.
        """
        p = points.astype(np.float32)
        omega = self.omega.astype(np.float32)
        phase = self.phase.astype(np.float32)
        out = np.zeros(points.shape[1:], dtype=np.float32)
        for w, ph in zip(omega, phase, strict=True):
            out += np.cos(w[0] * p[0] + w[1] * p[1] + w[2] * p[2] + ph)
        return out * np.float32(np.sqrt(2.0 / len(self.phase)))


def soft_inside(signed_distance: np.ndarray, width_mm: float) -> np.ndarray:
    """Smooth indicator of the inside of a shape: 1 deep inside, 0.5 on the surface, 0 outside.

    ``signed_distance`` is negative inside (mm); ``width_mm`` sets the edge blur (partial volume).
    """
    return 0.5 * (1.0 - np.tanh(signed_distance / width_mm))


def ellipsoid_distance(q: np.ndarray, mean_radius_mm: float) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoid from its quadric ``q = sum (x_c / a_c)^2``.

    Exact for a sphere; for an ellipsoid it scales the normalised radius by ``mean_radius_mm``.
    """
    return (np.sqrt(q) - 1.0) * mean_radius_mm


def soft_sqrt(x: np.ndarray, eps: float = 0.02) -> np.ndarray:
    """``sqrt(max(x, 0))`` smoothed near 0 so that its derivative stays finite."""
    return np.sqrt(0.5 * (x + np.sqrt(x * x + eps * eps)))


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise of std ``sigma`` per channel (Rician)."""
    re = signal + rng.normal(0.0, sigma, size=signal.shape)
    im = rng.normal(0.0, sigma, size=signal.shape)
    return np.hypot(re, im)


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3x3 rotation about ``axis`` (any length > 0) by ``angle_rad`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


def random_affine(
    rng: np.random.Generator, spacing: tuple[float, float, float], *, max_angle_deg: float
) -> np.ndarray:
    """A voxel-to-world affine with the given spacing, a random rotation about the world z axis of
    at most ``max_angle_deg`` degrees (0 gives a diagonal affine) and a random origin.

    The column norms of the 3x3 part equal ``spacing`` exactly, as ``docs/conventions.md`` requires.
    """
    angle = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg)) if max_angle_deg > 0 else 0.0
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(np.array([0.0, 0.0, 1.0]), angle) @ np.diag(spacing)
    affine[:3, 3] = rng.uniform(-120.0, 120.0, size=3).round(3)
    return affine


def to_int16(image: np.ndarray) -> np.ndarray:
    """Round intensities to int16 as scanners store them (clipped to [0, 32767])."""
    return np.clip(np.rint(image), 0, 32767).astype(np.int16)
