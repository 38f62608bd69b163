"""Reading a run folder (``docs/conventions.md``, "Run folder") for reports: ``run.json``,
``folds.json``, ``pairs.csv``, ``results.csv`` and the per-pair outputs, and listing what is
missing (methods without rows or pair folders, pairs without ``result.json``, NaN metrics).

Keys read from ``run.json`` (all optional; absent ones show as "not recorded"): ``dataset`` (a name
or an object with ``name``, ``path`` or ``manifest``, ``sha256``), ``methods`` (a list of names or an object
name -> configuration), ``folds`` (list of fold numbers), ``preset``/``presets``, ``seed``/``seeds``,
``versions`` (object name -> version), ``command`` (a list of arguments or a string), and the
run's date from the first of ``started_first``, ``started``, ``created``, ``finished``, ``date``
(``bench run`` writes ``started``, and keeps the first start as ``started_first`` when resumed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.core.layout import RESULT_FILE, RunLayout
from benchmark.core.pairs import PAIRS_TABLE_COLUMNS, read_pairs_table
from benchmark.stats.results import check_results, ordered, read_results

DATE_KEYS = ("started_first", "started", "created", "finished", "date")


@dataclass
class RunFolder:
    """A run folder loaded for reporting.

    Attributes
    ----------
    path : Path
        The run folder.
    run : dict
        ``run.json`` (empty when absent).
    folds : dict
        ``folds.json`` (empty when absent).
    pairs : DataFrame
        ``pairs.csv`` (:func:`benchmark.core.pairs.read_pairs_table`; empty path cells are ``""``).
    results : DataFrame
        The tidy results: ``results.csv``, plus the rows of every ``result.json`` whose
        (method, fold, case, pair) it lacks (an interrupted run); all ``result.json`` rows when
        there is no ``results.csv``.
    methods : list of str
        Methods of ``run.json`` in its order, then any others found in the results.
    missing : DataFrame
        Columns ``what, method, detail``: one row per missing item (see :func:`find_missing`).
    validation : DataFrame
        ``validation.csv``: each trained model's validation beside no registration (empty when
        no method learns).
    costs : DataFrame
        ``costs.csv``: one cost record per task (empty when absent).
    """

    path: Path
    run: dict[str, Any]
    folds: dict[str, Any]
    pairs: pd.DataFrame
    results: pd.DataFrame
    methods: list[str]
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def pair_dir(self, method: str, fold: int, case: str, pair: str) -> Path:
        """``RUN_DIR/pairs/METHOD/foldK/CASE/PAIR``."""
        return RunLayout(self.path).pair_dir(method, fold, case, pair)

    @property
    def dataset(self) -> str:
        ds = self.run.get("dataset")
        if isinstance(ds, dict):
            return str(ds.get("name") or ds.get("manifest") or "not recorded")
        return str(ds) if ds else "not recorded"

    @property
    def contrast(self) -> str | None:
        """The dataset's ``contrast`` (``same`` or ``different``) as ``run.json`` records it, or
        None (an older run folder, a dataset that does not say)."""
        ds = self.run.get("dataset")
        value = ds.get("contrast") if isinstance(ds, dict) else None
        return value if value in ("same", "different") else None

    def method_entry(self, method: str) -> dict[str, Any]:
        """The method's entry of ``run.json`` (class, description, params, summary, label;
        :func:`benchmark.runner.runfiles.method_entry`), empty when none is recorded."""
        methods = self.run.get("methods")
        entry = methods.get(method) if isinstance(methods, dict) else None
        return entry if isinstance(entry, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        """Method -> its label on this dataset recorded in ``run.json`` (e.g. "NCC on a
        multi-contrast dataset"), for the methods that have one."""
        found = {m: self.method_entry(m).get("label") for m in self.methods}
        return {m: label for m, label in found.items() if isinstance(label, str) and label}

    @property
    def date(self) -> str:
        for key in DATE_KEYS:
            if self.run.get(key):
                return str(self.run[key])
        return "not recorded"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: cannot read JSON ({type(exc).__name__}: {exc})") from exc


def _rows_from_result_json(run_dir: Path) -> pd.DataFrame:
    """Concatenate the metric rows of every ``pairs/*/*/*/*/result.json`` (sorted paths).

    A ``result.json`` holds a list of row objects, or an object with a ``rows`` list.
    """
    rows: list[dict] = []
    for path in RunLayout(run_dir).all_result_jsons():
        data = _read_json(path)
        if isinstance(data, dict):
            data = data.get("rows", [])
        if not isinstance(data, list):
            raise BenchError(f"{path}: expected a list of metric rows or {{'rows': [...]}}")
        rows.extend(data)
    return pd.DataFrame(rows)


def _method_names(run: dict) -> list[str]:
    methods = run.get("methods")
    if isinstance(methods, dict):
        return [str(m) for m in methods]
    if isinstance(methods, (list, tuple)):
        return [str(m if not isinstance(m, dict) else m.get("name")) for m in methods]
    if isinstance(methods, str):
        return [m.strip() for m in methods.split(",") if m.strip()]
    return []


def load_run(path: str | os.PathLike) -> RunFolder:
    """Load a run folder for reporting.

    Raises
    ------
    BenchError
        If ``path`` is not a folder, a JSON/CSV file in it is damaged, or it holds no results at
        all (neither ``results.csv`` nor any ``result.json``).
    """
    path = Path(path)
    if not path.is_dir():
        raise BenchError(f"{path}: run folder not found")
    layout = RunLayout(path)
    run = _read_json(layout.run_json) if layout.run_json.is_file() else {}
    folds = _read_json(layout.folds_json) if layout.folds_json.is_file() else {}
    if layout.pairs_csv.is_file():
        pairs = read_pairs_table(layout.pairs_csv)
    else:
        pairs = pd.DataFrame({c: pd.Series(dtype=str) for c in PAIRS_TABLE_COLUMNS})
    notes_source = None
    pair_rows = _rows_from_result_json(path)
    if not pair_rows.empty:
        pair_rows = check_results(pair_rows, source=f"{path}/pairs/**/result.json")
    if layout.results_csv.is_file():
        results = read_results(path)
        if not pair_rows.empty:
            # an interrupted or resumed run: result.json of pairs that results.csv does not hold yet
            key = ["method", "fold", "case", "pair"]
            known = pd.MultiIndex.from_frame(results[key].drop_duplicates())
            extra = pair_rows[~pd.MultiIndex.from_frame(pair_rows[key]).isin(known)]
            if len(extra):
                n = len(extra[key].drop_duplicates())
                results = pd.concat([results, extra], ignore_index=True)
                notes_source = (
                    f"results.csv lacks {n} finished (method, pair) result(s); their rows were "
                    "taken from their result.json (an interrupted or running bench run)"
                )
    else:
        if pair_rows.empty:
            raise BenchError(
                f"{path}: no results.csv and no pairs/*/*/*/*/result.json: nothing to report"
            )
        results = pair_rows
        notes_source = "results.csv is absent; results were collected from the result.json files"
    if results.empty:
        raise BenchError(
            f"{path}: results.csv has a header but no rows and no pair has a result.json: "
            f"nothing to report (finish the run first: bench run ... --out {path})"
        )
    listed = list(dict.fromkeys(_method_names(run)))
    methods = listed + [m for m in ordered(results["method"]) if m not in listed]
    folder = RunFolder(path, run, folds, pairs, results, methods)
    if layout.validation_csv.is_file():
        try:
            folder.validation = pd.read_csv(
                layout.validation_csv, keep_default_na=False, na_values=[""]
            ).fillna({"worse_than_identity": ""})
        except Exception as exc:
            raise BenchError(f"{layout.validation_csv}: cannot read ({exc})") from exc
        if "seed" not in folder.validation:  # written before runs had seeds: seed 0
            folder.validation.insert(2, "seed", 0)
    folder.missing = find_missing(folder)
    if layout.costs_csv.is_file():
        folder.costs = pd.read_csv(layout.costs_csv, keep_default_na=False, na_values=[""])
    if notes_source:
        folder.missing = pd.concat(
            [
                pd.DataFrame([{"what": "results.csv", "method": "", "detail": notes_source}]),
                folder.missing,
            ],
            ignore_index=True,
        )
    return folder


def find_missing(run: RunFolder) -> pd.DataFrame:
    """Everything absent or undefined in a run, one row each (columns ``what, method, detail``).

    ``what`` is ``method-no-results`` (a method of ``run.json`` without rows), ``method-no-pairs``
    (no ``pairs/METHOD`` folder), ``incomplete-pairs`` (test pairs of ``pairs.csv`` without
    ``result.json``) or ``nan-metric`` (NaN values of one method, structure and metric, with the counts of
    their ``status`` reasons).
    """
    rows = []
    res = run.results
    with_rows = set(res["method"])
    for method in run.methods:
        if method not in with_rows:
            rows.append(
                {
                    "what": "method-no-results",
                    "method": method,
                    "detail": "no rows in the results table",
                }
            )
        if not RunLayout(run.path).method_pairs(method).is_dir():
            rows.append(
                {"what": "method-no-pairs", "method": method, "detail": f"no pairs/{method} folder"}
            )
            continue
        if len(run.pairs):
            absent = [
                f"fold{p.fold}/{p.case}/{p.pair}"
                for p in run.pairs.itertuples(index=False)
                if not (run.pair_dir(method, p.fold, p.case, p.pair) / RESULT_FILE).is_file()
            ]
            if absent:
                shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
                rows.append(
                    {
                        "what": "incomplete-pairs",
                        "method": method,
                        "detail": f"{len(absent)} of {len(run.pairs)} test pairs without "
                        f"result.json: {shown}",
                    }
                )
    nan = res[~np.isfinite(res["value"].to_numpy(dtype=np.float64))]
    for (method, structure, metric), group in nan.groupby(
        ["method", "structure", "metric"], sort=False
    ):
        reasons = group["status"].replace("", "no status").value_counts()
        why = ", ".join(f"{r}: {c}" for r, c in reasons.items())
        rows.append(
            {
                "what": "nan-metric",
                "method": method,
                "detail": f"{structure} / {metric}: {len(group)} NaN ({why})",
            }
        )
    return pd.DataFrame(rows, columns=["what", "method", "detail"])
