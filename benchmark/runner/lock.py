"""One ``bench run`` per run folder: an exclusive lock on ``RUN_DIR/.lock``.

The lock is an ``flock`` on the file, so the operating system releases it when the process ends,
however it ends (no stale lock after a crash or ``kill -9``). The file names the process holding
it (pid, host, start time, command), which a second run quotes when it refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence

from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout


@contextlib.contextmanager
def run_lock(layout: RunLayout, *, command: Sequence[str] | None = None) -> Iterator[None]:
    """Hold the run folder's lock for the block.

    Raises
    ------
    BenchError
        When another process holds it, naming that process and the folder.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    handle = open(layout.lock, "a+", encoding="utf-8")  # noqa: SIM115 (held for the block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            raise BenchError(
                f"{layout.root} is in use by another bench run ({holder}); wait for it to "
                "finish or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(_holder(command))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def _holder(command: Sequence[str] | None) -> str:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(command if command is not None else sys.argv),
    }
    return ", ".join(f"{k} {v}" for k, v in info.items()) + "\n"
