"""Spatially linked patch pairs for training (section 2.1: "randomly sampled spatially linked image
patches from fixed and moving image pairs").

A patch pair is cut at the same voxel location from the fixed and the moving volume of one pair.
Volumes smaller than the patch along an axis are padded by edge replication (logged once per
volume), so ACDC volumes with fewer slices than the patch depth still train.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from benchmark.errors import BenchError

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
    """

    def __init__(
        self,
        volumes: Sequence[tuple[np.ndarray, np.ndarray]],
        patch_size: Sequence[int],
        *,
        rng: np.random.Generator,
        names: Sequence[str] | None = None,
    ):
        if not volumes:
            raise BenchError("no training pairs: a fold needs at least one pair to train on")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.rng = rng
        names = list(names) if names is not None else [str(i) for i in range(len(volumes))]
        self.volumes: list[tuple[np.ndarray, np.ndarray]] = []
        for name, (fixed, moving) in zip(names, volumes, strict=False):
            if fixed.shape != moving.shape:
                raise BenchError(
                    f"pair {name}: fixed shape {fixed.shape} != moving shape {moving.shape}"
                )
            if fixed.ndim != len(self.patch_size):
                raise BenchError(
                    f"pair {name}: a {fixed.ndim}D volume {fixed.shape} cannot give "
                    f"{len(self.patch_size)}D patches of size {self.patch_size}"
                )
            pad = [(0, max(0, p - s)) for p, s in zip(self.patch_size, fixed.shape, strict=False)]
            if any(after for _, after in pad):
                log.info(
                    "pair %s: volume %s is smaller than the patch %s; padded by edge replication",
                    name,
                    fixed.shape,
                    self.patch_size,
                )
                fixed = np.pad(fixed, pad, mode="edge")
                moving = np.pad(moving, pad, mode="edge")
            self.volumes.append((fixed, moving))

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """A mini-batch ``(fixed, moving)``, each ``(batch_size, 1, *patch_size)`` float32."""
        fixed_batch = np.empty((batch_size, 1, *self.patch_size), dtype=np.float32)
        moving_batch = np.empty_like(fixed_batch)
        for b in range(batch_size):
            fixed, moving = self.volumes[int(self.rng.integers(len(self.volumes)))]
            start = [
                int(self.rng.integers(s - p + 1))
                for s, p in zip(fixed.shape, self.patch_size, strict=False)
            ]
            window = tuple(slice(a, a + p) for a, p in zip(start, self.patch_size, strict=False))
            fixed_batch[b, 0] = fixed[window]
            moving_batch[b, 0] = moving[window]
        return fixed_batch, moving_batch
