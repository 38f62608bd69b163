"""Landmark files: one CSV of named points per image, matched by id between fixed and moving.

Format (``docs/conventions.md``, "Landmarks")::

    id,i,j,k
    LVb-apex,61.5,70.0,3.0
    ...

One row per point: ``id`` (any text, unique in the file; the same id in the fixed and the moving
image's file names corresponding points) and the point's voxel index coordinates along the array
axes (``i, j`` for 2D images), 0-based, voxel centres at integers, fractions allowed.

Learn2Reg's keypoint files (``keypointsTr/TASK_SSSS_MMMM.csv``) have no header and no ids: one
point per row, ``i,j,k`` in the same voxel coordinates (its ``evaluation.py`` reads them with
``np.loadtxt(path, delimiter=',')`` and maps them through the voxel field). A file whose first line
is all numbers is read that way, the ids being the row numbers ``1, 2, ...``: row ``r`` of the
fixed image's file corresponds to row ``r`` of the moving image's (:func:`has_row_ids` tells such a
file).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from benchmark.core.atomic import write_text
from benchmark.core.errors import BenchError

AXES = ("i", "j", "k")


def read_landmarks(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``(ids, points)`` of a landmarks CSV; ``points`` float64 of shape ``(n, ndim)``.

    A headerless file of numbers (Learn2Reg keypoints) gives the row numbers ``"1", "2", ...`` as
    ids (module docstring).

    Raises
    ------
    BenchError
        Missing or unreadable file, missing ``id``/``i``/``j`` column, a row with more or fewer
        fields than the header, duplicate ids, a coordinate that is not a finite number (file,
        line and value named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read landmarks ({type(exc).__name__}: {exc})") from exc
    if _headerless(text):
        return _read_rows(path, text)
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    axes = [a for a in AXES if a in columns]
    if "id" not in columns or axes not in (["i", "j"], ["i", "j", "k"]):
        raise BenchError(
            f"{path}: landmark columns {columns}; expected id,i,j (2D) or id,i,j,k (3D)"
        )
    ids: list[str] = []
    points: list[list[float]] = []
    for line, row in enumerate(reader, start=2):
        if None in row or None in row.values():
            extra = row.get(None)
            raise BenchError(
                f"{path}:{line}: {'extra field(s) ' + repr(extra) if extra else 'missing field(s)'}"
                f"; the header has {len(columns)} ({', '.join(columns)})"
            )
        row = {k.strip(): v.strip() for k, v in row.items()}
        if row["id"] in ids:
            raise BenchError(f"{path}:{line}: duplicate landmark id {row['id']!r}")
        try:
            point = [float(row[a]) for a in axes]
        except ValueError as exc:
            raise BenchError(f"{path}:{line}: coordinate is not a number ({exc})") from exc
        if not all(math.isfinite(v) for v in point):
            raise BenchError(f"{path}:{line}: non-finite coordinate {point}")
        ids.append(row["id"])
        points.append(point)
    return ids, np.asarray(points, dtype=np.float64).reshape(len(points), len(axes))


def _numbers(fields: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in fields]
    except ValueError:
        return None


def _headerless(text: str) -> bool:
    """True when the first non-empty line is all numbers (a Learn2Reg keypoint file)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return bool(first) and _numbers(first.split(",")) is not None


def _read_rows(path: Path, text: str) -> tuple[list[str], np.ndarray]:
    """A headerless keypoint file: ids ``"1", "2", ...`` (row numbers), 2 or 3 coordinates a row,
    the same number in every row."""
    points: list[list[float]] = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        point = _numbers(row)
        if point is None:
            raise BenchError(f"{path}:{line}: expected numbers i,j[,k], got {','.join(row)!r}")
        if len(point) not in (2, 3) or (points and len(point) != len(points[0])):
            expected = len(points[0]) if points else "2 or 3"
            raise BenchError(
                f"{path}:{line}: {len(point)} coordinate(s); expected {expected} (i,j[,k] voxel "
                "coordinates, one point a row)"
            )
        if not all(math.isfinite(v) for v in point):
            raise BenchError(f"{path}:{line}: non-finite coordinate {point}")
        points.append(point)
    ndim = len(points[0]) if points else 3
    ids = [str(n) for n in range(1, len(points) + 1)]
    return ids, np.asarray(points, dtype=np.float64).reshape(len(points), ndim)


def has_row_ids(path: str | os.PathLike) -> bool:
    """True for a headerless (Learn2Reg) keypoint file, whose ids are its row numbers."""
    try:
        return _headerless(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False


def write_landmarks(path: str | os.PathLike, ids: list[str], points: np.ndarray) -> Path:
    """Write ``points`` (shape ``(n, ndim)``, voxel coordinates) with their ids, atomically."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3) or len(ids) != len(points):
        raise BenchError(
            f"landmarks: {len(ids)} ids and points of shape {points.shape}; expected (n, 2|3)"
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", *AXES[: points.shape[1]]])
    for name, p in zip(ids, points, strict=True):
        writer.writerow([name, *(f"{v:.4f}" for v in p)])
    write_text(path, out.getvalue())
    return Path(path)


def corresponding_landmarks(
    fixed: str | os.PathLike, moving: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """The points whose id is in both files, in the fixed file's order: ``(fixed, moving)``.

    Raises
    ------
    BenchError
        From :func:`read_landmarks`, or when the two files have different dimensions.
    """
    f_ids, f_pts = read_landmarks(fixed)
    m_ids, m_pts = read_landmarks(moving)
    if f_pts.shape[1] != m_pts.shape[1]:
        raise BenchError(
            f"landmarks {fixed} ({f_pts.shape[1]}D) and {moving} ({m_pts.shape[1]}D) differ in "
            "dimension"
        )
    index = {name: r for r, name in enumerate(m_ids)}
    common = [r for r, name in enumerate(f_ids) if name in index]
    return f_pts[common], m_pts[[index[f_ids[r]] for r in common]]


def landmark_path(image: str | os.PathLike, pattern: str) -> Path:
    """The landmarks file of ``image`` by the manifest's ``landmarks`` pattern, in its folder.

    ``{stem}`` in ``pattern`` is the image file name without its image suffix (``.nii.gz``,
    ``.nii``, ``.nrrd``, ``.mha``, ``.mhd``): ``patient001_frame01.nii.gz`` with
    ``"{stem}_landmarks.csv"`` gives ``patient001_frame01_landmarks.csv`` beside the image.
    """
    image = Path(image)
    name = image.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return image.parent / pattern.format(stem=name)
