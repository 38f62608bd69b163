"""Spatially linked patch pairs for training (section 2.1: "randomly sampled spatially linked image
patches from fixed and moving image pairs").

A patch pair is cut at the same voxel location from the fixed and the moving volume of one pair.
Volumes smaller than the patch along an axis are padded by edge replication (logged once per
volume), so ACDC volumes with fewer slices than the patch depth still train.

Two options of the sampler matter for short trainings (both off by default, as in the paper):

- ``foreground_fraction``: that share of the patches is centred on a random voxel of the pair's
  foreground (its mask, else the voxels above the lower normalisation percentile), so patches of
  empty background, which carry no similarity signal, are rarer.
- ``augment``: each patch pair is flipped along every axis with probability 1/2 (the same flips
  for fixed and moving, so it stays a registration problem of the same kind) and fixed and moving
  swap roles with probability 1/2. A network then cannot lower the loss by memorising each
  training pair's motion from the fixed anatomy; it has to look at the moving image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from benchmark.core.errors import BenchError

log = logging.getLogger(__name__)


class PatchSampler:
    """Draw mini-batches of patch pairs at random from a list of normalised volume pairs.

    Parameters
    ----------
    volumes : sequence of (fixed, moving)
        Float32 arrays of one shape per pair, ``(I, J[, K])``, intensities in ``[0, 1)``.
    patch_size : tuple of int
        Patch shape, one entry per array axis.
    rng : numpy.random.Generator
        The only source of randomness; its state is saved in checkpoints so that a resumed
        training draws the same patches as an uninterrupted one.
    names : sequence of str, optional
        Pair keys, for messages.
    foregrounds : sequence of bool arrays or None, optional
        Per pair, the voxels of the fixed grid that patches are centred on when
        ``foreground_fraction`` asks for it (same shape as the volume); None or an empty array:
        anywhere.
    foreground_fraction : float in [0, 1]
        Share of patches centred on the foreground. Default 0 (uniform, the paper).
    augment : bool
        Random flips and fixed/moving swaps (module docstring). Default False (the paper).
    """

    def __init__(
        self,
        volumes: Sequence[tuple[np.ndarray, np.ndarray]],
        patch_size: Sequence[int],
        *,
        rng: np.random.Generator,
        names: Sequence[str] | None = None,
        foregrounds: Sequence[np.ndarray | None] | None = None,
        foreground_fraction: float = 0.0,
        augment: bool = False,
    ):
        if not volumes:
            raise BenchError("no training pairs: a fold needs at least one pair to train on")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise BenchError(f"foreground_fraction must lie in [0, 1], got {foreground_fraction!r}")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.rng = rng
        self.foreground_fraction = float(foreground_fraction)
        self.augment = bool(augment)
        names = list(names) if names is not None else [str(i) for i in range(len(volumes))]
        foregrounds = list(foregrounds) if foregrounds is not None else [None] * len(volumes)
        if len(foregrounds) != len(volumes):
            raise BenchError(
                f"foregrounds: {len(foregrounds)} arrays for {len(volumes)} volume pairs"
            )
        self.volumes: list[tuple[np.ndarray, np.ndarray]] = []
        self.centres: list[np.ndarray] = []  # flat indices of foreground voxels (padded grid)
        for name, (fixed, moving), fg in zip(names, volumes, foregrounds, strict=True):
            if fixed.shape != moving.shape:
                raise BenchError(
                    f"pair {name}: fixed shape {fixed.shape} != moving shape {moving.shape}"
                )
            if fixed.ndim != len(self.patch_size):
                raise BenchError(
                    f"pair {name}: a {fixed.ndim}D volume {fixed.shape} cannot give "
                    f"{len(self.patch_size)}D patches of size {self.patch_size}"
                )
            if fg is not None and np.shape(fg) != fixed.shape:
                raise BenchError(
                    f"pair {name}: foreground shape {np.shape(fg)} != volume shape {fixed.shape}"
                )
            pad = [(0, max(0, p - s)) for p, s in zip(self.patch_size, fixed.shape, strict=True)]
            if any(after for _, after in pad):
                log.info(
                    "pair %s: volume %s is smaller than the patch %s; padded by edge replication",
                    name,
                    fixed.shape,
                    self.patch_size,
                )
                fixed = np.pad(fixed, pad, mode="edge")
                moving = np.pad(moving, pad, mode="edge")
                if fg is not None:
                    fg = np.pad(np.asarray(fg, dtype=bool), pad, mode="constant")
            self.volumes.append((fixed, moving))
            self.centres.append(
                np.flatnonzero(fg) if fg is not None else np.empty(0, dtype=np.int64)
            )

    def _start(self, index: int) -> list[int]:
        """Patch corner in volume ``index``: uniform, or around a foreground voxel."""
        shape = self.volumes[index][0].shape
        centres = self.centres[index]
        if centres.size and self.rng.random() < self.foreground_fraction:
            centre = np.unravel_index(int(centres[self.rng.integers(centres.size)]), shape)
            return [
                int(np.clip(c - p // 2, 0, s - p))
                for c, s, p in zip(centre, shape, self.patch_size, strict=True)
            ]
        return [int(self.rng.integers(s - p + 1)) for s, p in zip(shape, self.patch_size, strict=True)]

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """A mini-batch ``(fixed, moving)``, each ``(batch_size, 1, *patch_size)`` float32."""
        fixed_batch = np.empty((batch_size, 1, *self.patch_size), dtype=np.float32)
        moving_batch = np.empty_like(fixed_batch)
        for b in range(batch_size):
            index = int(self.rng.integers(len(self.volumes)))
            fixed, moving = self.volumes[index]
            start = self._start(index)
            window = tuple(slice(a, a + p) for a, p in zip(start, self.patch_size, strict=True))
            f, m = fixed[window], moving[window]
            if self.augment:
                flips = tuple(a for a in range(f.ndim) if self.rng.random() < 0.5)
                if flips:
                    f, m = np.flip(f, flips), np.flip(m, flips)
                if self.rng.random() < 0.5:
                    f, m = m, f
            fixed_batch[b, 0] = f
            moving_batch[b, 0] = m
        return fixed_batch, moving_batch
