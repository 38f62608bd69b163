"""Unblinding: the rankings of the readers with the methods restored from the private key.

The only place (with ``bench reader-study analyze``, which calls it) where the key meets the
answers: letter -> slot (the reader's own order, in the database) -> method (the key). The table
has the columns ``case, method, rank, reader`` that ``bench stats ranking`` reads
(:func:`benchmark.stats.ranking.read_rankings`).

By default only readers who pressed Finish count, and only the cases every one of them ranked
(so agreement statistics compare like with like); ``include_unfinished`` takes every saved
ranking. "Cannot judge" answers and the second reads of repeated cases are never in the main
table; the second reads go to the repeats table (intra-reader agreement). Every left-out part is
named in :attr:`Unblinded.notes`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.reader_study import db
from benchmark.reader_study.prepare import load_key, load_study
from benchmark.reader_study.private import write_private

log = logging.getLogger(__name__)

COLUMNS = ["case", "method", "rank", "reader"]
REPEAT_COLUMNS = ["case", "method", "rank", "reader", "read"]


@dataclass
class Unblinded:
    """Unblinded rankings: ``rankings`` (first reads, :data:`COLUMNS`), ``repeats`` (both reads of
    every repeated case ranked twice, :data:`REPEAT_COLUMNS`) and ``notes`` (what was left out)."""

    rankings: pd.DataFrame
    repeats: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def unblind(study_dir: str | os.PathLike, *, include_unfinished: bool = False) -> Unblinded:
    """Unblind the saved rankings of ``study_dir``.

    Parameters
    ----------
    study_dir : path
        Study folder.
    include_unfinished : bool, default False
        Take every saved ranking of every reader (not removed) instead of the finished readers'
        rankings of the cases all finished readers ranked.

    Raises
    ------
    BenchError
        No usable rankings, or an answer whose case/slot the key does not know (a mismatched key).
    """
    study_dir = Path(study_dir)
    load_study(study_dir)
    key = load_key(study_dir)
    with db.open_study_db(study_dir) as conn:
        rows = db.all_responses(conn)
        readers = db.readers_status(conn)
    notes: list[str] = []
    judged = [r for r in rows if r["state"] == "cannot-judge"]
    if judged:
        notes.append(
            f"{len(judged)} 'cannot judge' answer(s) left out: "
            + ", ".join(f"{r['reader']} {r['case']}" for r in judged)
        )
    rows = [r for r in rows if r["state"] == "ranked"]
    if not include_unfinished:
        unfinished = [r["name"] for r in readers if not r["finished"]]
        if unfinished:
            notes.append(
                "readers who have not finished left out (use --include-unfinished): "
                + ", ".join(unfinished)
            )
        rows = [r for r in rows if r["finished"]]
        finished = [r["name"] for r in readers if r["finished"]]
        per_reader = {
            name: {r["case"] for r in rows if r["reader"] == name and r["read"] == 1}
            for name in finished
        }
        common = set.intersection(*per_reader.values()) if per_reader else set()
        dropped = sorted(set().union(*per_reader.values()) - common) if per_reader else []
        if dropped:
            notes.append(
                f"case(s) not ranked by every finished reader left out: {', '.join(dropped)}"
            )
        rows = [r for r in rows if r["case"] in common]
    out = []
    for r in rows:
        methods = key["cases"].get(r["case"])
        if methods is None or r["slot"] is None or not 0 <= int(r["slot"]) < len(methods):
            raise BenchError(
                f"{study_dir}/key/key.json: no method for case {r['case']!r} slot "
                f"{r['slot']!r} (key does not belong to this study?)"
            )
        out.append(
            {
                "case": r["case"],
                "method": methods[int(r["slot"])],
                "rank": int(r["rank"]),
                "reader": r["reader"],
                "read": int(r["read"]),
            }
        )
    table = pd.DataFrame(out, columns=REPEAT_COLUMNS)
    if not (table["read"] == 1).any():
        raise BenchError(
            f"{study_dir}: no rankings to unblind yet" + (f" ({'; '.join(notes)})" if notes else "")
        )
    twice = table.groupby(["reader", "case"])["read"].transform("nunique") == 2
    repeats = table[twice].reset_index(drop=True)
    return Unblinded(table[table["read"] == 1][COLUMNS].reset_index(drop=True), repeats, notes)


def rankings_table(
    study_dir: str | os.PathLike, *, include_unfinished: bool = False
) -> pd.DataFrame:
    """The ``rankings`` of :func:`unblind`; its notes are logged as warnings."""
    result = unblind(study_dir, include_unfinished=include_unfinished)
    for note in result.notes:
        log.warning("%s", note)
    return result.rankings


def intra_reader_agreement(repeats: pd.DataFrame) -> pd.DataFrame:
    """Per reader, agreement of the two reads of repeated cases: ``n_cases``, ``identical``
    (fraction of cases ranked the same both times) and ``kendall_w`` (mean over the cases of
    Kendall's W of the two reads; for two reads ``spearman = 2 W - 1``). Empty without repeats."""
    from benchmark.stats.ranking import kendall_w

    rows = []
    for reader, group in repeats.groupby("reader", sort=False):
        wide = group.pivot_table(index=["case", "read"], columns="method", values="rank")
        cases = wide.index.get_level_values("case").unique()
        ws, same = [], []
        for case in cases:
            both = wide.loc[case].sort_index().to_numpy()  # (2 reads, k methods)
            ws.append(kendall_w(both))
            same.append(bool(np.array_equal(both[0], both[1])))
        rows.append(
            {
                "reader": reader,
                "n_cases": len(cases),
                "identical": float(np.mean(same)),
                "kendall_w": float(np.nanmean(ws)),
            }
        )
    return pd.DataFrame(rows, columns=["reader", "n_cases", "identical", "kendall_w"])


def write_rankings(
    study_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    include_unfinished: bool = False,
) -> list[Path]:
    """Write the unblinded rankings as CSV (default ``STUDY_DIR/rankings.csv``, mode ``0600``:
    it unblinds) and, when there are repeated cases, ``*_repeats.csv`` beside it; return the
    paths written."""
    result = unblind(study_dir, include_unfinished=include_unfinished)
    for note in result.notes:
        log.warning("%s", note)
    path = Path(out) if out is not None else Path(study_dir) / "rankings.csv"
    write_private(path, result.rankings.to_csv(index=False))
    paths = [path]
    if not result.repeats.empty:
        rpath = path.with_name(path.stem + "_repeats.csv")
        write_private(rpath, result.repeats.to_csv(index=False))
        paths.append(rpath)
    return paths
