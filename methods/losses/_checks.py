"""Private argument checks shared by the loss modules (image pairs, masks, reductions)."""

from __future__ import annotations

import torch

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError

#: Reductions accepted by every loss.
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: object) -> str:
    """``reduction`` when it is one of :data:`REDUCTIONS` (:func:`benchmark.core.checks.check_choice`)."""
    return check_choice("reduction", reduction, REDUCTIONS)


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` to per-batch-element values of shape ``(N,)``."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Raise unless ``value`` is a floating torch tensor."""
    if not isinstance(value, torch.Tensor):
        raise BenchError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise BenchError(
            f"{name} must have a floating dtype (float32 or float64), got {value.dtype}"
        )
    return value


def check_pair(a: object, b: object, *, single_channel: bool = True) -> int:
    """Validate two images ``(N, C, *spatial)`` of equal shape (``C == 1`` when ``single_channel``).

    Returns the number of spatial axes (2 or 3).
    """
    a = check_tensor("a", a)
    b = check_tensor("b", b)
    if a.dim() not in (4, 5):
        raise BenchError(f"a must have shape (N, C, I, J) or (N, C, I, J, K), got {tuple(a.shape)}")
    if a.shape != b.shape:
        raise BenchError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if single_channel and a.shape[1] != 1:
        raise BenchError(f"a and b must have one channel (N, 1, *spatial), got {tuple(a.shape)}")
    if a.device != b.device:
        raise BenchError(f"a and b must be on the same device, got {a.device} and {b.device}")
    if a.numel() == 0:
        raise BenchError(f"a and b must not be empty, got shape {tuple(a.shape)}")
    return a.dim() - 2


def prepare_mask(mask: object, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """Broadcast ``mask`` (bool or float weights) to ``like``'s shape ``(N, 1, *spatial)``.

    Returns ``None`` when ``mask`` is None, else a detached tensor of ``dtype`` on ``like``'s device.
    Negative or non-finite weights raise a BenchError.
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise BenchError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    try:
        out = torch.broadcast_to(mask.to(device=like.device), like.shape)
    except RuntimeError as exc:
        raise BenchError(
            f"mask of shape {tuple(mask.shape)} cannot be broadcast to the image shape {tuple(like.shape)}"
        ) from exc
    out = out.detach().to(dtype)
    if not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
        raise BenchError("mask must contain finite, non-negative weights (bool or float)")
    return out
