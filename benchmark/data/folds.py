"""Cross-validation folds and hold-out splits over cases (patients / studies), never over pairs.

All pairs of one case land in the same part of a split, so no patient is seen in training and
testing of the same fold. Splits are stratified by a per-case value (ACDC: pathology group) and
deterministic for a seed: cases are sorted by id before a ``numpy.random.default_rng(seed)``
permutation, so the result depends only on the set of cases, their strata and the seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec

log = logging.getLogger(__name__)

SPLIT_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Fold:
    """One fold: the pairs used for training and for testing (and validation, hold-out only).

    Attributes
    ----------
    index : int
        Fold number, from 0.
    train, test : list of PairSpec
        Pairs of the training and test cases. No case appears in both.
    val : list of PairSpec
        Validation pairs of a hold-out split (empty for cross-validation).
    holdout : bool
        True for the single fold of a hold-out split.
    """

    index: int
    train: list[PairSpec]
    test: list[PairSpec]
    val: list[PairSpec] = field(default_factory=list)
    holdout: bool = False

    @property
    def train_cases(self) -> list[str]:
        return sorted({p.case for p in self.train})

    @property
    def test_cases(self) -> list[str]:
        return sorted({p.case for p in self.test})

    @property
    def val_cases(self) -> list[str]:
        return sorted({p.case for p in self.val})


def case_strata(pairs: Sequence[PairSpec], stratify: str | None) -> dict[str, str]:
    """The stratum of every case: ``PairSpec.group`` (``stratify="group"``) or ``meta[stratify]``.

    Cases without a value, and every case when ``stratify`` is None, get the stratum ``""``.

    Raises
    ------
    BenchError
        If the pairs of one case disagree on the value.
    """
    strata: dict[str, str] = {}
    for p in pairs:
        if stratify is None:
            value = None
        elif stratify == "group":
            value = p.group
        else:
            value = p.meta.get(stratify)
        value = "" if value is None else str(value)
        if strata.setdefault(p.case, value) != value:
            raise BenchError(
                f"case {p.case}: pairs disagree on the stratification field {stratify!r} "
                f"({strata[p.case]!r} vs {value!r})"
            )
    return strata


def _shuffled_groups(strata: Mapping[str, str], seed: int) -> list[list[str]]:
    """Cases per stratum (strata sorted by name), each list permuted by one seeded generator."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for case in sorted(strata):
        groups.setdefault(strata[case], []).append(case)
    return [[g[i] for i in rng.permutation(len(g))] for _, g in sorted(groups.items())]


def assign_folds(strata: Mapping[str, str], *, folds: int, seed: int = 0) -> dict[str, int]:
    """Stratified assignment of cases to ``folds`` folds.

    Strata are visited in sorted order, each one's cases in a seeded random order, and dealt
    round-robin to the folds with the offset carried over from one stratum to the next. Hence
    every fold holds ``floor`` or ``ceil`` of ``n / folds`` cases, and of each stratum
    ``floor`` or ``ceil`` of ``n_stratum / folds`` cases.

    Parameters
    ----------
    strata : mapping case -> stratum
    folds : int
        Number of folds, ``2 <= folds <= number of cases``.
    seed : int

    Returns
    -------
    dict case -> fold index
    """
    n = len(strata)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise BenchError(f"cv folds must be an integer >= 2, got {folds!r}")
    if n < folds:
        raise BenchError(f"cannot make {folds} folds from {n} case(s): need at least {folds}")
    order = [c for group in _shuffled_groups(strata, seed) for c in group]
    return {case: i % folds for i, case in enumerate(order)}


def split_counts(n: int, split: Mapping[str, float]) -> dict[str, int]:
    """Numbers of train/val/test cases for ``n`` cases.

    ``split`` gives counts (integers) or fractions for ``train``, ``val`` (optional, default 0)
    and ``test``. Integer counts that add up to ``n`` are used as they are; anything else is
    taken as proportions and scaled to ``n`` with largest-remainder rounding (the paper's
    90/10/50 on 150 studies stays 90/10/50; on 15 studies it becomes 9/1/5).

    Raises
    ------
    BenchError
        For unknown parts, negative values, or a result without training or test cases.
    """
    unknown = set(split) - set(SPLIT_PARTS)
    if unknown:
        raise BenchError(f"split: unknown part(s) {sorted(unknown)}; expected {SPLIT_PARTS}")
    values = {k: split.get(k, 0) for k in SPLIT_PARTS}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise BenchError(f"split: {k} must be a count or fraction >= 0, got {v!r}")
    total = float(sum(values.values()))
    if total <= 0:
        raise BenchError(f"split: parts add up to {total}; expected a positive total")
    if all(isinstance(v, int) for v in values.values()) and total == n:
        counts = dict(values)
    else:
        exact = {k: n * v / total for k, v in values.items()}
        counts = {k: math.floor(x) for k, x in exact.items()}
        rest = n - sum(counts.values())
        # largest remainder first; ties in the order train, val, test
        for k in sorted(SPLIT_PARTS, key=lambda k: (-(exact[k] - counts[k]), SPLIT_PARTS.index(k)))[
            :rest
        ]:
            counts[k] += 1
        if counts != values:
            log.info("split %s scaled to %d cases: %s", dict(values), n, counts)
    if counts["train"] < 1 or counts["test"] < 1:
        raise BenchError(
            f"split {dict(values)} on {n} case(s) gives {counts}: need at least one training "
            "and one test case"
        )
    return counts


def assign_split(
    strata: Mapping[str, str], split: Mapping[str, float], *, seed: int = 0
) -> dict[str, str]:
    """Stratified hold-out split of cases into ``train``/``val``/``test``.

    Each stratum's cases, in seeded random order, are interleaved proportionally (case ``r`` of a
    stratum of size ``m`` sits at position ``(r + 0.5) / m``); the interleaved list is then cut
    into consecutive train, val and test parts, so every part has about the strata's proportions.

    Returns
    -------
    dict case -> part name
    """
    counts = split_counts(len(strata), split)
    keyed = []
    for gi, group in enumerate(_shuffled_groups(strata, seed)):
        m = len(group)
        keyed.extend(((r + 0.5) / m, gi, case) for r, case in enumerate(group))
    order = [case for *_, case in sorted(keyed)]
    parts: dict[str, str] = {}
    start = 0
    for part in SPLIT_PARTS:
        for case in order[start : start + counts[part]]:
            parts[case] = part
        start += counts[part]
    return parts


def make_folds(
    pairs: Sequence[PairSpec], *, folds: int, stratify: str | None = "group", seed: int = 0
) -> list[Fold]:
    """``folds``-fold cross-validation over the cases of ``pairs`` (see :func:`assign_folds`).

    Fold ``k`` tests on the cases assigned to ``k`` and trains on all other cases. Pairs keep
    their input order inside each list.
    """
    assignment = assign_folds(case_strata(pairs, stratify), folds=folds, seed=seed)
    return [
        Fold(
            index=k,
            train=[p for p in pairs if assignment[p.case] != k],
            test=[p for p in pairs if assignment[p.case] == k],
        )
        for k in range(folds)
    ]


def make_holdout(
    pairs: Sequence[PairSpec],
    *,
    split: Mapping[str, float],
    stratify: str | None = None,
    seed: int = 0,
) -> list[Fold]:
    """A hold-out split as a single fold 0 (see :func:`assign_split`)."""
    parts = assign_split(case_strata(pairs, stratify), split, seed=seed)
    by_part = {part: [p for p in pairs if parts[p.case] == part] for part in SPLIT_PARTS}
    return [
        Fold(
            index=0, train=by_part["train"], test=by_part["test"], val=by_part["val"], holdout=True
        )
    ]


def folds_table(folds: Sequence[Fold]) -> dict[str, dict[str, list[str]]]:
    """JSON-able ``{"0": {"train": ["patient001/ED-ES", ...], "test": [...]}, ...}``.

    Keys are pair keys (``case/pair``); a hold-out fold also lists ``val`` (possibly empty). This is the content
    of a run's ``folds.json``.
    """
    table: dict[str, dict[str, list[str]]] = {}
    for fold in folds:
        entry = {"train": [p.key for p in fold.train], "test": [p.key for p in fold.test]}
        if fold.holdout or fold.val:
            entry["val"] = [p.key for p in fold.val]
        table[str(fold.index)] = entry
    return table
