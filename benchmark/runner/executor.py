"""Executors for registration jobs, behind the standard ``concurrent.futures.Executor`` interface.

The job logic only calls ``submit`` and reads futures, so a distributed engine with the same
interface (dask.distributed's ``Client.get_executor()``, ray's, ...) can be plugged in later through
:func:`make_executor` without touching the jobs.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from benchmark.core.errors import BenchError


class SerialExecutor(cf.Executor):
    """Runs each job at ``submit`` in the calling process (``--jobs 1``): simple tracebacks, no
    pickling, and the main process's trained models stay in memory."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like a pool would
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def make_executor(jobs: int) -> cf.Executor:
    """``jobs == 1``: :class:`SerialExecutor`; more: a process pool of ``jobs`` workers.

    Workers are started with ``spawn`` (safe with PyTorch and ITK threads) and share the cores:
    each uses ``cpu_count // jobs`` torch threads.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"--jobs must be a positive integer, got {jobs!r}")
    if jobs == 1:
        return SerialExecutor()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(threads,),
    )
