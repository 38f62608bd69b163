"""The plan of a run: the tasks ``train(method, fold, seed)`` and ``register(method, fold, seed,
pair)``, their dependencies, outputs and content keys, and which of them must run and why.

A task's key hashes what determines its result: the method class and settings, the seed, the
content hashes of its input files (:mod:`~benchmark.runner.fingerprint`) and, for a registration
with a learned method, the key of the training it uses. A task is done when its record
(``result.json`` or ``task.json``, :mod:`~benchmark.core.layout`) exists with the same key; a
record with another key is stale, and the reason names the parts that changed.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.layout import RunLayout
from benchmark.core.pairs import PairSpec
from benchmark.runner.fingerprint import FileHashes, digest

TRAIN, REGISTER = "train", "register"
#: Method parameters kept out of the "method" part of the key: the seed is a part of its own;
#: the thread count, unless the method says it changes its results.
UNKEYED_PARAMS = ("threads", "seed")


@dataclass
class Task:
    """One unit of work of the plan (picklable: it travels to the workers)."""

    kind: str  # TRAIN or REGISTER
    method: str
    method_class: type
    params: dict[str, Any]
    fold: int
    seed: int
    record: Path  # result.json or task.json: written last, with the key
    parts: dict[str, Any]  # what determines the result, by name (the key's inputs)
    spec: PairSpec | None = None  # REGISTER: the pair
    train_pairs: list[PairSpec] = field(default_factory=list)  # the fold's training pairs
    val_pairs: list[PairSpec] = field(default_factory=list)
    model_dir: Path | None = None  # learned methods: the training folder
    depends: str | None = None  # REGISTER with a learned method: the train task's id
    labels: dict[str, int] = field(default_factory=dict)
    selected: bool = True  # in --folds
    state: str = "to do"  # "done", "to do" or "not selected"
    reason: str = ""

    @property
    def key(self) -> str:
        return digest(self.parts)

    @property
    def id(self) -> str:
        where = f"{self.method} fold {self.fold} seed {self.seed}"
        return f"{self.kind} {where}" + (f" {self.spec.key}" if self.spec is not None else "")

    @property
    def learns(self) -> bool:
        return bool(getattr(self.method_class, "learns", False))

    @property
    def pair_keys(self) -> dict[str, Any]:
        """A registration's ``method, fold, case, pair`` (the first columns of its result rows)."""
        return {"method": self.method, "fold": self.fold, "case": self.spec.case,
                "pair": self.spec.pair}


def seeded(cls: type) -> bool:
    """Whether a method's result depends on a seed (it learns, or its ``__init__`` takes one).
    Other methods run once, as seed 0."""
    return bool(getattr(cls, "learns", False)) or "seed" in inspect.signature(cls).parameters


def _files(spec: PairSpec, hashes: FileHashes) -> dict[str, str]:
    return {role: hashes.of(path) for role, path in sorted(spec.files().items())}


def build_plan(
    layout: RunLayout,
    folds: Sequence,
    selected: Sequence[int],
    methods: dict[str, type],
    params: dict[str, dict[str, Any]],
    *,
    seeds: Sequence[int],
    labels: dict[str, int],
    hashes: FileHashes,
) -> list[Task]:
    """Every task of every fold (trainings first, then registrations), each with its state.

    Tasks of folds not in ``selected`` are planned too (their results stay in ``results.csv``)
    but never run (state ``not selected``).
    """
    tasks: list[Task] = []
    for fold in folds:
        is_selected = fold.index in selected
        for name, cls in methods.items():
            method_seeds = list(seeds) if seeded(cls) else [0]
            unkeyed = ("seed",) if cls.threads_change_results else UNKEYED_PARAMS
            keyed = {k: v for k, v in params[name].items() if k not in unkeyed}
            method_part = {"class": f"{cls.__module__}.{cls.__qualname__}", "params": keyed}
            for seed in method_seeds:
                train = None
                if getattr(cls, "learns", False):
                    parts = {
                        "method": {**method_part, "params": cls.training_params(keyed)},
                        "seed": seed,
                        "train": {s.key: _files(s, hashes) for s in fold.train},
                        "val": {s.key: _files(s, hashes) for s in fold.val},
                    }
                    train = Task(
                        TRAIN, name, cls, params[name], fold.index, seed,
                        layout.model_task(name, fold.index, seed), parts,
                        train_pairs=list(fold.train), val_pairs=list(fold.val),
                        model_dir=layout.model_dir(name, fold.index, seed), selected=is_selected,
                    )
                    tasks.append(train)
                for spec in fold.test:
                    parts = {
                        "method": method_part,
                        "seed": seed,
                        "files": _files(spec, hashes),
                        "labels": dict(labels),
                        "model": train.key if train is not None else None,
                    }
                    tasks.append(
                        Task(
                            REGISTER, name, cls, params[name], fold.index, seed,
                            layout.result_json(name, fold.index, spec.case, spec.pair, seed),
                            parts, spec=spec, labels=dict(labels),
                            train_pairs=list(fold.train), val_pairs=list(fold.val),
                            model_dir=None if train is None else train.model_dir,
                            depends=None if train is None else train.id, selected=is_selected,
                        )
                    )
    by_id = {t.id: t for t in tasks}
    for task in tasks:
        task.state, task.reason = _state(task, by_id)
    return tasks


def read_record(path: Path) -> dict[str, Any] | None:
    """A task record (``result.json``/``task.json``), or None when absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def current_record(task: Task) -> dict[str, Any] | None:
    """The task's record when it was written for the task's present inputs (its key), else None."""
    record = read_record(task.record)
    return record if record is not None and record.get("key") == task.key else None


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the parts that differ (one level into ``files``, ``train`` and ``val``)."""
    names = []
    for part in sorted(set(old) | set(new)):
        a, b = old.get(part), new.get(part)
        if a == b:
            continue
        if part == "seed":
            names.append(f"seed {a} -> {b}")
        elif part == "files" and isinstance(a, dict) and isinstance(b, dict):
            names += [f"{role} file" for role in sorted(set(a) | set(b)) if a.get(role) != b.get(role)]
        elif part in ("train", "val") and isinstance(a, dict) and isinstance(b, dict):
            diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            names.append(f"{part} pairs ({', '.join(diff[:3])}{', ...' if len(diff) > 3 else ''})")
        elif part == "model":
            names.append("the model (retrained)")
        else:
            names.append(part if part != "method" else "method settings")
    return names


def _state(task: Task, by_id: dict[str, Task]) -> tuple[str, str]:
    """``(state, reason)`` of a task from its record and its dependency."""
    record = read_record(task.record)
    problem = _output_problem(task)
    if record is not None and record.get("key") == task.key and problem is None:
        return "done", "up to date"
    if record is None or "key" not in record:
        why = "not run yet" if record is None else "no key recorded (an older run folder)"
        if task.kind == REGISTER and task.depends and by_id[task.depends].state != "done":
            why += "; waits for its training"
    else:
        changed = _changed(record.get("parts", {}), task.parts)
        why = "stale: " + (", ".join(changed) if changed else "key changed") + " changed"
        if problem is not None:
            why = f"outputs incomplete: {problem}"
    return ("to do" if task.selected else "not selected"), why


def _output_problem(task: Task) -> str | None:
    """Why a training's artefacts are not there or not usable
    (:meth:`methods.base.Method.artefact_problem`: missing, damaged); None when they are, and
    for a registration, whose ``result.json`` is written last, so its record is enough."""
    if task.kind == TRAIN and task.model_dir is not None:
        return task.method_class.artefact_problem(task.model_dir)
    return None


def format_plan(tasks: Sequence[Task], estimates: dict[tuple[str, str], float]) -> str:
    """The ``--dry-run`` listing: one line per task to do (with the reason and the estimated
    seconds from previous cost records), then the counts."""
    lines = []
    todo = [t for t in tasks if t.state == "to do"]
    total = 0.0
    for t in todo:
        est = estimates.get((t.kind, t.method))
        total += est or 0.0
        cost = f"~{est:.1f} s" if est is not None else "no estimate"
        lines.append(f"to do  {t.id}: {t.reason} ({cost})")
    done = sum(t.state == "done" for t in tasks)
    other = sum(t.state == "not selected" for t in tasks)
    lines.append(
        f"{len(todo)} task(s) to do, {done} done, {other} not selected (--folds); "
        f"estimated {total:.1f} s of work from previous records"
    )
    return "\n".join(lines)
