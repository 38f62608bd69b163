"""U-Net predicting a dense displacement field: the VoxelMorph design (Balakrishnan et al. 2019).

The paper (de Vos et al. 2020, section 2) uses "the design of" VoxelMorph for direct prediction of
the displacement vector field. :class:`UNet` follows the VoxelMorph paper (IEEE TMI 2019, fig. 3):

- input: fixed and moving concatenated along channels, ``(N, 2, *spatial)``;
- encoder: one 3x3(x3) convolution + LeakyReLU(0.2) per level, strided by that level's
  per-axis factor (VoxelMorph uses stride 2; ``(2, 2, 1)`` keeps the through-plane resolution
  for the anisotropic cardiac data of the paper);
- decoder: per level one 3x3(x3) convolution + LeakyReLU(0.2), nearest-neighbour upsampling by
  the same per-axis factor and concatenation with the encoder features of that resolution (the
  input images at full resolution), then further full-resolution convolutions;
- head: a 3x3(x3) convolution to ``ndim`` channels initialised with Normal(0, 1e-5) weights and
  zero bias, so a fresh network predicts a field of ~0.
- ``output_level`` (default 0, full resolution as in the VoxelMorph paper): the decoder may stop
  at a coarser level and the field is upsampled linearly to the input grid, as VoxelMorph's later
  releases do (``int_downsize=2``). A field on a coarser grid has fewer degrees of freedom and is
  smooth by construction; the full-resolution convolutions, the costliest, are not needed.

The output is the displacement on the fixed grid, fixed -> moving (``warped(x) = moving(x +
u(x))``), in **voxels** along the array axes. The registration adapter converts it to the
project's millimetres: ``u_mm[:, c] = u_vox[:, c] * spacing[c]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core.checks import check_choice, check_int
from benchmark.core.errors import BenchError
from methods.networks.blocks import (
    LEAKY_SLOPE,
    PAD_MODES,
    check_ndim,
    check_pair,
    check_widths,
    conv,
    crop,
    init_head,
    init_parameters,
    level_factors,
    make_generator,
    pad_to_multiple,
)

#: VoxelMorph widths (TMI 2019): encoder (16, 32, 32, 32); decoder one width per level
#: (32, 32, 32, 32) then full-resolution convolutions (16, 16). VoxelMorph-2 lists
#: (32, 32, 32, 32, 32, 16, 16) with its fifth convolution at half resolution; in this layout every
#: extra decoder convolution is at full resolution, so pass (32, 32, 32, 32, 32, 16, 16) for the
#: VoxelMorph-2 depth (one more full-resolution convolution).
DEFAULT_FEATURES: tuple[tuple[int, ...], tuple[int, ...]] = (
    (16, 32, 32, 32),
    (32, 32, 32, 32, 16, 16),
)

#: Standard deviation of the head's initial weights (VoxelMorph's flow layer).
HEAD_INIT_STD = 1e-5


class UNet(nn.Module):
    """VoxelMorph-style U-Net: (fixed, moving) -> dense displacement in voxels.

    Parameters
    ----------
    ndim : {2, 3}
        Number of spatial axes. Default 3.
    factors : int, sequence of ndim ints, or sequence of one such sequence per level
        Down- and upsampling factor per axis. ``2`` (default: every axis, every level) or
        ``(2, 2, 2)`` is VoxelMorph; ``(2, 2, 1)`` never downsamples the third axis (paper,
        cardiac MRI); a per-level list such
        as ``((2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2))`` must have one entry per encoder width.
        Every factor is a positive integer; 1 keeps the axis. The encoder convolutions have
        kernel 3, so factors above 3 skip voxels (allowed, rarely useful).
    features : (encoder, decoder) pair of int sequences
        Channel widths. ``encoder`` has one width per level (its length sets the number of levels,
        default 4); ``decoder`` has at least ``len(encoder)`` widths: the first ``len(encoder)``
        are the per-level convolutions (each followed by upsampling and skip concatenation, from
        the coarsest level up), the rest are extra convolutions at full resolution. Default
        ``((16, 32, 32, 32), (32, 32, 32, 32, 16, 16))``. Halve them for quick CPU runs.
    in_channels : int
        Channels of fixed and moving together. Default 2 (one each).
    output_level : int, default 0
        Resolution level of the predicted field: 0 is the input grid (the VoxelMorph paper);
        ``L`` in ``1 .. len(encoder) - 1`` stops the decoder after upsampling to the grid of
        encoder level ``L`` (the per-level convolutions of the ``L`` finest levels are not built,
        their widths are ignored; the extra convolutions run at that level) and upsamples the
        field (voxels of the input grid) linearly to the input grid.
    pad_mode : {"replicate", "zeros"}
        How the input is padded up to a multiple of the total downsampling per axis
        (the product of the factors over levels) before the network; the output is cropped back,
        so any input size works (odd sizes, whole volumes after patch training). The padding is
        split evenly before/after each axis. Default "replicate" (repeats the border voxel,
        consistent with the border padding of the warp).
    seed : int, optional
        Seed of the weight initialisation (a private ``torch.Generator``); None uses the global
        torch RNG.

    Notes
    -----
    ``forward(fixed, moving)`` takes ``(N, C_f, *spatial)`` and ``(N, C_m, *spatial)`` with
    ``C_f + C_m == in_channels`` and returns ``(N, ndim, *spatial)``: the displacement on the fixed
    grid, fixed -> moving, in voxels along the array axes (component ``c`` along axis ``c``). The
    adapter converts to millimetres with ``u_mm[:, c] = u[:, c] * spacing[c]``.
    """

    def __init__(
        self,
        ndim: int = 3,
        *,
        factors: int | Sequence[int] | Sequence[Sequence[int]] = 2,
        features: tuple[Sequence[int], Sequence[int]] = DEFAULT_FEATURES,
        in_channels: int = 2,
        pad_mode: str = "replicate",
        output_level: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.ndim = check_ndim(ndim)
        if (
            isinstance(features, (str, bytes))
            or not isinstance(features, Sequence)
            or len(features) != 2
        ):
            raise BenchError(
                f"features must be a pair (encoder widths, decoder widths), got {features!r}"
            )
        encoder = check_widths(features[0], name="features[0] (encoder)")
        decoder = check_widths(features[1], name="features[1] (decoder)", min_len=len(encoder))
        self.factors = level_factors(factors, self.ndim, len(encoder))
        self.features = (encoder, decoder)
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        if self.in_channels < 2:
            raise BenchError(f"in_channels must be >= 2 (fixed and moving), got {in_channels!r}")
        self.pad_mode = check_choice("pad_mode", pad_mode, PAD_MODES)
        if (
            isinstance(output_level, bool)
            or not isinstance(output_level, int)
            or not 0 <= output_level < len(encoder)
        ):
            raise BenchError(
                f"output_level must be an integer in [0, {len(encoder) - 1}] (one less than the "
                f"number of encoder levels), got {output_level!r}"
            )
        self.output_level = output_level
        #: Total downsampling per axis: inputs are padded to a multiple of this.
        self.multiple = tuple(math.prod(f[a] for f in self.factors) for a in range(self.ndim))

        levels = len(encoder)
        self.encoder = nn.ModuleList()
        skip_channels = [self.in_channels]  # channels of the tensor saved at each resolution
        prev = self.in_channels
        for lvl, width in enumerate(encoder):
            self.encoder.append(conv(self.ndim, prev, width, stride=self.factors[lvl]))
            prev = width
            skip_channels.append(width)
        # skip_channels[l] lives at the resolution after l encoder levels; the decoder goes from
        # the coarsest (after `levels`) up, concatenating skip_channels[levels - 1 - i].
        self.decoder = nn.ModuleList()
        for i in range(levels - output_level):
            self.decoder.append(conv(self.ndim, prev, decoder[i]))
            prev = decoder[i] + skip_channels[levels - 1 - i]
        self.full_res = nn.ModuleList()
        for width in decoder[levels:]:
            self.full_res.append(conv(self.ndim, prev, width))
            prev = width
        self.head = conv(self.ndim, prev, self.ndim)
        self.reset_parameters(seed=seed)

    def reset_parameters(self, *, seed: int | None = None) -> None:
        """Re-initialise all weights (He init for LeakyReLU(0.2), zero biases; head Normal(0, 1e-5)).
        """
        generator = make_generator(seed)
        init_parameters(self, negative_slope=LEAKY_SLOPE, generator=generator)
        init_head(self.head, std=HEAD_INIT_STD, generator=generator)

    def forward(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """Displacement ``(N, ndim, *spatial)`` in voxels, fixed -> moving, on the fixed grid.

        Parameters
        ----------
        fixed, moving : Tensor (N, C_f, *spatial), (N, C_m, *spatial)
            Same batch size and spatial shape, ``C_f + C_m == in_channels``; any spatial size.
        """
        check_pair(fixed, moving, ndim=self.ndim, in_channels=self.in_channels)
        x = torch.cat([fixed, moving], dim=1)
        x, pads = pad_to_multiple(x, self.multiple, mode=self.pad_mode)
        skips = [x]
        for layer in self.encoder:
            x = F.leaky_relu(layer(x), LEAKY_SLOPE)
            skips.append(x)
        skips.pop()  # the coarsest features are the decoder's input, not a skip
        for layer in self.decoder:
            x = F.leaky_relu(layer(x), LEAKY_SLOPE)
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = torch.cat([x, skip], dim=1)
        for layer in self.full_res:
            x = F.leaky_relu(layer(x), LEAKY_SLOPE)
        field = self.head(x)
        if self.output_level:
            mode = "bilinear" if self.ndim == 2 else "trilinear"
            field = F.interpolate(field, size=skips[0].shape[2:], mode=mode, align_corners=True)
        return crop(field, pads)

    def extra_repr(self) -> str:
        return (
            f"ndim={self.ndim}, factors={self.factors}, features={self.features}, "
            f"in_channels={self.in_channels}, pad_mode={self.pad_mode!r}, "
            f"output_level={self.output_level}"
        )
