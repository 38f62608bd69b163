"""Dataset validation: read every file of a manifest's pairs and report all problems at once.

:func:`validate` collects, for the whole dataset, layout problems from the loader (missing
``Info.cfg`` or frame files), unreadable or truncated files, grids that disagree (fixed vs moving,
an image vs its labels, mask or ground-truth displacement), label values outside the manifest's
set, non-integer label values, NaN or infinite voxels, duplicate or unsafe ids, fold problems, and
landmark files that cannot be read, do not correspond (headerless files of another length) or
hold points outside their image. Each problem names the file and the reason. The :class:`Report` also summarises the dataset
(cases, pairs, groups, folds, spacings, shapes, label voxel counts) for ``bench data check``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.atomic import write_text
from benchmark.core.errors import BenchError, ValidationError
from benchmark.core.images import (
    Image,
    read_displacement,
    read_image,
    shear_degrees,
    size_problem,
    spacing_check,
)
from benchmark.core.landmarks import has_row_ids, read_landmarks
from benchmark.core.normalize import OUTLIER_FACTOR, outlier_bounds
from benchmark.core.pairs import PairSpec
from benchmark.data.cache import cache_dir
from benchmark.data.manifest import Manifest

log = logging.getLogger(__name__)

#: Fixed/moving/labels grids must agree to this many mm (docs/conventions.md).
AFFINE_ATOL = 1e-4
#: Affines whose axes are further than this from orthogonal get a warning (degrees).
SHEAR_WARN_DEGREES = 0.01
#: Version of the per-file checks; cached results of another version are not used.
#: 2: images too small to register, implausible spacings and non-real voxel types.
CHECK_VERSION = 2

_ROLE_KIND = {
    "fixed": "image",
    "moving": "image",
    "fixed_labels": "labels",
    "moving_labels": "labels",
    "mask": "mask",
    "displacement": "displacement",
}


@dataclass
class FileInfo:
    """What validation learnt about one file (no voxel data is kept)."""

    path: Path
    kind: str
    shape: tuple[int, ...] | None = None
    affine: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None
    #: labels only: voxel count per value present
    counts: dict[int, int] = field(default_factory=dict)
    #: the file's own problems (errors) and warnings, each naming the file
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.shape is not None


@dataclass
class Report:
    """Result of :func:`validate`: the problems and a summary of the dataset.

    ``problems`` is empty for a valid dataset. The other attributes summarise what was read and
    are JSON-able through :meth:`to_dict`.
    """

    dataset: str
    root: str
    manifest: str
    contrast: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    spacing: dict[str, list[float]] = field(default_factory=dict)
    shapes: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    files_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "manifest": self.manifest,
            "contrast": self.contrast,
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "cases": list(self.cases),
            "pairs": list(self.pairs),
            "groups": dict(self.groups),
            "folds": list(self.folds),
            "spacing": dict(self.spacing),
            "shapes": dict(self.shapes),
            "labels": dict(self.labels),
            "files_read": self.files_read,
        }

    def format(self) -> str:
        """A human-readable summary (problems are not included; see :attr:`problems`)."""
        lines = [
            f"dataset {self.dataset}: {self.manifest}",
            f"root     {self.root}",
            f"contrast {self.contrast} (fixed and moving images "
            + ("share one contrast)" if self.contrast == "same" else "differ in contrast)"),
            f"cases    {len(self.cases)}",
            f"pairs    {len(self.pairs)}"
            + (
                f" ({', '.join(sorted({k.split('/', 1)[1] for k in self.pairs}))})"
                if self.pairs
                else ""
            ),
        ]
        if self.groups:
            lines.append(
                "groups   " + ", ".join(f"{g or '(none)'}: {n}" for g, n in self.groups.items())
            )
        for f in self.folds:
            parts = [f"train {f['train_cases']} cases / {f['train_pairs']} pairs"]
            if f.get("val_cases"):
                parts.append(f"val {f['val_cases']} cases / {f['val_pairs']} pairs")
            parts.append(f"test {f['test_cases']} cases / {f['test_pairs']} pairs")
            groups = ", ".join(f"{g or '(none)'}: {n}" for g, n in f["test_groups"].items())
            lines.append(f"fold {f['fold']}   {'; '.join(parts)}; test groups {groups}")
        if self.spacing:
            axes = "ijk"
            lines.append("spacing  mm per axis (min / median / max)")
            for a, (lo, med, hi) in enumerate(
                zip(self.spacing["min"], self.spacing["median"], self.spacing["max"], strict=True)
            ):
                lines.append(f"  {axes[a]}      {lo:.3g} / {med:.3g} / {hi:.3g}")
        if self.shapes:
            lines.append(
                f"shapes   {self.shapes['distinct']} distinct; min {tuple(self.shapes['min'])}, "
                f"median {_fmt(self.shapes['median'])}, max {tuple(self.shapes['max'])}"
            )
        if self.labels:
            lines.append("labels   voxels summed over label files; cases where absent")
            for name, info in self.labels.items():
                absent = info["absent_in"]
                where = (
                    "present in every label file"
                    if not absent
                    else f"absent in {len(absent)}: {', '.join(absent[:8])}"
                    + (" ..." if len(absent) > 8 else "")
                )
                lines.append(f"  {name} ({info['value']}): {info['voxels']} voxels; {where}")
        lines.append(f"files    {self.files_read} read")
        return "\n".join(lines)


# -- reading one file ------------------------------------------------------------------------
def _finite_problem(path: Path, array: np.ndarray) -> str | None:
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(
        array.dtype, np.complexfloating
    ):
        return None
    bad = ~np.isfinite(array)
    n = int(bad.sum())
    if not n:
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{path}: {n} NaN or infinite voxel(s) (first at index {first})"


def _value_counts(array: np.ndarray) -> dict[int, int]:
    """Voxel count per (integer) value present; ``bincount`` for small non-negative labels."""
    if array.size == 0:
        return {}
    lo, hi = array.min(), array.max()
    if lo >= 0 and hi < 2**16:
        counts = np.bincount(array.ravel().astype(np.intp), minlength=int(hi) + 1)
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(array, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def _outlier_warning(path: Path, array: np.ndarray) -> str | None:
    bounds = outlier_bounds(array)
    if bounds is None:
        return None
    low, high = bounds
    n = int(((array < low) | (array > high)).sum())
    return (
        f"{path}: {n} voxel(s) with outlier intensities (min {float(array.min()):.4g}, max "
        f"{float(array.max()):.4g}) outside [{low:.4g}, {high:.4g}] = p1 - {OUTLIER_FACTOR:g} x "
        f"(p99 - p1) .. p99 + {OUTLIER_FACTOR:g} x (p99 - p1); the harness clips them to that "
        "range before registering and scoring"
    )


def _shear_warning(path: Path, affine: np.ndarray, ndim: int) -> str | None:
    degrees = shear_degrees(affine, ndim)
    if degrees <= SHEAR_WARN_DEGREES:
        return None
    return (
        f"{path}: sheared affine (array axes {degrees:.2g} degrees from orthogonal). MIRBench keeps "
        "spacings and fields along the array axes, so its scores are unaffected; elastix works in "
        "world space with this non-orthogonal direction, and ITK's warning 'Non-orthogonal "
        "direction matrix coerced to orthogonal' only concerns the temporary files elastix writes, "
        "not the field MIRBench uses"
    )


def _inspect(path: Path, kind: str) -> FileInfo:
    """Read one file; its own problems and warnings (independent of the manifest's labels)."""
    info = FileInfo(path, kind)
    try:
        if kind == "displacement":
            array, affine = read_displacement(path)
            shape = tuple(array.shape)
            image = None
        else:
            image = read_image(path)
            array, affine, shape = image.array, image.affine, image.shape
    except BenchError as exc:
        info.problems.append(str(exc))
        return info
    info.shape, info.affine = shape, affine
    info.spacing = Image(np.empty((1,) * 3), affine).spacing if image is None else image.spacing
    message = _finite_problem(path, array)
    if kind == "image":
        problem, warning = spacing_check(image)
        info.problems += [p for p in (size_problem(image), problem) if p]
        info.warnings += [warning] if warning else []
    if message:
        info.problems.append(message)
    elif kind == "image":
        info.warnings += [
            w
            for w in (_outlier_warning(path, array), _shear_warning(path, affine, len(shape)))
            if w
        ]
    if kind == "labels" and message is None:
        if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
            info.problems.append(f"{path}: label map has non-integer values (dtype {array.dtype})")
            return info
        info.counts = _value_counts(array)
    return info


def _label_problems(info: FileInfo, labels: dict[str, int]) -> list[str]:
    allowed = {0, *labels.values()}
    outside = sorted(v for v in info.counts if v not in allowed)
    if not outside:
        return []
    declared = ", ".join(f"{n}={v}" for n, v in labels.items())
    return [
        f"{info.path}: label value(s) {outside} not declared in the manifest "
        f"(0=background, {declared})"
    ]


def _cache_file(path: Path, kind: str, cache: Path) -> Path | None:
    """Where the inspection of ``path`` is cached: named by a hash of the file's bytes.

    None for header/data pairs (``.nhdr``, ``.mhd``), whose voxels live in another file.
    """
    if path.name.lower().endswith((".nhdr", ".mhd")) or not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return cache / f"{digest.hexdigest()}-{kind}-v{CHECK_VERSION}.json"


def _inspect_cached(path: Path, kind: str, cache: Path | None) -> FileInfo:
    """:func:`_inspect`, reusing the result of an earlier check of the same bytes."""
    where = _cache_file(path, kind, cache) if cache is not None else None
    if where is not None and where.is_file():
        try:
            d = json.loads(where.read_text(encoding="utf-8"))
            info = FileInfo(path, kind, problems=d["problems"], warnings=d["warnings"])
            if d["shape"] is not None:
                info.shape, info.spacing = tuple(d["shape"]), tuple(d["spacing"])
                info.affine = np.asarray(d["affine"], dtype=np.float64)
                info.counts = {int(k): v for k, v in d["counts"].items()}
            # the messages name the file the bytes were first seen under
            old = d["path"]
            info.problems = [m.replace(old, str(path)) for m in info.problems]
            info.warnings = [m.replace(old, str(path)) for m in info.warnings]
            return info
        except (OSError, ValueError, KeyError, TypeError):
            log.debug("ignoring unreadable validation cache %s", where)
    info = _inspect(path, kind)
    if where is not None:
        payload = {
            "path": str(path),
            "shape": None if info.shape is None else list(info.shape),
            "spacing": None if info.spacing is None else list(info.spacing),
            "affine": None if info.affine is None else info.affine.tolist(),
            "counts": {str(k): v for k, v in info.counts.items()},
            "problems": info.problems,
            "warnings": info.warnings,
        }
        try:
            write_text(where, json.dumps(payload))
        except OSError as exc:  # a read-only cache only costs time
            log.debug("cannot write validation cache %s: %s", where, exc)
    return info


# -- cross checks --------------------------------------------------------------------------
def _grid_problem(a: FileInfo, b: FileInfo, what: str) -> str | None:
    """A message when ``a`` and ``b`` are not on one grid (shape and affine within AFFINE_ATOL)."""
    if not (a.ok and b.ok):
        return None
    if a.shape != b.shape:
        return f"{a.path} vs {b.path}: {what}: shapes differ, {a.shape} vs {b.shape}"
    diff = float(np.abs(a.affine - b.affine).max())
    if diff > AFFINE_ATOL:
        return (
            f"{a.path} vs {b.path}: {what}: affines differ by up to {diff:.3g} mm "
            f"(spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)}, origin "
            f"{_fmt(a.affine[:3, 3])} vs {_fmt(b.affine[:3, 3])})"
        )
    return None


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def _pair_problems(p: PairSpec, files: dict[tuple[Path, str], FileInfo]) -> list[tuple[Any, str]]:
    """``(dedup key, message)`` for every grid disagreement inside one pair."""
    get = {role: files[(path, _ROLE_KIND[role])] for role, path in p.files().items()}
    out = []
    checks = [("fixed", "moving", "fixed and moving images must share one grid")]
    checks += [
        (img, lab, f"{lab.replace('_', ' ')} must be on the {img} image grid")
        for img, lab in (("fixed", "fixed_labels"), ("moving", "moving_labels"))
    ]
    checks.append(("fixed", "mask", "the mask must be on the fixed image grid"))
    for a, b, what in checks:
        if a in get and b in get:
            message = _grid_problem(get[a], get[b], what)
            if message:
                out.append((frozenset((get[a].path, get[b].path)), message))
    if "displacement" in get and get["displacement"].ok and get["fixed"].ok:
        disp, fixed = get["displacement"], get["fixed"]
        expected = (len(fixed.shape), *fixed.shape)
        if disp.shape != expected:
            out.append(
                (
                    (disp.path, fixed.path),
                    f"{disp.path}: displacement shape {disp.shape} (ndim, *spatial) does not "
                    f"match the fixed image {fixed.path} (expected {expected})",
                )
            )
        elif float(np.abs(disp.affine - fixed.affine).max()) > AFFINE_ATOL:
            out.append(
                (
                    (disp.path, fixed.path),
                    f"{disp.path}: displacement affine differs from the fixed image {fixed.path} "
                    "(the field must live on the fixed grid)",
                )
            )
    return out


def _landmark_problems(
    p: PairSpec, files: dict[tuple[Path, str], FileInfo]
) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` of a pair's landmark files: unreadable, another dimension than
    the images, points outside their image's grid (``[0, n - 1]`` per axis, as the TRE needs),
    headerless (row-matched) files of different lengths; no common id is a warning (no TRE)."""
    if p.fixed_landmarks is None or p.moving_landmarks is None:
        return [], []
    problems, read = [], []
    for path, image in ((p.fixed_landmarks, p.fixed), (p.moving_landmarks, p.moving)):
        try:
            ids, points = read_landmarks(path)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        read.append((path, ids, points))
        info = files.get((image, "image"))
        if info is None or not info.ok:
            continue
        if points.shape[1] != len(info.shape):
            problems.append(
                f"{path}: {points.shape[1]}D landmarks for the {len(info.shape)}D image {image}"
            )
            continue
        upper = np.asarray(info.shape, dtype=np.float64) - 1
        outside = np.flatnonzero(np.any((points < 0) | (points > upper), axis=1))
        if outside.size:
            r = int(outside[0])
            problems.append(
                f"{path}: {outside.size} point(s) outside the image {image} of shape {info.shape} "
                f"(first: id {ids[r]}, {points[r].tolist()}; voxel coordinates must lie in "
                "[0, n - 1] along each axis)"
            )
    if problems or len(read) < 2:
        return problems, []
    (fp, f_ids, f_pts), (mp, m_ids, m_pts) = read
    if (has_row_ids(fp) or has_row_ids(mp)) and len(f_ids) != len(m_ids):
        return [
            f"{fp} ({len(f_ids)} points) and {mp} ({len(m_ids)} points): keypoint files without "
            "ids correspond row by row and must have the same number of rows"
        ], []
    if not set(f_ids) & set(m_ids):
        return [], [f"{fp} and {mp}: no landmark id in both files; the pair gets no TRE"]
    return [], []


# -- summary ---------------------------------------------------------------------------------
def _axis_stats(rows: list[tuple[float, ...]]) -> dict[str, list[float]]:
    if not rows:
        return {}
    ndim = Counter(len(r) for r in rows).most_common(1)[0][0]
    a = np.array([r for r in rows if len(r) == ndim], dtype=np.float64)
    return {
        "min": a.min(axis=0).tolist(),
        "median": np.median(a, axis=0).tolist(),
        "max": a.max(axis=0).tolist(),
    }


def _fold_summary(folds, strata: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for f in folds:
        entry = {
            "fold": f.index,
            "train_cases": len(f.train_cases),
            "train_pairs": len(f.train),
            "test_cases": len(f.test_cases),
            "test_pairs": len(f.test),
            "test_groups": dict(sorted(Counter(strata[c] for c in f.test_cases).items())),
        }
        if f.val:
            entry.update(val_cases=len(f.val_cases), val_pairs=len(f.val))
        out.append(entry)
    return out


@dataclass
class Checked:
    """What :func:`check_pairs` found: per-file information, problems and warnings."""

    files: dict[tuple[Path, str], FileInfo]
    problems: list[str]
    warnings: list[str]


def check_pairs(
    pairs: list[PairSpec], labels: dict[str, int], *, cache: Path | None = None
) -> Checked:
    """Read every file of ``pairs`` once and check it and each pair's grids.

    Parameters
    ----------
    pairs : list of PairSpec
    labels : dict str -> int
        The manifest's declared label values (background 0 is implicit).
    cache : Path, optional
        Folder of per-file results named by a hash of the file's bytes: a file checked before
        (by any run, under any name) is not read again. None: read everything.
    """
    files: dict[tuple[Path, str], FileInfo] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for p in pairs:
        for role, path in p.files().items():
            key = (path, _ROLE_KIND[role])
            if key not in files:
                log.debug("reading %s", path)
                info = files[key] = _inspect_cached(path, key[1], cache)
                problems += info.problems
                if key[1] == "labels":
                    problems += _label_problems(info, labels)
                warnings += info.warnings
    seen: set = set()
    for p in pairs:
        for key, message in _pair_problems(p, files):
            if key not in seen:
                seen.add(key)
                problems.append(f"{p.key}: {message}")
        landmarks = (p.fixed_landmarks, p.moving_landmarks)
        if landmarks not in seen:
            seen.add(landmarks)
            found, warned = _landmark_problems(p, files)
            problems += [f"{p.key}: {m}" for m in found]
            warnings += [f"{p.key}: {m}" for m in warned]
    return Checked(files, problems, warnings)


def stratify_problem(manifest: Manifest, pairs: list[PairSpec]) -> str | None:
    """A message when the manifest stratifies by a field that no pair has.

    ``group`` is a field of every pair (``PairSpec.group``; without values the split is simply
    unstratified, as the DCE manifest documents); any other name must be a column of the pairs
    (``PairSpec.meta``), else the split would silently be unstratified.
    """
    section = "split" if manifest.split is not None else "cv"
    field_name = manifest.stratify
    if field_name in (None, "group") or not pairs or any(field_name in p.meta for p in pairs):
        return None
    fields = sorted({"group"} | {k for p in pairs for k in p.meta})
    return (
        f"manifest {manifest.path}: {section}.stratify names the field {field_name!r}, which no "
        f"pair has; fields of the pairs: {', '.join(fields)} (or stratify: null)"
    )


def check_before_run(manifest: Manifest, pairs: list[PairSpec]) -> Checked:
    """What ``bench run`` checks before any work: the files of ``pairs`` (cached by content
    under ``CACHE/checked``) with the messages of ``bench data check``.

    Warnings are logged; problems raise :class:`ValidationError` listing them all.
    """
    checked = check_pairs(pairs, manifest.labels, cache=cache_dir() / "checked")
    stratify = stratify_problem(manifest, pairs)
    if stratify:
        checked.problems.insert(0, stratify)
    for message in checked.warnings:
        log.warning("%s", message)
    if checked.problems:
        raise ValidationError(
            f"dataset {manifest.name} ({manifest.root}); see `bench data check`", checked.problems
        )
    return checked


def validate(manifest: Manifest, *, raise_on_problems: bool = True) -> Report:
    """Check every file and pair of a dataset; report all problems and summarise the data.

    Every file is read completely once (truncated gzip streams and NaN voxels only show up
    then), even when several pairs share it.

    Parameters
    ----------
    manifest : Manifest
    raise_on_problems : bool, default True
        Raise :class:`ValidationError` (listing every problem) when there is any; with False the
        problems are only returned in :attr:`Report.problems`.

    Returns
    -------
    Report
    """
    from benchmark.data.folds import case_strata

    scan = manifest.scan()
    report = Report(
        dataset=manifest.name, root=str(manifest.root), manifest=str(manifest.path),
        contrast=manifest.contrast,
    )
    report.problems.extend(scan.problems)
    pairs = scan.pairs
    if not pairs:
        report.problems.append(
            f"no pairs found under {manifest.root} (loader {manifest.loader}); check the data "
            "folder (--root) and the manifest's pairs"
        )
    stratify_message = stratify_problem(manifest, pairs)
    if stratify_message:
        report.problems.append(stratify_message)

    checked = check_pairs(pairs, manifest.labels)
    files = checked.files
    report.problems += checked.problems
    report.warnings += checked.warnings
    report.files_read = len(files)

    report.cases = sorted({p.case for p in pairs})
    report.pairs = [p.key for p in pairs]
    stratify = manifest.stratify
    strata: dict[str, str] = {}
    try:
        strata = case_strata(pairs, "group" if stratify is None else stratify)
        report.groups = dict(sorted(Counter(strata.values()).items()))
        if pairs:
            report.folds = _fold_summary(manifest.folds_of(pairs), strata)
    except BenchError as exc:
        report.problems.append(f"folds: {exc}")

    images = [i for (_, kind), i in files.items() if kind == "image" and i.ok]
    report.spacing = _axis_stats([i.spacing for i in images])
    if images:
        stats = _axis_stats([i.shape for i in images])
        report.shapes = {
            "distinct": len({i.shape for i in images}),
            "min": [int(x) for x in stats["min"]],
            "median": stats["median"],
            "max": [int(x) for x in stats["max"]],
        }
    label_files = [
        (p.case, files[(path, "labels")])
        for p in pairs
        for path in (p.fixed_labels, p.moving_labels)
        if path is not None and files[(path, "labels")].ok
    ]
    if label_files:
        unique = {info.path: info for _, info in label_files}
        for name, value in manifest.labels.items():
            absent = sorted({case for case, info in label_files if value not in info.counts})
            report.labels[name] = {
                "value": value,
                "voxels": sum(info.counts.get(value, 0) for info in unique.values()),
                "files": len(unique),
                "absent_in": absent,
            }
    if report.problems and raise_on_problems:
        raise ValidationError(f"dataset {manifest.name} ({manifest.root})", report.problems)
    return report
