"""A whole benchmark run: plan every fold's tasks, run those not up to date, and write the tidy
results table, the validation and cost tables (``docs/conventions.md``, "Run folder").

``run_benchmark`` is what ``bench run`` calls, ``plan_benchmark`` what ``bench run --dry-run``
calls. A run is resumable and content-keyed (:mod:`~benchmark.runner.plan`): re-running the same
command finishes what is missing, and recomputes what its inputs changed; ``force=True``
recomputes the selected folds (and retrains).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.core.atomic import atomic_path, write_text
from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout
from benchmark.runner.fingerprint import FileHashes
from benchmark.runner.plan import REGISTER, TRAIN, Task, current_record
from benchmark.runner.scoring import METHOD_CONVENTIONS
from metrics.catalog import METRIC_CONVENTIONS, METRIC_UNITS, RESULT_COLUMNS

log = logging.getLogger(__name__)

#: ``validation.csv`` of a run folder: each trained model's validation score (``docs/conventions.md``).
VALIDATION_COLUMNS = (
    "method", "fold", "seed", "best_iteration", "val_similarity", "identity_similarity", "val_dice",
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


@dataclass(frozen=True)
class RunOptions:
    """What selects a run's tasks and their settings: the keywords ``run_benchmark`` and
    ``plan_benchmark`` share (see :func:`run_benchmark` for each one's meaning)."""

    out: str | Path
    preset: str = "quick"
    folds: Sequence[int] | None = None
    jobs: int = 1
    seeds: Sequence[int] = (0,)
    overrides: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Prepared:
    """A checked run: its options, folder, the folds run now, seeds, method classes and
    settings."""

    options: RunOptions
    layout: RunLayout
    chosen: list
    seeds: list[int]
    methods: dict[str, type]
    params: dict[str, dict]


def _prepare(manifest, method_names: Sequence[str], options: RunOptions) -> _Prepared:
    """Checks, method classes and settings of a run (nothing written)."""
    from benchmark.runner.executor import worker_threads
    from benchmark.runner.preflight import preflight
    from methods.registry import available_methods
    from methods.training.config import merge_settings

    layout, preset, jobs = RunLayout(options.out), options.preset, options.jobs
    chosen = preflight(
        manifest, method_names, out=layout.root, preset=preset, folds=options.folds, jobs=jobs,
        overrides=options.overrides,
    )
    seeds = _check_seeds(options.seeds)
    known = available_methods()
    unknown = [m for m in method_names if m not in known]
    if unknown:
        raise BenchError(f"unknown method(s) {unknown}; known methods: {', '.join(known)}")
    for name in method_names:
        ok, why = known[name].availability()
        if not ok:
            raise BenchError(f"method {name!r} is not available here: {why}")
    settings = merge_settings(manifest.presets.get(preset, {}), options.overrides or {})
    threads = worker_threads(jobs) if jobs > 1 else None
    params = {
        name: method_params(
            known[name], preset=preset, settings=settings, seed=seeds[0], threads=threads
        )
        for name in method_names
    }
    return _Prepared(options, layout, chosen, seeds, {n: known[n] for n in method_names}, params)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {seeds}: expected distinct integers >= 0, like 0,1,2")
    return seeds


def _plan(manifest, run: _Prepared, hashes: FileHashes) -> list[Task]:
    """The plan of every fold; ``method_params``' seed is set per task for seeded methods."""
    from benchmark.runner.plan import build_plan

    tasks = build_plan(
        run.layout, manifest.folds(), [f.index for f in run.chosen], run.methods, run.params,
        seeds=run.seeds, labels=dict(manifest.labels), hashes=hashes,
    )
    for task in tasks:
        if "seed" in task.params:
            task.params = {**task.params, "seed": task.seed}
    return tasks


def plan_benchmark(
    manifest, method_names: Sequence[str], **options: Any
) -> tuple[list[Task], dict[tuple[str, str], float]]:
    """The plan of a run without running or writing anything (``bench run --dry-run``): every
    task with its state and reason, and the mean wall seconds per (kind, method) of the previous
    cost records (``costs.csv``).

    ``options`` are the keywords of :class:`RunOptions` (``out`` required), as for
    :func:`run_benchmark`.
    """
    run = _prepare(manifest, method_names, RunOptions(**options))
    layout = run.layout
    if layout.run_json.is_file():
        _check_same_dataset(layout, manifest, run.options.preset)
    tasks = _plan(manifest, run, FileHashes(layout.file_hashes))
    estimates: dict[tuple[str, str], float] = {}
    if layout.costs_csv.is_file():
        costs = pd.read_csv(layout.costs_csv)
        estimates = costs.groupby(["kind", "method"])["wall_s"].mean().to_dict()
    return tasks, estimates


def run_benchmark(
    manifest,
    method_names: Sequence[str],
    *,
    out: str | Path,
    preset: str = "quick",
    folds: Sequence[int] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    device: str | None = None,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    overrides: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the benchmark and return the tidy results table (also written to ``out``).

    Builds the plan (:mod:`~benchmark.runner.plan`) of every fold, runs the tasks of the selected
    folds that are not done (:mod:`~benchmark.runner.executor`), and writes ``results.csv`` with
    the rows of every up-to-date task, of all folds. ``results.attrs["failed"]`` lists the
    outcomes of the tasks that failed in this run (their pairs' rows carry the status).

    Parameters
    ----------
    manifest : benchmark.data.manifest.Manifest
        The dataset.
    method_names : sequence of str
        Registry names (``methods.registry.resolve_methods``).
    out : path
        Run folder. Re-using it resumes; results whose inputs changed are recomputed; a run of
        another dataset or preset in it is refused.
    preset : {"quick", "paper"}
        Training / elastix preset.
    folds : sequence of int, optional
        Folds to run (default all); the results of the other folds stay in ``results.csv``.
    jobs : int
        1: every task in this process, one after another; more: a Dask ``LocalCluster`` of
        ``jobs`` worker processes.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://HOST:8786``); default
        ``DASK_SCHEDULER_ADDRESS`` when set.
    force : bool
        Recompute the selected folds' results and retrain their models.
    device : str, optional
        Torch device for training and inference (default CUDA when available).
    seed, seeds : int, sequence of int
        Seeds of training (network initialisation, patch sampling) and of elastix's sampler;
        ``seeds`` (default ``[seed]``) runs every seeded method once per seed.
    overrides : dict, optional
        Training settings overriding the preset (``--set``).
    """
    from benchmark.runner.executor import scheduler_address

    options = RunOptions(
        out=out, preset=preset, folds=folds, jobs=jobs,
        seeds=[seed] if seeds is None else list(seeds), overrides=overrides,
    )
    run = _prepare(manifest, method_names, options)
    address = scheduler_address(scheduler)
    run.layout.root.mkdir(parents=True, exist_ok=True)
    handler = _log_to_file(run.layout.run_log)
    try:
        _write_run_files(
            run.layout, manifest, method_names, run.chosen, run.params, preset=preset,
            seeds=run.seeds, jobs=jobs, scheduler=address, command=command, known=run.methods,
        )
        tasks = _plan_to_run(manifest, run, force=force)
        todo = [t for t in tasks if t.state == "to do"]
        failed = _execute(todo, jobs=jobs, scheduler=address, device=device, progress=progress)
        return _collect(run, tasks, failed)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _plan_to_run(manifest, run: _Prepared, *, force: bool) -> list[Task]:
    """The plan of a run about to start, its file hashes saved: with ``force`` the selected
    tasks' outputs removed first (so that all of them run again), and the models of stale
    training tasks removed (a stale model is never reused)."""
    hashes = FileHashes(run.layout.file_hashes)
    tasks = _plan(manifest, run, hashes)
    if force:
        for task in (t for t in tasks if t.selected):
            folder = task.model_dir if task.kind == TRAIN else task.record.parent
            shutil.rmtree(folder, ignore_errors=True)
        tasks = _plan(manifest, run, hashes)
    hashes.save()
    for task in (t for t in tasks if t.state == "to do"):
        log.info("to do: %s (%s)", task.id, task.reason)
        if task.kind == TRAIN and task.reason.startswith(("stale", "outputs")):
            shutil.rmtree(task.model_dir, ignore_errors=True)
    done_before = sum(t.state == "done" and t.kind == REGISTER for t in tasks if t.selected)
    if done_before:
        log.info("%d registrations were up to date and were reused", done_before)
    return tasks


def _execute(
    todo: Sequence[Task], *, jobs: int, scheduler: str | None, device: str | None, progress: bool
) -> list[dict]:
    """Run the tasks (in this process when ``jobs`` is 1 and no scheduler is given, else on
    Dask) with a progress bar; the outcomes of those that failed, with their reasons."""
    from tqdm.auto import tqdm

    from benchmark.runner.executor import run_dask, run_serial

    bar = tqdm(total=len(todo), desc="tasks", unit="task", disable=not progress)
    outcomes: dict[str, dict] = {}

    def done(outcome: dict) -> None:
        outcomes[outcome["id"]] = outcome
        bar.update(1)

    if todo and jobs == 1 and scheduler is None:
        run_serial(todo, device=device, progress=progress, done=done)
    elif todo:
        run_dask(todo, jobs=jobs, scheduler=scheduler, device=device, done=done)
    bar.close()
    return [o for o in outcomes.values() if o["status"] == "failed" and "reason" in o]


def _collect(run: _Prepared, tasks: Sequence[Task], failed: list[dict]) -> pd.DataFrame:
    """Write ``results.csv`` / ``.parquet``, ``costs.csv`` and ``validation.csv`` (when models
    were trained) of the plan; the results table, ``attrs["failed"]`` set."""
    results = collect_results(tasks, failed)
    write_results(run.layout, results)
    write_costs(run.layout, tasks)
    validation = collect_validation(tasks)
    if len(validation):
        with atomic_path(run.layout.validation_csv) as tmp:
            validation.to_csv(tmp, index=False)
    results.attrs["failed"] = failed
    return results


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
    frame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "seed"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["fold"] = frame["fold"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    order = {m: i for i, m in enumerate(METRIC_UNITS)}
    frame = frame.sort_values(
        ["method", "fold", "seed", "case", "pair", "structure", "metric"],
        key=lambda s: s.map(order) if s.name == "metric" else s,
        kind="stable",
    ).reset_index(drop=True)
    return frame


#: ``costs.csv``: one row per task record (``docs/conventions.md``).
COST_COLUMNS = (
    "kind", "method", "fold", "seed", "case", "pair", "status", "wall_s", "cpu_s", "peak_rss_mb",
    "peak_gpu_mb", "device", "iterations", "iterations_per_s", "host",
)


def write_costs(layout: RunLayout, tasks: Sequence[Task]) -> pd.DataFrame:
    """``costs.csv`` from the cost records of every up-to-date task of the plan."""

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
    frame = pd.DataFrame(rows, columns=list(COST_COLUMNS))
    with atomic_path(layout.costs_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def collect_validation(tasks: Sequence[Task]) -> pd.DataFrame:
    """One row per up-to-date training of the plan (every fold and seed): the model's
    validation score beside no registration.

    Columns :data:`VALIDATION_COLUMNS`; ``worse_than_identity`` is the reason (empty when the
    model is better than no registration on its validation pairs). Read from each model's
    ``model.json`` (:func:`methods.training.trainer.read_model_info`).
    """
    from methods.training.trainer import read_model_info

    rows = []
    for task in tasks:
        if task.kind != TRAIN or task.model_dir is None or current_record(task) is None:
            continue
        info = read_model_info(task.model_dir)
        if not info or "validation" not in info:
            continue
        v = info["validation"]
        rows.append(
            {
                "method": task.method,
                "fold": task.fold,
                "seed": task.seed,
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


def write_results(layout: RunLayout, results: pd.DataFrame) -> None:
    """``results.csv`` and ``results.parquet``, atomically."""
    with atomic_path(layout.results_csv) as tmp:
        results.to_csv(tmp, index=False)
    with atomic_path(layout.results_parquet) as tmp:
        results.to_parquet(tmp, index=False)


def provenance(device: str | None = None) -> dict[str, Any]:
    """Where the numbers come from: the project's git commit (and whether its tree had
    uncommitted changes), torch, CUDA and cuDNN versions, the GPU model and the host."""
    import torch

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    cuda = torch.cuda.is_available()
    return {
        "git_commit": commit or "not a git checkout",
        "git_dirty": None if status is None else bool(status),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }


#: The manifest's fields whose change makes a run folder another run (``run.json`` "dataset");
#: its path, root and bytes may change (a comment edited, the data moved): results whose
#: inputs changed are recomputed by their keys.
DATASET_IDENTITY = ("name", "loader", "labels", "pairing", "training_pairing", "cv", "split",
                    "presets")


def _check_same_dataset(layout: RunLayout, manifest, preset: str) -> None:
    """Refuse a run folder holding a run of another dataset or preset, naming what changed."""
    old = json.loads(layout.run_json.read_text())
    before, now = old.get("dataset", {}), manifest.describe()
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in DATASET_IDENTITY
        if k in before and json.dumps(before.get(k), sort_keys=True, default=str)
        != json.dumps(now.get(k), sort_keys=True, default=str)
    ]
    if old.get("preset") != preset:
        changed.append(f"preset: {old.get('preset')!r} -> {preset!r}")
    if changed:
        raise BenchError(
            f"{layout.root} holds a run of another dataset or preset ({'; '.join(changed)}); "
            "use another --out"
        )


def _write_run_files(
    layout: RunLayout, manifest, method_names, folds, params, *, preset, seeds, jobs, scheduler,
    command, known,
) -> None:
    run_info = {
        "command": list(command) if command is not None else sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "provenance": provenance(),
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
        "seed": seeds[0],
        "seeds": list(seeds),
        "jobs": jobs,
        "scheduler": scheduler,
    }
    if layout.run_json.is_file():
        _check_same_dataset(layout, manifest, preset)
        old = json.loads(layout.run_json.read_text())
        run_info["started_first"] = old.get("started_first", old.get("started"))
    write_text(layout.run_json, json.dumps(run_info, indent=2, default=str))
    write_text(layout.folds_json, json.dumps(manifest.folds_table(), indent=2))
    # the test pairs of the folds run now or before: results.csv keeps every fold's rows
    listed = {f.index for f in folds}
    if layout.pairs_csv.is_file():
        listed |= set(pd.read_csv(layout.pairs_csv, usecols=["fold"])["fold"].astype(int))
    rows = []
    for fold in (f for f in manifest.folds() if f.index in listed):
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
    with atomic_path(layout.pairs_csv) as tmp:
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
