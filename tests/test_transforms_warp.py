"""Tests of methods.transforms.warp: direction, exact shifts, interpolation modes, padding, gradients.

References: NumPy index arithmetic for integer shifts, scipy.ndimage.map_coordinates for arbitrary
positions, analytic polynomials and smooth functions, finite differences (gradcheck).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.core.errors import BenchError
from methods.transforms import Warp, sample_positions, warp, warp_array

MODES = ("linear", "bspline", "nearest")
PADDINGS = ("border", "zeros")


def _shifted_reference(image: np.ndarray, shift: tuple[int, ...], padding: str) -> np.ndarray:
    """``out[x] = image[x + shift]`` with border (clamp) or zero padding, by index arithmetic."""
    idx = np.indices(image.shape)
    src = [idx[d] + shift[d] for d in range(image.ndim)]
    clamped = tuple(np.clip(src[d], 0, image.shape[d] - 1) for d in range(image.ndim))
    out = image[clamped]
    if padding == "zeros":
        inside = np.all(
            [(src[d] >= 0) & (src[d] < image.shape[d]) for d in range(image.ndim)], axis=0
        )
        out = np.where(inside, out, 0.0)
    return out


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_field_is_identity(ndim, mode, padding, dtype):
    gen = torch.Generator().manual_seed(1)
    shape = (7, 6, 5)[:ndim]
    image = torch.rand(2, 3, *shape, generator=gen, dtype=dtype)
    disp = torch.zeros(2, ndim, *shape, dtype=dtype)
    out = warp(image, disp, mode=mode, padding=padding, spacing=(0.7, 1.9, 3.0)[:ndim])
    assert out.dtype == dtype and out.shape == image.shape
    torch.testing.assert_close(out, image, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    ndim=st.sampled_from([2, 3]),
    data=st.data(),
    mode=st.sampled_from(MODES),
    padding=st.sampled_from(PADDINGS),
    use_spacing=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_integer_shift_is_exact(ndim, data, mode, padding, use_spacing, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(
        data.draw(st.integers(1 if d == ndim - 1 else 2, 9), label=f"n{d}") for d in range(ndim)
    )
    shift = tuple(
        data.draw(st.integers(-3, 3), label=f"k{d}") if shape[d] > 1 else 0 for d in range(ndim)
    )
    spacing = tuple(rng.uniform(0.3, 8.0, size=ndim)) if use_spacing else None
    image = rng.random(shape).astype(np.float32)
    scale = np.ones(ndim) if spacing is None else np.asarray(spacing)
    disp = np.broadcast_to((np.asarray(shift) * scale).reshape(ndim, *[1] * ndim), (ndim, *shape))
    out = warp(
        torch.from_numpy(image)[None, None],
        torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float32))[None],
        spacing=spacing,
        mode=mode,
        padding=padding,
    )[0, 0].numpy()
    np.testing.assert_allclose(out, _shifted_reference(image, shift, padding), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ndim", [2, 3])
def test_direction_fixed_to_moving(mode, ndim):
    """Moving = fixed shifted by +2 voxels along axis 0; u = +2 voxels (in mm) recovers fixed."""
    rng = np.random.default_rng(0)
    shape = (12, 9, 6)[:ndim]
    spacing = (1.5, 0.8, 4.0)[:ndim]
    fixed = ndimage.gaussian_filter(rng.random(shape), 1.0).astype(np.float32)
    moving = np.zeros_like(fixed)
    moving[2:] = fixed[:-2]  # content moved to larger i
    disp = np.zeros((ndim, *shape), dtype=np.float32)
    disp[0] = 2 * spacing[0]
    warped = warp_array(moving, disp, spacing=spacing, mode=mode)
    assert warped.dtype == np.float32
    np.testing.assert_allclose(warped[:-2], fixed[:-2], atol=1e-5)
    wrong = warp_array(moving, -disp, spacing=spacing, mode=mode)
    assert np.abs(wrong[2:-2] - fixed[2:-2]).max() > 1e-2


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_matches_scipy_map_coordinates(ndim, mode, padding):
    """Arbitrary positions inside the image: linear / cubic B-spline (mirror) / nearest as scipy."""
    rng = np.random.default_rng(3)
    shape = (11, 8, 6)[:ndim]
    spacing = (1.3, 0.7, 3.5)[:ndim]
    image = rng.random(shape)
    disp_vox = rng.uniform(-2.5, 2.5, size=(ndim, *shape))
    positions = np.indices(shape) + disp_vox
    positions = np.clip(positions, 0, np.reshape(np.asarray(shape) - 1, (ndim,) + (1,) * ndim))
    disp_vox = positions - np.indices(shape)  # keep every sample inside: padding does not matter
    disp_mm = disp_vox * np.reshape(spacing, (ndim,) + (1,) * ndim)
    order = {"linear": 1, "bspline": 3, "nearest": 0}[mode]
    expected = ndimage.map_coordinates(image, positions, order=order, mode="mirror", prefilter=True)
    out = warp(
        torch.from_numpy(image)[None, None],
        torch.from_numpy(disp_mm)[None],
        spacing=spacing,
        mode=mode,
        padding=padding,
    )[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-10, rtol=0)


def test_bspline_reproduces_cubic_polynomials_in_the_interior():
    rng = np.random.default_rng(7)
    shape = (40, 38)
    i, j = np.indices(shape) / 40.0
    coef = rng.normal(size=10)

    def poly(a, b):
        terms = [np.ones_like(a), a, b, a * a, a * b, b * b, a**3, a * a * b, a * b * b, b**3]
        return sum(c * t for c, t in zip(coef, terms, strict=True))

    image = poly(i, j)
    disp = rng.uniform(-1.5, 1.5, size=(2, *shape))
    out = warp(torch.from_numpy(image)[None, None], torch.from_numpy(disp)[None], mode="bspline")[
        0, 0
    ].numpy()
    expected = poly(i + disp[0] / 40.0, j + disp[1] / 40.0)
    margin = 14  # mirror boundary influence on the coefficients decays like 0.268**distance
    interior = (slice(margin, -margin),) * 2
    np.testing.assert_allclose(out[interior], expected[interior], atol=1e-8, rtol=0)
    # Linear interpolation does not reproduce cubics: the test can tell the two apart.
    linear = warp(torch.from_numpy(image)[None, None], torch.from_numpy(disp)[None])[0, 0].numpy()
    assert np.abs(linear[interior] - expected[interior]).max() > 1e-5


@pytest.mark.parametrize("ndim", [2, 3])
def test_bspline_beats_linear_on_smooth_signal(ndim):
    rng = np.random.default_rng(11)
    shape = (24, 22, 20)[:ndim]
    periods = (9.0, 11.0, 13.0)[:ndim]

    def f(*coords):
        out = 1.0
        for x, p in zip(coords, periods, strict=True):
            out = out * np.sin(2 * np.pi * x / p + 0.3)
        return out

    grid = np.indices(shape).astype(np.float64)
    image = f(*grid)
    disp = rng.uniform(-0.5, 0.5, size=(ndim, *shape))
    truth = f(*(grid + disp))
    interior = (slice(4, -4),) * ndim
    errors = {}
    for mode in ("linear", "bspline"):
        out = warp(torch.from_numpy(image)[None, None], torch.from_numpy(disp)[None], mode=mode)
        errors[mode] = np.abs(out[0, 0].numpy() - truth)[interior].max()
    assert errors["bspline"] < 0.25 * errors["linear"], errors


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ndim=st.sampled_from([2, 3]))
def test_nearest_keeps_label_values(seed, ndim):
    rng = np.random.default_rng(seed)
    shape = (9, 8, 5)[:ndim]
    values = np.array([3, 7, 300], dtype=np.int16)
    labels = rng.choice(values, size=shape).astype(np.int16)
    disp = rng.normal(scale=3.0, size=(ndim, *shape))
    out = warp_array(labels, disp, spacing=(1.2, 0.9, 2.5)[:ndim], mode="nearest")
    assert out.dtype == np.int16
    assert set(np.unique(out)) <= {0, 3, 7, 300}
    border = warp_array(labels, disp, mode="nearest", padding="border")
    assert set(np.unique(border)) <= {3, 7, 300}


def test_warp_array_label_defaults_and_dtypes():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    disp = np.zeros((2, 3, 4))
    disp[0] = 5.0  # everything leaves the image
    assert warp_array(labels, disp, mode="nearest").dtype == np.uint8
    assert np.all(warp_array(labels, disp, mode="nearest") == 0)  # labels default to zero padding
    np.testing.assert_array_equal(
        warp_array(labels, disp, mode="nearest", padding="border"), np.tile(labels[-1], (3, 1))
    )
    image = labels.astype(np.float64)
    np.testing.assert_array_equal(
        warp_array(image, disp), np.tile(image[-1], (3, 1)).astype(np.float32)
    )
    assert warp_array(labels, disp, mode="linear").dtype == np.float32


@pytest.mark.parametrize("mode", ["linear", "bspline"])
def test_zero_padding_fades_over_one_voxel_like_linear(mode):
    image = torch.full((1, 1, 5, 4), 2.0, dtype=torch.float64)
    for offset, expected_zeros, expected_nearest in (
        (-0.3, 1.4, 2.0),
        (-0.7, 0.6, 0.0),
        (-1.5, 0.0, 0.0),
    ):
        disp = torch.zeros(1, 2, 5, 4, dtype=torch.float64)
        disp[:, 0] = offset
        zeros = warp(image, disp, mode=mode, padding="zeros")
        border = warp(image, disp, mode=mode, padding="border")
        nearest = warp(image, disp, mode="nearest", padding="zeros")
        torch.testing.assert_close(
            zeros[0, 0, 0], torch.full((4,), expected_zeros, dtype=torch.float64)
        )
        torch.testing.assert_close(
            nearest[0, 0, 0], torch.full((4,), expected_nearest, dtype=torch.float64)
        )
        torch.testing.assert_close(border, image)
        torch.testing.assert_close(zeros[0, 0, 2:], image[0, 0, 2:])  # inside: padding irrelevant


@pytest.mark.parametrize("mode", ["linear", "bspline"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_gradients_match_finite_differences(mode, ndim):
    gen = torch.Generator().manual_seed(5)
    shape = (5, 4, 3)[:ndim]
    image = torch.rand(1, 2, *shape, generator=gen, dtype=torch.float64, requires_grad=True)
    # Positions away from integers (linear has kinks there) and inside the image.
    disp = (
        torch.rand(1, ndim, *shape, generator=gen, dtype=torch.float64) * 0.6 + 0.2
    ) * torch.tensor([1.0, -1.0, 1.0][:ndim], dtype=torch.float64).view(1, ndim, *[1] * ndim)
    disp.requires_grad_(True)
    spacing = (1.5, 0.5, 2.0)[:ndim]
    torch.autograd.gradcheck(
        lambda im, u: warp(im, u, spacing=spacing, mode=mode, padding="zeros"), (image, disp)
    )


def test_batch_broadcast_and_channels():
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(1, 2, 6, 5, 4, generator=gen)
    disp = torch.randn(3, 3, 6, 5, 4, generator=gen)
    for mode in MODES:
        out = warp(image, disp, mode=mode)
        assert out.shape == (3, 2, 6, 5, 4)
        for b in range(3):
            torch.testing.assert_close(out[b : b + 1], warp(image, disp[b : b + 1], mode=mode))
        for c in range(2):
            torch.testing.assert_close(
                out[:, c : c + 1], warp(image[:, c : c + 1].expand(3, 1, 6, 5, 4), disp, mode=mode)
            )


def test_module_and_positions():
    disp = torch.zeros(1, 2, 3, 4)
    disp[:, 1] = 2.0
    pos = sample_positions(disp, spacing=(1.0, 4.0))
    torch.testing.assert_close(pos[0, 1, 0], torch.tensor([0.5, 1.5, 2.5, 3.5]))
    torch.testing.assert_close(pos[0, 0, :, 0], torch.tensor([0.0, 1.0, 2.0]))
    module = Warp(spacing=(1.0, 4.0), mode="bspline")
    image = torch.rand(1, 1, 3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        module(image, disp), warp(image, disp, spacing=(1.0, 4.0), mode="bspline")
    )


def test_singleton_axis_is_constant():
    image = torch.rand(1, 1, 6, 5, 1, generator=torch.Generator().manual_seed(4))
    disp = torch.zeros(1, 3, 6, 5, 1)
    disp[:, 2] = 0.4
    for mode in MODES:
        torch.testing.assert_close(warp(image, disp, mode=mode), image, atol=1e-6, rtol=0)


def test_bad_input_raises_bench_error():
    image = torch.zeros(1, 1, 4, 5)
    with pytest.raises(BenchError, match="mode must be one of .*; got 'cubic'"):
        warp(image, torch.zeros(1, 2, 4, 5), mode="cubic")
    with pytest.raises(BenchError, match="padding"):
        warp(image, torch.zeros(1, 2, 4, 5), padding="reflect")
    with pytest.raises(
        BenchError, match=r"\(1, 2, 4, 6\).*\(1, 1, 4, 5\)|\(1, 1, 4, 5\).*\(1, 2, 4, 6\)"
    ):
        warp(image, torch.zeros(1, 2, 4, 6))
    with pytest.raises(BenchError, match="spacing"):
        warp(image, torch.zeros(1, 2, 4, 5), spacing=(1.0, -1.0))
    with pytest.raises(BenchError, match="floating"):
        warp(image.long(), torch.zeros(1, 2, 4, 5))
    with pytest.raises(BenchError, match="disp must have shape"):
        warp_array(np.zeros((4, 5)), np.zeros((3, 4, 5)))


def test_large_volume_bspline_runs():
    """The harness warps a 256 x 256 x 20 volume with cubic B-splines in one call."""
    rng = np.random.default_rng(0)
    image = rng.random((256, 256, 20), dtype=np.float32)
    disp = rng.normal(scale=2.0, size=(3, 256, 256, 20)).astype(np.float32)
    out = warp_array(image, disp, spacing=(1.4, 1.4, 10.0), mode="bspline")
    assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    gen = torch.Generator().manual_seed(9)
    image = torch.rand(2, 1, 16, 15, 7, generator=gen)
    disp = torch.randn(2, 3, 16, 15, 7, generator=gen) * 2
    cpu = warp(image, disp, mode=mode, spacing=(1.0, 1.5, 3.0))
    gpu = warp(image.cuda(), disp.cuda(), mode=mode, spacing=(1.0, 1.5, 3.0))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
