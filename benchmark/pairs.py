"""Registration pairs: :class:`PairSpec` (ids and file paths, cheap) and :class:`RegistrationPair`
(the loaded fixed and moving images, optional label maps and ground-truth displacement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import BenchError
from benchmark.images import Image, read_displacement, read_image

#: File name of a pair's displacement field inside a pair folder (run folders,
#: ``RUN_DIR/pairs/METHOD/foldK/CASE/PAIR/``, and folders of precomputed fields).
DISPLACEMENT_FILE = "displacement.nii.gz"


@dataclass(frozen=True)
class PairSpec:
    """Where a pair's files are, and its ids. Produced by the dataset loaders.

    Attributes
    ----------
    dataset, case, pair : str
        Ids; ``pair`` is file-system safe and unique within the case (``ED-ES``).
    fixed, moving : Path
        Image files.
    fixed_labels, moving_labels : Path, optional
        Label maps on the same grids.
    displacement : Path, optional
        Ground-truth displacement (``write_displacement`` layout), fixed grid, fixed -> moving, mm.
    mask : Path, optional
        A region of interest on the fixed grid (e.g. breast mask); used for normalisation.
    group : str, optional
        Stratification value for cross-validation (ACDC: pathology group).
    meta : dict
        Anything else the loader knows (frame numbers, phase names).
    """

    dataset: str
    case: str
    pair: str
    fixed: Path
    moving: Path
    fixed_labels: Path | None = None
    moving_labels: Path | None = None
    displacement: Path | None = None
    mask: Path | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """``case/pair``: unique within a dataset."""
        return f"{self.case}/{self.pair}"

    def files(self) -> dict[str, Path]:
        """The pair's existing file roles and paths (``fixed``, ``moving``, ...)."""
        roles = ("fixed", "moving", "fixed_labels", "moving_labels", "displacement", "mask")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}

    def load(self, fold: int | None = None) -> RegistrationPair:
        """Read every file of the pair."""
        fixed = read_image(self.fixed, dtype=np.float32)
        moving = read_image(self.moving, dtype=np.float32)
        labels = [
            read_image(p, dtype=np.int16) if p is not None else None
            for p in (self.fixed_labels, self.moving_labels)
        ]
        disp = read_displacement(self.displacement)[0] if self.displacement else None
        mask = read_image(self.mask).array > 0 if self.mask else None
        return RegistrationPair(
            fixed=fixed,
            moving=moving,
            fixed_labels=labels[0],
            moving_labels=labels[1],
            true_displacement=disp,
            mask=mask,
            dataset=self.dataset,
            case=self.case,
            pair=self.pair,
            fold=fold,
            meta=dict(self.meta),
        )


@dataclass(eq=False)
class RegistrationPair:
    """A loaded pair: what a method registers and what the harness scores.

    ``fixed`` and ``moving`` share one grid. ``true_displacement`` is ``(ndim, *spatial)`` in mm,
    fixed -> moving (``docs/conventions.md``).
    """

    fixed: Image
    moving: Image
    fixed_labels: Image | None = None
    moving_labels: Image | None = None
    true_displacement: np.ndarray | None = None
    mask: np.ndarray | None = None
    dataset: str = ""
    case: str = ""
    pair: str = ""
    fold: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        problems = []
        if not self.fixed.same_grid(self.moving):
            problems.append(
                f"fixed {self.fixed.shape} and moving {self.moving.shape} images are not on the "
                "same grid (shape and affine must match)"
            )
        for name in ("fixed_labels", "moving_labels"):
            lab = getattr(self, name)
            if lab is not None and lab.shape != self.fixed.shape:
                problems.append(f"{name} shape {lab.shape} != image shape {self.fixed.shape}")
        if self.true_displacement is not None:
            expected = (self.fixed.ndim, *self.fixed.shape)
            if self.true_displacement.shape != expected:
                problems.append(
                    f"true_displacement shape {self.true_displacement.shape} != {expected}"
                )
        if problems:
            raise BenchError(f"pair {self.key}: " + "; ".join(problems))

    @property
    def key(self) -> str:
        return f"{self.case}/{self.pair}"

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.fixed.spacing

    @property
    def ndim(self) -> int:
        return self.fixed.ndim


def as_path(value: str | Path | None, root: Path | None = None) -> Path | None:
    """Resolve ``value`` against ``root`` (absolute paths stay as they are)."""
    if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() or root is None else root / p
