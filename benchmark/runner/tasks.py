"""Running one task of the plan where an executor puts it (in-process or on a Dask worker).

:func:`run_train` trains a learned method's model of one fold and seed; :func:`run_register`
registers, warps and scores one pair. Both write their record (``task.json`` /
``result.json``, with the task's key, parts and cost) last and atomically: a task killed at any
moment leaves no record, and the next run recomputes it. Both return an outcome dict and never
raise for a failure of their own (bad input, NaN loss, a method's error): the outcome says
``failed`` with the reason, and the run goes on with the independent tasks.

Each record carries a cost (:func:`measure`): its start (UNIX time) and the process that ran it,
wall and CPU seconds, the process's peak RSS,
peak GPU memory (``torch.cuda.max_memory_allocated``), the device name and, for a training,
iterations per second.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
import resource
import socket
import time
import traceback
from contextlib import contextmanager
from typing import Any

from benchmark.core.atomic import write_text
from benchmark.core.errors import BenchError
from benchmark.core.images import write_displacement, write_image
from benchmark.core.pairs import DISPLACEMENT_FILE
from benchmark.runner.plan import Task

log = logging.getLogger(__name__)

#: Trained methods kept per process, by training folder, key and the times of the method's
#: artefact files (a worker loads each model once).
_METHODS: dict[tuple, Any] = {}
_METHOD_CACHE_SIZE = 4


def _cuda(device: str | None) -> bool:
    import torch

    if device is not None:
        return str(device).startswith("cuda")
    return torch.cuda.is_available()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`, else
    the machine type such as ``x86_64``); read once per process (every task's cost names it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, name = line.partition(":")
                if key.strip() == "model name" and name.strip():
                    return name.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: str | None) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (AMD EPYC, 16 cores)`` (:func:`cpu_model`)."""
    import torch

    if _cuda(device) and torch.cuda.is_available():
        index = torch.device(device or "cuda").index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores)"


@contextmanager
def measure(device: str | None):
    """Yield a dict filled, on exit, with the cost of the block."""
    import torch

    cost: dict[str, Any] = {}
    cuda = _cuda(device) and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started, wall, cpu = time.time(), time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        cost.update(
            started=started,
            wall_s=time.perf_counter() - wall,
            cpu_s=time.process_time() - cpu,
            # the process's peak so far (Linux: KiB); a worker's peak over the tasks it ran
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
            device=device_name(device),
            host=socket.gethostname(),
            pid=os.getpid(),
        )


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
    return text.replace("\n", " ")[:500]


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _write_record(task: Task, status: str, cost: dict, **extra: Any) -> None:
    task.record.parent.mkdir(parents=True, exist_ok=True)
    payload = {"key": task.key, "parts": task.parts, "status": status, "cost": cost, **extra}
    write_text(task.record, json.dumps(payload, indent=1, default=str))


def _fitted(task: Task, device: str | None, *, progress: bool = False):
    """The task's method, fitted (a learned method: trained, or its model loaded)."""
    from methods.base import fit_method

    cache_key = None
    if task.kind == "register" and task.learns:
        stamps = tuple(
            p.stat().st_mtime_ns if p.is_file() else None
            for p in task.method_class.artefact_files(task.model_dir)
        )
        cache_key = (str(task.model_dir), task.parts["model"], stamps)
    if cache_key and cache_key in _METHODS:
        return _METHODS[cache_key]
    method = task.method_class(**task.params)
    if task.learns:
        fit_method(
            method, task.train_pairs, val_pairs=task.val_pairs, workdir=task.model_dir,
            seed=task.seed, device=device, progress=progress,
        )
        if cache_key:
            while len(_METHODS) >= _METHOD_CACHE_SIZE:
                _METHODS.pop(next(iter(_METHODS)))
            _METHODS[cache_key] = method
    return method


def run_train(task: Task, *, device: str | None, threads: int | None = None,
              progress: bool = False) -> dict[str, Any]:
    """Train one model; write ``task.json`` when the model is complete. Returns the outcome."""
    _set_threads(threads)
    outcome: dict[str, Any] = {"id": task.id, "kind": task.kind}
    try:
        with measure(device) as cost:
            method = _fitted(task, device, progress=progress)
        iterations = method.training_iterations
        if iterations:
            cost["iterations"] = int(iterations)
            cost["iterations_per_s"] = iterations / cost["wall_s"] if cost["wall_s"] else math.nan
        _write_record(task, "ok", cost)
        outcome.update(status="ok", cost=cost)
    except Exception as exc:  # a failure of its own: recorded, the run goes on
        log.error("%s failed: %s", task.id, _reason(exc))
        log.debug("%s", traceback.format_exc())
        outcome.update(status="failed", reason=_reason(exc))
    return outcome


def run_register(task: Task, training: dict[str, Any] | None = None, *, device: str | None,
                 threads: int | None = None) -> dict[str, Any]:
    """Register, warp and score one pair; write the pair folder, ``result.json`` last.

    ``training`` is the outcome of the task's training when it ran in this run (on Dask, the
    dependency that makes this task wait for it). A method's failure on the pair
    (:class:`BenchError`, e.g. ``RegistrationFailed``) is a result (NaN rows with the reason,
    ``result.json`` written); any other failure gives a ``failed`` outcome without a record, so
    that the next run tries again.
    """
    from benchmark.runner.scoring import failure_rows, score_pair, warp_pair
    from methods.base import check_result

    _set_threads(threads)
    spec = task.spec
    keys = task.pair_keys
    outcome: dict[str, Any] = {"id": task.id, "kind": task.kind, "keys": keys, "seed": task.seed}
    if training is not None and training.get("status") != "ok":
        return {**outcome, "status": "failed", "reason": f"training failed: {training.get('reason')}"}
    try:
        with measure(device) as cost:
            method = _fitted(task, device)
            pair = spec.load(fold=task.fold)
            folder = task.record.parent
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = method.register(pair)
                check_result(result, pair, method=task.method)
            except BenchError as exc:  # RegistrationFailed included: the method's own result
                method_log = getattr(exc, "log", None)
                log.warning("%s failed on %s: %s", task.method, pair.key, exc)
                rows, status = failure_rows(task.labels, str(exc), pair=pair), "failed"
            else:
                method_log = result.log
                warped, warped_labels = warp_pair(pair, result.displacement)
                write_displacement(folder / DISPLACEMENT_FILE, result.displacement, pair.fixed.affine)
                write_image(folder / "warped.nii.gz", warped, pair.fixed.affine)
                if warped_labels is not None:
                    write_image(folder / "warped_labels.nii.gz", warped_labels, pair.fixed.affine)
                rows = score_pair(
                    pair, result.displacement, labels=task.labels, runtime_s=result.runtime_s,
                    warped=warped, warped_labels=warped_labels,
                )
                status = "ok"
            if method_log:
                write_text(folder / "method.log", method_log)
    except Exception as exc:  # bad input, a crash: recorded as failed, not cached
        log.error("%s failed: %s", task.id, _reason(exc))
        log.debug("%s", traceback.format_exc())
        return {**outcome, "status": "failed", "reason": _reason(exc)}
    rows = [{**keys, **_json_row(r), "seed": task.seed} for r in rows]
    _write_record(task, status, cost, **keys, seed=task.seed, rows=rows)
    return {**outcome, "status": status, "cost": cost}


def _json_row(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
