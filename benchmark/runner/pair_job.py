"""One (method, fold, pair) job: register, warp, score, and write the pair folder atomically.

The pair folder's ``result.json`` is written last, with an atomic rename: its presence is the
completion marker. A job killed at any moment leaves either a complete folder or one without
``result.json``, which the next run recomputes.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.atomic import write_text
from benchmark.core.errors import BenchError
from benchmark.core.images import write_displacement, write_image
from benchmark.core.pairs import DISPLACEMENT_FILE, PairSpec
from methods.base import Method, check_result

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
KEY_COLUMNS = ("method", "fold", "case", "pair")


@dataclass
class PairJob:
    """Everything a worker needs; picklable (the method instance travels with its fitted state)."""

    method_name: str
    method: Method
    fold: int
    spec: PairSpec
    folder: Path
    labels: dict[str, int]

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT_FILE


def pair_folder(run_dir: Path, method: str, fold: int, spec: PairSpec) -> Path:
    return Path(run_dir) / "pairs" / method / f"fold{fold}" / spec.case / spec.pair


def read_result(path: Path) -> list[dict]:
    """The rows of a finished pair (``result.json``), with their key columns."""
    return json.loads(path.read_text())["rows"]


def run_pair_job(job: PairJob) -> list[dict]:
    """Run one job and return its rows (``results.csv`` columns). Failures of the method on this
    pair become NaN rows whose status gives the reason; the run goes on."""
    from benchmark.runner.scoring import failure_rows, score_pair, warp_pair

    keys = {
        "method": job.method_name,
        "fold": job.fold,
        "case": job.spec.case,
        "pair": job.spec.pair,
    }
    pair = job.spec.load(fold=job.fold)
    job.folder.mkdir(parents=True, exist_ok=True)
    method_log = None
    try:
        result = job.method.register(pair)
        check_result(result, pair, method=job.method_name)
    except BenchError as exc:  # RegistrationFailed included
        method_log = getattr(exc, "log", None)
        log.warning("%s failed on %s: %s", job.method_name, pair.key, exc)
        rows = failure_rows(job.labels, str(exc), pair=pair)
        status = "failed"
    else:
        method_log = result.log
        warped, warped_labels = warp_pair(pair, result.displacement)
        write_displacement(job.folder / DISPLACEMENT_FILE, result.displacement, pair.fixed.affine)
        write_image(job.folder / "warped.nii.gz", warped, pair.fixed.affine)
        if warped_labels is not None:
            write_image(job.folder / "warped_labels.nii.gz", warped_labels, pair.fixed.affine)
        rows = score_pair(
            pair,
            result.displacement,
            labels=job.labels,
            runtime_s=result.runtime_s,
            warped=warped,
            warped_labels=warped_labels,
        )
        status = "ok"
    if method_log:
        write_text(job.folder / "method.log", method_log)
    rows = [{**keys, **row} for row in rows]
    payload = {
        **keys,
        "status": status,
        "rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows],
    }
    write_text(job.result_path, json.dumps(payload, indent=1))
    return rows
