"""How the project writes numbers: P values in text tables, non-finite floats in JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_p(p: float | None) -> str:
    """A P value as text: ``0.032``, ``<0.001``, or ``n/a`` when missing or not finite.

    Examples
    --------
    >>> format_p(0.0321), format_p(2e-5), format_p(float("nan")), format_p(None)
    ('0.032', '<0.001', 'n/a', 'n/a')
    """
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def json_value(value: Any) -> Any:
    """``value`` ready for :func:`json.dumps`: a NaN or infinite float becomes ``None`` (JSON
    ``null``), NumPy scalars become Python numbers, anything else is returned unchanged.

    Examples
    --------
    >>> json_value(float("nan")), json_value(np.float32(0.5)), json_value(np.int64(3)), json_value("a")
    (None, 0.5, 3, 'a')
    """
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
