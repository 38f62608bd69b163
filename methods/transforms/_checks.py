"""Private argument checks shared by the transform modules (shapes, spacing, option values)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from benchmark.core.errors import BenchError

SUPPORTED_NDIM = (2, 3)


def check_tensor(name: str, value: object, *, floating: bool = True) -> torch.Tensor:
    """Raise unless ``value`` is a torch tensor (a floating one when ``floating``)."""
    if not isinstance(value, torch.Tensor):
        raise BenchError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise BenchError(
            f"{name} must have a floating dtype (float32 or float64), got {value.dtype}"
        )
    return value


def spatial_ndim(name: str, tensor: torch.Tensor) -> int:
    """Number of spatial axes of an ``(N, C, *spatial)`` tensor; only 2D and 3D are supported."""
    ndim = tensor.dim() - 2
    if ndim not in SUPPORTED_NDIM:
        raise BenchError(
            f"{name} must have shape (N, C, I, J) or (N, C, I, J, K), got {tuple(tensor.shape)}"
        )
    return ndim


def check_spacing(
    spacing: Sequence[float] | None, ndim: int, *, name: str = "spacing"
) -> tuple[float, ...]:
    """Validate ``spacing`` (mm per voxel along the array axes); ``None`` means 1 mm (voxel units).

    ``name`` is the argument's name in error messages."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().tolist()
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError) as exc:
        raise BenchError(
            f"{name}={spacing!r} must be a sequence of {ndim} positive floats"
        ) from exc
    if len(values) != ndim or not all(v > 0 and v < float("inf") for v in values):
        raise BenchError(f"{name}={spacing!r} must be {ndim} positive finite floats (mm per voxel)")
    return values


def check_int_tuple(
    name: str, value: Sequence[int], ndim: int | None = None, *, minimum: int = 1
) -> tuple[int, ...]:
    """Validate a tuple of integers ``>= minimum`` (of length ``ndim`` when given)."""
    try:
        items = tuple(value)
    except TypeError as exc:
        raise BenchError(f"{name}={value!r} must be a sequence of integers") from exc
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
        raise BenchError(f"{name}={value!r} must contain integers")
    items = tuple(int(v) for v in items)
    if ndim is not None and len(items) != ndim:
        raise BenchError(f"{name}={value!r} must have {ndim} entries, got {len(items)}")
    if not items or any(v < minimum for v in items):
        raise BenchError(f"{name}={value!r} must contain integers >= {minimum}")
    return items
