"""Parsing a dataset manifest: finding the file (a shipped name or a path), reading its YAML
strictly (:mod:`benchmark.data.yamlfile`) and checking every key's type and value, into a
:class:`ManifestFile`. Resolving the data folder and the pairs is :mod:`benchmark.data.manifest`'s.

A manifest is a YAML mapping::

    name: acdc                      # default: the file name without .yaml
    description: ...
    loader: acdc                    # acdc | dce | explicit | learn2reg
    root_env: ACDC_ROOT             # environment variable holding the data folder (optional)
    root: relative/or/absolute      # data folder relative to the manifest file (optional)
    labels: {RV: 1, LVm: 2, LVb: 3} # name -> value, in report order; 0 is background
    pairs: [ED-ES, ES-ED]           # pairing rule, loader specific (explicit: the pairs)
    training_pairs: pre-each        # pairing rule of the training cases (default: pairs)
    cv: {folds: 4, stratify: group, seed: 0}
    split: {train: 90, val: 10, test: 50, stratify: null, seed: 0}   # instead of cv
    presets: {quick: {...}, paper: {...}}                             # training settings
    demo: {generator: demo-acdc, cases: 8, seed: 0}                  # demo datasets only
    landmarks: "{stem}_landmarks.csv"  # landmark CSV beside each image (optional; TRE metric)
    contrast: same                  # same | different: do fixed and moving share one contrast
                                    # (default of acdc: same, dce: different; else required)

plus loader options (``subset``, ``require_labels`` for acdc; ``pattern`` for dce; ``pairs_csv``
for explicit; ``task_json``, ``task_split``, ... for learn2reg: each loader's ``MANIFEST_KEYS``).
Unknown keys are errors, so a typo never passes silently; so are repeated keys, keys that YAML
reads as numbers or booleans, and anchors. A Learn2Reg task's ``TASK_dataset.json`` is read
without a manifest (:mod:`benchmark.data.loaders.learn2reg` turns it into this mapping).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from benchmark.core.errors import BenchError
from benchmark.data import loaders
from benchmark.data.demo import DEMOS
from benchmark.data.spec import SEED_MAX, CrossValidation, DemoSpec, HoldoutSplit
from benchmark.data.yamlfile import load_mapping

COMMON_KEYS = (
    "name",
    "description",
    "loader",
    "root",
    "root_env",
    "labels",
    "pairs",
    "training_pairs",
    "cv",
    "split",
    "presets",
    "demo",
    "landmarks",
    "contrast",
)
#: Values of ``contrast``: whether a pair's fixed and moving images share one contrast.
CONTRASTS = ("same", "different")
#: Label values are stored as int16 (:func:`benchmark.core.pairs.read_labels`).
LABEL_MAX = 2**15 - 1
#: An environment variable name as POSIX shells accept it.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ManifestFile:
    """A manifest file read and checked: everything but the data folder and the pairs.

    Attributes
    ----------
    path : Path
        The manifest file (absolute).
    sha256 : str
        Hex digest of the file's bytes.
    raw : dict
        The parsed YAML mapping (the loaders read their options from it).
    fields : dict
        The :class:`benchmark.data.manifest.Manifest` fields parsed from it: ``name``,
        ``loader``, ``labels``, ``pairing``, ``training_pairing``, ``cv``, ``split``,
        ``presets``, ``demo``, ``description``, ``landmarks``.
    root : str or None
        The manifest's ``root:`` (relative to the file's folder), as written.
    root_env : str or None
        The manifest's ``root_env:``, an environment variable name.
    """

    path: Path
    sha256: str
    raw: dict[str, Any]
    fields: dict[str, Any]
    root: str | None
    root_env: str | None


# -- finding manifests -------------------------------------------------------------------------
def _manifest_dir():
    return importlib.resources.files("data_manifests")


def known_manifests() -> list[str]:
    """Names of the manifests shipped in ``data_manifests/`` (sorted)."""
    return sorted(
        e.name[: -len(".yaml")] for e in _manifest_dir().iterdir() if e.name.endswith(".yaml")
    )


def _folder_message(path: Path) -> str:
    inside = sorted(p.name for p in path.glob("*.y*ml") if p.is_file())[:5]
    hint = f" (it holds {', '.join(inside)})" if inside else ""
    return f"manifest {path}: is a folder{hint}; expected a manifest file (.yaml)"


def find_manifest(name_or_path: str | os.PathLike) -> Path:
    """The manifest file for a shipped name (``acdc``) or a path to a ``.yaml``/``.yml`` file (or
    a dataset file read without a manifest: a Learn2Reg ``TASK_dataset.json``)."""
    text = str(name_or_path)
    looks_like_path = (
        text.endswith((".yaml", ".yml", ".json")) or os.sep in text or "/" in text or Path(text).is_file()
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if path.is_dir():
            raise BenchError(_folder_message(path))
        if not path.is_file():
            raise BenchError(f"manifest file {path} not found")
        return path.resolve()
    entry = _manifest_dir() / f"{text}.yaml"
    if not entry.is_file():
        if Path(text).expanduser().is_dir():
            raise BenchError(_folder_message(Path(text).expanduser()))
        raise BenchError(
            f"unknown dataset {text!r}: known manifests are {', '.join(known_manifests())}, "
            "or pass the path to a manifest .yaml"
        )
    return Path(str(entry)).resolve()


# -- checking keys -----------------------------------------------------------------------------
def _fail(path: Path, message: str) -> NoReturn:
    raise BenchError(f"manifest {path}: {message}")


def _int(
    path: Path, where: str, value, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"{where} must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            _fail(path, f"{where} must be >= {minimum}, got {value}")
        _fail(path, f"{where} must be an integer in {minimum}..{maximum}, got {value}")
    return value


def _seed(path: Path, where: str, value) -> int:
    return _int(path, where, value, minimum=0, maximum=SEED_MAX)


def _text(path: Path, where: str, value, *, what: str) -> str:
    """A non-empty string without control characters (``what`` says what is expected)."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or any(ord(c) < 32 and c not in "\t\n" for c in value)
    ):
        _fail(path, f"{where} must be {what}, got {value!r}")
    return value


def _mapping(path: Path, where: str, value, *, what: str) -> dict:
    if not isinstance(value, dict):
        _fail(path, f"{where} must be a mapping with {what}; got {value!r}")
    return value


def _check_keys(path: Path, where: str, mapping: dict, allowed) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        _fail(path, f"unknown key(s) {unknown} in {where}; allowed: {', '.join(allowed)}")


def _parse_labels(path: Path, labels) -> dict[str, int]:
    if not isinstance(labels, dict) or not labels:
        _fail(path, f"labels must be a non-empty mapping name -> value, got {labels!r}")
    out: dict[str, int] = {}
    for name, value in labels.items():
        value = _int(path, f"labels.{name}", value, minimum=1)
        if value > LABEL_MAX:
            _fail(
                path,
                f"labels.{name} must be <= {LABEL_MAX} (label maps are read as int16), got {value}",
            )
        if value in out.values():
            _fail(path, f"label value {value} is used twice (labels {labels})")
        out[str(name)] = value
    return out


def _parse_stratify(path: Path, where: str, value) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value:
        _fail(path, f"{where}.stratify must be a field name (e.g. group) or null, got {value!r}")
    return value


def _parse_cv(path: Path, cv) -> CrossValidation:
    if cv is None:
        return CrossValidation()
    _mapping(path, "cv", cv, what="folds, stratify, seed")
    _check_keys(path, "cv", cv, ("folds", "stratify", "seed"))
    return CrossValidation(
        folds=_int(path, "cv.folds", cv.get("folds", 4), minimum=2),
        stratify=_parse_stratify(path, "cv", cv.get("stratify", "group")),
        seed=_seed(path, "cv.seed", cv.get("seed", 0)),
    )


def _parse_split(path: Path, split) -> HoldoutSplit | None:
    if split is None:
        return None
    _mapping(path, "split", split, what="train, val, test")
    _check_keys(path, "split", split, ("train", "val", "test", "stratify", "seed"))
    parts = {}
    for part in ("train", "val", "test"):
        v = split.get(part, 0)
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not (v >= 0 and math.isfinite(v))
        ):
            _fail(path, f"split.{part} must be a finite count or fraction >= 0, got {v!r}")
        parts[part] = v
    if parts["train"] <= 0 or parts["test"] <= 0:
        _fail(path, f"split needs train > 0 and test > 0, got {parts}")
    if not math.isfinite(float(sum(parts.values()))):
        _fail(path, f"split parts add up to more than a float holds: {parts}")
    return HoldoutSplit(
        **parts,
        stratify=_parse_stratify(path, "split", split.get("stratify")),
        seed=_seed(path, "split.seed", split.get("seed", 0)),
    )


def _parse_presets(path: Path, presets) -> dict[str, dict[str, Any]]:
    if presets is None:
        return {}
    if not isinstance(presets, dict) or not all(
        isinstance(v, dict) or v is None for v in presets.values()
    ):
        _fail(path, f"presets must map preset names to mappings of settings, got {presets!r}")
    return {str(k): dict(v or {}) for k, v in presets.items()}


def _parse_demo(path: Path, demo) -> DemoSpec | None:
    if demo is None:
        return None
    if not isinstance(demo, dict) or not isinstance(demo.get("generator"), str):
        _fail(path, f"demo must be a mapping with generator, cases, seed; got {demo!r}")
    _check_keys(path, "demo", demo, ("generator", "cases", "seed"))
    if demo["generator"] not in DEMOS:
        _fail(path, f"demo.generator must be one of {', '.join(DEMOS)}, got {demo['generator']!r}")
    cases = demo.get("cases")
    return DemoSpec(
        generator=demo["generator"],
        cases=None if cases is None else _int(path, "demo.cases", cases, minimum=1),
        seed=_seed(path, "demo.seed", demo.get("seed", 0)),
    )


def _parse_pairing(path: Path, loader: str, raw: dict, *, key: str = "pairs") -> list[str]:
    """The loader's pairing rule of ``raw[key]`` (``pairs`` or ``training_pairs``)."""
    options = raw if key == "pairs" else {**raw, "pairs": raw[key]}
    try:
        return loaders.pairing_rule(loader, options)
    except BenchError as exc:
        _fail(path, str(exc) if key == "pairs" else f"{key}: {exc}")


def _formats(pattern: str) -> bool:
    """True when ``pattern.format(stem=...)`` works: no other ``{field}``, braces balanced."""
    try:
        pattern.format(stem="x")
    except (KeyError, IndexError, ValueError):
        return False
    return True


def _parse_landmarks(path: Path, pattern) -> str | None:
    if pattern is None:
        return None
    if (
        not isinstance(pattern, str)
        or "{stem}" not in pattern
        or "/" in pattern
        or not _formats(pattern)
    ):
        _fail(
            path,
            f"landmarks must be a file-name pattern with {{stem}} (no other {{field}}) and no '/' "
            f"(e.g. '{{stem}}_landmarks.csv'), got {pattern!r}",
        )
    return pattern


def _parse_description(path: Path, description) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        _fail(path, f"description must be text, got {type(description).__name__} {description!r}")
    return description.strip()


def _parse_contrast(path: Path, loader: str, contrast) -> str:
    """``same`` or ``different``; a loader that knows its data's contrast (ACDC: one; DCE: the
    phases) gives the default, any other manifest must say (the methods pick their similarity by
    it, and the paper's claims are about one or the other)."""
    if contrast is None:
        known = loaders.default_contrast(loader)
        if known is None:
            _fail(path, "contrast is required: do a pair's fixed and moving images share one "
                        "contrast? contrast: same (one MR sequence, CT-CT) or contrast: different "
                        "(T1-T2, MR-CT, contrast-enhanced phases)")
        return known
    if contrast not in CONTRASTS:
        _fail(path, f"contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    return contrast


def parse_manifest(raw: dict, path: Path) -> dict[str, Any]:
    """Check a parsed manifest mapping; return the :class:`Manifest` fields except the root."""
    if not isinstance(raw, dict):
        _fail(path, f"expected a YAML mapping at the top level, got {type(raw).__name__}")
    loader = raw.get("loader")
    if loader not in loaders.KINDS:
        _fail(path, f"loader must be one of {', '.join(loaders.KINDS)}, got {loader!r}")
    _check_keys(path, "the manifest", raw, COMMON_KEYS + loaders.manifest_keys(loader))
    name = raw.get("name", path.name.split(".")[0])
    if isinstance(name, str) and "/" in name:
        _fail(path, f"name must be a non-empty string without '/', got {name!r}")
    _text(path, "name", name, what="a non-empty string without '/'")
    if "split" in raw and "cv" in raw:
        _fail(path, "give either cv (cross-validation) or split (hold-out), not both")
    return {
        "name": name,
        "loader": loader,
        "labels": {} if raw.get("labels") == {} and loaders.labels_optional(loader) else (
            _parse_labels(path, raw.get("labels"))
        ),
        "pairing": _parse_pairing(path, loader, raw),
        "training_pairing": (
            _parse_pairing(path, loader, raw, key="training_pairs")
            if raw.get("training_pairs") is not None
            else None
        ),
        "cv": _parse_cv(path, raw.get("cv")),
        "split": _parse_split(path, raw.get("split")),
        "presets": _parse_presets(path, raw.get("presets")),
        "demo": _parse_demo(path, raw.get("demo")),
        "description": _parse_description(path, raw.get("description")),
        "contrast": _parse_contrast(path, loader, raw.get("contrast")),
        "landmarks": _parse_landmarks(path, raw.get("landmarks")),
    }


def _parse_root(path: Path, raw: dict) -> tuple[str | None, str | None]:
    """The manifest's ``root`` and ``root_env``, checked."""
    root, root_env = raw.get("root"), raw.get("root_env")
    if root is not None:
        _text(path, "root", root, what="a folder (relative to the manifest file)")
    if root_env is not None and not (isinstance(root_env, str) and ENV_NAME.match(root_env)):
        _fail(
            path,
            f"root_env must be an environment variable name (letters, digits, '_'), got "
            f"{root_env!r}",
        )
    return root, root_env


def read_manifest(
    name_or_path: str | os.PathLike, *, options: dict[str, Any] | None = None
) -> ManifestFile:
    """Find, read and check a manifest (a shipped name or a path; a Learn2Reg
    ``TASK_dataset.json`` is turned into the mapping of its manifest by its loader), with the
    dataset's own ``--set`` ``options`` applied; nothing else is touched.

    Raises
    ------
    BenchError
        Unknown name (the message lists the known ones), a folder or a missing file, YAML that
        :func:`benchmark.data.yamlfile.load_mapping` refuses, or a key of the wrong type or value
        (the message names the file, the key and what is expected).
    """
    path = find_manifest(name_or_path)
    if loaders.self_described(path):
        raw, data = loaders.manifest_mapping(path), path.read_bytes()
    else:
        raw, data = load_mapping(path)
    raw = loaders.apply_options(raw, dict(options or {}))
    fields = parse_manifest(raw, path)
    root, root_env = _parse_root(path, raw)
    return ManifestFile(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        raw=raw,
        fields=fields,
        root=root,
        root_env=root_env,
    )


def demo_spec(name: str) -> DemoSpec | None:
    """The ``demo:`` settings of the shipped manifest ``name``; None if it has none or no such
    manifest is shipped (no data folder is resolved)."""
    if name not in known_manifests():
        return None
    return read_manifest(name).fields["demo"]
