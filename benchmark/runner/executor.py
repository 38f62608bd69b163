"""Where the plan's tasks run: in-process one after another (``--jobs 1``), or on
``dask.distributed`` (a ``LocalCluster`` of ``--jobs`` worker processes, or an existing cluster
at ``--scheduler ADDRESS`` / ``DASK_SCHEDULER_ADDRESS``).

On Dask every task is one future: trainings run in parallel with one another, and a
registration that needs a model takes its training's future as an argument, so it starts as soon
as that model exists. The main process holds no model. A training on CUDA asks for the worker
resource ``GPU=1`` (start GPU workers with ``--resources GPU=1``). A task whose worker dies is
retried by Dask (:data:`RETRIES` times); its partial output never counts, because a task's
record is written last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from benchmark.runner.plan import TRAIN, Task
from benchmark.runner.tasks import run_register, run_train

log = logging.getLogger(__name__)

#: How many times Dask reruns a task whose worker died.
RETRIES = 2
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


#: Dask's setting of the environment a worker process starts with.
PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"
#: Left out of that environment: Dask sets ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off
#: glibc's adaptive mmap threshold, so every large tensor torch frees goes back to the kernel and
#: is faulted in again at the next step. Measured on a 2-core machine, demo-acdc quick trainings
#: in two workers: half the CPU time in the kernel and steps about 1.8x slower than with glibc's
#: defaults (perf/README.md).
NOT_FOR_WORKERS = ("MALLOC_TRIM_THRESHOLD_",)


def worker_environ() -> dict[str, Any]:
    """Dask's pre-spawn environment for local workers, without :data:`NOT_FOR_WORKERS`."""
    import dask
    import distributed  # noqa: F401  (loads its configuration defaults)

    environ = dict(dask.config.get(PRE_SPAWN_ENVIRON, default={}) or {})
    return {k: v for k, v in environ.items() if k not in NOT_FOR_WORKERS}


def local_cluster(jobs: int, *, cuda: bool = False):
    """A ``LocalCluster`` of ``jobs`` single-threaded worker processes, started with
    :func:`worker_environ` (one ``GPU`` resource each when ``cuda``)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({PRE_SPAWN_ENVIRON: worker_environ()}):
        return LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
            resources={"GPU": 1} if cuda else None, silence_logs=logging.WARNING,
        )


def worker_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` local workers: the machine's cores shared evenly."""
    return max(1, (os.cpu_count() or 1) // jobs)


def scheduler_address(scheduler: str | None) -> str | None:
    """``--scheduler``, else ``DASK_SCHEDULER_ADDRESS``, else None (no existing cluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def run_serial(
    tasks: Sequence[Task], *, device: str | None, progress: bool, done: Callable[[dict], None]
) -> None:
    """Every task in the calling process, trainings before the registrations that need them."""
    trained: dict[str, dict] = {}
    for task in sorted(tasks, key=lambda t: t.kind != TRAIN):
        if task.kind == TRAIN:
            outcome = trained[task.id] = run_train(task, device=device, progress=progress)
        else:
            outcome = run_register(task, trained.get(task.depends or ""), device=device)
        done(outcome)


def _uses_cuda(device: str | None) -> bool:
    if device is not None:
        return str(device).startswith("cuda")
    import torch

    return torch.cuda.is_available()


def run_dask(
    tasks: Sequence[Task],
    *,
    jobs: int,
    scheduler: str | None,
    device: str | None,
    done: Callable[[dict], None],
) -> None:
    """Every task on a Dask cluster: an existing one at ``scheduler``, else a ``LocalCluster`` of
    ``jobs`` single-threaded worker processes (closed, with its workers, on return)."""
    from distributed import Client, as_completed

    cuda = _uses_cuda(device)
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
        threads = None
    else:
        cluster = local_cluster(jobs, cuda=cuda)
        client = Client(cluster)
        threads = worker_threads(jobs)
    try:
        gpu = {"GPU": 1} if cuda else None
        futures = {}
        trains = {}
        for task in tasks:
            if task.kind == TRAIN:
                trains[task.id] = fut = client.submit(
                    run_train, task, device=device, threads=threads, key=f"{task.id} {task.key}",
                    resources=gpu, retries=RETRIES, pure=False,
                )
                futures[fut] = task
        for task in tasks:
            if task.kind != TRAIN:
                fut = client.submit(
                    run_register, task, trains.get(task.depends or ""), device=device,
                    threads=threads, key=f"{task.id} {task.key}", retries=RETRIES,
                    pure=False,
                )
                futures[fut] = task
        for fut in as_completed(list(futures)):
            task = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # the worker died more often than RETRIES
                outcome = {"id": task.id, "kind": task.kind, "status": "failed",
                           "reason": f"{type(exc).__name__}: {exc}"}
                if task.kind != TRAIN:
                    outcome.update(keys=task.pair_keys, seed=task.seed)
            done(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
