"""Explicit loader: the user's own data as a list of pairs, no code needed.

The manifest lists the pairs inline::

    loader: explicit
    pairs:
      - {case: subj01, pair: base-follow, fixed: subj01/base.nii.gz, moving: subj01/follow.nii.gz,
         fixed_labels: subj01/base_seg.nii.gz, moving_labels: subj01/follow_seg.nii.gz, group: A}

or names a CSV file with the same columns: ``pairs_csv: pairs.csv`` (found beside the manifest
file, else under the data root). Columns: ``case``, ``pair``, ``fixed``, ``moving`` (required),
``fixed_labels``, ``moving_labels``, ``displacement``, ``mask``, ``group`` (optional; empty cells
mean absent). Any other column goes into ``PairSpec.meta``. Image paths are relative to the data
root (absolute paths are kept).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from benchmark.core.csvfile import ENCODING
from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec, as_path
from benchmark.data.loaders import Scan, separator_hint
from benchmark.data.spec import DatasetSource

#: Manifest keys of this loader beside the common ones.
MANIFEST_KEYS = ("pairs_csv",)
REQUIRED = ("case", "pair", "fixed", "moving")
OPTIONAL_FILES = ("fixed_labels", "moving_labels", "displacement", "mask")
COLUMNS = (*REQUIRED, *OPTIONAL_FILES, "group")


def pairing_rule(raw: dict[str, Any]) -> list[str]:
    """Check that the manifest gives ``pairs`` (a list of mappings) or ``pairs_csv``, not both.

    In inline pairs the ids and file names must be text (YAML reads ``010`` as 8 and ``1:30`` as
    90: quoting keeps them as written) and no value may be a list or a mapping.
    """
    pairs, pairs_csv = raw.get("pairs"), raw.get("pairs_csv")
    if (pairs is None) == (pairs_csv is None):
        raise BenchError(
            "an explicit manifest needs exactly one of pairs (a list of mappings with "
            f"{', '.join(REQUIRED)}) or pairs_csv (a CSV file with those columns)"
        )
    if pairs is not None and (
        not isinstance(pairs, list) or not pairs or not all(isinstance(p, dict) for p in pairs)
    ):
        raise BenchError(f"pairs must be a non-empty list of mappings with {', '.join(REQUIRED)}")
    if pairs_csv is not None and not (isinstance(pairs_csv, str) and pairs_csv.strip()):
        raise BenchError(f"pairs_csv must be a file name, got {pairs_csv!r}")
    for i, row in enumerate(pairs or []):
        for column, value in row.items():
            _check_value(f"pairs[{i}].{column}", column, value)
    return ["explicit"]


def _check_value(where: str, column: str, value: Any) -> None:
    """Raise BenchError unless ``value`` suits ``column`` of an inline pair (``where``)."""
    if value is None:
        return
    if column in (*REQUIRED, *OPTIONAL_FILES):
        if not isinstance(value, str):
            raise BenchError(
                f"{where} must be text, got {value!r} ({type(value).__name__}); quote it "
                "('...') so that YAML keeps it as written"
            )
    elif isinstance(value, (list, dict)):
        raise BenchError(f"{where} must be a single value, got {value!r}")


def _csv_candidates(manifest: DatasetSource) -> list[Path]:
    """Where ``pairs_csv`` may be: beside the manifest file, then under the data root."""
    name = Path(manifest.raw["pairs_csv"]).expanduser()
    if name.is_absolute():
        return [name]
    return list(dict.fromkeys([manifest.path.parent / name, manifest.root / name]))


def csv_path(manifest: DatasetSource) -> Path:
    """The pairs CSV: beside the manifest file if it is there, else under the data root."""
    candidates = _csv_candidates(manifest)
    return next((p for p in candidates if p.is_file()), candidates[-1])


def _csv_problem(manifest: DatasetSource) -> str | None:
    """Why the pairs table cannot be read: a folder, or no such file (None when it is a file)."""
    candidates = _csv_candidates(manifest)
    if any(p.is_file() for p in candidates):
        return None
    expected = f"expected a CSV file with columns {', '.join(REQUIRED)}"
    folders = [p for p in candidates if p.is_dir()]
    if folders:
        return f"{folders[0]} (pairs_csv of {manifest.path}): is a folder; {expected}"
    return (
        f"pairs_csv {manifest.raw['pairs_csv']!r} of {manifest.path}: file not found (looked "
        f"for {' and '.join(str(p) for p in candidates)}); {expected}"
    )


def _rows(manifest: DatasetSource, result: Scan) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every listed pair; ``where`` names the row in messages."""
    if manifest.raw.get("pairs") is not None:
        return [
            (f"{manifest.path}: pairs[{i}]", row) for i, row in enumerate(manifest.raw["pairs"])
        ]
    problem = _csv_problem(manifest)
    if problem:
        result.problems.append(problem)
        return []
    path = csv_path(manifest)
    try:
        with path.open(newline="", encoding=ENCODING) as f:  # Excel writes a byte-order mark
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                result.problems.append(
                    f"{path}: missing column(s) {', '.join(missing)} (has {reader.fieldnames})"
                    + separator_hint(reader.fieldnames)
                )
                return []
            rows = []
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                extra, short = row.get(None), None in row.values()
                if extra or short:
                    result.problems.append(
                        f"{where}: {'extra field(s) ' + repr(extra) if extra else 'missing field(s)'}"
                        f"; the header has {len(reader.fieldnames)} ({', '.join(reader.fieldnames)})"
                    )
                    continue
                if any("\x00" in value for value in row.values()):
                    result.problems.append(f"{where}: a NUL byte (a damaged or binary file?)")
                    continue
                rows.append((where, row))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        result.problems.append(f"{path}: cannot read pairs table ({type(exc).__name__}: {exc})")
        return []


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def load(manifest: DatasetSource) -> Scan:
    """Build the listed pairs; rows with missing values or files are reported and skipped."""
    result = Scan()
    for where, row in _rows(manifest, result):
        values = {k: _text(v) for k, v in row.items() if k is not None}
        missing = [c for c in REQUIRED if not values.get(c)]
        if missing:
            result.problems.append(f"{where}: missing value(s) for {', '.join(missing)}")
            continue
        files = {
            role: as_path(values.get(role) or None, manifest.root)
            for role in ("fixed", "moving", *OPTIONAL_FILES)
        }
        folders = [f"{role} {p}" for role, p in files.items() if p is not None and p.is_dir()]
        if folders:
            result.problems.append(
                f"{where}: {'; '.join(folders)}: is a folder; expected an image file"
            )
            continue
        absent = [f"{role} {p}" for role, p in files.items() if p is not None and not p.is_file()]
        if absent:
            result.problems.append(f"{where}: file(s) not found: {'; '.join(absent)}")
            continue
        if values["case"] not in result.cases:
            result.cases.append(values["case"])
        result.pairs.append(
            PairSpec(
                dataset=manifest.name,
                case=values["case"],
                pair=values["pair"],
                group=values.get("group") or None,
                meta={k: v for k, v in values.items() if k not in COLUMNS},
                **files,
            )
        )
    return result
