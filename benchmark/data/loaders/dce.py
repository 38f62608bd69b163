"""Breast DCE-MRI loader: one folder per study, one file per phase.

::

    ROOT/studies.csv                      optional: columns study (or case), group
    ROOT/STUDY/phase_00.nii.gz            pre-contrast (first in natural sort order)
    ROOT/STUDY/phase_01.nii.gz ...        post-contrast phases; the last one is the final phase
    ROOT/STUDY/phase_00_labels.nii.gz     optional labels per phase (fat 1, gland 2, lesion 3)
    ROOT/STUDY/mask.nii.gz                optional breast mask on the pre-contrast grid
    ROOT/STUDY/disp_phase_00-phase_04.nii.gz  optional ground truth: fixed phase_00, moving
                                          phase_04 (``write_displacement`` layout)

The phase glob is the manifest's ``pattern`` (default ``phase_*.nii.gz``); label maps
(``*_labels``), ``mask`` and ``disp_*`` files are never phases, even when the pattern matches them. Pairing ``pre-last`` (default) gives one pair
``pre-post`` per study (fixed pre-contrast, moving last phase); ``pre-each`` gives
``pre-post1`` ... ``pre-postK`` (fixed pre-contrast, moving post-contrast phase k).
This is the layout ``bench data demo demo-dce`` writes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from benchmark.core.csvfile import ENCODING
from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec
from benchmark.data.loaders import (
    Scan,
    existing,
    natural_key,
    separator_hint,
    strip_image_suffix,
)
from benchmark.data.spec import DatasetSource

#: Manifest keys of this loader beside the common ones.
MANIFEST_KEYS = ("pattern",)
#: The contrast of its pairs (the contrast agent changes the intensities between the phases).
CONTRAST = "different"
RULES = ("pre-last", "pre-each")
DEFAULT_PATTERN = "phase_*.nii.gz"
LABEL_SUFFIX = "_labels"


def pairing_rule(raw: dict[str, Any]) -> list[str]:
    """Check the DCE manifest options; return ``[rule]`` (``pre-last`` or ``pre-each``)."""
    rule = raw.get("pairs", "pre-last")
    if isinstance(rule, list) and len(rule) == 1:
        rule = rule[0]
    if rule not in RULES:
        raise BenchError(f"pairs must be one of {', '.join(RULES)}, got {rule!r}")
    pattern = raw.get("pattern", DEFAULT_PATTERN)
    if not isinstance(pattern, str) or not pattern or "/" in pattern:
        raise BenchError(f"pattern must be a file glob such as {DEFAULT_PATTERN}, got {pattern!r}")
    return [rule]


def _image_suffix(name: str) -> str:
    return name[len(strip_image_suffix(name)) :]


def _is_phase(name: str) -> bool:
    """False for the files that are never phases, whatever the pattern: label maps
    (``*_labels``), the mask and ground-truth displacements (``disp_*``)."""
    stem = strip_image_suffix(name)
    return not (stem.endswith(LABEL_SUFFIX) or stem == "mask" or stem.startswith("disp_"))


def read_groups(path: Path) -> tuple[dict[str, str], list[str]]:
    """``studies.csv`` -> ``({study: group}, problems)``; columns ``study`` (or ``case``), ``group``."""
    problems: list[str] = []
    groups: dict[str, str] = {}
    try:
        with path.open(newline="", encoding=ENCODING) as f:  # Excel writes a byte-order mark
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            id_col = "study" if "study" in columns else "case" if "case" in columns else None
            if id_col is None or "group" not in columns:
                return {}, [
                    f"{path}: needs columns study (or case) and group, has {columns}"
                    + separator_hint(columns)
                ]
            for line, row in enumerate(reader, start=2):
                study = (row.get(id_col) or "").strip()
                if not study:
                    problems.append(f"{path}:{line}: empty {id_col}")
                elif study in groups:
                    problems.append(f"{path}:{line}: duplicate study id {study!r}")
                else:
                    groups[study] = (row.get("group") or "").strip()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read ({type(exc).__name__}: {exc})")
    return groups, problems


def load(manifest: DatasetSource) -> Scan:
    """Scan a DCE folder: every sub-folder (not hidden) is a study and must hold >= 2 phases."""
    root = manifest.root
    pattern = manifest.raw.get("pattern", DEFAULT_PATTERN)
    rule = manifest.pairing[0]
    result = Scan()
    groups: dict[str, str] = {}
    if (root / "studies.csv").is_dir():
        result.problems.append(
            f"{root / 'studies.csv'}: is a folder; expected a CSV file with columns study, group"
        )
    elif (root / "studies.csv").is_file():
        groups, problems = read_groups(root / "studies.csv")
        result.problems.extend(problems)
    studies = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: natural_key(d.name),
    )
    if not studies:
        result.problems.append(f"{root}: no study folders (expected ROOT/STUDY/{pattern})")
    for folder in studies:
        case = folder.name
        result.cases.append(case)
        phases = sorted(
            (f for f in folder.glob(pattern) if f.is_file() and _is_phase(f.name)),
            key=lambda f: natural_key(f.name),
        )
        if len(phases) < 2:
            result.problems.append(
                f"{folder}: found {len(phases)} phase file(s) matching {pattern}; need a "
                "pre-contrast and at least one post-contrast phase"
            )
            continue
        names = [strip_image_suffix(f.name) for f in phases]
        pre = phases[0]
        if rule == "pre-last":
            chosen = [("pre-post", phases[-1], len(phases) - 1)]
        else:
            chosen = [(f"pre-post{k}", phases[k], k) for k in range(1, len(phases))]
        mask = existing(folder / "mask.nii.gz")
        for pair, moving, k in chosen:
            fixed_name, moving_name = names[0], names[k]
            result.pairs.append(
                PairSpec(
                    dataset=manifest.name,
                    case=case,
                    pair=pair,
                    fixed=pre,
                    moving=moving,
                    fixed_labels=existing(
                        folder / f"{fixed_name}{LABEL_SUFFIX}{_image_suffix(pre.name)}"
                    ),
                    moving_labels=existing(
                        folder / f"{moving_name}{LABEL_SUFFIX}{_image_suffix(moving.name)}"
                    ),
                    displacement=existing(folder / f"disp_{fixed_name}-{moving_name}.nii.gz"),
                    mask=mask,
                    group=groups.get(case) or None,
                    meta={
                        "fixed_phase": fixed_name,
                        "moving_phase": moving_name,
                        "moving_index": k,
                        "phases": names,
                    },
                )
            )
    missing = sorted(set(groups) - set(result.cases), key=natural_key)
    if missing:
        result.problems.append(
            f"{root / 'studies.csv'}: lists studies without a folder: {', '.join(missing)}"
        )
    return result
