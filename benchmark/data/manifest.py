"""Dataset manifests: reading ``data_manifests/NAME.yaml`` (or any manifest file) into a
:class:`Manifest` that knows its data folder, labels, pairs, folds and training presets.

A manifest is a YAML mapping::

    name: acdc                      # default: the file name without .yaml
    description: ...
    loader: acdc                    # acdc | dce | explicit
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

plus loader options (``subset``, ``require_labels`` for acdc; ``pattern`` for dce; ``pairs_csv``
for explicit; ``task_json``, ``task_split``, ... for learn2reg). Unknown keys are errors, so a typo
never passes silently. A Learn2Reg task's
``TASK_dataset.json`` is read without a manifest (:mod:`benchmark.data.loaders.learn2reg`).

The data folder is, in this order: the ``root`` argument (``--root``), the environment variable
named by ``root_env``, the manifest's ``root``, and for demo manifests a cache folder
(``$MIRBENCH_CACHE/demo/NAME-seedS-nN``, default cache ``~/.cache/mirbench``) generated on
first use.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark.core.errors import BenchError, ValidationError
from benchmark.core.pairs import PairSpec

if TYPE_CHECKING:
    from benchmark.data.folds import Fold
    from benchmark.data.loaders import Scan

log = logging.getLogger(__name__)

LOADER_KINDS = ("acdc", "dce", "explicit", "learn2reg")
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
)
#: Extra manifest keys each loader understands.
LOADER_KEYS = {
    "acdc": ("subset", "require_labels"),
    "dce": ("pattern",),
    "explicit": ("pairs_csv",),
    "learn2reg": ("task_json", "task_split", "training_seed", "modalities", "contrast"),
}
CACHE_ENV = "MIRBENCH_CACHE"


@dataclass(frozen=True)
class CrossValidation:
    """``cv:`` settings: number of folds, per-case stratification field (None: none), seed."""

    folds: int = 4
    stratify: str | None = "group"
    seed: int = 0


@dataclass(frozen=True)
class HoldoutSplit:
    """``split:`` settings: counts or fractions per part, stratification field, seed."""

    train: float
    val: float
    test: float
    stratify: str | None = None
    seed: int = 0

    def parts(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class DemoSpec:
    """``demo:`` settings: generator name for ``benchmark.data.demo.generate``, cases, seed."""

    generator: str
    cases: int | None = None
    seed: int = 0


@dataclass(eq=False)
class Manifest:
    """A dataset manifest with its data folder resolved.

    Attributes
    ----------
    name : str
        Dataset name (``PairSpec.dataset``).
    loader : str
        One of :data:`LOADER_KINDS`.
    root : Path
        Absolute data folder.
    labels : dict str -> int
        Label names and values in report order (background 0 is implicit).
    pairing : list of str
        Pairing rule: ACDC pair ids (``ED-ES``, ``ES-ED``), DCE rules (``pre-last``,
        ``pre-each``), or ``["explicit"]``.
    training_pairing : list of str or None
        Pairing rule of the training (and validation) cases when it differs from ``pairing``:
        e.g. the breast DCE pair evaluated is pre-contrast -> last phase, while every
        post-contrast phase against the pre-contrast one is a training pair (``pre-each``).
    cv : CrossValidation
        Cross-validation settings (ignored when ``split`` is set).
    split : HoldoutSplit or None
        Hold-out split instead of cross-validation: a single fold 0.
    presets : dict str -> dict
        Training setting overrides per preset name (``quick``, ``paper``), free-form.
    path : Path
        The manifest file.
    sha256 : str
        Hex digest of the manifest file's bytes.
    raw : dict
        The parsed YAML mapping.
    demo : DemoSpec or None
        How to generate the data, for demo manifests.
    description : str
    root_source : str
        Where ``root`` came from (``argument``, ``environment ACDC_ROOT``, ``manifest``,
        ``demo cache``), for messages and ``run.json``.
    landmarks : str or None
        File-name pattern of each image's landmark CSV in the image's folder, ``{stem}`` standing
        for the image name without suffix (:func:`benchmark.core.landmarks.landmark_path`). A pair gets
        landmarks (and the ``tre_mm`` metric) when both its images have such a file.
    """

    name: str
    loader: str
    root: Path
    labels: dict[str, int]
    pairing: list[str]
    cv: CrossValidation
    split: HoldoutSplit | None
    presets: dict[str, dict[str, Any]]
    path: Path
    sha256: str
    raw: dict[str, Any]
    demo: DemoSpec | None = None
    training_pairing: list[str] | None = None
    description: str = ""
    root_source: str = ""
    landmarks: str | None = None
    _scan: Any = field(default=None, init=False, repr=False)
    _training_scan: Any = field(default=None, init=False, repr=False)

    @property
    def option_keys(self) -> tuple[str, ...]:
        """``--set`` keys the dataset takes itself, not a method (a Learn2Reg task's ``split``)."""
        from benchmark.data.loaders import option_keys

        return option_keys(self.loader)

    # -- pairs and folds -------------------------------------------------------------------
    def scan(self) -> Scan:
        """Run the loader once (cached): a :class:`benchmark.data.loaders.Scan` with the pairs
        found and the problems of the folder layout (missing files, bad ``Info.cfg``, ...)."""
        if self._scan is None:
            from benchmark.data.loaders import scan

            self._scan = scan(self)
            if self.landmarks:
                self._scan.pairs[:] = [self._with_landmarks(p) for p in self._scan.pairs]
        return self._scan

    def _with_landmarks(self, spec: PairSpec) -> PairSpec:
        """``spec`` with its landmark files when both images have one (``landmarks:`` pattern)."""
        import dataclasses

        from benchmark.core.landmarks import landmark_path

        assert self.landmarks is not None
        files = [landmark_path(p, self.landmarks) for p in (spec.fixed, spec.moving)]
        if not all(f.is_file() for f in files):
            return spec
        return dataclasses.replace(spec, fixed_landmarks=files[0], moving_landmarks=files[1])

    def pairs(self, *, strict: bool = True) -> list[PairSpec]:
        """The dataset's pairs (``group`` filled for stratification) in loader order: cases in
        sorted folder order (ACDC, DCE) or as listed (explicit), pairs in the manifest's order.

        Parameters
        ----------
        strict : bool, default True
            Raise :class:`ValidationError` listing every layout problem the loader found. With
            ``strict=False`` the problems are logged as warnings and the pairs found are returned.
            File contents are not read here; :func:`benchmark.data.validate.validate` does that.
        """
        result = self.scan()
        if result.problems:
            if strict:
                raise ValidationError(f"dataset {self.name} ({self.root})", result.problems)
            for problem in result.problems:
                log.warning("%s: %s", self.name, problem)
        return list(result.pairs)

    @property
    def holdout(self) -> bool:
        """True when the manifest defines a hold-out ``split`` instead of cross-validation."""
        return self.split is not None

    def folds(self, *, strict: bool = True) -> list[Fold]:
        """Folds over cases: ``cv.folds`` cross-validation folds, or one hold-out fold 0.

        Returns a list of :class:`benchmark.data.folds.Fold`. Deterministic for the manifest's
        seed; all pairs of a case are on the same side; stratified by the manifest's field.
        """
        return self.folds_of(self.pairs(strict=strict))

    def folds_of(self, pairs: list[PairSpec]) -> list[Fold]:
        """The manifest's fold rule (cv or hold-out split) applied to ``pairs``; with
        ``training_pairing``, the training cases' pairs follow that rule instead."""
        from benchmark.data.folds import make_folds, make_holdout
        from benchmark.data.loaders import loader_folds

        if not pairs:
            raise BenchError(f"dataset {self.name}: no pairs found under {self.root}")
        fixed = loader_folds(self, pairs)  # a task that fixes its own training and test pairs
        if fixed is not None:
            return fixed
        if self.split is not None:
            folds = make_holdout(
                pairs, split=self.split.parts(), stratify=self.split.stratify, seed=self.split.seed
            )
        else:
            folds = make_folds(
                pairs, folds=self.cv.folds, stratify=self.cv.stratify, seed=self.cv.seed
            )
        if self.training_pairing is None:
            return folds
        training = self.training_pairs()
        return [
            dataclasses_replace(
                fold, train=[p for p in training if p.case in set(fold.train_cases)]
            )
            for fold in folds
        ]

    def training_pairs(self) -> list[PairSpec]:
        """Every pair of the ``training_pairing`` rule (the loader run once more, cached);
        layout problems are raised as by :meth:`pairs`."""
        if self.training_pairing is None:
            return self.pairs()
        if self._training_scan is None:
            from benchmark.data.loaders import scan

            self._training_scan = scan(dataclasses_replace(self, pairing=self.training_pairing))
        if self._training_scan.problems:
            raise ValidationError(
                f"dataset {self.name} ({self.root}), training pairs", self._training_scan.problems
            )
        return list(self._training_scan.pairs)

    def folds_table(self, *, strict: bool = True) -> dict[str, dict[str, list[str]]]:
        """``{"0": {"train": [case/pair keys], "test": [...]}, ...}`` (hold-out adds ``val``)."""
        from benchmark.data.folds import folds_table

        return folds_table(self.folds(strict=strict))

    def preset(self, name: str) -> dict[str, Any]:
        """A copy of the training settings of preset ``name``; BenchError lists the known ones."""
        if name not in self.presets:
            raise BenchError(
                f"dataset {self.name}: no preset {name!r}; known presets: "
                f"{', '.join(self.presets) or '(none)'}"
            )
        return dict(self.presets[name])

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the manifest for ``run.json``."""
        return {
            "name": self.name,
            "loader": self.loader,
            "path": str(self.path),
            "sha256": self.sha256,
            "root": str(self.root),
            "root_source": self.root_source,
            "labels": dict(self.labels),
            "pairing": list(self.pairing),
            "training_pairing": list(self.training_pairing) if self.training_pairing else None,
            "cv": None if self.split else vars(self.cv).copy(),
            "split": vars(self.split).copy() if self.split else None,
            "presets": {k: dict(v) for k, v in self.presets.items()},
            "demo": vars(self.demo).copy() if self.demo else None,
            "landmarks": self.landmarks,
            "loader_options": {k: self.raw[k] for k in LOADER_KEYS[self.loader] if k in self.raw},
        }


# -- finding manifests -------------------------------------------------------------------------
def _manifest_dir():
    return importlib.resources.files("data_manifests")


def known_manifests() -> list[str]:
    """Names of the manifests shipped in ``data_manifests/`` (sorted)."""
    return sorted(
        e.name[: -len(".yaml")] for e in _manifest_dir().iterdir() if e.name.endswith(".yaml")
    )


def find_manifest(name_or_path: str | os.PathLike) -> Path:
    """The manifest file for a shipped name (``acdc``) or a path to a ``.yaml``/``.yml`` file."""
    text = str(name_or_path)
    looks_like_path = (
        text.endswith((".yaml", ".yml", ".json")) or os.sep in text or "/" in text or Path(text).is_file()
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise BenchError(f"manifest file {path} not found")
        return path.resolve()
    entry = _manifest_dir() / f"{text}.yaml"
    if not entry.is_file():
        raise BenchError(
            f"unknown dataset {text!r}: known manifests are {', '.join(known_manifests())}, "
            "or pass the path to a manifest .yaml"
        )
    return Path(str(entry)).resolve()


# -- parsing ---------------------------------------------------------------------------------
def _fail(path: Path, message: str):
    raise BenchError(f"manifest {path}: {message}")


def _int(path: Path, where: str, value, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"{where} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(path, f"{where} must be >= {minimum}, got {value}")
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
    if not isinstance(cv, dict):
        _fail(path, f"cv must be a mapping with folds, stratify, seed; got {cv!r}")
    _check_keys(path, "cv", cv, ("folds", "stratify", "seed"))
    return CrossValidation(
        folds=_int(path, "cv.folds", cv.get("folds", 4), minimum=2),
        stratify=_parse_stratify(path, "cv", cv.get("stratify", "group")),
        seed=_int(path, "cv.seed", cv.get("seed", 0)),
    )


def _parse_split(path: Path, split) -> HoldoutSplit | None:
    if split is None:
        return None
    if not isinstance(split, dict):
        _fail(path, f"split must be a mapping with train, val, test; got {split!r}")
    _check_keys(path, "split", split, ("train", "val", "test", "stratify", "seed"))
    parts = {}
    for part in ("train", "val", "test"):
        v = split.get(part, 0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            _fail(path, f"split.{part} must be a count or fraction >= 0, got {v!r}")
        parts[part] = v
    if parts["train"] <= 0 or parts["test"] <= 0:
        _fail(path, f"split needs train > 0 and test > 0, got {parts}")
    return HoldoutSplit(
        **parts,
        stratify=_parse_stratify(path, "split", split.get("stratify")),
        seed=_int(path, "split.seed", split.get("seed", 0)),
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
    cases = demo.get("cases")
    return DemoSpec(
        generator=demo["generator"],
        cases=None if cases is None else _int(path, "demo.cases", cases, minimum=1),
        seed=_int(path, "demo.seed", demo.get("seed", 0)),
    )


def _parse_pairing(path: Path, loader: str, raw: dict) -> list[str]:
    from benchmark.data.loaders import pairing_rule

    try:
        return pairing_rule(loader, raw)
    except BenchError as exc:
        _fail(path, str(exc))


def parse_manifest(raw: dict, path: Path) -> dict[str, Any]:
    """Check a parsed manifest mapping; return the :class:`Manifest` fields except the root."""
    from benchmark.data.loaders import labels_optional

    if not isinstance(raw, dict):
        _fail(path, f"expected a YAML mapping at the top level, got {type(raw).__name__}")
    loader = raw.get("loader")
    if loader not in LOADER_KINDS:
        _fail(path, f"loader must be one of {', '.join(LOADER_KINDS)}, got {loader!r}")
    _check_keys(path, "the manifest", raw, COMMON_KEYS + LOADER_KEYS[loader])
    name = raw.get("name", path.name.split(".")[0])
    if not isinstance(name, str) or not name or "/" in name:
        _fail(path, f"name must be a non-empty string without '/', got {name!r}")
    root_env = raw.get("root_env")
    if root_env is not None and not (isinstance(root_env, str) and root_env):
        _fail(path, f"root_env must be an environment variable name, got {root_env!r}")
    if "split" in raw and "cv" in raw:
        _fail(path, "give either cv (cross-validation) or split (hold-out), not both")
    return {
        "name": name,
        "loader": loader,
        "labels": {} if raw.get("labels") == {} and labels_optional(loader) else (
            _parse_labels(path, raw.get("labels"))
        ),
        "pairing": _parse_pairing(path, loader, raw),
        "training_pairing": (
            _parse_pairing(path, loader, {**raw, "pairs": raw["training_pairs"]})
            if raw.get("training_pairs") is not None
            else None
        ),
        "cv": _parse_cv(path, raw.get("cv")),
        "split": _parse_split(path, raw.get("split")),
        "presets": _parse_presets(path, raw.get("presets")),
        "demo": _parse_demo(path, raw.get("demo")),
        "description": str(raw.get("description", "")).strip(),
        "landmarks": _parse_landmarks(path, raw.get("landmarks")),
    }


def _parse_landmarks(path: Path, pattern) -> str | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str) or "{stem}" not in pattern or "/" in pattern:
        _fail(
            path,
            f"landmarks must be a file-name pattern with {{stem}} and no '/' "
            f"(e.g. '{{stem}}_landmarks.csv'), got {pattern!r}",
        )
    return pattern


def demo_spec(name: str) -> DemoSpec | None:
    """The ``demo:`` settings of the shipped manifest ``name``; None if it has none or no such
    manifest is shipped (no data folder is resolved)."""
    if name not in known_manifests():
        return None
    path = find_manifest(name)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse_manifest(raw, path)["demo"]


# -- the data folder -------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$MIRBENCH_CACHE``, or ``~/.cache/mirbench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mirbench"


def demo_cache_path(name: str, demo: DemoSpec) -> Path:
    """Where the demo of manifest ``name`` is generated: ``CACHE/demo/NAME-seedS-nN``."""
    cases = "default" if demo.cases is None else demo.cases
    return cache_dir() / "demo" / f"{name}-seed{demo.seed}-n{cases}"


def _cached_demo(target: Path) -> Path | None:
    """The data folder of a complete, current cached demo in ``target``; None otherwise.

    Complete: the ``.root`` marker (written before the final rename) is there. Current: the
    generator's ``demo.json`` records the installed generator version (when it records one).
    """
    marker = target / ".root"
    if not marker.is_file():
        return None
    data_root = target / marker.read_text(encoding="utf-8").strip()
    try:
        import json

        from benchmark.data import demo as demo_module

        recorded = json.loads((data_root / demo_module.MARKER).read_text(encoding="utf-8"))
        current = demo_module.GENERATOR_VERSION
    except (ImportError, AttributeError, OSError, ValueError):
        return data_root
    if recorded.get("version") != current:
        log.warning(
            "cached demo %s was written by generator version %s (now %s): regenerating",
            target,
            recorded.get("version"),
            current,
        )
        return None
    return data_root


def ensure_demo(name: str, demo: DemoSpec) -> Path:
    """Generate the demo dataset into the cache unless it is there; return its data folder.

    Generation writes into a temporary folder beside the target that is renamed onto it when
    complete, so a cache folder that exists is always whole (an interrupted generation leaves
    only a ``.tmp-*`` folder, removed on the way out). A cached demo of an older generator
    version is replaced. If another process finishes first, its folder is kept.
    """
    target = demo_cache_path(name, demo)
    cached = _cached_demo(target)
    if cached is not None:
        return cached
    from benchmark.data.demo import generate

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    stale = None
    try:
        log.warning("generating demo dataset %s into %s (first use)", name, target)
        data_root = Path(generate(demo.generator, tmp, cases=demo.cases, seed=demo.seed))
        try:
            relative = data_root.resolve().relative_to(tmp.resolve())
        except ValueError as exc:
            raise BenchError(
                f"demo generator {demo.generator} returned {data_root}, outside its output "
                f"folder {tmp}"
            ) from exc
        (tmp / ".root").write_text(f"{relative.as_posix() or '.'}\n", encoding="utf-8")
        tmp.chmod(0o755)
        if target.exists():  # incomplete or outdated: move it out of the way first
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{target.name}-", dir=target.parent))
            os.rename(target, stale / "old")
        try:
            os.rename(tmp, target)
        except OSError:
            if _cached_demo(target) is None:  # not a concurrent generation that won the race
                raise
            log.info("demo %s was generated concurrently; using the existing folder", name)
    finally:
        for leftover in (tmp, stale):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    result = _cached_demo(target)
    if result is None:
        raise BenchError(f"demo cache {target} is incomplete after generation")
    return result


def _resolve_root(fields: dict, raw: dict, path: Path, root, *, generate: bool) -> tuple[Path, str]:
    name = fields["name"]
    root_env = raw.get("root_env")
    if root is not None:
        candidate, source = Path(root).expanduser(), "argument --root"
    elif root_env and os.environ.get(root_env):
        candidate, source = Path(os.environ[root_env]).expanduser(), f"environment {root_env}"
    elif raw.get("root") is not None:
        candidate, source = path.parent / Path(str(raw["root"])).expanduser(), "manifest root"
    elif fields["demo"] is not None:
        if generate:
            return ensure_demo(name, fields["demo"]).resolve(), "demo cache"
        return demo_cache_path(name, fields["demo"]), "demo cache"
    else:
        how = "pass --root DIR"
        if root_env:
            how += f" or set the environment variable {root_env}"
        raise BenchError(f"dataset {name}: no data folder given: {how}")
    if not candidate.is_dir():
        raise BenchError(f"dataset {name}: data folder {candidate} (from {source}) does not exist")
    return candidate.resolve(), source


def load_manifest(
    name_or_path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    generate: bool = True,
    options: dict[str, Any] | None = None,
) -> Manifest:
    """Read a manifest by shipped name (``acdc``, ``demo-acdc``) or path and resolve its data folder.

    Parameters
    ----------
    name_or_path : str or path
        A name of ``data_manifests/NAME.yaml`` or a path to a ``.yaml`` manifest.
    root : path, optional
        Data folder; overrides the manifest's ``root_env`` variable and ``root``.
    generate : bool, default True
        For demo manifests without a data folder: generate the demo into the cache if missing.
        With False the cache path is returned whether it exists or not.
    options : dict, optional
        The ``--set`` values; those the dataset takes itself (:attr:`Manifest.option_keys`) are
        applied, the others are left to the methods.

    Raises
    ------
    BenchError
        Unknown name (the message lists the known ones), invalid manifest (the message names the
        key and the expected values), or no usable data folder (the message names the
        environment variable to set).
    """
    from benchmark.data.loaders import apply_options, manifest_mapping

    path = find_manifest(name_or_path)
    data = path.read_bytes()
    if path.suffix.lower() == ".json":  # a dataset described by its own file (a Learn2Reg task)
        raw = manifest_mapping(path)
    else:
        try:
            raw = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BenchError(f"manifest {path}: not valid YAML ({exc})") from exc
    raw = apply_options(raw, dict(options or {}))
    fields = parse_manifest(raw, path)
    data_root, source = _resolve_root(fields, raw, path, root, generate=generate)
    return Manifest(
        root=data_root,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        raw=raw,
        root_source=source,
        **fields,
    )
