"""The run folder's layout: the one place that spells its paths (``docs/conventions.md``,
"Run folder").

``bench run`` (the runner), ``bench train``, the reports, the reader study and ``bench
export-fields`` take every path of a run folder from :class:`RunLayout`::

    RUN/run.json            the run's description and provenance
    RUN/folds.json          the folds (train / val / test ids)
    RUN/pairs.csv           the test pairs and their files
    RUN/results.csv         the tidy results (and results.parquet)
    RUN/validation.csv      each trained model's validation score
    RUN/costs.csv           one cost record per task (wall, CPU, memory, device)
    RUN/l2r_scores.csv      per pair, MIRBench's and Learn2Reg's conventions (bench stats l2r)
    RUN/logs/run.log        the run's log
    RUN/models/METHOD/fold{F}[-seed{S}]/          a training (model.pt, model.json, task.json)
    RUN/pairs/METHOD/fold{F}[-seed{S}]/CASE/PAIR/ one registration (result.json last)

Seed 0 keeps the plain ``fold{F}`` folder, so run folders of single-seed runs read as before;
another seed adds ``-seed{S}``. This module imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RESULT_FILE", "TASK_FILE", "RunLayout", "default_run_folder", "fold_folder"]

#: A registration's completion marker and record, written last (atomically) in its pair folder.
RESULT_FILE = "result.json"
#: A training's task record (content key and cost), written last in its model folder.
TASK_FILE = "task.json"


def default_run_folder(dataset: str) -> Path:
    """``runs/DATASET`` (relative to the working directory): ``bench run`` and ``bench train``
    without ``--out``."""
    return Path("runs") / dataset


def fold_folder(fold: int, seed: int = 0) -> str:
    """``fold{F}`` for seed 0, ``fold{F}-seed{S}`` for another seed."""
    return f"fold{int(fold)}" if int(seed) == 0 else f"fold{int(fold)}-seed{int(seed)}"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder ``root``."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def folds_json(self) -> Path:
        return self.root / "folds.json"

    @property
    def pairs_csv(self) -> Path:
        return self.root / "pairs.csv"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_parquet(self) -> Path:
        return self.root / "results.parquet"

    @property
    def validation_csv(self) -> Path:
        return self.root / "validation.csv"

    @property
    def costs_csv(self) -> Path:
        return self.root / "costs.csv"

    @property
    def l2r_scores_csv(self) -> Path:
        """Per pair, both conventions' scores (``bench stats l2r``)."""
        return self.root / "l2r_scores.csv"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run_log(self) -> Path:
        return self.logs / "run.log"

    @property
    def claims_csv(self) -> Path:
        """The paper's claims on the run (:mod:`benchmark.stats.claims`)."""
        return self.root / "claims.csv"

    @property
    def lock(self) -> Path:
        """Held (``flock``) by the ``bench run`` working in the folder; names its process."""
        return self.root / ".lock"

    @property
    def file_hashes(self) -> Path:
        """Content hashes of input files by path, size and mtime (a cache; safe to delete)."""
        return self.logs / "file-hashes.json"

    @property
    def pairs(self) -> Path:
        return self.root / "pairs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def method_pairs(self, method: str) -> Path:
        """``pairs/METHOD``: every registration of one method."""
        return self.pairs / method

    def fold_pairs(self, method: str, fold: int, seed: int = 0) -> Path:
        """``pairs/METHOD/fold{F}[-seed{S}]``: one method's registrations of one fold and seed."""
        return self.method_pairs(method) / fold_folder(fold, seed)

    def pair_dir(self, method: str, fold: int, case: str, pair: str, seed: int = 0) -> Path:
        """One registration's folder (``result.json``, ``displacement.nii.gz``, warped images)."""
        return self.fold_pairs(method, fold, seed) / case / pair

    def result_json(self, method: str, fold: int, case: str, pair: str, seed: int = 0) -> Path:
        return self.pair_dir(method, fold, case, pair, seed) / RESULT_FILE

    def all_result_jsons(self) -> list[Path]:
        """Every ``result.json`` under ``pairs/``, sorted."""
        return sorted(self.pairs.glob(f"*/*/*/*/{RESULT_FILE}"))

    def model_dir(self, method: str, fold: int, seed: int = 0) -> Path:
        """One training's folder (``model.pt``, ``model.json``, ``training.csv``, ``task.json``)."""
        return self.models / method / fold_folder(fold, seed)

    def model_task(self, method: str, fold: int, seed: int = 0) -> Path:
        return self.model_dir(method, fold, seed) / TASK_FILE
