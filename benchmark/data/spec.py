"""What a manifest declares, as plain values shared by the manifest's parsing
(:mod:`benchmark.data.parse`), its resolving (:mod:`benchmark.data.manifest`) and the loaders
(:mod:`benchmark.data.loaders`), so that none of them imports another back: the ``cv:``,
``split:`` and ``demo:`` settings, the range of seeds, and :class:`DatasetSource`, the part of a
manifest a loader reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: Seeds of ``cv:``, ``split:`` and ``demo:`` lie in ``0..SEED_MAX``: numpy's generators refuse
#: negative seeds, and 32 bits is what every random generator of the field accepts.
SEED_MAX = 2**32 - 1


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


class DatasetSource(Protocol):
    """The part of a manifest a loader reads (:class:`benchmark.data.manifest.Manifest` is one).

    Attributes
    ----------
    name : str
        Dataset name (``PairSpec.dataset``).
    root : Path
        Absolute data folder.
    path : Path
        The manifest file (messages; the explicit loader's ``pairs_csv`` beside it).
    raw : mapping
        The checked YAML mapping: the loader's own options (``subset``, ``pattern``, ``pairs``).
    pairing : list of str
        The pairing rule, as the loader's ``pairing_rule`` returned it.
    stratify : str or None
        The field the folds are stratified by.
    """

    @property
    def name(self) -> str: ...

    @property
    def root(self) -> Path: ...

    @property
    def path(self) -> Path: ...

    @property
    def raw(self) -> Mapping[str, Any]: ...

    @property
    def pairing(self) -> list[str]: ...

    @property
    def stratify(self) -> str | None: ...
