"""PoolNet: B-spline control points from a pooling ConvNet, the DIRNet/DLIR design (de Vos 2019).

The paper (de Vos et al. 2020, section 2) uses "the design of" DIRNet (de Vos et al., MedIA 2019,
the deformable ConvNet of the DLIR framework) for a B-spline parameterised displacement field.
:class:`PoolNet` follows it:

- input: fixed and moving concatenated along channels, ``(N, 2, *spatial)``;
- 3x3(x3) convolutions (32 kernels, ELU; optional batch normalisation), the first ones each
  followed by 2x average pooling until the feature map is at the B-spline control-grid resolution:
  an axis with grid spacing ``s`` is pooled ``floor(log2(s))`` times (8 -> 3 poolings, 1 -> none),
  so ``(8, 8, 1)`` never pools the third axis; five convolutions by default (three with pooling
  and two at grid resolution for spacing 8), as in the DIRNet of de Vos' TorchIR;
- the features are resampled onto the control points (see below), then two 1x1(x1) "dense"
  convolutions (32, ELU) and a 1x1(x1) output convolution, initialised with Normal(0, 1e-5)
  weights and zero bias, give ``ndim`` displacements per control point;
- :func:`methods.transforms.bspline_ffd` turns the control points into the dense field.

Control-grid adaptation. The input is padded (replicate by default) to a multiple of the pooling
factor ``p = 2**floor(log2(s))`` per axis, so the pooled map has ``Q = ceil(n / p)`` cells and
cell ``q`` averages voxels ``[q p, (q + 1) p)`` of the padded input, centred at voxel
``q p + (p - 1) / 2 - pad_before`` of the original image. The control grid
(:func:`methods.transforms.control_grid_shape`) has more points than cells (the cubic B-spline
needs support points beyond the image border) and they sit at other positions, so the feature map
is resampled with separable linear interpolation at the control-point positions, clamped at the
border (control points outside the image take the features of the nearest border cell). This
keeps features spatially aligned with the control points they drive, for any image size.

Units: control points and the dense field are displacements on the fixed grid, fixed -> moving
(``warped(x) = moving(x + u(x))``), in **voxels** along the array axes; the registration adapter
converts to millimetres with ``u_mm[:, c] = u[:, c] * spacing[c]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor, nn

from benchmark.core.checks import check_choice, check_int
from benchmark.core.errors import BenchError
from methods.networks.blocks import (
    LEAKY_SLOPE,
    PAD_MODES,
    axis_tuple,
    check_ndim,
    check_pair,
    check_widths,
    conv,
    init_head,
    init_parameters,
    make_generator,
    pad_to_multiple,
)

#: Allowed activations: ELU (DLIR) or LeakyReLU(0.2).
ACTIVATIONS = ("elu", "leaky_relu")

#: Standard deviation of the head's initial weights.
HEAD_INIT_STD = 1e-5


def pooling_counts(grid_spacing: Sequence[int]) -> tuple[int, ...]:
    """Number of 2x poolings per axis, ``floor(log2(s))`` for grid spacing ``s`` (8 -> 3, 1 -> 0)."""
    return tuple(int(s).bit_length() - 1 for s in grid_spacing)


def control_point_positions(spacing: int, count: int) -> Tensor:
    """Voxel positions (float64) of the ``count`` control points of one axis.

    The layout of :mod:`methods.transforms.ffd`: point ``k`` sits at ``(k - 1) * spacing`` (point 1
    on voxel 0, one point before the image); a test ties the two together.
    """
    return (torch.arange(count, dtype=torch.float64) - 1.0) * spacing


def linear_resample_matrix(source: Tensor, target: Tensor) -> Tensor:
    """Matrix ``W`` (len(target), len(source)) of linear interpolation, clamped at the border.

    ``source`` are increasing, equally spaced positions of the samples; ``W @ values`` gives the
    linearly interpolated values at ``target`` (targets outside ``[source[0], source[-1]]`` take
    the nearest end value). Rows sum to 1. float64.
    """
    m = source.numel()
    if m == 1:
        return torch.ones(target.numel(), 1, dtype=torch.float64)
    step = source[1] - source[0]
    f = ((target - source[0]) / step).clamp(0.0, m - 1.0)
    lo = f.floor().clamp(max=m - 2).long()
    t = f - lo
    w = torch.zeros(target.numel(), m, dtype=torch.float64)
    rows = torch.arange(target.numel())
    w[rows, lo] = 1.0 - t
    w[rows, lo + 1] += t
    return w


class PoolNet(nn.Module):
    """DIRNet-style pooling ConvNet: (fixed, moving) -> B-spline control points -> dense field.

    Parameters
    ----------
    ndim : {2, 3}
        Number of spatial axes. Default 3.
    grid_spacing : int or sequence of ndim ints
        B-spline control-point spacing in voxels per axis. Default 8 (the paper's 8x8x8 for breast
        MRI); ``(8, 8, 1)`` for the anisotropic cardiac data. Each axis is pooled
        ``floor(log2(s))`` times; a spacing that is not a power of two is reached by the final
        resampling onto the control grid.
    features : int or sequence of ints
        Widths of the 3x3(x3) convolutions, one per layer; the first ``max(floor(log2(s)))`` are
        each followed by a pooling, the others run at grid resolution, so at least that many are
        needed. An int ``w`` means ``max(5, pooling stages)`` layers of width ``w``. Default 32
        (five layers, DIRNet). Lower it (e.g. 16) for quick CPU runs.
    dense_features : int or sequence of ints
        Widths of the 1x1(x1) layers at the control points before the output layer; an int ``w``
        means two layers of width ``w``; ``()`` for none. Default 32 (two layers, DIRNet).
    in_channels : int
        Channels of fixed and moving together. Default 2.
    batch_norm : bool
        Batch normalisation after every 3x3(x3) convolution (DLIR, MedIA 2019). Default False, as
        in DIRNet/TorchIR: the networks are trained on small batches of patches and applied to
        whole volumes, where running statistics of a few batches are a poor estimate.
    activation : {"elu", "leaky_relu"}
        ELU (DLIR, default) or LeakyReLU(0.2).
    pad_mode : {"replicate", "zeros"}
        Padding of the input to a multiple of the pooling factor per axis (split evenly before and
        after). Default "replicate".
    seed : int, optional
        Seed of the weight initialisation; None uses the global torch RNG.

    Notes
    -----
    ``forward(fixed, moving)`` returns the dense displacement ``(N, ndim, *spatial)`` and
    :meth:`control_points` the control-point displacements ``(N, ndim, *grid)`` with
    ``grid = control_grid_shape(spatial, grid_spacing)``, both in voxels, fixed -> moving; the
    forward output equals ``bspline_ffd(control_points, grid_spacing=..., shape=spatial)``.
    """

    def __init__(
        self,
        ndim: int = 3,
        *,
        grid_spacing: int | Sequence[int] = 8,
        features: int | Sequence[int] = 32,
        dense_features: int | Sequence[int] = 32,
        in_channels: int = 2,
        batch_norm: bool = False,
        activation: str = "elu",
        pad_mode: str = "replicate",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.ndim = check_ndim(ndim)
        self.grid_spacing = axis_tuple(grid_spacing, self.ndim, name="grid_spacing")
        self.pools = pooling_counts(self.grid_spacing)
        stages = max(self.pools)
        if isinstance(features, Integral) and not isinstance(features, bool):
            widths = (check_int("features", features, minimum=1),) * max(5, stages)
        else:
            widths = check_widths(features, name="features")
            if len(widths) < stages:
                raise BenchError(
                    f"features needs at least {stages} widths for grid_spacing "
                    f"{self.grid_spacing} (one convolution per pooling stage), got {features!r}"
                )
        if isinstance(dense_features, Integral) and not isinstance(dense_features, bool):
            dense = (check_int("dense_features", dense_features, minimum=1),) * 2
        elif isinstance(dense_features, Sequence) and len(dense_features) == 0:
            dense = ()
        else:
            dense = check_widths(dense_features, name="dense_features")
        self.features = widths
        self.dense_features = dense
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        if self.in_channels < 2:
            raise BenchError(f"in_channels must be >= 2 (fixed and moving), got {in_channels!r}")
        if not isinstance(batch_norm, bool):
            raise BenchError(f"batch_norm must be True or False, got {batch_norm!r}")
        self.batch_norm = batch_norm
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.pad_mode = check_choice("pad_mode", pad_mode, PAD_MODES)
        #: Total pooling factor per axis: inputs are padded to a multiple of this.
        self.multiple = tuple(2**k for k in self.pools)

        pool_cls = nn.AvgPool3d if self.ndim == 3 else nn.AvgPool2d
        norm_cls = nn.BatchNorm3d if self.ndim == 3 else nn.BatchNorm2d

        def act() -> nn.Module:
            return nn.ELU() if activation == "elu" else nn.LeakyReLU(LEAKY_SLOPE)

        layers: list[nn.Module] = []
        prev = self.in_channels
        for t, width in enumerate(widths):
            layers.append(conv(self.ndim, prev, width, bias=not batch_norm))
            if batch_norm:
                layers.append(norm_cls(width))
            layers.append(act())
            if t < stages:
                kernel = tuple(2 if t < k else 1 for k in self.pools)
                layers.append(pool_cls(kernel, stride=kernel))
            prev = width
        #: 3x3(x3) convolutions and poolings, input resolution -> grid resolution.
        self.features_net = nn.Sequential(*layers)
        layers = []
        for width in dense:
            layers += [conv(self.ndim, prev, width, kernel_size=1), act()]
            prev = width
        #: 1x1(x1) layers at the control points.
        self.dense = nn.Sequential(*layers)
        self.head = conv(self.ndim, prev, self.ndim, kernel_size=1)
        self.reset_parameters(seed=seed)

    def reset_parameters(self, *, seed: int | None = None) -> None:
        """Re-initialise all weights (He init for the activation, zero biases; head Normal(0, 1e-5)).
        """
        generator = make_generator(seed)
        slope = LEAKY_SLOPE if self.activation == "leaky_relu" else 0.0  # ELU: He's ReLU gain
        init_parameters(self, negative_slope=slope, generator=generator)
        init_head(self.head, std=HEAD_INIT_STD, generator=generator)

    def grid_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Control-grid shape for an image of spatial ``shape`` (``control_grid_shape``)."""
        from methods.transforms import control_grid_shape

        return tuple(control_grid_shape(tuple(shape), self.grid_spacing))

    def control_points(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """Control-point displacements ``(N, ndim, *grid)`` in voxels, fixed -> moving.

        Parameters
        ----------
        fixed, moving : Tensor (N, C_f, *spatial), (N, C_m, *spatial)
            Same batch size and spatial shape, ``C_f + C_m == in_channels``; any spatial size.

        Returns
        -------
        Tensor (N, ndim, *grid), ``grid = control_grid_shape(spatial, grid_spacing)``
            For the dense field (:func:`methods.transforms.bspline_ffd`) and the B-spline bending
            energy.
        """
        check_pair(fixed, moving, ndim=self.ndim, in_channels=self.in_channels)
        shape = tuple(fixed.shape[2:])
        x = torch.cat([fixed, moving], dim=1)
        x, pads = pad_to_multiple(x, self.multiple, mode=self.pad_mode)
        x = self.features_net(x)
        x = self._to_control_grid(x, shape, pads)
        return self.head(self.dense(x))

    def forward(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """Dense displacement ``(N, ndim, *spatial)`` in voxels, fixed -> moving, on the fixed grid.

        ``bspline_ffd(self.control_points(fixed, moving), grid_spacing=self.grid_spacing,
        shape=spatial)``.
        """
        from methods.transforms import bspline_ffd

        control = self.control_points(fixed, moving)
        return bspline_ffd(control, grid_spacing=self.grid_spacing, shape=tuple(fixed.shape[2:]))

    def _to_control_grid(
        self, x: Tensor, shape: tuple[int, ...], pads: Sequence[tuple[int, int]]
    ) -> Tensor:
        """Resample the pooled features (N, C, *cells) onto the control points (N, C, *grid)."""
        grid = self.grid_shape(shape)
        for axis in range(self.ndim):
            p = self.multiple[axis]
            cells = x.shape[2 + axis]
            centres = torch.arange(cells, dtype=torch.float64) * p + (p - 1) / 2.0 - pads[axis][0]
            targets = control_point_positions(self.grid_spacing[axis], grid[axis])
            matrix = linear_resample_matrix(centres, targets).to(dtype=x.dtype, device=x.device)
            x = torch.matmul(x.movedim(2 + axis, -1), matrix.T).movedim(-1, 2 + axis)
        return x

    def extra_repr(self) -> str:
        return (
            f"ndim={self.ndim}, grid_spacing={self.grid_spacing}, pools={self.pools}, "
            f"features={self.features}, dense_features={self.dense_features}, in_channels={self.in_channels}, "
            f"batch_norm={self.batch_norm}, activation={self.activation!r}, "
            f"pad_mode={self.pad_mode!r}"
        )


__all__ = ["PoolNet", "pooling_counts", "linear_resample_matrix", "control_point_positions"]
