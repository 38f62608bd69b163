"""Checks of option and setting values, shared by every adapter, statistic and command.

Each check returns the value (converted where that is safe: a whole float from YAML to an int)
or raises :class:`~benchmark.core.errors.BenchError` with one spelling: the option's name as the
caller writes it (``--alpha``, ``greedy metric``, ``presets.quick.iterations``), what was
expected (the allowed values listed, or the range), and the value given.

Examples
--------
>>> check_choice("--format", "l2r", ("l2r", "mirbench"))
'l2r'
>>> check_choice("--format", "csv", ("l2r", "mirbench"))
Traceback (most recent call last):
...
benchmark.core.errors.BenchError: --format must be one of 'l2r', 'mirbench'; got 'csv'
>>> check_int("--bootstrap", -5, minimum=0)
Traceback (most recent call last):
...
benchmark.core.errors.BenchError: --bootstrap must be an integer >= 0; got -5
>>> check_number("--alpha", 0.05, minimum=0, maximum=1, open_minimum=True)
0.05
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import Any

from benchmark.core.errors import BenchError

__all__ = ["check_choice", "check_int", "check_number", "check_bool"]


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> Any:
    """``value`` when it is one of ``allowed`` (a tuple of names, the keys of a dict), else a
    BenchError listing them."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value looked up in a dict or set
        ok = False
    if not ok:
        shown = ", ".join(repr(a) for a in allowed) or "(none)"
        raise BenchError(f"{name} must be one of {shown}; got {value!r}")
    return value


def _range(
    minimum: float | None, maximum: float | None, open_minimum: bool = False,
    open_maximum: bool = False,
) -> str:
    low = None if minimum is None else (">" if open_minimum else ">=") + f" {minimum}"
    high = None if maximum is None else ("<" if open_maximum else "<=") + f" {maximum}"
    return " and ".join(p for p in (low, high) if p)


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound optional).

    Booleans (``true`` is not a count) and floats (``2.0``: convert a whole float where the
    source may give one, as YAML does) are refused. ``None`` passes through when ``allow_none``.
    """
    if value is None and allow_none:
        return None
    number = value
    bounds = _range(minimum, maximum)
    if (
        isinstance(number, bool)
        or not isinstance(number, Integral)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        expected = "an integer" + (f" {bounds}" if bounds else "")
        if allow_none:
            expected += " (or null)"
        raise BenchError(f"{name} must be {expected}; got {value!r}")
    return int(number)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds (each excluded with ``open_minimum`` /
    ``open_maximum``); booleans and NaN are refused."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if open_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if open_maximum else value <= maximum
    if not ok:
        bounds = _range(minimum, maximum, open_minimum, open_maximum)
        raise BenchError(f"{name} must be a finite number{' ' + bounds if bounds else ''}; "
                         f"got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise BenchError(f"{name} must be true or false; got {value!r}")
    return value
