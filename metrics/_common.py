"""Shared pieces of the metrics: the result type, the status strings and input validation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from benchmark.core.errors import BenchError

#: The metric is defined and ``value`` holds it.
STATUS_OK = "ok"
#: The label (or mask) is empty in the fixed / reference image (first argument).
STATUS_ABSENT_FIXED = "label-absent-fixed"
#: The label (or mask) is empty in the warped moving image (second argument).
STATUS_ABSENT_MOVING = "label-absent-moving"
#: The label (or mask) is empty in both images.
STATUS_ABSENT_BOTH = "label-absent-both"
#: Both images put every (masked) voxel into a single histogram bin: NMI is 0/0.
STATUS_CONSTANT_IMAGE = "constant-image"
#: The evaluation ``mask`` selects no voxel.
STATUS_EMPTY_MASK = "empty-mask"
#: The dataset provides no ground-truth displacement for this pair.
STATUS_NO_GROUND_TRUTH = "no-ground-truth"
#: The structure is in the fixed and the moving labels but the method warped it away entirely:
#: Dice 0 (a real failure, kept in summaries and tests), distances NaN (no surface to measure).
STATUS_LOST = "label-lost"
#: No foreground to evaluate in: no mask and no fixed labels (see ``scoring.foreground_mask``).
STATUS_NO_FOREGROUND = "no-foreground"
#: The pair has no landmarks (or none with an id in both files).
STATUS_NO_LANDMARKS = "no-landmarks"

NAN = math.nan


class MetricValue(NamedTuple):
    """One metric value with its status and unit, as one row of ``results.csv`` needs it.

    Attributes
    ----------
    value : float
        The metric, or NaN when it is undefined (then ``status`` says why).
    status : str
        ``"ok"`` or one of the ``STATUS_*`` strings of :mod:`metrics._common`.
    unit : str
        ``"1"`` (unitless), ``"mm"`` or ``"%"``, as in the ``unit`` column of the result tables.
    """

    value: float
    status: str = STATUS_OK
    unit: str = "1"

    @property
    def ok(self) -> bool:
        """True when the value is defined (``status == "ok"``)."""
        return self.status == STATUS_OK


def as_mask(array: object, *, label: int | None, name: str) -> np.ndarray:
    """Return a boolean mask from a boolean array, or from a label map and a label value.

    Parameters
    ----------
    array : array_like
        Boolean mask (``label=None``) or integer label map.
    label : int or None
        Label value selected from an integer label map; ``None`` requires a boolean array (a label
        map without a label would silently merge all structures, so it is refused).
    name : str
        Argument name used in error messages.
    """
    a = np.asarray(array)
    if label is None:
        if a.dtype != bool:
            raise BenchError(
                f"{name}: expected a boolean mask (or pass label=...), got dtype {a.dtype}"
            )
        return a
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise BenchError(f"{name}: label={label} needs an integer label map, got dtype {a.dtype}")
    return a == label


def check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    """Raise a BenchError naming both arguments and both shapes when the shapes differ."""
    if a.shape != b.shape:
        raise BenchError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; expected equal shapes"
        )


def check_spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    """Validate ``spacing`` (mm per voxel along the array axes) and return it as float64.

    ``None`` means 1 mm along every axis. Otherwise ``ndim`` positive finite numbers.
    """
    if spacing is None:
        return np.ones(ndim, dtype=np.float64)
    try:
        s = np.asarray(spacing, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"spacing: expected {ndim} positive numbers, got {spacing!r}") from exc
    if s.size != ndim or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise BenchError(
            f"spacing: expected {ndim} positive finite numbers (mm per voxel along the array axes), "
            f"got {spacing!r}"
        )
    return s


def check_field(disp: object, *, name: str) -> np.ndarray:
    """Validate a displacement field of shape ``(ndim, *spatial)`` (ndim 2 or 3, finite values)."""
    u = np.asarray(disp)
    if u.ndim not in (3, 4) or u.shape[0] != u.ndim - 1:
        raise BenchError(
            f"{name}: expected a displacement field of shape (ndim, *spatial) with ndim 2 or 3, "
            f"got shape {u.shape}"
        )
    if not np.issubdtype(u.dtype, np.floating) and not np.issubdtype(u.dtype, np.integer):
        raise BenchError(f"{name}: expected a numeric array, got dtype {u.dtype}")
    if not np.all(np.isfinite(u)):
        raise BenchError(f"{name}: the displacement field has NaN or infinite values")
    return u


def check_mask(mask: object, shape: tuple[int, ...], *, name: str = "mask") -> np.ndarray:
    """Validate an optional evaluation mask: boolean, with the given spatial shape."""
    m = np.asarray(mask)
    if m.dtype != bool:
        raise BenchError(f"{name}: expected a boolean array, got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise BenchError(
            f"{name} has shape {m.shape} but the data has spatial shape {tuple(shape)}"
        )
    return m


def absence_status(fixed_any: bool, moving_any: bool) -> str:
    """Status for a pair of masks given whether each is non-empty."""
    if not fixed_any and not moving_any:
        return STATUS_ABSENT_BOTH
    if not fixed_any:
        return STATUS_ABSENT_FIXED
    if not moving_any:
        return STATUS_ABSENT_MOVING
    return STATUS_OK
