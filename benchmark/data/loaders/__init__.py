"""Dataset loaders: turn a data folder into :class:`~benchmark.core.pairs.PairSpec` lists.

A loader only looks at the folder layout (which files exist, ``Info.cfg``, CSV tables); it never
reads image voxels. Every layout problem is collected into :attr:`Scan.problems` instead of being
raised, so one check reports them all. Kinds: ``acdc`` (:mod:`.acdc`), ``dce`` (:mod:`.dce`),
``explicit`` (:mod:`.explicit`), ``learn2reg`` (:mod:`.learn2reg`).

A loader module defines ``MANIFEST_KEYS`` (the manifest keys it adds to the common ones),
``pairing_rule(raw)`` and ``load(manifest)``; optionally ``CONTRAST`` (the
contrast of its data when the manifest does not say), ``SET_OPTIONS`` (``--set`` keys it takes,
each the name of one of its manifest keys: a Learn2Reg task's ``split`` is its ``task_split``), ``LABELS_OPTIONAL`` (``labels: {}`` allowed),
``folds(pairs, training)``
(a loader whose task fixes its own training and test pairs) and ``manifest_mapping(path)`` (a
dataset described by its own file, read without a manifest).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec
from benchmark.data.spec import DatasetSource

_MODULES = {
    "acdc": "benchmark.data.loaders.acdc",
    "dce": "benchmark.data.loaders.dce",
    "explicit": "benchmark.data.loaders.explicit",
    "learn2reg": "benchmark.data.loaders.learn2reg",
}
#: Dataset files read without a manifest, by the end of their name: the loader that reads them.
SELF_DESCRIBED = {"_dataset.json": "learn2reg"}
#: The loader kinds a manifest's ``loader:`` may name.
KINDS = tuple(_MODULES)

#: Case and pair ids must be usable as folder names on every file system.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class Scan:
    """What a loader found: pairs (sorted by case, then input order) and layout problems."""

    pairs: list[PairSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: cases seen, including ones that yielded no pair because of problems
    cases: list[str] = field(default_factory=list)


def _module(kind: str):
    if kind not in _MODULES:
        raise BenchError(f"unknown loader {kind!r}; expected one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[kind])


def manifest_keys(kind: str) -> tuple[str, ...]:
    """The manifest keys loader ``kind`` adds to the common ones (its ``MANIFEST_KEYS``)."""
    return tuple(_module(kind).MANIFEST_KEYS)


def pairing_rule(kind: str, raw: dict[str, Any]) -> list[str]:
    """The normalised pairing rule of a manifest for loader ``kind``, after checking the
    loader's options (raises BenchError naming the key)."""
    return _module(kind).pairing_rule(raw)


def option_keys(kind: str) -> tuple[str, ...]:
    """The ``--set`` keys a dataset of loader ``kind`` takes itself (none for most loaders)."""
    return tuple(getattr(_module(kind), "SET_OPTIONS", {}))


def default_contrast(kind: str) -> str | None:
    """The contrast a loader's data has when the manifest does not say (its module's
    ``CONTRAST``: ACDC ``same``, DCE ``different``), None when it cannot know."""
    return getattr(_module(kind), "CONTRAST", None)


def labels_optional(kind: str) -> bool:
    """Whether datasets of loader ``kind`` may have no labels (``labels: {}``; a Learn2Reg task
    without label maps): the module's ``LABELS_OPTIONAL``, else False."""
    return bool(getattr(_module(kind), "LABELS_OPTIONAL", False))


def apply_options(raw: Any, options: dict[str, Any]) -> Any:
    """The manifest mapping ``raw`` with the ``--set`` values its loader takes written into their
    manifest keys (``split=test`` -> ``task_split: test``); anything else unchanged."""
    kind = raw.get("loader") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in _MODULES:
        return raw
    module = _module(kind)
    keys = getattr(module, "SET_OPTIONS", {})
    chosen = {keys[k]: v for k, v in options.items() if k in keys}
    return module.check_options({**raw, **chosen}, options) if chosen else raw


def self_described(path: Path) -> str | None:
    """The loader of a dataset file read without a manifest (``TASK_dataset.json``), or None."""
    return next((k for end, k in SELF_DESCRIBED.items() if path.name.endswith(end)), None)


def manifest_mapping(path: Path) -> dict[str, Any]:
    """The manifest mapping of a dataset file read without a manifest (:func:`self_described`)."""
    kind = self_described(path)
    if kind is None:
        raise BenchError(
            f"{path}: not a dataset file (expected a manifest .yaml or a Learn2Reg "
            "TASK_dataset.json)"
        )
    return _module(kind).manifest_mapping(path)


def loader_folds(
    kind: str, pairs: list[PairSpec], training: Callable[[], list[PairSpec]]
) -> list | None:
    """The folds a loader of ``kind`` fixes itself (a Learn2Reg task's training pairs, from
    ``training()``, and its evaluated ``pairs``), or None for loaders whose folds follow the
    manifest's ``cv`` / ``split``."""
    rule = getattr(_module(kind), "folds", None)
    return None if rule is None else rule(pairs, training())


def scan(manifest: DatasetSource) -> Scan:
    """Run the manifest's loader on its root; then check ids (safe, unique)."""
    result: Scan = _module(manifest.loader).load(manifest)
    result.problems.extend(check_ids(result.pairs))
    return result


def check_ids(pairs: list[PairSpec]) -> list[str]:
    """Problems with ids: unsafe case/pair names and duplicate ``case/pair`` keys."""
    problems = []
    seen: dict[str, PairSpec] = {}
    for p in pairs:
        for what, value in (("case", p.case), ("pair", p.pair)):
            if not SAFE_ID.match(value):
                problems.append(
                    f"{p.key}: {what} id {value!r} is not file-system safe (use letters, digits, "
                    "'.', '_', '+', '-'; start with a letter or digit)"
                )
        if p.key in seen:
            problems.append(
                f"{p.key}: duplicate pair id (fixed {p.fixed}, moving {p.moving}; first seen with "
                f"fixed {seen[p.key].fixed}, moving {seen[p.key].moving})"
            )
        else:
            seen[p.key] = p
    return problems


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically (``phase_2`` before ``phase_10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def strip_image_suffix(name: str) -> str:
    """``phase_00.nii.gz`` -> ``phase_00`` (also ``.nii``, ``.nrrd``, ``.mha``, ``.mhd``)."""
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def separator_hint(columns: list[str] | None) -> str:
    """``" (the header is separated by ';': ...)"`` when a CSV header read with commas is one
    column holding ``;`` or tabs (a spreadsheet's export in some locales); else ``""``."""
    if columns and len(columns) == 1:
        for sep, name in ((";", "';'"), ("\t", "tabs")):
            if sep in columns[0]:
                return f" (the header is separated by {name}; the table must use commas)"
    return ""


def existing(path: Path) -> Path | None:
    return path if path.is_file() else None
