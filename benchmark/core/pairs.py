"""Registration pairs: :class:`PairSpec` (ids and file paths, cheap), :class:`RegistrationPair`
(the loaded fixed and moving images, optional label maps and ground-truth displacement), and the
pairs table of a run folder (``pairs.csv``: one row per test pair with its files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.images import Image, read_displacement, read_image
from benchmark.core.landmarks import corresponding_landmarks
from benchmark.core.normalize import clip_outliers

#: File name of a pair's displacement field inside a pair folder (run folders,
#: ``RUN_DIR/pairs/METHOD/foldK/CASE/PAIR/``, and folders of precomputed fields).
DISPLACEMENT_FILE = "displacement.nii.gz"
#: Columns of a run folder's ``pairs.csv``: one row per test pair, absolute paths (empty when the
#: pair has no such file).
PAIRS_TABLE_COLUMNS = (
    "fold",
    "case",
    "pair",
    "fixed",
    "moving",
    "fixed_labels",
    "moving_labels",
    "displacement",
    "mask",
    "fixed_landmarks",
    "moving_landmarks",
)
#: The columns of :data:`PAIRS_TABLE_COLUMNS` every ``pairs.csv`` has.
PAIRS_TABLE_REQUIRED = ("fold", "case", "pair", "fixed", "moving")


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
        A region of interest on the fixed grid (e.g. breast mask); used for normalisation and as
        the foreground of the displacement error.
    fixed_landmarks, moving_landmarks : Path, optional
        Landmark CSVs of the two images (:mod:`benchmark.core.landmarks`); points with the same id
        correspond. Give both or neither.
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
    fixed_landmarks: Path | None = None
    moving_landmarks: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """``case/pair``: unique within a dataset."""
        return f"{self.case}/{self.pair}"

    def files(self) -> dict[str, Path]:
        """The pair's existing image file roles and paths (``fixed``, ``moving``, ...; the landmark
        CSVs are not images and are not listed)."""
        roles = ("fixed", "moving", "fixed_labels", "moving_labels", "displacement", "mask")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}

    def load(self, fold: int | None = None) -> RegistrationPair:
        """Read every file of the pair.

        Outlier intensities are clipped (:func:`benchmark.core.normalize.clip_outliers`; data
        validation warns about them); label maps must hold integers (never rounded).
        """
        fixed, moving = (read_intensities(p) for p in (self.fixed, self.moving))
        labels = [
            read_labels(p) if p is not None else None
            for p in (self.fixed_labels, self.moving_labels)
        ]
        disp = read_displacement(self.displacement)[0] if self.displacement else None
        mask = read_image(self.mask).array > 0 if self.mask else None
        landmarks = None
        if self.fixed_landmarks is not None and self.moving_landmarks is not None:
            landmarks = corresponding_landmarks(self.fixed_landmarks, self.moving_landmarks)
        return RegistrationPair(
            fixed=fixed,
            moving=moving,
            fixed_labels=labels[0],
            moving_labels=labels[1],
            true_displacement=disp,
            mask=mask,
            landmarks=landmarks,
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
    fixed -> moving (``docs/conventions.md``). ``landmarks`` is ``(fixed_points, moving_points)``,
    each ``(n, ndim)`` voxel coordinates, row ``r`` of one corresponding to row ``r`` of the other.
    """

    fixed: Image
    moving: Image
    fixed_labels: Image | None = None
    moving_labels: Image | None = None
    true_displacement: np.ndarray | None = None
    mask: np.ndarray | None = None
    landmarks: tuple[np.ndarray, np.ndarray] | None = None
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


def read_intensities(path: Path) -> Image:
    """An intensity image as float32 with outlier intensities clipped (``clip_outliers``)."""
    image = read_image(path, dtype=np.float32)
    return Image(clip_outliers(image.array), image.affine, image.path)


def read_labels(path: Path) -> Image:
    """A label map as ``int16``; non-integer or out-of-range values are refused, never cast."""
    image = read_image(path)
    array = image.array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise BenchError(f"{path}: label map has non-integer values (dtype {array.dtype})")
    limits = np.iinfo(np.int16)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise BenchError(
            f"{path}: label values {array.min()}..{array.max()} do not fit int16 "
            "(the harness's label type)"
        )
    return Image(array.astype(np.int16), image.affine, image.path)


def as_path(value: str | Path | None, root: Path | None = None) -> Path | None:
    """Resolve ``value`` against ``root`` (absolute paths stay as they are)."""
    if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() or root is None else root / p


def read_pairs_table(path: str | Path) -> Any:
    """A run folder's ``pairs.csv`` as a DataFrame: text cells (``""`` when empty), ``fold`` int,
    and every column of :data:`PAIRS_TABLE_COLUMNS` (absent optional ones added empty).

    Raises
    ------
    BenchError
        When the file cannot be read as CSV, lacks a column of :data:`PAIRS_TABLE_REQUIRED`, or
        has a ``fold`` that is not an integer.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for damaged files
        raise BenchError(f"{path}: cannot read ({exc})") from exc
    missing = [c for c in PAIRS_TABLE_REQUIRED if c not in table.columns]
    if missing:
        raise BenchError(f"{path}: missing column(s) {missing}; have {list(table.columns)}")
    for column in PAIRS_TABLE_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    try:
        table["fold"] = table["fold"].astype(int)
    except ValueError as exc:
        raise BenchError(f"{path}: column fold must hold integers ({exc})") from exc
    return table
