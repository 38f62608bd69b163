"""Reading and checking the tidy results table (``results.csv``, see ``docs/conventions.md``) from
a run folder or a CSV/Parquet file; its columns and metrics are defined in :mod:`metrics.catalog`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.csvfile import ENCODING, check_fields
from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout
from metrics.catalog import METRIC_TABLE, RESULT_COLUMNS


def check_results(
    table: pd.DataFrame, *, source: str = "results", csv_lines: bool = False
) -> pd.DataFrame:
    """Check a results table and normalise its types.

    Returns a copy with ``fold`` int, ``value`` float (NaN kept) and the id columns str.
    Checked: the columns; the metric names, each metric's unit and the range of its finite
    values (:data:`metrics.catalog.METRIC_TABLE`); that no method, fold, seed, case, pair,
    structure and metric appears twice.

    Parameters
    ----------
    source : str
        The table's file (or what it is), for messages.
    csv_lines : bool
        The table was read from a CSV with a header: rows are named by their line in the file
        (row ``r`` is line ``r + 2``); otherwise by their position.

    Raises
    ------
    BenchError
        Naming the source, the line (or row), the metric and what was expected, for the first
        rows that break a rule (at most five per rule).
    """
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise BenchError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(RESULT_COLUMNS)}"
        )
    out = table.copy()
    for col in ("method", "case", "pair", "structure", "metric", "unit", "status"):
        out[col] = out[col].fillna("").astype(str)
    try:
        out["fold"] = pd.to_numeric(out["fold"], errors="raise").astype(int)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{source}: column 'fold' must hold integers ({exc})") from exc
    try:
        out["value"] = pd.to_numeric(out["value"], errors="raise").astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{source}: column 'value' must be numeric or empty ({exc})") from exc
    problems = _value_problems(out) + _duplicate_problems(out)
    if problems:
        where = (lambda r: f"line {r + 2}") if csv_lines else (lambda r: f"row {r}")
        lines = [f"{where(row)}: {text}" for row, text in problems]
        raise BenchError(f"{source}: rows that break the results table's rules:\n  " + "\n  ".join(lines))
    return out


#: Rows named per broken rule in an error (the count says how many there are).
_SHOWN = 5


def _value_problems(table: pd.DataFrame) -> list[tuple[int, str]]:
    """(row position, problem) of rows with an unknown metric, another unit than the
    catalogue's, or a finite value outside the metric's range."""
    problems: list[tuple[int, str]] = []
    metric = table["metric"].to_numpy()
    unit = table["unit"].to_numpy()
    value = table["value"].to_numpy()
    unknown = ~np.isin(metric, list(METRIC_TABLE))
    for r in np.flatnonzero(unknown)[:_SHOWN]:
        problems.append((int(r), f"unknown metric {metric[r]!r}; known: {', '.join(METRIC_TABLE)}"))
    for name, info in METRIC_TABLE.items():
        rows = metric == name
        wrong_unit = np.flatnonzero(rows & (unit != info.unit))
        for r in wrong_unit[:_SHOWN]:
            problems.append((int(r), f"metric {name} in unit {unit[r]!r}; expected {info.unit!r}"))
        low, high = info.bounds
        with np.errstate(invalid="ignore"):
            outside = rows & np.isfinite(value) & ((value < low) | (value > high))
        for r in np.flatnonzero(outside)[:_SHOWN]:
            problems.append(
                (int(r), f"metric {name} value {float(value[r])!r} outside [{low:g}, {high:g}]")
            )
    return problems


def _duplicate_problems(table: pd.DataFrame) -> list[tuple[int, str]]:
    """(row position, problem) of rows that repeat an earlier row's method, fold, seed, case,
    pair, structure and metric."""
    key = ["method", "fold", "case", "pair", "structure", "metric"]
    if SEED in table.columns:
        key.append(SEED)
    repeated = np.flatnonzero(table.duplicated(subset=key, keep="first").to_numpy())
    out = []
    for r in repeated[:_SHOWN]:
        row = table.iloc[r]
        named = ", ".join(f"{k} {row[k]}" for k in key)
        out.append((int(r), f"repeats an earlier row ({named})"))
    return out


#: Column of ``results.csv`` after the first nine: the seed of the run (repeated runs).
SEED = "seed"


def mean_over_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method, fold, case, pair, structure and metric: the mean over seeds.

    Seeds are repeated runs (``bench run --seeds``); tests and summaries compare methods on the
    per-case mean over seeds. A value whose any seed failed is NaN with that seed's failed
    status (a failure is never averaged away). A table without a ``seed`` column, or with one
    seed, is returned as it is.
    """
    if SEED not in results.columns or results[SEED].nunique() < 2:
        return results
    keys = [c for c in RESULT_COLUMNS if c not in ("value", "status")]
    r = results.assign(_failed=results["status"].astype(str).str.startswith("failed"))
    out = (
        r.groupby(keys, sort=False, dropna=False)
        .agg(
            value=("value", "mean"),
            failed=("_failed", "any"),
            status=("status", lambda s: next((x for x in s if str(x).startswith("failed")),
                                             s.iloc[0])),
        )
        .reset_index()
    )
    out.loc[out["failed"], "value"] = np.nan
    return out[list(RESULT_COLUMNS)]

def seed_spread(results: pd.DataFrame) -> pd.DataFrame:
    """How much a method's results change from one training seed to another.

    One row per method, structure and metric of the methods run with two or more seeds: ``seeds``
    (their number), ``pair_sd`` (the SD over seeds of each pair's value, ddof 1, averaged over the
    pairs) and ``seed_mean_min`` / ``seed_mean_max`` (the smallest and largest mean over the pairs
    of one seed). Failed values (NaN) are left out. Empty without a ``seed`` column.
    """
    columns = ["method", "structure", "metric", "seeds", "pair_sd", "seed_mean_min",
               "seed_mean_max"]
    if SEED not in results.columns:
        return pd.DataFrame(columns=columns)
    r = results[np.isfinite(results["value"].astype(float))]
    rows = []
    for (method, structure, metric), block in r.groupby(
        ["method", "structure", "metric"], sort=False
    ):
        seeds = block[SEED].nunique()
        if seeds < 2:
            continue
        per_pair = block.groupby(["fold", "case", "pair"])["value"].std(ddof=1)
        per_seed = block.groupby(SEED)["value"].mean()
        rows.append([method, structure, metric, seeds, float(per_pair.mean()),
                     float(per_seed.min()), float(per_seed.max())])
    return pd.DataFrame(rows, columns=columns)


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``results.csv`` of a run folder, or a results ``.csv``/``.parquet`` file directly.

    Raises
    ------
    BenchError
        If the folder has no ``results.csv``, the file is missing or unreadable, a line has more
        or fewer fields than the header (truncated), or a column is missing.
    """
    path = Path(path)
    if path.is_dir():
        path = RunLayout(path).results_csv
    if not path.is_file():
        raise BenchError(f"{path}: results table not found (expected a run folder or results.csv)")
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
        else:
            check_fields(path, what="results")
            table = pd.read_csv(
                path, keep_default_na=True, dtype={"case": str, "pair": str}, encoding=ENCODING
            )
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"{path}: cannot read results ({type(exc).__name__}: {exc})") from exc
    return check_results(table, source=str(path), csv_lines=path.suffix.lower() != ".parquet")


def ordered(values, preferred=()) -> list[str]:
    """Distinct ``values`` in the order of ``preferred`` first, then of first appearance."""
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
