"""A whole benchmark run: folds, training, registration jobs, the tidy results table.

``run_benchmark`` is what ``bench run`` calls. It is resumable: trained models, checkpoints and
finished pairs (``result.json``) are reused, so re-running the same command finishes what is missing;
``force=True`` recomputes the results (and retrains).
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.core.atomic import atomic_path, write_text
from benchmark.core.errors import BenchError
from benchmark.runner.pair_job import (
    RESULT_FILE,
    PairJob,
    pair_folder,
    read_result,
    run_pair_job,
)
from benchmark.runner.scoring import METHOD_CONVENTIONS
from metrics.catalog import METRIC_CONVENTIONS, METRIC_UNITS, RESULT_COLUMNS

log = logging.getLogger(__name__)

#: ``validation.csv`` of a run folder: each trained model's validation score (``docs/conventions.md``).
VALIDATION_FILE = "validation.csv"
VALIDATION_COLUMNS = (
    "method", "fold", "best_iteration", "val_similarity", "identity_similarity", "val_dice",
    "identity_dice", "held_out", "worse_than_identity",
)


def versions() -> dict[str, str]:
    """Versions of Python, MIRBench and the libraries that change numbers."""
    out = {"python": platform.python_version(), "mirbench": __version__}
    for dist in (
        "torch", "numpy", "scipy", "itk-elastix", "antspyx", "picsl-greedy", "nibabel", "pandas",
    ):  # fmt: skip
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def method_params(cls: type, *, preset: str, settings: dict, seed: int, threads: int | None) -> dict:
    """The run's settings that the method class accepts (by its ``__init__`` signature)."""
    accepted = inspect.signature(cls).parameters
    offered: dict[str, Any] = {"preset": preset, "settings": settings, "seed": seed}
    if threads is not None:
        offered["threads"] = threads
    return {k: v for k, v in offered.items() if k in accepted}


def run_benchmark(
    manifest,
    method_names: Sequence[str],
    *,
    out: str | Path,
    preset: str = "quick",
    folds: Sequence[int] | None = None,
    jobs: int = 1,
    force: bool = False,
    device: str | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the benchmark and return the tidy results table (also written to ``out``).

    Parameters
    ----------
    manifest : benchmark.data.manifest.Manifest
        The dataset.
    method_names : sequence of str
        Registry names (``methods.registry.resolve_methods``).
    out : path
        Run folder. Re-using it resumes; a run with other settings in it is refused.
    preset : {"quick", "paper"}
        Training / elastix preset.
    folds : sequence of int, optional
        Folds to run (default all).
    jobs : int
        Parallel registration jobs (process pool when > 1).
    force : bool
        Recompute finished pairs and retrain models.
    device : str, optional
        Torch device for training and inference (default CUDA when available).
    seed : int
        Seed of training (network initialisation, patch sampling) and of elastix's sampler.
    overrides : dict, optional
        Training settings overriding the preset (``--set``).
    """
    from tqdm.auto import tqdm

    from benchmark.runner.preflight import preflight
    from methods.base import fit_method
    from methods.registry import available_methods
    from methods.training.config import merge_settings

    out = Path(out)
    # options, settings and data files are checked before the run folder is touched
    chosen = preflight(
        manifest, method_names, out=out, preset=preset, folds=folds, jobs=jobs, overrides=overrides
    )
    out.mkdir(parents=True, exist_ok=True)
    handler = _log_to_file(out / "logs" / "run.log")
    try:
        known = available_methods()
        unknown = [m for m in method_names if m not in known]
        if unknown:
            raise BenchError(f"unknown method(s) {unknown}; known methods: {', '.join(known)}")
        for name in method_names:
            ok, why = known[name].availability()
            if not ok:
                raise BenchError(f"method {name!r} is not available here: {why}")

        settings = merge_settings(manifest.presets.get(preset, {}), overrides or {})
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        params = {
            name: method_params(known[name], preset=preset, settings=settings, seed=seed, threads=threads)
            for name in method_names
        }
        _write_run_files(
            out, manifest, method_names, chosen, params, preset=preset, seed=seed, jobs=jobs,
            command=command, known=known,
        )
        if force:
            for name in method_names:
                for fold in chosen:
                    shutil.rmtree(out / "pairs" / name / f"fold{fold.index}", ignore_errors=True)
                    if known[name].learns:
                        shutil.rmtree(out / "models" / name / f"fold{fold.index}", ignore_errors=True)

        total = sum(len(f.test) for f in chosen) * len(method_names)
        bar = tqdm(total=total, desc="registrations", unit="pair", disable=not progress)
        done_before = 0
        from benchmark.runner.executor import make_executor

        with make_executor(jobs) as executor:
            futures: dict[cf.Future, PairJob] = {}
            for fold in chosen:
                for name in method_names:
                    todo = [
                        s
                        for s in fold.test
                        if not (pair_folder(out, name, fold.index, s) / RESULT_FILE).is_file()
                    ]
                    done_before += len(fold.test) - len(todo)
                    bar.update(len(fold.test) - len(todo))
                    if not todo:
                        continue
                    method = known[name](**params[name])
                    if known[name].learns:
                        log.info("fold %d: training %s on %d pairs", fold.index, name, len(fold.train))
                        fit_method(
                            method,
                            fold.train,
                            val_pairs=fold.val,
                            workdir=out / "models" / name / f"fold{fold.index}",
                            seed=seed,
                            device=device,
                            progress=progress,
                        )
                    for spec in todo:
                        job = PairJob(
                            name, method, fold.index, spec,
                            pair_folder(out, name, fold.index, spec), dict(manifest.labels),
                        )
                        futures[executor.submit(run_pair_job, job)] = job
                    # collect what finished so far (serial executor: everything)
                    for future in [f for f in futures if f.done()]:
                        _finish(futures.pop(future), future, bar)
            for future in cf.as_completed(list(futures)):
                _finish(futures.pop(future), future, bar)
        bar.close()
        if done_before:
            log.info("%d pair results were already complete and were reused", done_before)
        results = collect_results(out, method_names, [f.index for f in chosen])
        write_results(out, results)
        validation = collect_validation(out, method_names, [f.index for f in chosen])
        if len(validation):
            with atomic_path(out / VALIDATION_FILE) as tmp:
                validation.to_csv(tmp, index=False)
        return results
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _finish(job: PairJob, future: cf.Future, bar) -> None:
    exc = future.exception()
    if exc is not None:
        raise BenchError(
            f"{job.method_name} on {job.spec.key} (fold {job.fold}) stopped the run: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    bar.update(1)


def collect_results(out: Path, method_names: Sequence[str], folds: Sequence[int]) -> pd.DataFrame:
    """Every finished pair's rows of the given methods and folds, as the tidy table."""
    rows: list[dict] = []
    for name in method_names:
        for fold in folds:
            base = Path(out) / "pairs" / name / f"fold{fold}"
            for path in sorted(base.glob(f"*/*/{RESULT_FILE}")):
                rows.extend(read_result(path))
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["fold"] = frame["fold"].astype(int)
    order = {m: i for i, m in enumerate(METRIC_UNITS)}
    frame = frame.sort_values(
        ["method", "fold", "case", "pair", "structure", "metric"],
        key=lambda s: s.map(order) if s.name == "metric" else s,
        kind="stable",
    ).reset_index(drop=True)
    return frame


def collect_validation(out: Path, method_names: Sequence[str], folds: Sequence[int]) -> pd.DataFrame:
    """One row per trained model of the run: its validation score beside no registration.

    Columns :data:`VALIDATION_COLUMNS`; ``worse_than_identity`` is the reason (empty when the
    model is better than no registration on its validation pairs). Read from each model's
    ``model.json`` (:func:`methods.training.trainer.read_model_info`).
    """
    from methods.training.trainer import read_model_info

    rows = []
    for name in method_names:
        for fold in folds:
            info = read_model_info(Path(out) / "models" / name / f"fold{fold}")
            if not info or "validation" not in info:
                continue
            v = info["validation"]
            rows.append(
                {
                    "method": name,
                    "fold": fold,
                    "best_iteration": v["best_iteration"],
                    "val_similarity": v["best"]["similarity"],
                    "identity_similarity": v["identity"]["similarity"],
                    "val_dice": v["best"]["dice"],
                    "identity_dice": v["identity"]["dice"],
                    "held_out": v["held_out"],
                    "worse_than_identity": v["worse_than_identity"] or "",
                }
            )
    return pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))


def write_results(out: Path, results: pd.DataFrame) -> None:
    """``results.csv`` and ``results.parquet``, atomically."""
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    with atomic_path(out / "results.parquet") as tmp:
        results.to_parquet(tmp, index=False)


def _write_run_files(
    out: Path, manifest, method_names, folds, params, *, preset, seed, jobs, command, known
) -> None:
    run_info = {
        "command": list(command) if command is not None else sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "dataset": manifest.describe(),
        "methods": {
            name: {
                "class": f"{known[name].__module__}.{known[name].__qualname__}",
                "description": known[name].description,
                "params": params[name],
            }
            for name in method_names
        },
        "conventions": {"metrics": METRIC_CONVENTIONS, "methods": METHOD_CONVENTIONS},
        "preset": preset,
        "folds": [f.index for f in folds],
        "seed": seed,
        "jobs": jobs,
    }
    previous = out / "run.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("dataset", {}).get("sha256") != manifest.sha256 or old.get("preset") != preset:
            raise BenchError(
                f"{out} holds a run of another dataset manifest or preset "
                f"({old.get('dataset', {}).get('name')}, preset {old.get('preset')}); "
                "use another --out"
            )
        run_info["started_first"] = old.get("started_first", old.get("started"))
    write_text(previous, json.dumps(run_info, indent=2, default=str))
    write_text(out / "folds.json", json.dumps(manifest.folds_table(), indent=2))
    rows = []
    for fold in folds:
        for spec in fold.test:
            files = spec.files()
            rows.append(
                {
                    "fold": fold.index,
                    "case": spec.case,
                    "pair": spec.pair,
                    **{
                        role: str(Path(files[role]).resolve()) if role in files else ""
                        for role in (
                            "fixed", "moving", "fixed_labels", "moving_labels", "displacement", "mask",
                        )
                    },
                }
            )
    with atomic_path(out / "pairs.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def _log_to_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
