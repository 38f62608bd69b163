"""The tables of a run folder collected from its task records: ``results.csv`` / ``.parquet``
(the tidy results), ``costs.csv`` (one row per task) and ``validation.csv`` (each trained model's
validation beside no registration), each written atomically (``docs/conventions.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from benchmark.core.atomic import atomic_path
from benchmark.core.layout import RunLayout
from benchmark.runner.plan import REGISTER, TRAIN, Task, current_record
from metrics.catalog import METRIC_UNITS, RESULT_COLUMNS

log = logging.getLogger(__name__)

#: ``validation.csv`` of a run folder: each trained model's validation score (``docs/conventions.md``).
VALIDATION_COLUMNS = (
    "method", "fold", "seed", "best_iteration", "val_similarity", "identity_similarity", "val_dice",
    "identity_dice", "held_out", "worse_than_identity",
)


def _spec_shape(spec) -> SimpleNamespace:
    """What :func:`~benchmark.runner.scoring.failure_rows` asks of a pair (which optional parts
    exist), from its file list, for a pair that could not even be loaded."""
    return SimpleNamespace(
        fixed_labels=spec.fixed_labels, moving_labels=spec.moving_labels,
        true_displacement=spec.displacement, landmarks=spec.fixed_landmarks,
    )


def collect_results(tasks: Sequence[Task], failed: Sequence[dict] = ()) -> pd.DataFrame:
    """The tidy table: the rows of every up-to-date registration of the plan (all folds), and
    NaN rows with the reason for the registrations that failed in this run."""
    from benchmark.runner.scoring import failure_rows

    failed_ids = {o["id"]: o for o in failed}
    rows: list[dict] = []
    for task in tasks:
        if task.kind != REGISTER:
            continue
        if task.id in failed_ids:
            reason = failed_ids[task.id]["reason"]
            rows += [
                {**task.pair_keys, **r, "seed": task.seed}
                for r in failure_rows(task.labels, reason, pair=_spec_shape(task.spec))
            ]
            continue
        record = current_record(task)
        if record is not None:
            rows.extend(record["rows"])
    return sort_results(pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "seed"]))


def sort_results(frame: pd.DataFrame) -> pd.DataFrame:
    """The results table with its column types set and its rows in the table's order (method,
    fold, seed, case, pair, structure, then metric in catalogue order)."""
    frame = frame.copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["fold"] = frame["fold"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    order = {m: i for i, m in enumerate(METRIC_UNITS)}
    return frame.sort_values(
        ["method", "fold", "seed", "case", "pair", "structure", "metric"],
        key=lambda s: s.map(order) if s.name == "metric" else s,
        kind="stable",
    ).reset_index(drop=True)


#: ``costs.csv``: one row per task record (``docs/conventions.md``).
COST_COLUMNS = (
    "kind", "method", "fold", "seed", "case", "pair", "status", "wall_s", "cpu_s", "peak_rss_mb",
    "peak_gpu_mb", "device", "iterations", "iterations_per_s", "host", "pid", "started",
)


def collect_costs(tasks: Sequence[Task]) -> pd.DataFrame:
    """``costs.csv``: the cost records of every up-to-date task of the plan."""
    rows = []
    for task in tasks:
        record = current_record(task)
        if record is None or "cost" not in record:
            continue
        rows.append(
            {
                "kind": task.kind, "method": task.method, "fold": task.fold, "seed": task.seed,
                "case": task.spec.case if task.spec else "",
                "pair": task.spec.pair if task.spec else "",
                "status": record.get("status", ""), **record["cost"],
            }
        )
    return pd.DataFrame(rows, columns=list(COST_COLUMNS))


def collect_validation(tasks: Sequence[Task]) -> pd.DataFrame:
    """One row per up-to-date training of the plan (every fold and seed): the model's
    validation score beside no registration.

    Columns :data:`VALIDATION_COLUMNS`; ``worse_than_identity`` is the reason (empty when the
    model is better than no registration on its validation pairs). Each method says what its
    training folder holds (:meth:`methods.base.Method.validation`).
    """
    rows = []
    for task in tasks:
        if task.kind != TRAIN or task.model_dir is None or current_record(task) is None:
            continue
        summary = task.method_class.validation(task.model_dir)
        if summary is not None:
            rows.append({"method": task.method, "fold": task.fold, "seed": task.seed,
                         **asdict(summary)})
    return pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))


def write_results(layout: RunLayout, results: pd.DataFrame) -> None:
    """``results.csv`` and ``results.parquet``, atomically."""
    write_table(layout.results_csv, results)
    with atomic_path(layout.results_parquet) as tmp:
        results.to_parquet(tmp, index=False)


def write_table(path: Path, table: pd.DataFrame) -> None:
    """A table as CSV, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)




def with_other_methods(
    path: Path, table: pd.DataFrame, methods: Sequence[str], *, prune: bool
) -> pd.DataFrame:
    """``table`` (this run's rows) and the rows of the table already at ``path`` whose method is
    not in ``methods``: a run with fewer ``--methods`` keeps the others' results. With
    ``prune`` those rows are dropped instead; either way a log line names the methods."""
    if not path.is_file():
        return table
    try:
        before = pd.read_csv(path, keep_default_na=True, dtype={"case": str, "pair": str})
    except (OSError, ValueError) as exc:
        log.warning("%s is damaged (%s); only this run's rows are written", path, exc)
        return table
    if "method" not in before.columns:
        return table
    others = before[~before["method"].astype(str).isin(list(methods))]
    if others.empty:
        return table
    names = ", ".join(dict.fromkeys(others["method"].astype(str)))
    if prune:
        log.warning("%s: dropped the rows of %s (not in this run; --prune)", path.name, names)
        return table
    log.warning(
        "%s: kept the rows of %s, which this run did not include (--prune drops them)",
        path.name, names,
    )
    others = others.reindex(columns=table.columns)
    return pd.concat([others, table], ignore_index=True) if len(table) else others
