"""Tests of methods.networks: UNet (dense field) and PoolNet (B-spline control points)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from methods.networks import PoolNet, UNet, build_network, network_settings
from methods.networks.blocks import crop, level_factors, pad_to_multiple
from methods.networks.poolnet import (
    control_point_positions,
    linear_resample_matrix,
    pooling_counts,
)
from methods.transforms import bspline_ffd, control_grid_shape, warp

torch.set_num_threads(1)

# Narrow widths keep the shape tests fast; the defaults are exercised where they matter.
SMALL_UNET = ((4, 8, 8, 8), (8, 8, 8, 8, 4))
SMALL_POOL = 8


def _pair(shape, *, n=1, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    fixed = torch.rand(n, 1, *shape, generator=g, dtype=dtype)
    moving = torch.rand(n, 1, *shape, generator=g, dtype=dtype)
    return fixed, moving


# ---------------------------------------------------------------------------------------------
# Output shapes: 2D/3D, isotropic and anisotropic factors, odd and non-multiple sizes.

UNET_CASES = [
    (3, 2, (64, 64, 8)),
    (3, (2, 2, 2), (37, 45, 7)),
    (3, (2, 2, 1), (37, 45, 7)),
    (3, (2, 2, 1), (128, 128, 6)),
    (3, ((2, 2, 1), (2, 2, 1), (2, 2, 2), (1, 1, 1)), (33, 17, 9)),
    (2, 2, (37, 45)),
    (2, (2, 1), (16, 5)),
    (3, 3, (10, 11, 12)),
]


@pytest.mark.parametrize(("ndim", "factors", "shape"), UNET_CASES)
def test_unet_output_shape(ndim, factors, shape):
    net = UNet(ndim, factors=factors, features=SMALL_UNET, seed=0)
    fixed, moving = _pair(shape, n=2)
    u = net(fixed, moving)
    assert u.shape == (2, ndim, *shape)
    assert u.dtype == fixed.dtype
    assert torch.isfinite(u).all()


def test_unet_factors_set_padding_multiple():
    assert UNet(3, factors=(2, 2, 1), features=SMALL_UNET).multiple == (16, 16, 1)
    assert UNet(3, factors=2, features=SMALL_UNET).multiple == (16, 16, 16)
    net = UNet(3, factors=((2, 2, 1), (2, 2, 1), (2, 2, 2), (3, 1, 1)), features=SMALL_UNET)
    assert net.multiple == (24, 8, 2)
    assert net.factors[3] == (3, 1, 1)


def test_unet_anisotropic_never_downsamples_third_axis():
    net = UNet(3, factors=(2, 2, 1), features=SMALL_UNET)
    sizes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: sizes.append(o.shape[2:])) for m in net.encoder
    ]
    net(*_pair((32, 48, 6)))
    for h in hooks:
        h.remove()
    assert [tuple(s) for s in sizes] == [(16, 24, 6), (8, 12, 6), (4, 6, 6), (2, 3, 6)]


POOL_CASES = [
    (3, 8, (64, 64, 8)),
    (3, (8, 8, 8), (37, 45, 7)),
    (3, (8, 8, 1), (37, 45, 7)),
    (3, (8, 8, 1), (128, 128, 6)),
    (3, (4, 2, 1), (21, 10, 3)),
    (3, (6, 5, 3), (20, 17, 9)),  # not powers of two: floor(log2) poolings, then resampling
    (2, 8, (37, 45)),
    (2, (1, 1), (9, 7)),
]


@pytest.mark.parametrize(("ndim", "grid_spacing", "shape"), POOL_CASES)
def test_poolnet_output_shapes(ndim, grid_spacing, shape):
    net = PoolNet(ndim, grid_spacing=grid_spacing, features=SMALL_POOL, seed=0)
    fixed, moving = _pair(shape, n=2)
    control = net.control_points(fixed, moving)
    spacing = (grid_spacing,) * ndim if isinstance(grid_spacing, int) else grid_spacing
    assert control.shape == (2, ndim, *control_grid_shape(shape, spacing))
    u = net(fixed, moving)
    assert u.shape == (2, ndim, *shape)
    assert torch.isfinite(u).all()


def test_poolnet_pooling_counts_follow_log2_grid_spacing():
    assert pooling_counts((8, 8, 8)) == (3, 3, 3)
    assert pooling_counts((8, 8, 1)) == (3, 3, 0)
    assert pooling_counts((1, 2, 16)) == (0, 1, 4)
    assert pooling_counts((6, 5, 3)) == (2, 2, 1)
    net = PoolNet(3, grid_spacing=(8, 8, 1), features=SMALL_POOL)
    assert net.multiple == (8, 8, 1)
    sizes = []
    net.features_net.register_forward_hook(lambda _m, _i, o: sizes.append(tuple(o.shape[2:])))
    net.control_points(*_pair((64, 40, 6)))
    assert sizes == [(8, 5, 6)]  # pooled to the grid resolution, third axis untouched
    pools = [m for m in net.features_net if isinstance(m, torch.nn.AvgPool3d)]
    assert [m.kernel_size for m in pools] == [(2, 2, 1)] * 3


def test_poolnet_layer_layout():
    net = PoolNet(3, grid_spacing=8, seed=0)  # DIRNet: 5 convolutions (3 pooled), 2 dense
    assert net.features == (32,) * 5 and net.dense_features == (32, 32)
    convs = [m for m in net.features_net if isinstance(m, torch.nn.Conv3d)]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 5
    assert [m.kernel_size for m in net.dense if isinstance(m, torch.nn.Conv3d)] == [(1, 1, 1)] * 2
    assert net.head.kernel_size == (1, 1, 1) and net.head.out_channels == 3
    wide = PoolNet(2, grid_spacing=64, features=4, dense_features=())
    assert wide.features == (4,) * 6 and wide.dense_features == () and len(wide.dense) == 0
    exact = PoolNet(2, grid_spacing=(8, 2), features=(4, 6, 8), dense_features=(5,))
    control = exact.control_points(*_pair((20, 9)))
    assert control.shape == (1, 2, *control_grid_shape((20, 9), (8, 2)))


@settings(max_examples=12, deadline=None)
@given(
    ndim=st.sampled_from([2, 3]),
    data=st.data(),
)
def test_networks_any_size(ndim, data):
    shape = tuple(data.draw(st.integers(1, 23), label=f"n{a}") for a in range(ndim))
    factor = tuple(data.draw(st.integers(1, 2), label=f"f{a}") for a in range(ndim))
    spacing = tuple(data.draw(st.sampled_from([1, 2, 3, 4, 8]), label=f"s{a}") for a in range(ndim))
    fixed, moving = _pair(shape)
    unet = UNet(ndim, factors=factor, features=((2, 2), (2, 2)), seed=0)
    assert unet(fixed, moving).shape == (1, ndim, *shape)
    pool = PoolNet(ndim, grid_spacing=spacing, features=2, seed=0)
    assert pool(fixed, moving).shape == (1, ndim, *shape)
    assert pool.control_points(fixed, moving).shape[2:] == control_grid_shape(shape, spacing)


def test_multichannel_inputs():
    fixed = torch.rand(1, 2, 16, 16)
    moving = torch.rand(1, 1, 16, 16)
    assert UNet(2, features=SMALL_UNET, in_channels=3)(fixed, moving).shape == (1, 2, 16, 16)
    assert PoolNet(2, features=4, in_channels=3)(fixed, moving).shape == (1, 2, 16, 16)


# ---------------------------------------------------------------------------------------------
# Initialisation, gradients, determinism.


@pytest.mark.parametrize(
    "net",
    [
        UNet(3, seed=0),
        UNet(3, factors=(2, 2, 1), seed=1),
        PoolNet(3, seed=0),
        PoolNet(3, grid_spacing=(8, 8, 1), batch_norm=True, seed=1),
        PoolNet(2, activation="leaky_relu", seed=2),
    ],
    ids=["unet", "unet-aniso", "poolnet", "poolnet-aniso-bn", "poolnet-2d"],
)
def test_initial_field_is_near_zero(net):
    shape = (40, 36, 8) if net.ndim == 3 else (40, 36)
    u = net(*_pair(shape, n=2))
    assert u.abs().max() < 1e-2
    # ... but not identically zero: the head is Normal(0, 1e-5), not a constant.
    assert u.abs().max() > 0


@pytest.mark.parametrize("kind", ["unet", "poolnet"])
def test_gradients_reach_the_first_layer(kind):
    net = build_network(kind, 3, features=SMALL_UNET if kind == "unet" else SMALL_POOL, seed=0)
    fixed, moving = _pair((24, 24, 8))
    net(fixed, moving).pow(2).sum().mul(1e6).backward()
    first = net.encoder[0] if kind == "unet" else net.features_net[0]
    assert first.weight.grad is not None
    assert torch.isfinite(first.weight.grad).all()
    assert first.weight.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_gradients_reach_the_inputs():
    net = UNet(2, features=SMALL_UNET, seed=0)
    fixed, moving = _pair((20, 20))
    moving.requires_grad_(True)
    net(fixed, moving).sum().backward()
    assert moving.grad is not None and moving.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [UNet, PoolNet])
def test_seed_gives_identical_networks_without_touching_global_rng(cls):
    state = torch.random.get_rng_state()
    a, b, c = cls(3, seed=7), cls(3, seed=7), cls(3, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    fixed, moving = _pair((24, 24, 8))
    assert torch.equal(a(fixed, moving), b(fixed, moving))
    assert not torch.equal(a(fixed, moving), c(fixed, moving))


def test_global_seed_gives_identical_networks_when_no_seed():
    torch.manual_seed(3)
    a = UNet(2, features=SMALL_UNET)
    torch.manual_seed(3)
    b = UNet(2, features=SMALL_UNET)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_conv_init_is_he_uniform_with_zero_bias_and_small_head():
    net = UNet(3, seed=0)
    w = net.encoder[1].weight  # 16 -> 32 channels, 3x3x3, then LeakyReLU(0.2)
    bound = math.sqrt(6 / ((1 + 0.2**2) * 16 * 27))
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.9 * bound
    assert all(torch.all(layer.bias == 0) for layer in [*net.encoder, *net.decoder, net.head])
    assert 0.5e-5 < net.head.weight.std() < 2e-5
    pool = PoolNet(3, seed=0)
    assert torch.all(pool.head.bias == 0)
    assert pool.head.weight.abs().max() < 1e-4


@pytest.mark.parametrize("cls", [UNet, PoolNet])
def test_features_at_init_still_depend_on_the_images(cls):
    """The head's input differs between two image pairs by a sizeable part of the first layer's
    scale. With PyTorch's default init it did not (measured: U-Net 0.026, PoolNet 0.0016 of it;
    He init 0.17 and 0.12): the features were a per-channel constant, so a fresh network could
    only learn a constant field."""
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool3d(
        torch.rand(4, 1, 40, 40, 40, generator=gen), 9, stride=1
    )  # 2 pairs of smooth 32^3 images, rescaled to [0, 1] like the training patches
    low, high = smooth.amin((2, 3, 4), keepdim=True), smooth.amax((2, 3, 4), keepdim=True)
    smooth = (smooth - low) / (high - low)
    fixed, moving = smooth[0::2], smooth[1::2]
    net = cls(3, seed=0, **({"factors": 2} if cls is UNet else {"grid_spacing": 8}))
    seen = {}
    first = net.encoder[0] if cls is UNet else net.features_net[0]
    first.register_forward_hook(lambda m, i, o: seen.setdefault("first", o))
    net.head.register_forward_hook(lambda m, i, o: seen.setdefault("last", i[0]))
    with torch.no_grad():
        net(fixed, moving)
    first_std, last = seen["first"].std(), seen["last"]
    assert last.std() > 0.15 * first_std
    assert (last[0] - last[1]).std() > 0.05 * first_std


@pytest.mark.parametrize("cls", [UNet, PoolNet])
def test_batch_elements_are_independent(cls):
    net = cls(2, seed=0, features=SMALL_UNET if cls is UNet else SMALL_POOL)
    fixed, moving = _pair((19, 26), n=3)
    batched = net(fixed, moving)
    for i in range(3):
        single = net(fixed[i : i + 1], moving[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("cls", [UNet, PoolNet])
def test_float64(cls):
    net = cls(2, seed=0).double()
    u = net(*_pair((17, 20), dtype=torch.float64))
    assert u.dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# PoolNet: dense field from control points, control-grid alignment.


@pytest.mark.parametrize(
    ("grid_spacing", "shape"), [((8, 8, 8), (37, 45, 7)), ((8, 8, 1), (30, 20, 6))]
)
def test_poolnet_dense_field_is_bspline_ffd_of_control_points(grid_spacing, shape):
    net = PoolNet(3, grid_spacing=grid_spacing, features=SMALL_POOL, seed=0)
    with torch.no_grad():  # make the field non-trivial
        net.head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
        net.head.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    fixed, moving = _pair(shape, n=2)
    control = net.control_points(fixed, moving)
    dense = net(fixed, moving)
    assert dense.abs().max() > 0.1
    expected = bspline_ffd(control, grid_spacing=grid_spacing, shape=shape)
    torch.testing.assert_close(dense, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("n", "s"), [(37, 8), (7, 1), (6, 1), (64, 8), (20, 3)])
def test_control_point_positions_match_the_ffd_layout(n, s):
    # bspline_ffd reproduces linear fields: control values equal to the control-point positions
    # must give the identity x -> x. This ties the network's resampling to the FFD grid layout.
    gi, gj = control_grid_shape((n, 5), (s, 1))
    pos = control_point_positions(s, gi)
    control = pos.view(1, 1, gi, 1).expand(1, 1, gi, gj).contiguous()
    dense = bspline_ffd(control, grid_spacing=(s, 1), shape=(n, 5))
    expected = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1).expand(1, 1, n, 5)
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-10)


@settings(max_examples=50, deadline=None)
@given(
    m=st.integers(1, 12),
    start=st.floats(-5, 5),
    step=st.floats(0.5, 8),
    targets=st.lists(st.floats(-30, 80), min_size=1, max_size=10),
)
def test_linear_resample_matrix_matches_numpy_interp(m, start, step, targets):
    source = start + step * torch.arange(m, dtype=torch.float64)
    values = np.random.default_rng(m).normal(size=m)
    t = torch.tensor(targets, dtype=torch.float64)
    w = linear_resample_matrix(source, t)
    np.testing.assert_allclose(w.sum(1).numpy(), 1.0, atol=1e-12)
    assert (w >= 0).all()
    expected = np.interp(np.asarray(targets), source.numpy(), values)  # clamps at both ends
    np.testing.assert_allclose((w @ torch.from_numpy(values)).numpy(), expected, atol=1e-9)


@pytest.mark.parametrize(
    ("grid_spacing", "shape"), [((8, 4), (37, 13)), ((8, 1), (24, 5)), ((2, 8), (9, 40))]
)
def test_features_are_resampled_at_control_point_positions(grid_spacing, shape):
    # A pooled feature map that is a linear function of its cell centres (in original voxel
    # coordinates) must arrive at the control points as the same function at their positions,
    # clamped to the first/last cell centre outside the image.
    net = PoolNet(2, grid_spacing=grid_spacing, features=2)
    _, pads = pad_to_multiple(torch.zeros(1, 1, *shape), net.multiple, mode="replicate")
    cells = [math.ceil(n / p) for n, p in zip(shape, net.multiple, strict=True)]
    centres = [
        torch.arange(q, dtype=torch.float64) * p + (p - 1) / 2 - pads[a][0]
        for a, (q, p) in enumerate(zip(cells, net.multiple, strict=True))
    ]
    ci, cj = torch.meshgrid(*centres, indexing="ij")
    feats = torch.stack([ci, cj])[None]  # (1, 2, *cells)
    out = net._to_control_grid(feats, shape, pads)
    grid = control_grid_shape(shape, grid_spacing)
    assert out.shape == (1, 2, *grid)
    for a in range(2):
        pos = control_point_positions(grid_spacing[a], grid[a])
        expected = pos.clamp(centres[a][0], centres[a][-1])
        profile = out[0, a].movedim(a, 0)[:, 0]
        torch.testing.assert_close(profile, expected, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Padding helpers.


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=3),
    data=st.data(),
    mode=st.sampled_from(["replicate", "zeros"]),
)
def test_pad_to_multiple_then_crop_is_identity(shape, data, mode):
    multiple = [data.draw(st.integers(1, 8)) for _ in shape]
    x = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    padded, pads = pad_to_multiple(x, multiple, mode=mode)
    for n, orig, m, (b, a) in zip(padded.shape[2:], shape, multiple, pads, strict=True):
        assert n % m == 0 and n == orig + b + a and b + a < m and 0 <= a - b <= 1
    assert torch.equal(crop(padded, pads), x)
    # Independent reference: numpy.pad with the edge value (replicate) or 0 (zeros).
    np_pads = [(0, 0), (0, 0), *pads]
    expected = np.pad(x.numpy(), np_pads, mode="edge" if mode == "replicate" else "constant")
    np.testing.assert_array_equal(padded.numpy(), expected)


# ---------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize(
    "factors",
    [0, -2, 2.5, "2", True, (2, 2), (2, 0, 2), (2, 2.0, 2), ((2, 2, 2),) * 3, ((2, 2, 2), (2, 2))],
)
def test_unet_rejects_bad_factors(factors):
    with pytest.raises(BenchError, match="factors"):
        UNet(3, factors=factors)


@pytest.mark.parametrize("grid_spacing", [0, 2.5, (8, 8), (8, 0, 8), (8, 8, "8"), None])
def test_poolnet_rejects_bad_grid_spacing(grid_spacing):
    with pytest.raises(BenchError, match="grid_spacing"):
        PoolNet(3, grid_spacing=grid_spacing)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ndim": 4}, "ndim"),
        ({"ndim": 1}, "ndim"),
        ({"features": (16, 32)}, "features"),
        ({"features": ((16, 32, 32, 32), (32, 32))}, "decoder"),
        ({"features": ((16, 0), (32, 32))}, "features"),
        ({"in_channels": 1}, "in_channels"),
        ({"pad_mode": "reflect"}, "pad_mode"),
        ({"seed": -1}, "seed"),
    ],
)
def test_unet_rejects_bad_settings(kwargs, match):
    ndim = kwargs.pop("ndim", 3)
    with pytest.raises(BenchError, match=match):
        UNet(ndim, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": (8, 8)}, "features needs at least 3"),
        ({"dense_features": (8, 0)}, "dense_features"),
        ({"dense_features": "32"}, "dense_features"),
        ({"features": 0}, "features"),
        ({"activation": "relu"}, "activation"),
        ({"batch_norm": 1}, "batch_norm"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_poolnet_rejects_bad_settings(kwargs, match):
    with pytest.raises(BenchError, match=match):
        PoolNet(3, **kwargs)


@pytest.mark.parametrize("cls", [UNet, PoolNet])
@pytest.mark.parametrize(
    ("fixed_shape", "moving_shape"),
    [
        ((1, 2, 16, 16, 8), (1, 1, 16, 16, 8)),  # 3 channels for in_channels=2
        ((1, 1, 16, 16, 8), (1, 1, 16, 16, 7)),  # spatial shapes differ
        ((2, 1, 16, 16, 8), (1, 1, 16, 16, 8)),  # batch sizes differ
        ((1, 1, 16, 16), (1, 1, 16, 16)),  # 2D tensors for a 3D network
    ],
)
def test_forward_rejects_bad_inputs_and_prints_both_shapes(cls, fixed_shape, moving_shape):
    net = cls(3, seed=0)
    with pytest.raises(BenchError) as info:
        net(torch.zeros(fixed_shape), torch.zeros(moving_shape))
    assert str(fixed_shape) in str(info.value) and str(moving_shape) in str(info.value)


def test_forward_rejects_mixed_dtypes():
    with pytest.raises(BenchError, match="dtypes differ"):
        UNet(2)(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.float64))


def test_forward_rejects_integer_tensors():
    with pytest.raises(BenchError, match="floating"):
        UNet(2)(torch.zeros(1, 1, 8, 8, dtype=torch.int64), torch.zeros(1, 1, 8, 8))


def test_level_factors_forms():
    assert level_factors(2, 3, 2) == ((2, 2, 2), (2, 2, 2))
    assert level_factors((2, 2, 1), 3, 2) == ((2, 2, 1), (2, 2, 1))
    assert level_factors([[2, 1], [1, 2]], 2, 2) == ((2, 1), (1, 2))
    assert level_factors(np.array([2, 2, 1]), 3, 1) == ((2, 2, 1),)
    assert level_factors(np.array([[2, 2, 1], [2, 2, 2]]), 3, 2) == ((2, 2, 1), (2, 2, 2))
    assert level_factors((np.int64(2), np.int64(1)), 2, 1) == ((2, 1),)


def test_build_network():
    net = build_network("unet", 3, factors=(2, 2, 1), features=SMALL_UNET, seed=0)
    assert isinstance(net, UNet) and net.factors[0] == (2, 2, 1)
    net = build_network("poolnet", 2, grid_spacing=(8, 4))
    assert isinstance(net, PoolNet) and net.grid_spacing == (8, 4)
    assert "grid_spacing" in network_settings("poolnet") and "factors" in network_settings("unet")
    with pytest.raises(BenchError, match="'resnet'"):
        build_network("resnet", 3)
    with pytest.raises(BenchError, match="'grid_spacing'.*allowed: factors"):
        build_network("unet", 3, grid_spacing=8)


# ---------------------------------------------------------------------------------------------
# Learning: a few optimisation steps reduce the image mismatch of a shifted 2D pair.


def _blob_pair(shift: float, size: int = 32):
    x = torch.arange(size, dtype=torch.float32)
    i, j = torch.meshgrid(x, x, indexing="ij")

    def blob(ci, cj):
        return torch.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * 4.0**2))

    fixed = blob(15.5, 15.5)[None, None]
    moving = blob(15.5 + shift, 15.5)[None, None]  # moving(x + (shift, 0)) == fixed(x)
    return fixed, moving


@pytest.mark.parametrize(
    "net",
    [
        UNet(2, features=((8, 16, 16, 16), (16, 16, 16, 16, 8)), seed=0),
        PoolNet(2, grid_spacing=4, features=16, seed=0),
    ],
    ids=["unet", "poolnet"],
)
def test_few_steps_reduce_mse_of_shifted_pair(net):
    fixed, moving = _blob_pair(2.0)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def mse():
        return (warp(moving, net(fixed, moving)) - fixed).pow(2).mean()

    with torch.no_grad():
        before = mse().item()
    for _ in range(100):
        optimiser.zero_grad()
        loss = mse()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        u = net(fixed, moving)
        after = (warp(moving, u) - fixed).pow(2).mean().item()
    assert after < 0.05 * before
    # Near the blob the field is the known shift: +2 voxels along i, none along j.
    assert 1.5 < u[0, 0, 12:20, 12:20].mean() < 2.5
    assert u[0, 1, 12:20, 12:20].abs().mean() < 0.3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", [UNet, PoolNet])
def test_cuda_matches_cpu(cls):
    net = cls(3, seed=0)
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    fixed, moving = _pair((37, 45, 7))
    cpu = net(fixed, moving)
    gpu = net.cuda()(fixed.cuda(), moving.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(("ndim", "shape"), [(3, (37, 45, 7)), (2, (33, 20))])
def test_unet_coarse_output_level_is_a_linear_upsampling(ndim, shape):
    net = UNet(ndim, factors=2, features=SMALL_UNET, output_level=1, seed=0)
    assert len(net.decoder) == len(SMALL_UNET[0]) - 1
    torch.nn.init.normal_(net.head.weight, std=0.1)  # a field that is not ~0
    fixed, moving = _pair(shape, n=2)
    u = net(fixed, moving)
    assert u.shape == (2, ndim, *shape) and torch.isfinite(u).all()
    # the head predicts on the first level's grid: half the (padded) voxels along every axis
    sizes = []
    hook = net.head.register_forward_hook(lambda _m, _i, o: sizes.append(o.shape[2:]))
    net(fixed, moving)
    hook.remove()
    padded = [-(-s // m) * m for s, m in zip(shape, net.multiple, strict=True)]
    assert tuple(sizes[0]) == tuple(p // 2 for p in padded)


def test_unet_output_level_is_checked():
    with pytest.raises(BenchError, match="output_level"):
        UNet(3, features=SMALL_UNET, output_level=len(SMALL_UNET[0]))
    with pytest.raises(BenchError, match="output_level"):
        UNet(3, features=SMALL_UNET, output_level=-1)
