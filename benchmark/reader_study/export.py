"""Unblinding: the rankings of every reader with the methods restored from the private key.

The only place (with ``bench reader-study analyze``, which calls it) where the key meets the
answers. The table has the columns ``case, method, rank, reader`` that ``bench stats ranking``
reads (:func:`benchmark.stats.ranking.read_rankings`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchError
from benchmark.reader_study import db
from benchmark.reader_study.prepare import load_key, load_study

log = logging.getLogger(__name__)

COLUMNS = ["case", "method", "rank", "reader"]


def rankings_table(study_dir: str | os.PathLike, *, finished_only: bool = False) -> pd.DataFrame:
    """Every saved ranking, unblinded: one row per (reader, case, method), in the order reader
    (creation), case id, blinded label (so the row order reveals nothing either).

    Parameters
    ----------
    study_dir : path
        Study folder.
    finished_only : bool, default False
        Keep only readers who pressed Finish (by default every complete case ranking is exported,
        and a warning names the readers still in progress).

    Raises
    ------
    BenchError
        No answers yet, or an answer whose case/label the key does not know (a mismatched key).
    """
    study_dir = Path(study_dir)
    load_study(study_dir)
    key = load_key(study_dir)
    conn = db.connect(study_dir / db.DB_NAME)
    try:
        rows = db.all_answers(conn)
    finally:
        conn.close()
    if finished_only:
        rows = [r for r in rows if r["finished"]]
    unfinished = sorted({r["reader"] for r in rows if not r["finished"]})
    if unfinished:
        log.warning(
            "readers still in progress (their ranked cases are included): %s", ", ".join(unfinished)
        )
    if not rows:
        raise BenchError(f"{study_dir}: no rankings saved yet")
    out = []
    for r in rows:
        labels = key["cases"].get(r["case"])
        if labels is None or r["label"] not in labels:
            raise BenchError(
                f"{study_dir}/key/key.json: no method for case {r['case']!r} label "
                f"{r['label']!r} (key does not belong to this study?)"
            )
        out.append(
            {
                "case": r["case"],
                "method": labels[r["label"]],
                "rank": int(r["rank"]),
                "reader": r["reader"],
            }
        )
    return pd.DataFrame(out, columns=COLUMNS)


def write_rankings(study_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write :func:`rankings_table` as CSV (default ``STUDY_DIR/rankings.csv``); return the path."""
    from benchmark.atomic import write_text

    path = Path(out) if out is not None else Path(study_dir) / "rankings.csv"
    write_text(path, rankings_table(study_dir).to_csv(index=False))
    return path
