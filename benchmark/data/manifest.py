"""Resolving a dataset manifest: a :class:`Manifest` is a checked manifest file
(:mod:`benchmark.data.parse`, which documents the keys) with its data folder found, and knows its
pairs (through the loader), folds and training presets.

The data folder is, in this order: the ``root`` argument (``--root``), the environment variable
named by ``root_env``, the manifest's ``root``, and for demo manifests a cache folder
(``$MIRBENCH_CACHE/demo/NAME-seedS-nN``, default cache ``~/.cache/mirbench``) generated on
first use (:mod:`benchmark.data.cache`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError, ValidationError
from benchmark.core.landmarks import landmark_path
from benchmark.core.pairs import PairSpec
from benchmark.data import folds as folds_module
from benchmark.data.cache import demo_cache_path, ensure_demo
from benchmark.data.loaders import Scan, loader_folds, manifest_keys, option_keys, scan
from benchmark.data.parse import ManifestFile, read_manifest
from benchmark.data.spec import CrossValidation, DemoSpec, HoldoutSplit

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Manifest:
    """A dataset manifest with its data folder resolved.

    Attributes
    ----------
    name : str
        Dataset name (``PairSpec.dataset``).
    loader : str
        One of :data:`benchmark.data.loaders.KINDS`.
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
    contrast : {"same", "different"}
        Whether a pair's fixed and moving images share one contrast (the manifest's
        ``contrast``, or its loader's: :func:`benchmark.data.parse.parse_manifest`); the methods
        pick their similarity by it and the paper's claims are about one or the other.
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
    contrast: str = "same"
    _scan: Any = field(default=None, init=False, repr=False)
    _training_scan: Any = field(default=None, init=False, repr=False)

    @property
    def option_keys(self) -> tuple[str, ...]:
        """``--set`` keys the dataset takes itself, not a method (a Learn2Reg task's ``split``)."""
        return option_keys(self.loader)

    # -- pairs and folds -------------------------------------------------------------------
    def scan(self) -> Scan:
        """Run the loader once (cached): a :class:`benchmark.data.loaders.Scan` with the pairs
        found and the problems of the folder layout (missing files, bad ``Info.cfg``, ...)."""
        if self._scan is None:
            self._scan = scan(self)
            if self.landmarks:
                self._scan.pairs[:] = [self._with_landmarks(p) for p in self._scan.pairs]
        return self._scan

    def _with_landmarks(self, spec: PairSpec) -> PairSpec:
        """``spec`` with its landmark files when both images have one (``landmarks:`` pattern)."""
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
    def stratify(self) -> str | None:
        """The field the folds are stratified by: ``split.stratify`` or ``cv.stratify``."""
        return self.split.stratify if self.split is not None else self.cv.stratify

    @property
    def holdout(self) -> bool:
        """True when the manifest defines a hold-out ``split`` instead of cross-validation."""
        return self.split is not None

    def folds(self, *, strict: bool = True) -> list[folds_module.Fold]:
        """Folds over cases: ``cv.folds`` cross-validation folds, or one hold-out fold 0.

        Returns a list of :class:`benchmark.data.folds.Fold`. Deterministic for the manifest's
        seed; all pairs of a case are on the same side; stratified by the manifest's field.
        """
        return self.folds_of(self.pairs(strict=strict))

    def folds_of(self, pairs: list[PairSpec]) -> list[folds_module.Fold]:
        """The manifest's fold rule (cv or hold-out split) applied to ``pairs``; with
        ``training_pairing``, the training cases' pairs follow that rule instead."""
        if not pairs:
            raise BenchError(f"dataset {self.name}: no pairs found under {self.root}")
        fixed = loader_folds(self.loader, pairs, self.training_pairs)  # a task that fixes its own training and test pairs
        if fixed is not None:
            return fixed
        try:
            if self.split is not None:
                folds = folds_module.make_holdout(
                    pairs,
                    split=self.split.parts(),
                    stratify=self.split.stratify,
                    seed=self.split.seed,
                )
            else:
                folds = folds_module.make_folds(
                    pairs, folds=self.cv.folds, stratify=self.cv.stratify, seed=self.cv.seed
                )
        except BenchError as exc:
            section = "split" if self.split is not None else "cv"
            raise BenchError(f"manifest {self.path}: {section}: {exc}") from exc
        if self.training_pairing is None:
            return folds
        training = self.training_pairs()
        return [
            dataclasses.replace(
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
            self._training_scan = scan(dataclasses.replace(self, pairing=self.training_pairing))
        if self._training_scan.problems:
            raise ValidationError(
                f"dataset {self.name} ({self.root}), training pairs", self._training_scan.problems
            )
        return list(self._training_scan.pairs)

    def folds_table(self, *, strict: bool = True) -> dict[str, dict[str, list[str]]]:
        """``{"0": {"train": [case/pair keys], "test": [...]}, ...}`` (hold-out adds ``val``)."""
        return folds_module.folds_table(self.folds(strict=strict))

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
            "contrast": self.contrast,
            "loader_options": {k: self.raw[k] for k in manifest_keys(self.loader) if k in self.raw},
        }


def _resolve_root(
    parsed: ManifestFile, root: str | os.PathLike | None, *, generate: bool
) -> tuple[Path, str]:
    """(data folder, where it came from) of a parsed manifest; see the module docstring."""
    name, demo = parsed.fields["name"], parsed.fields["demo"]
    root_env = parsed.root_env
    if root is not None:
        candidate, source = Path(root).expanduser(), "argument --root"
    elif root_env and os.environ.get(root_env):
        candidate, source = Path(os.environ[root_env]).expanduser(), f"environment {root_env}"
    elif parsed.root is not None:
        candidate, source = parsed.path.parent / Path(parsed.root).expanduser(), "manifest root"
    elif demo is not None:
        if generate:
            return ensure_demo(name, demo).resolve(), "demo cache"
        return demo_cache_path(name, demo), "demo cache"
    else:
        how = "pass --root DIR"
        if root_env:
            how += f" or set the environment variable {root_env}"
        raise BenchError(f"dataset {name}: no data folder given: {how}")
    if not candidate.is_dir():
        what = "is a file, not a folder" if candidate.is_file() else "does not exist"
        raise BenchError(f"dataset {name}: data folder {candidate} (from {source}) {what}")
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
        key and the expected values; :func:`benchmark.data.parse.read_manifest`), or no usable
        data folder (the message names the environment variable to set).
    """
    parsed = read_manifest(name_or_path, options=options)
    data_root, source = _resolve_root(parsed, root, generate=generate)
    return Manifest(
        root=data_root,
        path=parsed.path,
        sha256=parsed.sha256,
        raw=parsed.raw,
        root_source=source,
        **parsed.fields,
    )
