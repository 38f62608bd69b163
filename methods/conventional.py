"""What the adapters of conventional registration tools that take ITK-style images (``ants-syn``,
``greedy``, ``elastix``) share: checking an optional package, validating common settings,
preparing the normalised images and mask, keeping a C++ tool's console output out of the
terminal, and reading an ITK tool's failure reason from its log.

Geometry and field conversion are those of the elastix adapter
(:mod:`methods.elastix.conversion`): the tools get images with spacing, origin and direction in
LPS, and return physical (LPS, mm) displacement vectors on the fixed grid, fixed -> moving, which
:func:`~methods.elastix.conversion.physical_to_array_mm` turns into the project's convention.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.core.checks import check_bool, check_int
from benchmark.core.errors import BenchError
from benchmark.core.normalize import percentile_normalize
from benchmark.core.pairs import RegistrationPair
from methods.base import RegistrationFailed

__all__ = [
    "optional_module",
    "check_levels",
    "check_tool_settings",
    "PreparedPair",
    "prepare_pair",
    "captured_output",
    "smoothing_mm",
    "error_reason",
]


def optional_module(module: str, pip_name: str, extra: str) -> tuple[bool, str]:
    """``(True, "")`` when ``module`` imports, else ``(False, "not installed: pip install ...")``."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return False, (
            f"not installed: pip install {pip_name} (or pip install 'mirbench[{extra}]') ({exc})"
        )
    return True, ""


def check_tool_settings(method: str, *, threads, use_mask, seed) -> dict:
    """The settings every adapter of a conventional tool takes, checked: ``threads`` (an int
    >= 1, or None for the tool's default), ``use_mask`` (bool) and ``seed`` (an int >= 0)."""
    return {
        "threads": check_int(f"{method} threads", threads, minimum=1, allow_none=True),
        "use_mask": check_bool(f"{method} use_mask", use_mask),
        "seed": check_int(f"{method} seed", seed, minimum=0),
    }


def check_levels(method: str, setting: str, value, *, minimum: int = 0) -> list[int] | None:
    """Iterations per resolution level (coarse to fine) as a list of ints, or None."""
    if value is None:
        return None
    values = [value] if np.isscalar(value) else list(value)
    if not values or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum
        for v in values
    ):
        raise BenchError(
            f"{method} {setting} must be a list of integers >= {minimum} (one per resolution "
            f"level, coarse to fine), got {value!r}"
        )
    return [int(v) for v in values]


@dataclass(frozen=True)
class PreparedPair:
    """Normalised float32 images in ``(i, j[, k])`` order and the mask used (or None)."""

    fixed: np.ndarray
    moving: np.ndarray
    mask: np.ndarray | None


def prepare_pair(pair: RegistrationPair, *, use_mask: bool, method: str) -> PreparedPair:
    """Percentile-normalise both images to ``[0, 1)`` (inside the fixed mask when used), as the
    elastix adapter and the networks do. RegistrationFailed for an empty mask."""
    mask = pair.mask if (use_mask and pair.mask is not None) else None
    if mask is not None and not mask.any():
        raise RegistrationFailed(f"{method}, pair {pair.key}: the fixed mask is empty")
    return PreparedPair(
        percentile_normalize(pair.fixed.array, mask=mask).astype(np.float32),
        percentile_normalize(pair.moving.array, mask=mask).astype(np.float32),
        None if mask is None else mask.astype(np.uint8),
    )


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Send everything written to the process's stdout and stderr (file descriptors 1 and 2,
    so C++ ``std::cout`` too) to a temporary file while the block runs; the text is appended to
    the yielded list when the block ends, even on error."""
    box: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield box
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            box.append(sink.read().decode(errors="replace"))


def error_reason(exc: Exception, log_text: str | None) -> str:
    """An ITK-based tool's own description of a failure, on one line.

    elastix and ANTs log ITK exceptions as ``Description: ITK ERROR: Component(0x...): message``
    (elastix adds indented continuation lines); without one, the last log or exception line that
    mentions an error, else the exception itself.
    """
    lines = f"{log_text or ''}\n{exc}".splitlines()
    for n, line in enumerate(lines):
        if line.strip().startswith("Description:"):
            parts = [line.split("Description:", 1)[1].strip()]
            for cont in lines[n + 1 :]:
                if not cont.strip():
                    break
                parts.append(cont.strip())
            text = " ".join(parts)
            return re.sub(r"^(ITK ERROR: )?\w+\(0x[0-9a-fA-F]+\): (ERROR: )?", "", text)
    for line in reversed(lines):
        if "error" in line.lower() and line.strip():
            return line.strip()
    return f"{type(exc).__name__}: {exc}".strip()


def smoothing_mm(sigmas_vox: Sequence[float], spacing: Sequence[float]) -> list[float]:
    """Smoothing sigmas given in voxels of the finest axis, in mm (so that a thick-slice axis is
    smoothed by the same physical amount, i.e. less in its own voxels)."""
    finest = float(min(spacing))
    return [float(s) * finest for s in sigmas_vox]
