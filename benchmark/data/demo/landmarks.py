"""Landmarks of the demo datasets, derived from the generators' ground-truth displacement.

Self-contained so that a generator only calls :func:`write_landmarks_from_displacement` where it
writes its files: points are picked inside each labelled structure of the fixed image, and their
partners in a moving image are where the ground truth sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.core.landmarks import write_landmarks

#: Landmarks per labelled structure.
PER_LABEL = 4


def landmarks_from_displacement(
    labels: np.ndarray,
    disp: np.ndarray,
    spacing: Sequence[float],
    *,
    per_label: int = PER_LABEL,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Corresponding points of a fixed image and a moving image from the true displacement.

    Parameters
    ----------
    labels : ndarray of int, shape (*spatial)
        Fixed image labels; ``per_label`` voxels of each non-zero label are taken, evenly spaced
        in the label's C-order voxel list (deterministic).
    disp : ndarray, shape (ndim, *spatial)
        Ground truth on the fixed grid, fixed -> moving, mm along the array axes.
    spacing : sequence of float
        Voxel size, mm.

    Returns
    -------
    ids, fixed_points, moving_points
        ``"L<value>-<n>"`` ids and ``(n, ndim)`` voxel coordinates: a fixed voxel ``p`` and its
        image ``p + disp[:, p] / spacing`` (exact at voxel centres). Points whose image falls
        outside the grid are dropped, so both sets can serve as fixed points of the reverse pair.
    """
    s = np.asarray(spacing, dtype=np.float64)
    upper = np.asarray(labels.shape, dtype=np.float64) - 1
    ids: list[str] = []
    fixed: list[np.ndarray] = []
    moving: list[np.ndarray] = []
    for value in sorted(int(v) for v in np.unique(labels) if v != 0):
        voxels = np.argwhere(labels == value)
        picks = np.unique(np.linspace(0, len(voxels) - 1, per_label + 2).round().astype(int)[1:-1])
        for n, v in enumerate(voxels[picks]):
            q = v + np.asarray(disp[(slice(None), *v)], dtype=np.float64) / s
            if np.all(q >= 0) and np.all(q <= upper):
                ids.append(f"L{value}-{n + 1}")
                fixed.append(v.astype(np.float64))
                moving.append(q)
    nd = labels.ndim
    return ids, np.reshape(fixed, (-1, nd)), np.reshape(moving, (-1, nd))


def write_landmarks_from_displacement(
    fixed_csv: Path,
    moving_csvs: Sequence[Path],
    labels: np.ndarray,
    disps: Sequence[np.ndarray],
    spacing: Sequence[float],
) -> None:
    """Write the fixed image's landmarks and, per moving image, their partners.

    ``disps[m]`` is the ground truth from the fixed image to moving image ``m``; only landmarks
    that stay inside the grid for every moving image are kept, so ids match across all files.
    """
    per_image = [landmarks_from_displacement(labels, d, spacing) for d in disps]
    common = set.intersection(*(set(ids) for ids, _, _ in per_image))
    ids0, fixed0, _ = per_image[0]
    keep = [r for r, name in enumerate(ids0) if name in common]
    write_landmarks(fixed_csv, [ids0[r] for r in keep], fixed0[keep])
    for path, (ids, _, moving) in zip(moving_csvs, per_image, strict=True):
        rows = [r for r, name in enumerate(ids) if name in common]
        write_landmarks(path, [ids[r] for r in rows], moving[rows])
