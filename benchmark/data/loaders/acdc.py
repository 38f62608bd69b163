"""ACDC loader: the Automated Cardiac Diagnosis Challenge layout as users download it.

::

    ROOT/training/patient001/Info.cfg                   ED: 1 / ES: 12 / Group: DCM / NbFrame: 30 ...
    ROOT/training/patient001/patient001_frame01.nii.gz  ED frame (FF = frame number, 2 digits)
    ROOT/training/patient001/patient001_frame01_gt.nii.gz
    ROOT/training/patient001/patient001_frame12.nii.gz  ES frame
    ROOT/training/patient001/patient001_frame12_gt.nii.gz
    ROOT/training/patient001/patient001_4d.nii.gz       ignored
    ROOT/training/patient001/patient001_disp_ED-ES.nii.gz  optional ground truth (demo data)

``ROOT`` may also be the ``training`` (or ``testing``) folder itself, or hold ``database/training``
as the current ACDC download does. The manifest key ``subset``
(``training`` default, or ``testing``) picks the sub-folder. Pairs per patient are ``ED-ES``
(fixed ED, moving ES) and ``ES-ED``; the manifest's ``pairs`` chooses which. The stratification
group is ``Info.cfg``'s ``Group``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec
from benchmark.data.loaders import Scan, existing
from benchmark.data.spec import DatasetSource

#: Manifest keys of this loader beside the common ones.
MANIFEST_KEYS = ("subset", "require_labels")
#: The contrast of its pairs (cine frames of one MR sequence).
CONTRAST = "same"
PAIRS = ("ED-ES", "ES-ED")
SUBSETS = ("training", "testing")
PATIENT = re.compile(r"^patient\d+$")


def pairing_rule(raw: dict[str, Any]) -> list[str]:
    """Check the ACDC manifest options; return the pair ids (default ``[ED-ES, ES-ED]``)."""
    pairs = raw.get("pairs", list(PAIRS))
    if isinstance(pairs, str):
        pairs = [pairs]
    if not isinstance(pairs, list) or not pairs or any(p not in PAIRS for p in pairs):
        raise BenchError(f"pairs must be a non-empty list of {', '.join(PAIRS)}; got {pairs!r}")
    if len(set(pairs)) != len(pairs):
        raise BenchError(f"pairs lists a pair twice: {pairs}")
    subset = raw.get("subset", "training")
    if subset not in SUBSETS:
        raise BenchError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    if not isinstance(raw.get("require_labels", True), bool):
        raise BenchError(f"require_labels must be true or false, got {raw['require_labels']!r}")
    return list(pairs)


def parse_info_cfg(path: Path) -> dict[str, str]:
    """Read an ``Info.cfg`` into ``{key: value}`` (keys as written, values stripped).

    Lines are ``key: value`` with any spacing around the colon; blank lines, ``#`` comments and
    lines without a colon are skipped, extra keys are kept. Keys are looked up without regard to
    case (:func:`_lookup`), so a key repeated in any spelling must repeat its value.

    Raises
    ------
    BenchError
        If the file cannot be read or decoded, or gives one key two different values (naming
        both lines: ``ED: 1`` and later ``ED: 12`` would otherwise pick one silently).
    """
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    info: dict[str, str] = {}
    first: dict[str, tuple[int, str]] = {}  # lower-case key -> (line, value)
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        seen = first.setdefault(key.lower(), (number, value))
        if seen[1] != value:
            raise BenchError(
                f"{path}: {key} is given twice with different values ({seen[1]!r} on line "
                f"{seen[0]}, {value!r} on line {number}); keep one"
            )
        info[key] = value
    return info


def _lookup(info: dict[str, str], key: str) -> str | None:
    """Case-insensitive key lookup (``NbFrame`` == ``nbframe``)."""
    for k, v in info.items():
        if k.lower() == key.lower():
            return v
    return None


def _frame_number(value: str | None) -> int | None:
    """``"12"`` or ``"12.0"`` -> 12; anything else -> None."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not number.is_integer() or number < 0:
        return None
    return int(number)


def _number(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def patients_folder(root: Path, subset: str = "training") -> Path:
    """Where the patient folders are: ``ROOT/subset``, else ``ROOT/database/subset`` (the layout
    of the current ACDC download), else ``ROOT`` itself (``ROOT`` is the subset folder)."""
    for candidate in (root / subset, root / "database" / subset):
        if candidate.is_dir():
            return candidate
    return root


def _image(folder: Path, stem: str) -> Path | None:
    """``stem.nii.gz``, else ``stem.nii``; None when neither exists."""
    return existing(folder / f"{stem}.nii.gz") or existing(folder / f"{stem}.nii")


def load(manifest: DatasetSource) -> Scan:
    """Scan an ACDC folder: one pair per patient and pair id of the manifest.

    Problems (reported, never raised): no patient folders; missing or unreadable ``Info.cfg``;
    missing or non-integer ``ED``/``ES``; ``ED == ES``; a frame beyond ``NbFrame``; missing frame
    or ``_gt`` files (``_gt`` only when ``require_labels``, default true); missing ``Group`` when
    the folds are stratified by ``group``.
    """
    raw = manifest.raw
    folder = patients_folder(manifest.root, raw.get("subset", "training"))
    result = Scan()
    patients = (
        sorted(d for d in folder.iterdir() if d.is_dir() and PATIENT.match(d.name))
        if folder.is_dir()
        else []
    )
    if not patients:
        result.problems.append(
            f"{folder}: no patientNNN folders (expected ROOT/training/patientNNN/ or "
            "ROOT/patientNNN/)"
        )
        return result
    for patient in patients:
        result.cases.append(patient.name)
        result.pairs += _patient_pairs(manifest, patient, result.problems)
    return result


def _patient_pairs(manifest: DatasetSource, patient: Path, problems: list[str]) -> list[PairSpec]:
    """The pairs of one patient folder; none (and the reasons added to ``problems``) when its
    ``Info.cfg`` or files are unusable."""
    case = patient.name
    cfg = patient / "Info.cfg"
    if cfg.is_dir():
        problems.append(f"{cfg}: is a folder; expected the Info.cfg text file (ED, ES, Group)")
        return []
    if not cfg.is_file():
        problems.append(f"{cfg}: missing Info.cfg (needs ED, ES and Group)")
        return []
    try:
        info = parse_info_cfg(cfg)
    except BenchError as exc:
        problems.append(str(exc))
        return []
    frames, nb_frame = _frames(cfg, info, problems)
    if frames is None:
        return []
    group = _lookup(info, "Group") or None
    if group is None and manifest.stratify == "group":
        problems.append(
            f"{cfg}: no Group (the folds are stratified by group; set cv.stratify: null to skip)"
        )
    found = _frame_files(
        patient, frames, problems, require_labels=manifest.raw.get("require_labels", True)
    )
    if found is None:
        return []
    files, labels = found
    meta = {
        "ED": frames["ED"],
        "ES": frames["ES"],
        "NbFrame": nb_frame,
        "Height": _number(_lookup(info, "Height")),
        "Weight": _number(_lookup(info, "Weight")),
    }
    pairs = []
    for pair in manifest.pairing:
        fixed, moving = pair.split("-")
        pairs.append(
            PairSpec(
                dataset=manifest.name,
                case=case,
                pair=pair,
                fixed=files[fixed],
                moving=files[moving],
                fixed_labels=labels[fixed],
                moving_labels=labels[moving],
                displacement=existing(patient / f"{case}_disp_{pair}.nii.gz"),
                group=group,
                meta={
                    **meta,
                    "fixed_phase": fixed,
                    "moving_phase": moving,
                    "fixed_frame": frames[fixed],
                    "moving_frame": frames[moving],
                },
            )
        )
    return pairs


def _frames(
    cfg: Path, info: dict[str, str], problems: list[str]
) -> tuple[dict[str, int] | None, int | None]:
    """(``{"ED": n, "ES": m}`` or None when unusable, ``NbFrame`` or None) of an ``Info.cfg``.

    A frame beyond ``NbFrame`` is a problem that keeps the frames (the files decide)."""
    frames: dict[str, int] = {}
    for phase in ("ED", "ES"):
        value = _lookup(info, phase)
        number = _frame_number(value)
        if number is None:
            problems.append(
                f"{cfg}: {phase} must be a frame number, got "
                f"{'nothing' if value is None else repr(value)}"
            )
        else:
            frames[phase] = number
    if len(frames) < 2:
        return None, None
    if frames["ED"] == frames["ES"]:
        problems.append(f"{cfg}: ED and ES are the same frame ({frames['ED']})")
        return None, None
    nb_frame = _frame_number(_lookup(info, "NbFrame"))
    for phase, number in frames.items():
        if nb_frame is not None and not 1 <= number <= nb_frame:
            problems.append(f"{cfg}: {phase} frame {number} is outside 1..NbFrame ({nb_frame})")
    return frames, nb_frame


def _frame_files(
    patient: Path, frames: dict[str, int], problems: list[str], *, require_labels: bool
) -> tuple[dict[str, Path | None], dict[str, Path | None]] | None:
    """(image, labels) file of each phase; None when an image (or a required label map) is
    missing, each missing file added to ``problems``."""
    files: dict[str, Path | None] = {}
    labels: dict[str, Path | None] = {}
    bad = False
    for phase, number in frames.items():
        stem = f"{patient.name}_frame{number:02d}"
        files[phase] = _image(patient, stem)
        labels[phase] = _image(patient, f"{stem}_gt")
        if files[phase] is None:
            problems.append(
                f"{patient / (stem + '.nii.gz')}: missing {phase} frame image "
                f"({phase}: {number} in Info.cfg)"
            )
            bad = True
        if labels[phase] is None and require_labels:
            problems.append(
                f"{patient / (stem + '_gt.nii.gz')}: missing {phase} ground-truth labels"
            )
            bad = True
    return None if bad else (files, labels)
