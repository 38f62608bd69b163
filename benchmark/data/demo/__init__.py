"""Deterministic demo datasets, generated on the fly (nothing is downloaded).

``demo-acdc`` is a cardiac cine phantom in the real ACDC layout, ``demo-dce`` a breast DCE-MRI
phantom; both store the ground-truth displacement that the generator knows. See
:mod:`benchmark.data.demo.acdc` and :mod:`benchmark.data.demo.dce` for the construction, and
:func:`generate` for the entry point used by ``bench data demo``.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.atomic import write_text
from benchmark.core.errors import BenchError

log = logging.getLogger(__name__)

#: Bumped whenever a change to the generators changes the files they write.
GENERATOR_VERSION = 3

#: Written last into the output folder; its presence marks a complete dataset.
MARKER = "demo.json"


@dataclass(frozen=True)
class Demo:
    """A demo dataset: its name, default size, label values and writer."""

    name: str
    default_cases: int
    labels: dict[str, int]
    description: str
    #: ``writer(out, cases, seed)`` writes cases 1..cases into ``out``
    writer: Callable[[Path, int, int], None]


def _write_acdc(out: Path, cases: int, seed: int) -> None:
    from benchmark.data.demo import acdc

    for case in range(1, cases + 1):
        acdc.write_patient(out, case, seed=seed)


def _write_dce(out: Path, cases: int, seed: int) -> None:
    from benchmark.data.demo import dce

    groups = {}
    for case in range(1, cases + 1):
        folder, group = dce.write_study(out, case, seed=seed)
        groups[folder.name] = group
    dce.write_studies_csv(out, groups)


DEMOS: dict[str, Demo] = {
    "demo-acdc": Demo(
        "demo-acdc",
        8,
        {"RV": 1, "LVm": 2, "LVb": 3},
        "cardiac cine phantom in the ACDC layout (ED and ES frames, labels, ground-truth motion)",
        _write_acdc,
    ),
    "demo-dce": Demo(
        "demo-dce",
        24,
        {"fat": 1, "gland": 2, "lesion": 3},
        "breast DCE-MRI phantom (pre-contrast + 4 phases, labels, mask, ground-truth motion)",
        _write_dce,
    ),
}


def generate(name: str, out: str | os.PathLike, *, cases: int | None = None, seed: int = 0) -> Path:
    """Write demo dataset ``name`` into folder ``out`` (created if needed) and return ``out``.

    Parameters
    ----------
    name : str
        ``"demo-acdc"`` or ``"demo-dce"``.
    out : path-like
        Output folder. Existing files of the same names are replaced; other files are kept.
    cases : int, optional
        Number of patients/studies, >= 1. Defaults: ``demo-acdc`` 8, ``demo-dce`` 24.
    seed : int, default 0
        Non-negative seed. Case ``k`` (1-based) draws from
        ``numpy.random.default_rng([seed, dataset_id, k])`` (dataset_id 1 for ``demo-acdc``, 2 for
        ``demo-dce``), so a case is identical whatever the number of cases.

    Returns
    -------
    Path
        ``out``. The same ``name``, ``cases`` and ``seed`` give byte-identical files (on the same
        platform and library versions). ``out/demo.json`` (name, cases, seed, generator version)
        is written last and marks the dataset complete.

    Raises
    ------
    BenchError
        For an unknown name, ``cases`` < 1 or not an integer, or a negative / non-integer seed.
    """
    if name not in DEMOS:
        raise BenchError(f"demo name {name!r} is unknown; expected one of {', '.join(DEMOS)}")
    demo = DEMOS[name]
    if cases is None:
        cases = demo.default_cases
    if isinstance(cases, bool) or not isinstance(cases, numbers.Integral) or cases < 1:
        raise BenchError(f"--cases must be an integer >= 1, got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise BenchError(f"--seed must be an integer >= 0, got {seed!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    log.info("generating %s (%d cases, seed %d) into %s", name, cases, seed, out)
    demo.writer(out, int(cases), int(seed))
    marker = {"name": name, "cases": int(cases), "seed": int(seed), "version": GENERATOR_VERSION}
    write_text(out / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return out


__all__ = ["DEMOS", "GENERATOR_VERSION", "MARKER", "Demo", "generate"]
