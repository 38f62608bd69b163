"""Preparing a blinded study folder from a run folder: case selection, blinding, rendering.

Layout of ``STUDY_DIR`` (written by :func:`create_study`; folders ``0700``, files ``0600``, see
:mod:`benchmark.reader_study.private`)::

    study.json      public description the app reads: options, cases, grid, encoding, presets,
                    opaque panel ids per result *slot* (no method name, no run path, no seed)
    data/ID.bin     one volume per (case, panel): raw little-endian uint16, i fastest
                    (``array.transpose(2, 1, 0)`` in C order), no header of any kind
    key/key.json    private: run folder, methods, selection scores, slot -> method per case
    study.db        SQLite (see :mod:`benchmark.reader_study.db`)

Blinding: the methods of a case are put into result slots in an order drawn from the operating
system's cryptographic source (:mod:`secrets`), recorded only in the key. The letter a reader sees
(``A``, ``B``...) maps to a slot through a per-reader, per-case permutation (drawn the same way,
kept in the database), so neither the seed nor another reader's letters tell which method is which.

Rendering pipeline (identical for every method): the moving image is warped onto the fixed grid
from the method's displacement field with the harness's shared warp
(:func:`methods.transforms.warp.warp_image`, cubic B-spline, border padding), the subtraction image is
``warped - fixed``, and all panels of a case (fixed, moving, moving - fixed, each warped, each
subtraction) are quantised with one common linear code ``value = offset + q * scale``, ``q``
uint16, spanning the joint range of all panels of the case. The ``warped.nii.gz`` files of the run
are *not* used, so no method can be recognised by its own resampler, dtype or file metadata.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement, read_image
from benchmark.core.layout import RESULT_FILE, RunLayout
from benchmark.core.pairs import read_pairs_table
from benchmark.reader_study.private import make_private_dir, write_private
from metrics.displacement import mean_displacement_length

log = logging.getLogger(__name__)

STUDY_VERSION = 2
#: Default number of cases when neither ``n_cases`` nor ``pairs`` is given.
DEFAULT_CASES = 10
LETTERS = string.ascii_uppercase
#: Image-window presets: (name, lower percentile, upper percentile) of the fixed image.
IMAGE_PRESETS = (
    ("Auto (1-99 %)", 1.0, 99.0),
    ("Contrast (5-95 %)", 5.0, 95.0),
    ("Full range", 0.0, 100.0),
)
#: Subtraction presets: symmetric windows +-f * (p99 - p1) of the fixed image.
SUBTRACTION_PRESETS = (("Wide", 1.0), ("Medium", 0.5), ("Narrow", 0.25))


@dataclass(frozen=True)
class CasePanels:
    """Rendered panels of one case, all on the fixed grid, float64 in original intensity units.

    ``fixed`` and ``moving`` (before registration) have shape ``(I, J, K)`` (2D images get
    ``K = 1``); ``warped`` and ``subtraction`` map each method to an array of the same shape.
    """

    fixed: np.ndarray
    moving: np.ndarray
    warped: dict[str, np.ndarray]
    subtraction: dict[str, np.ndarray]
    spacing: tuple[float, float, float]


def pair_dir(run_dir: Path, method: str, fold: int, case: str, pair: str) -> Path:
    """One registration's folder (:meth:`benchmark.core.layout.RunLayout.pair_dir`)."""
    return RunLayout(run_dir).pair_dir(method, fold, case, pair)


def read_test_pairs(run_dir: Path) -> pd.DataFrame:
    """``RUN_DIR/pairs.csv`` (:func:`~benchmark.core.pairs.read_pairs_table`) with
    ``key = case/pair``; BenchError when it is absent or lists no pair."""
    path = RunLayout(run_dir).pairs_csv
    if not path.is_file():
        raise BenchError(f"{path}: pairs.csv not found (is {run_dir} a run folder of `bench run`?)")
    table = read_pairs_table(path)
    if table.empty:
        raise BenchError(f"{path}: no test pairs")
    table["key"] = table["case"] + "/" + table["pair"]
    return table


def complete_methods(run_dir: Path, row, methods: list[str]) -> list[str]:
    """The methods among ``methods`` lacking a finished result for this pair (``result.json``
    and ``displacement.nii.gz`` present)."""
    lacking = []
    for m in methods:
        d = pair_dir(run_dir, m, row.fold, row.case, row.pair)
        if not ((d / RESULT_FILE).is_file() and (d / "displacement.nii.gz").is_file()):
            lacking.append(m)
    return lacking


def deformation_score(run_dir: Path, row, methods: list[str], *, truth: bool = False) -> float:
    """How much the pair deforms, in mm: the paper's "maximum deformation between fixed and
    moving" criterion.

    With ``truth=True`` the mean magnitude of the pair's ground-truth field (``displacement``
    column of ``pairs.csv``); otherwise the mean over ``methods`` of the mean magnitude of each
    method's field (the registrations being compared), both over the whole fixed grid.
    """
    if truth:
        paths = [Path(row.displacement)]
    else:
        paths = [
            pair_dir(run_dir, m, row.fold, row.case, row.pair) / "displacement.nii.gz"
            for m in methods
        ]
    return float(np.mean([mean_displacement_length(read_displacement(p)[0]) for p in paths]))


def _has_truth(rows) -> bool:
    """True when every row names an existing ground-truth displacement file."""
    return all(
        str(getattr(r, "displacement", "") or "").strip() and Path(r.displacement).is_file()
        for r in rows
    )


def read_pair_keys(path: str | os.PathLike) -> list[str]:
    """Keys ``case/pair`` of a ``--pairs`` file: one a line, blank lines and ``#`` comments
    skipped."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"--pairs: file {path} not found")
    keys = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.count("/") != 1 or line.startswith("/") or line.endswith("/"):
            raise BenchError(f"--pairs {path} line {n}: expected CASE/PAIR, got {line!r}")
        keys.append(line)
    if not keys:
        raise BenchError(f"--pairs {path}: no CASE/PAIR keys")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise BenchError(f"--pairs {path}: duplicate key(s) {dup}")
    return keys


def select_cases(
    run_dir: Path,
    methods: list[str],
    *,
    n_cases: int | None = None,
    pair_keys: list[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, float], str]:
    """Choose the study's pairs.

    Parameters
    ----------
    run_dir : Path
        Run folder.
    methods : list of str
        Methods compared; a pair qualifies only when every one of them finished it.
    n_cases : int, optional
        Take the ``n_cases`` qualifying pairs with the largest :func:`deformation_score`
        (default :data:`DEFAULT_CASES`, or all when fewer qualify); ties broken by key. The score
        is the ground-truth displacement magnitude when ``pairs.csv`` has a ground truth for
        every qualifying pair, else the mean over ``methods`` of their fields' magnitudes.
    pair_keys : list of str, optional
        Exactly these ``case/pair`` keys, in this order (exclusive with ``n_cases``); each must be
        a test pair of the run finished by every method.

    Returns
    -------
    (DataFrame, dict, str)
        Rows of ``pairs.csv`` (plus ``key``) in study order, the deformation score (mm) of each
        chosen key, and the selection criterion in words (recorded in the key).
    """
    if n_cases is not None and pair_keys is not None:
        raise BenchError("--cases and --pairs are exclusive; give one")
    if n_cases is not None and n_cases < 1:
        raise BenchError(f"--cases must be >= 1, got {n_cases}")
    table = read_test_pairs(run_dir)
    if pair_keys is not None:
        by_key = {r.key: r for r in table.itertuples(index=False)}
        unknown = [k for k in pair_keys if k not in by_key]
        if unknown:
            raise BenchError(
                f"--pairs: {unknown} not among the test pairs of {run_dir}/pairs.csv "
                f"(e.g. {list(by_key)[:3]})"
            )
        problems = [
            f"{k}: no finished result of {lack}"
            for k in pair_keys
            if (lack := complete_methods(run_dir, by_key[k], methods))
        ]
        if problems:
            raise BenchError("--pairs: " + "; ".join(problems))
        rows = [by_key[k] for k in pair_keys]
        truth = _has_truth(rows)
        scores = {r.key: deformation_score(run_dir, r, methods, truth=truth) for r in rows}
        return pd.DataFrame(rows), scores, "--pairs file"
    eligible = []
    for r in table.itertuples(index=False):
        lack = complete_methods(run_dir, r, methods)
        if lack:
            log.warning("skipping %s: no finished result of %s", r.key, lack)
        else:
            eligible.append(r)
    if len(eligible) < 1:
        raise BenchError(f"{run_dir}: no test pair finished by all of {methods}")
    truth = _has_truth(eligible)
    log.info(
        "selecting by the %s displacement magnitude", "ground-truth" if truth else "methods' mean"
    )
    scores = {r.key: deformation_score(run_dir, r, methods, truth=truth) for r in eligible}
    eligible.sort(key=lambda r: (-scores[r.key], r.key))
    n = DEFAULT_CASES if n_cases is None else n_cases
    if n > len(eligible):
        log.warning("asked for %d cases, only %d qualify; taking all", n, len(eligible))
    chosen = eligible[:n]
    criterion = "largest mean displacement magnitude (mm) of the " + (
        "ground truth" if truth else "methods' fields (mean over methods)"
    )
    return pd.DataFrame(chosen), {r.key: scores[r.key] for r in chosen}, criterion


def render_case(run_dir: Path, row, methods: list[str]) -> CasePanels:
    """Render the fixed, warped and subtraction panels of one pair for every method, all through
    the same pipeline (see the module docstring)."""
    from methods.transforms.warp import warp_image

    fixed_img = read_image(row.fixed)
    moving_img = read_image(row.moving)
    if not fixed_img.same_grid(moving_img):
        raise BenchError(
            f"{row.key}: fixed {row.fixed} (shape {fixed_img.shape}) and moving "
            f"{row.moving} (shape {moving_img.shape}) are not on one grid"
        )
    spacing = fixed_img.spacing
    fixed = fixed_img.array.astype(np.float64)
    moving = moving_img.array.astype(np.float64)
    warped, subtraction = {}, {}
    for m in methods:
        path = pair_dir(run_dir, m, row.fold, row.case, row.pair) / "displacement.nii.gz"
        disp, _ = read_displacement(path)
        if disp.shape != (fixed.ndim, *fixed.shape):
            raise BenchError(
                f"{path}: field of shape {disp.shape}, expected "
                f"{(fixed.ndim, *fixed.shape)} for fixed image {row.fixed}"
            )
        w = warp_image(moving, disp.astype(np.float64), spacing=spacing).astype(np.float64)
        warped[m] = w
        subtraction[m] = w - fixed
    if fixed.ndim == 2:
        fixed, moving = fixed[..., None], moving[..., None]
        warped = {m: a[..., None] for m, a in warped.items()}
        subtraction = {m: a[..., None] for m, a in subtraction.items()}
        spacing = (*spacing, 1.0)
    return CasePanels(fixed, moving, warped, subtraction, tuple(float(s) for s in spacing))


def encoding(arrays: list[np.ndarray]) -> tuple[float, float]:
    """``(offset, scale)`` of the common uint16 code of ``arrays``: ``offset`` is the joint
    minimum, ``scale = (max - min) / 65535`` (1.0 for a constant case)."""
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise BenchError("cannot encode panels with non-finite values")
    return lo, ((hi - lo) / 65535.0 if hi > lo else 1.0)


def encode(array: np.ndarray, *, offset: float, scale: float) -> bytes:
    """Raw little-endian uint16 bytes of ``array`` (shape ``(I, J, K)``), i fastest."""
    q = np.clip(np.rint((array - offset) / scale), 0, 65535).astype("<u2")
    return np.ascontiguousarray(q.transpose(2, 1, 0)).tobytes()


def decode(data: bytes, shape: tuple[int, int, int], *, offset: float, scale: float) -> np.ndarray:
    """Inverse of :func:`encode`: float64 array of shape ``(I, J, K)``."""
    i, j, k = shape
    q = np.frombuffer(data, dtype="<u2")
    if q.size != i * j * k:
        raise BenchError(f"panel data has {q.size} values, expected {i}*{j}*{k} for shape {shape}")
    return offset + scale * q.reshape(k, j, i).transpose(2, 1, 0).astype(np.float64)


def presets(fixed: np.ndarray, moving_range: tuple[float, float]) -> dict:
    """Window presets from the fixed image only (method-independent): ``{"image": [...],
    "subtraction": [...]}``, each a list of ``{"name", "lo", "hi"}``."""
    image = []
    for name, p_lo, p_hi in IMAGE_PRESETS:
        if p_lo == 0.0 and p_hi == 100.0:
            lo = min(float(fixed.min()), moving_range[0])
            hi = max(float(fixed.max()), moving_range[1])
        else:
            lo, hi = (float(v) for v in np.percentile(fixed, [p_lo, p_hi]))
        if hi <= lo:
            hi = lo + 1.0
        image.append({"name": name, "lo": lo, "hi": hi})
    p1, p99 = (float(v) for v in np.percentile(fixed, [1.0, 99.0]))
    half = (p99 - p1) if p99 > p1 else 1.0
    sub = [{"name": n, "lo": -f * half, "hi": f * half} for n, f in SUBTRACTION_PRESETS]
    return {"image": image, "subtraction": sub}


@dataclass(frozen=True)
class StudyOptions:
    """Per-study reader options (all off by default: the paper's design).

    Attributes
    ----------
    cannot_judge : bool
        Readers may answer "cannot judge" instead of ranking a case.
    comment : bool
        A free-text comment field per case.
    repeats : int
        Number of cases shown a second time (at the end of each reader's order, in a random
        order) to measure intra-reader agreement.
    per_reader_labels : bool, default True
        Each reader gets their own letter order per case (readers cannot compare notes).
    """

    cannot_judge: bool = False
    comment: bool = False
    repeats: int = 0
    per_reader_labels: bool = True

    def to_dict(self) -> dict:
        return {
            "cannot_judge": self.cannot_judge,
            "comment": self.comment,
            "repeats": self.repeats,
            "per_reader_labels": self.per_reader_labels,
        }


def blind_slots(methods: list[str], n_cases: int) -> list[list[str]]:
    """Per case the methods in slot order, each a permutation drawn from the operating system's
    cryptographic source (:class:`secrets.SystemRandom`; deliberately not seeded)."""
    if len(methods) > len(LETTERS):
        raise BenchError(f"--methods: at most {len(LETTERS)} methods, got {len(methods)}")
    rng = secrets.SystemRandom()
    return [rng.sample(methods, len(methods)) for _ in range(n_cases)]


def create_study(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    methods: list[str],
    n_cases: int | None = None,
    pair_keys: list[str] | None = None,
    seed: int = 0,
    options: StudyOptions | None = None,
) -> dict:
    """Write the study folder (without the database; see :func:`benchmark.reader_study.db`).

    Parameters
    ----------
    run_dir : path
        Run folder of ``bench run``.
    out : path
        New or empty folder.
    methods : list of str
        At least two distinct methods of the run.
    n_cases, pair_keys
        Case selection, see :func:`select_cases`.
    seed : int
        Recorded in the key only; the readers' case orders are drawn from it (in the database).
        Label orders are never seeded (see :func:`blind_slots`).
    options : StudyOptions, optional
        Reader options (default: all off, per-reader label orders on).

    Returns
    -------
    dict
        The public study description (the content of ``study.json``).
    """
    options = options or StudyOptions()
    run_dir = Path(run_dir).resolve()
    out = Path(out)
    if not run_dir.is_dir():
        raise BenchError(f"run folder {run_dir} not found")
    methods = [m.strip() for m in methods if m.strip()]
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise BenchError(f"--methods: need at least two distinct methods, got {methods}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BenchError(f"--out {out}: exists and is not an empty folder")
    if options.repeats < 0:
        raise BenchError(f"--repeats must be >= 0, got {options.repeats}")
    run_json = RunLayout(run_dir).run_json
    if run_json.is_file():
        known = json.loads(run_json.read_text(encoding="utf-8")).get("methods", {})
        unknown = [m for m in methods if known and m not in known]
        if unknown:
            raise BenchError(f"--methods: {unknown} not in {run_json} (has {sorted(known)})")
    created = not out.exists()
    try:
        return _write_study(
            run_dir, out, methods, n_cases=n_cases, pair_keys=pair_keys, seed=seed, options=options
        )
    except BaseException:
        # leave no half-written study behind (a retry would find a non-empty folder)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        raise


def _write_panel(out: Path, array: np.ndarray, *, offset: float, scale: float) -> str:
    token = secrets.token_hex(16)
    write_private(out / "data" / f"{token}.bin", encode(array, offset=offset, scale=scale))
    return token


def _write_study(
    run_dir: Path, out: Path, methods: list[str], *, n_cases, pair_keys, seed: int, options
) -> dict:
    rows, scores, criterion = select_cases(run_dir, methods, n_cases=n_cases, pair_keys=pair_keys)
    if options.repeats > len(rows):
        raise BenchError(
            f"--repeats {options.repeats} exceeds the {len(rows)} case(s) of the study"
        )
    slots = blind_slots(methods, len(rows))
    for sub in (out, out / "data", out / "key"):
        make_private_dir(sub)
    cases, key_cases = [], {}
    for row, slot_methods in zip(rows.itertuples(index=False), slots, strict=True):
        log.info("rendering %s", row.key)
        panels = render_case(run_dir, row, methods)
        before = panels.moving - panels.fixed
        all_arrays = [
            panels.fixed,
            panels.moving,
            before,
            *panels.warped.values(),
            *panels.subtraction.values(),
        ]
        offset, scale = encoding(all_arrays)
        put = functools.partial(_write_panel, out, offset=offset, scale=scale)

        cases.append(
            {
                "id": row.key,
                "shape": list(panels.fixed.shape),
                "spacing": list(panels.spacing),
                "offset": offset,
                "scale": scale,
                "presets": presets(
                    panels.fixed, (float(panels.moving.min()), float(panels.moving.max()))
                ),
                "panels": {
                    "fixed": put(panels.fixed),
                    "moving": put(panels.moving),
                    "moving_subtraction": put(before),
                    "results": [
                        {"warped": put(panels.warped[m]), "subtraction": put(panels.subtraction[m])}
                        for m in slot_methods
                    ],
                },
            }
        )
        key_cases[row.key] = slot_methods
    study = {
        "version": STUDY_VERSION,
        "n_methods": len(methods),
        "options": options.to_dict(),
        "cases": cases,
    }
    write_private(out / "study.json", json.dumps(study, indent=1))
    key = {
        "version": STUDY_VERSION,
        "run_dir": str(run_dir),
        "methods": methods,
        "seed": int(seed),
        "selection": criterion,
        "deformation_mm": scores,
        "cases": key_cases,
    }
    write_private(out / "key" / "key.json", json.dumps(key, indent=1))
    return study


def panel_tokens(case: dict) -> list[str]:
    """Every panel id of one case of ``study.json``."""
    panels = case["panels"]
    tokens = [panels["fixed"], panels["moving"], panels["moving_subtraction"]]
    return tokens + [r[kind] for r in panels["results"] for kind in ("warped", "subtraction")]


def load_study(study_dir: str | os.PathLike) -> dict:
    """The public ``study.json`` of a study folder (BenchError when missing or malformed)."""
    path = Path(study_dir) / "study.json"
    if not path.is_file():
        raise BenchError(f"{path}: not found (create the study with `bench reader-study create`)")
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: invalid JSON ({exc})") from exc
    if study.get("version") != STUDY_VERSION or not study.get("cases"):
        raise BenchError(f"{path}: expected a version {STUDY_VERSION} study with cases")
    return study


def load_key(study_dir: str | os.PathLike) -> dict:
    """The private ``key/key.json`` (slot -> method per case: ``key["cases"][case][slot]``)."""
    path = Path(study_dir) / "key" / "key.json"
    if not path.is_file():
        raise BenchError(f"{path}: study key not found; cannot unblind")
    return json.loads(path.read_text(encoding="utf-8"))
