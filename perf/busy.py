"""Machine helpers of the benchmark scripts: a CPU-burning process (``--busy``), load, CPU name.

``--busy`` of ``perf/nmi_loss.py`` and ``perf/training_step.py`` keeps one core busy so
that the condition of a shared machine is reproducible; the load average printed beside each
measurement shows how busy the machine was besides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("perf.busy")


def cpu_name() -> str:
    """CPU model from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def load_average() -> str:
    """The 1-minute load average as text (``n/a`` where the platform has none)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "n/a"


@contextlib.contextmanager
def busy_core(enabled: bool = True) -> Iterator[int | None]:
    """Keep one core busy with a spinning Python process while the block runs.

    The process is pinned to the last core this process may use (Linux; elsewhere it is left to
    the scheduler) and stopped when the block ends, also on error. Yields the core, or None when
    ``enabled`` is false or the core could not be chosen.
    """
    if not enabled:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    core = None
    try:
        if hasattr(os, "sched_getaffinity"):
            core = max(os.sched_getaffinity(0))
            os.sched_setaffinity(proc.pid, {core})
        log.info("busy: process %d spins on core %s", proc.pid, core)
        yield core
    finally:
        proc.terminate()
        proc.wait(timeout=10)
