"""Private building blocks shared by the registration networks.

Argument validation (spatial dimension, per-axis factors, feature widths), the input check of
``forward(fixed, moving)``, padding of the input to a multiple of the network's total
downsampling and cropping back, convolution factories and seeded weight initialisation.
Nothing here is part of the public API; import ``methods.networks`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

from benchmark.core.checks import check_int
from benchmark.core.errors import BenchError

#: Negative slope of the LeakyReLU activations of both networks (VoxelMorph's 0.2).
LEAKY_SLOPE = 0.2

#: Allowed values of the ``pad_mode`` option of both networks.
PAD_MODES = ("replicate", "zeros")


def check_ndim(ndim: object) -> int:
    """Return ``ndim`` as int; raise BenchError unless it is 2 or 3."""
    if isinstance(ndim, bool) or not isinstance(ndim, Integral) or int(ndim) not in (2, 3):
        raise BenchError(f"ndim must be 2 or 3, got {ndim!r}")
    return int(ndim)


def axis_tuple(value: object, ndim: int, *, name: str) -> tuple[int, ...]:
    """Per-axis positive integers from an int (same for every axis) or a length-``ndim`` sequence.

    Raises BenchError naming ``name`` when an entry is not a positive integer (``0``, ``2.5``,
    ``"2"``, ``True``) or the length is not ``ndim``.
    """
    value = _as_python(value)
    if isinstance(value, Integral) and not isinstance(value, bool):
        return (check_int(name, value, minimum=1),) * ndim
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise BenchError(
            f"{name} must be a positive integer or a sequence of {ndim} positive integers, "
            f"got {value!r}"
        )
    if len(value) != ndim:
        raise BenchError(f"{name} must have {ndim} entries (one per axis), got {value!r}")
    return tuple(check_int(f"{name}[{a}]", v, minimum=1) for a, v in enumerate(value))


def level_factors(factors: object, ndim: int, levels: int) -> tuple[tuple[int, ...], ...]:
    """Down/upsampling factor per level and axis.

    Parameters
    ----------
    factors : int, sequence of ndim ints, or sequence of ``levels`` such sequences
        ``2`` or ``(2, 2, 1)`` apply to every level; ``((2, 2, 1), (2, 2, 2), ...)`` gives one
        per-axis factor per level.
    ndim : int
        Number of spatial axes.
    levels : int
        Number of resolution levels (the length of the encoder).

    Returns
    -------
    tuple of ``levels`` tuples of ``ndim`` positive ints
    """
    factors = _as_python(factors)
    is_nested = (
        isinstance(factors, Sequence)
        and not isinstance(factors, (str, bytes))
        and len(factors) > 0
        and all(isinstance(f, Sequence) and not isinstance(f, (str, bytes)) for f in factors)
    )
    if not is_nested:
        per_axis = axis_tuple(factors, ndim, name="factors")
        return (per_axis,) * levels
    if len(factors) != levels:
        raise BenchError(
            f"factors has {len(factors)} per-level entries but the network has {levels} levels "
            f"(one per encoder width); got {factors!r}"
        )
    return tuple(axis_tuple(f, ndim, name=f"factors[{lvl}]") for lvl, f in enumerate(factors))


def _as_python(value: object) -> object:
    """NumPy arrays and tensors become (nested) lists; other values are returned unchanged."""
    if isinstance(value, (np.ndarray, Tensor)):
        return value.tolist()
    return value


def check_widths(value: object, *, name: str, min_len: int = 1) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (channel counts) of length at least ``min_len``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise BenchError(f"{name} must be a sequence of positive integers, got {value!r}")
    if len(value) < min_len:
        raise BenchError(f"{name} needs at least {min_len} entries, got {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))


def check_pair(fixed: Tensor, moving: Tensor, *, ndim: int, in_channels: int) -> None:
    """Check the ``forward(fixed, moving)`` inputs of a network; raise BenchError otherwise.

    Both must be tensors ``(N, C, *spatial)`` with ``ndim`` spatial axes, the same ``N`` and the
    same spatial shape, the same floating dtype, and ``C_fixed + C_moving == in_channels``. The
    message prints both shapes.
    """
    for arg, t in (("fixed", fixed), ("moving", moving)):
        if not isinstance(t, Tensor):
            raise BenchError(f"{arg} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != ndim + 2:
            raise BenchError(
                f"{arg} must have shape (N, C, {', '.join('IJK'[:ndim])}) for a {ndim}D network, "
                f"got fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)}"
            )
        if not t.is_floating_point():
            raise BenchError(f"{arg} must be a floating point tensor, got dtype {t.dtype}")
    if fixed.shape[0] != moving.shape[0] or fixed.shape[2:] != moving.shape[2:]:
        raise BenchError(
            "fixed and moving must have the same batch size and spatial shape, got fixed "
            f"{tuple(fixed.shape)} and moving {tuple(moving.shape)}"
        )
    if fixed.dtype != moving.dtype:
        raise BenchError(f"fixed and moving dtypes differ: {fixed.dtype} and {moving.dtype}")
    if fixed.shape[1] + moving.shape[1] != in_channels:
        raise BenchError(
            f"the network takes in_channels={in_channels} (fixed and moving channels together), "
            f"got fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)}"
        )


def pad_to_multiple(
    x: Tensor, multiple: Sequence[int], *, mode: str
) -> tuple[Tensor, tuple[tuple[int, int], ...]]:
    """Pad the spatial axes of ``x`` (N, C, *spatial) up to a multiple of ``multiple`` per axis.

    The padding is split evenly, the odd voxel going after (``before = total // 2``), so the
    image stays centred. ``mode="replicate"`` repeats the border voxel (like ``padding="border"``
    of the warp), ``mode="zeros"`` pads with 0.

    Returns
    -------
    padded : Tensor (N, C, *padded_spatial)
    pads : tuple of (before, after) per spatial axis, for :func:`crop`.
    """
    spatial = x.shape[2:]
    pads = tuple(
        ((-n % m) // 2, (-n % m) - (-n % m) // 2) for n, m in zip(spatial, multiple, strict=True)
    )
    if not any(b or a for b, a in pads):
        return x, pads
    # F.pad lists the last axis first.
    flat = [p for b, a in reversed(pads) for p in (b, a)]
    if mode == "replicate":
        return F.pad(x, flat, mode="replicate"), pads
    return F.pad(x, flat, mode="constant", value=0.0), pads


def crop(x: Tensor, pads: Sequence[tuple[int, int]]) -> Tensor:
    """Undo :func:`pad_to_multiple` on the spatial axes of ``x`` (N, C, *spatial)."""
    index = [slice(None), slice(None)]
    index += [slice(b, n - a) for (b, a), n in zip(pads, x.shape[2:], strict=True)]
    return x[tuple(index)]


def conv(
    ndim: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    stride: Sequence[int] | int = 1,
    bias: bool = True,
) -> nn.Module:
    """``nn.Conv2d``/``nn.Conv3d`` with 'same' zero padding (``kernel_size // 2``).

    The weights are left uninitialised (``torch.nn.utils.skip_init``, no draw from the global RNG):
    the networks initialise every parameter with :func:`init_parameters` / :func:`init_head`.
    """
    cls = nn.Conv3d if ndim == 3 else nn.Conv2d
    return skip_init(
        cls,
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=bias,
    )


def init_parameters(
    module: nn.Module, *, negative_slope: float, generator: torch.Generator | None
) -> None:
    """(Re-)initialise convolutions and norms of ``module`` in place, reproducibly.

    Convolutions get He (Kaiming) uniform weights for a leaky ReLU of ``negative_slope``
    (``U(-b, b)``, ``b = sqrt(6 / ((1 + slope^2) fan_in))``; 0 for ReLU/ELU) and zero biases,
    drawn from ``generator`` (the global torch RNG when None) so that a seed gives the same
    network regardless of the global state. Batch-norm layers get weight 1, bias 0. Output heads
    are initialised separately by the networks (:func:`init_head`).

    Why not PyTorch's default (``U(+-1/sqrt(fan_in))`` for weights *and* biases): it shrinks the
    variance by about 6x per convolution + activation and adds a random constant per channel, so
    after the ~10 layers of these networks the features no longer depend on the images (measured
    at initialisation: PoolNet's image-dependent part falls 3000x below its constant part), and a
    network first learns a constant field. The networks of the paper (Lasagne, Keras) start with
    zero biases and Glorot weights; He weights keep the variance through the activations.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_uniform_(
                    m.weight, a=negative_slope, nonlinearity="leaky_relu", generator=generator
                )
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def init_head(head: nn.Module, *, std: float, generator: torch.Generator | None) -> None:
    """Output convolution: weight ~ Normal(0, ``std``), bias 0, so the initial output is ~0."""
    with torch.no_grad():
        head.weight.normal_(0.0, std, generator=generator)
        if head.bias is not None:
            head.bias.zero_()


def make_generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator seeded with ``seed``, or None (use the global RNG) when ``seed`` is None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise BenchError(f"seed must be a non-negative integer or None, got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(int(seed))
