"""What a report section reads and returns: :class:`Context` (the run and the statistics computed
once per report) and :class:`Section` (pages, named figures, named tables), and the two text
helpers several sections share (:func:`safe_name`, :func:`fmt_mapping`).

The sections (:mod:`reports.sections`) and the builder (:mod:`reports.build`) import this module;
it imports neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from reports.runfolder import RunFolder


@dataclass
class Section:
    """What one section builder returns: PDF pages, named figures (also written as
    ``figures/NAME.png``) and named tables (written as ``tables/NAME.csv``), in order. An empty
    section adds nothing to the report."""

    pages: list[Figure] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


@dataclass
class Context:
    """The inputs every section builder reads (computed once by
    :func:`reports.build.build_report`).

    Attributes
    ----------
    run : RunFolder
        The run folder.
    methods : list of str
        The methods in report order (``run.methods``).
    results : DataFrame
        The tidy results (``run.results``).
    summary, comparisons : DataFrame
        :func:`~benchmark.stats.comparisons.summarize_metrics` and
        :func:`~benchmark.stats.comparisons.compare_methods` of the results.
    selection : DataFrame
        The pairs of the Figure 1/3 analogue (:func:`reports.cases.select_cases`).
    criterion : str
        How they were chosen.
    rankings : DataFrame or None
        A reader study's rankings (``--rankings``), ``None`` without.
    ranking_stats : RankingStats or None
        :func:`~benchmark.stats.ranking.analyze_rankings` of ``rankings``.
    progress : bool
        Show progress bars.
    contents : tuple of str
        The title page's table of contents (:func:`reports.sections.table_of_contents`).
    """

    run: RunFolder
    methods: list[str]
    results: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    selection: pd.DataFrame
    criterion: str
    rankings: pd.DataFrame | None
    ranking_stats: Any | None
    progress: bool
    contents: tuple[str, ...] = ()


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_`` (a file name part).

    Examples
    --------
    >>> safe_name("unet nmi/fold 0")
    'unet_nmi_fold_0'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def fmt_mapping(value: Any) -> str:
    """A ``run.json`` value as one line: ``key: value, ...`` for a mapping (nested ones inline),
    the items of a list joined by commas, ``not recorded`` for ``None`` or an empty one.

    Examples
    --------
    >>> fmt_mapping({"torch": "2.13.0", "python": "3.11"})
    'torch: 2.13.0, python: 3.11'
    >>> fmt_mapping([0, 1]), fmt_mapping(None)
    ('0, 1', 'not recorded')
    """
    if value is None or value == {} or value == []:
        return "not recorded"
    if isinstance(value, dict):
        return ", ".join(
            f"{k}: {fmt_mapping(v) if isinstance(v, dict) else v}" for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)
