"""A whole benchmark run: check it, plan every fold's tasks, run those not up to date, and write
the run folder's tables (``docs/conventions.md``, "Run folder"), the paper's claims on the run
among them (``claims.csv``, :mod:`benchmark.stats.claims`).

``run_benchmark`` is what ``bench run`` calls, ``plan_benchmark`` what ``bench run --dry-run``
calls; both take one :class:`RunOptions`. A run is resumable and content-keyed
(:mod:`~benchmark.runner.plan`): re-running the same command finishes what is missing, and
recomputes what its inputs changed; ``force=True`` recomputes the selected folds (and retrains).
The files that describe the run are :mod:`~benchmark.runner.runfiles`', the tables
:mod:`~benchmark.runner.collect`'s.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout
from benchmark.runner.collect import (
    collect_costs,
    collect_results,
    collect_validation,
    sort_results,
    with_other_methods,
    write_results,
    write_table,
)
from benchmark.runner.fingerprint import FileHashes
from benchmark.runner.lock import run_lock
from benchmark.runner.plan import REGISTER, TRAIN, Task
from benchmark.runner.runfiles import check_same_dataset, log_to_file, write_run_files
from benchmark.stats.claims import evaluate_claims
from methods.base import RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Everything that defines a run: the dataset, the methods, the run folder and how the
    tasks run.

    Attributes
    ----------
    manifest : benchmark.data.manifest.Manifest
        The dataset.
    methods : sequence of str
        Registry names (``methods.registry.resolve_methods``).
    out : path
        Run folder. Re-using it resumes; results whose inputs changed are recomputed; a run of
        another dataset or preset in it is refused.
    preset : {"quick", "paper"}
        Training / conventional-method preset.
    folds : sequence of int, optional
        Folds to run (default all); the results of the other folds stay in ``results.csv``.
    jobs : int
        1: every task in this process, one after another; more: a Dask ``LocalCluster`` of
        ``jobs`` worker processes.
    seeds : sequence of int
        Seeds of training (network initialisation, patch sampling) and of the conventional
        methods' samplers; every seeded method runs once per seed.
    overrides : mapping
        ``--set`` settings (:func:`methods.registry.parse_set`).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://HOST:8786``); default
        ``DASK_SCHEDULER_ADDRESS`` when set.
    force : bool
        Recompute the selected folds' results and retrain their models.
    device : str, optional
        Torch device for training and inference (default CUDA when available).
    command : sequence of str, optional
        The command line recorded in ``run.json`` (default ``sys.argv``).
    progress : bool
        Show a progress bar of the tasks.
    prune : bool
        Drop from the run folder's tables (and ``run.json``) the methods of earlier runs that
        this run does not include; by default their rows are kept.
    """

    manifest: Any
    methods: Sequence[str]
    out: str | Path
    preset: str = "quick"
    folds: Sequence[int] | None = None
    jobs: int = 1
    seeds: Sequence[int] = (0,)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    scheduler: str | None = None
    force: bool = False
    device: str | None = None
    command: Sequence[str] | None = None
    progress: bool = True
    prune: bool = False


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


def _prepare(options: RunOptions) -> _Prepared:
    """Checks (:func:`~benchmark.runner.preflight.preflight`), method classes and each method's
    settings for the run (:meth:`methods.base.Method.configure`); nothing written."""
    from benchmark.runner.executor import scheduler_address, worker_threads
    from benchmark.runner.preflight import preflight

    manifest, jobs = options.manifest, options.jobs
    chosen, classes = preflight(
        manifest, options.methods, out=Path(options.out), preset=options.preset,
        folds=options.folds, jobs=jobs, overrides=options.overrides, device=options.device,
        scheduler=scheduler_address(options.scheduler),
    )
    seeds = _check_seeds(options.seeds)
    context = RunContext(
        preset=options.preset,
        seed=seeds[0],
        threads=worker_threads(jobs) if jobs > 1 else None,
        presets=manifest.presets,
        overrides=dict(options.overrides or {}),
        source=f"manifest {manifest.path}",
        contrast=manifest.contrast,
    )
    params = {name: cls.configure(context) for name, cls in classes.items()}
    return _Prepared(options, RunLayout(options.out), chosen, seeds, classes, params)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {seeds}: expected distinct integers >= 0, like 0,1,2")
    return seeds


def _plan(run: _Prepared, hashes: FileHashes) -> list[Task]:
    """The plan of every fold; a seeded method's ``seed`` parameter is set per task."""
    from benchmark.runner.plan import build_plan

    manifest = run.options.manifest
    tasks = build_plan(
        run.layout, manifest.folds(), [f.index for f in run.chosen], run.methods, run.params,
        seeds=run.seeds, labels=dict(manifest.labels), hashes=hashes,
    )
    for task in tasks:
        if "seed" in task.params:
            task.params = {**task.params, "seed": task.seed}
    return tasks


def plan_benchmark(options: RunOptions) -> tuple[list[Task], dict[tuple[str, str], float]]:
    """The plan of a run without running or writing anything (``bench run --dry-run``): every
    task with its state and reason, and the mean wall seconds per (kind, method) of the previous
    cost records (``costs.csv``)."""
    run = _prepare(options)
    layout = run.layout
    check_same_dataset(layout, options.manifest, options.preset)
    tasks = _plan(run, FileHashes(layout.file_hashes))
    return tasks, _estimates(layout)


def _estimates(layout: RunLayout) -> dict[tuple[str, str], float]:
    """Mean wall seconds per (kind, method) of ``costs.csv``; none when it is absent or
    damaged (a warning names it)."""
    if not layout.costs_csv.is_file():
        return {}
    try:
        costs = pd.read_csv(layout.costs_csv)
        return costs.groupby(["kind", "method"])["wall_s"].mean().to_dict()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s is damaged (%s); no time estimates", layout.costs_csv, exc)
        return {}


def run_benchmark(options: RunOptions) -> pd.DataFrame:
    """Run the benchmark and return the tidy results table (also written to the run folder).

    Builds the plan (:mod:`~benchmark.runner.plan`) of every fold, runs the tasks of the selected
    folds that are not done (:mod:`~benchmark.runner.executor`), and writes ``results.csv`` with
    the rows of every up-to-date task, of all folds, ``costs.csv`` and ``validation.csv``.
    ``results.attrs["failed"]`` lists the outcomes of the tasks that failed in this run (their
    pairs' rows carry the status).
    """
    from benchmark.runner.executor import scheduler_address

    run = _prepare(options)
    address = scheduler_address(options.scheduler)
    with run_lock(run.layout, command=options.command):
        handler = log_to_file(run.layout.run_log)
        try:
            write_run_files(
                run.layout, options.manifest, methods=run.methods, params=run.params,
                folds=run.chosen, preset=options.preset, seeds=run.seeds, jobs=options.jobs,
                scheduler=address, command=options.command, prune=options.prune,
            )
            tasks = _plan_to_run(run)
            todo = [t for t in tasks if t.state == "to do"]
            failed = _execute(todo, options, scheduler=address)
            return _collect(run, tasks, failed)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _plan_to_run(run: _Prepared) -> list[Task]:
    """The plan of a run about to start, its file hashes saved: with ``force`` the selected
    tasks' outputs removed first (so that all of them run again), and the models of stale
    training tasks removed (a stale model is never reused)."""
    hashes = FileHashes(run.layout.file_hashes)
    tasks = _plan(run, hashes)
    if run.options.force:
        for task in (t for t in tasks if t.selected):
            folder = task.model_dir if task.kind == TRAIN else task.record.parent
            shutil.rmtree(folder, ignore_errors=True)
        tasks = _plan(run, hashes)
    hashes.save()
    for task in (t for t in tasks if t.state == "to do"):
        log.info("to do: %s (%s)", task.id, task.reason)
        if task.kind == TRAIN and task.reason.startswith(("stale", "outputs")):
            shutil.rmtree(task.model_dir, ignore_errors=True)
    done_before = sum(t.state == "done" and t.kind == REGISTER for t in tasks if t.selected)
    if done_before:
        log.info("%d registrations were up to date and were reused", done_before)
    return tasks


def _execute(todo: Sequence[Task], options: RunOptions, *, scheduler: str | None) -> list[dict]:
    """Run the tasks (in this process when ``jobs`` is 1 and no scheduler is given, else on
    Dask) with a progress bar; the outcomes of those that failed, with their reasons."""
    from tqdm.auto import tqdm

    from benchmark.runner.executor import run_dask, run_serial

    bar = tqdm(total=len(todo), desc="tasks", unit="task", disable=not options.progress)
    outcomes: dict[str, dict] = {}

    def done(outcome: dict) -> None:
        outcomes[outcome["id"]] = outcome
        bar.update(1)

    if todo and options.jobs == 1 and scheduler is None:
        run_serial(todo, device=options.device, progress=options.progress, done=done)
    elif todo:
        run_dask(todo, jobs=options.jobs, scheduler=scheduler, device=options.device, done=done)
    bar.close()
    return [o for o in outcomes.values() if o["status"] == "failed" and "reason" in o]


def _collect(run: _Prepared, tasks: Sequence[Task], failed: list[dict]) -> pd.DataFrame:
    """Write ``results.csv`` / ``.parquet``, ``costs.csv`` and ``validation.csv`` (when models
    were trained) of the plan; the results table, ``attrs["failed"]`` set."""
    layout = run.layout
    keep = {"methods": list(run.methods), "prune": run.options.prune}
    results = sort_results(
        with_other_methods(layout.results_csv, collect_results(tasks, failed), **keep)
    )
    write_results(layout, results)
    write_table(layout.costs_csv, with_other_methods(layout.costs_csv, collect_costs(tasks), **keep))
    validation = with_other_methods(layout.validation_csv, collect_validation(tasks), **keep)
    if len(validation) or layout.validation_csv.is_file():
        write_table(layout.validation_csv, validation)
    write_table(layout.claims_csv,
                evaluate_claims(results, contrast=run.options.manifest.contrast))
    results.attrs["failed"] = failed
    return results
