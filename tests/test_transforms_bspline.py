"""Tests of the cubic B-spline prefilter/evaluation and of the B-spline free-form deformation.

References: the mirrored tridiagonal sampling matrix solved with NumPy, scipy.ndimage.spline_filter,
and a float64 direct (non-separable) evaluation of the tensor-product sum with the closed-form
cubic B-spline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.core.errors import BenchError
from methods.transforms import (
    BSplineFFD,
    bspline_ffd,
    bspline_prefilter,
    bspline_sample,
    control_grid_shape,
)
from methods.transforms import bspline as bspline_module
from methods.transforms.bspline import cubic_bspline_weights, prefilter_matrix
from methods.transforms.ffd import ffd_basis_matrix


def beta3(t: np.ndarray) -> np.ndarray:
    """Closed-form centred cubic B-spline."""
    a = np.abs(t)
    return np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def mirrored_sampling_matrix(n: int) -> np.ndarray:
    """``A[i, j]``: weight of coefficient ``j`` in the sample ``i`` with whole-sample mirroring."""
    a = np.zeros((n, n))
    for i in range(n):
        for j, w in ((i - 1, 1 / 6), (i, 4 / 6), (i + 1, 1 / 6)):
            if n == 1:
                j = 0
            elif j < 0:
                j = -j
            elif j > n - 1:
                j = 2 * (n - 1) - j
            a[i, j] += w
    return a


# --- prefilter -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 64, 257])
def test_prefilter_matrix_inverts_sampling(n):
    f = np.random.default_rng(n).normal(size=n)
    expected = np.linalg.solve(mirrored_sampling_matrix(n), f)
    np.testing.assert_allclose(prefilter_matrix(n) @ f, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(9, 8), (7, 6, 5), (2, 3, 1)])
def test_prefilter_matches_scipy(shape):
    image = np.random.default_rng(0).normal(size=shape)
    expected = ndimage.spline_filter(image, order=3, mode="mirror")
    out = bspline_prefilter(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prefilter_then_sample_interpolates(dtype):
    image = torch.rand(2, 3, 10, 9, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
    coeffs = bspline_prefilter(image)
    assert coeffs.shape == image.shape and coeffs.dtype == dtype
    positions = torch.stack(
        torch.meshgrid(*[torch.arange(n, dtype=dtype) for n in (10, 9, 4)], indexing="ij")
    )
    out = bspline_sample(coeffs, positions[None].expand(2, 3, 10, 9, 4))
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    # Without the prefilter the spline smooths: the samples are not reproduced.
    assert (
        bspline_sample(image, positions[None].expand(2, 3, 10, 9, 4)) - image
    ).abs().max() > 1e-2


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_sample_in_chunks_equals_one_pass(monkeypatch, padding):
    gen = torch.Generator().manual_seed(2)
    coeffs = torch.randn(2, 3, 6, 5, 4, generator=gen, dtype=torch.float64)
    positions = torch.rand(2, 3, 7, 6, 5, generator=gen, dtype=torch.float64) * 8 - 1
    whole = bspline_sample(coeffs, positions, padding=padding)
    monkeypatch.setattr(bspline_module, "_CHUNK", 11)  # 210 positions: 20 chunks, a ragged last one
    torch.testing.assert_close(
        bspline_sample(coeffs, positions, padding=padding), whole, atol=0, rtol=0
    )


@settings(max_examples=50, deadline=None)
@given(t=st.floats(0.0, 1.0, exclude_max=True))
def test_cubic_weights_match_closed_form(t):
    weights = [w.item() for w in cubic_bspline_weights(torch.tensor(t, dtype=torch.float64))]
    expected = beta3(np.array([t + 1, t, 1 - t, 2 - t]))
    np.testing.assert_allclose(weights, expected, atol=1e-14)
    assert abs(sum(weights) - 1.0) < 1e-14


# --- free-form deformation ---------------------------------------------------------------------


def direct_ffd(control: np.ndarray, grid_spacing, shape) -> np.ndarray:
    """Float64 direct evaluation of ``sum_k c[k] prod_d beta3(x_d / s_d + 1 - k_d)`` (no separation)."""
    ndim = len(shape)
    grid = control.shape[1:]
    voxels = np.indices(shape).reshape(ndim, -1)  # (ndim, V)
    points = np.indices(grid).reshape(ndim, -1)  # (ndim, P): control indices k
    weight = np.ones((voxels.shape[1], points.shape[1]))
    for d in range(ndim):
        weight *= beta3(voxels[d][:, None] / grid_spacing[d] + 1 - points[d][None, :])
    values = control.reshape(control.shape[0], -1) @ weight.T  # (C, V)
    return values.reshape(control.shape[0], *shape)


CASES = [
    ((32, 30, 12), (8, 8, 8)),
    ((19, 21, 6), (8, 8, 1)),
    ((17, 13), (4, 4)),
    ((9, 7, 5), (3, 2, 4)),
    ((1, 5), (4, 2)),
]


@pytest.mark.parametrize(("shape", "spacing"), CASES)
def test_ffd_matches_direct_tensor_product(shape, spacing):
    ndim = len(shape)
    grid = control_grid_shape(shape, spacing)
    control = np.random.default_rng(3).normal(size=(ndim, *grid))
    expected = direct_ffd(control, spacing, shape)
    out = bspline_ffd(torch.from_numpy(control)[None], grid_spacing=spacing, shape=shape)[0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12, rtol=0)
    out32 = bspline_ffd(torch.from_numpy(control).float()[None], grid_spacing=spacing, shape=shape)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32[0].numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("shape", "spacing"), CASES)
def test_ffd_reproduces_constant_and_linear_fields(shape, spacing):
    ndim = len(shape)
    rng = np.random.default_rng(4)
    grid = control_grid_shape(shape, spacing)
    # Control point k of axis d sits at voxel (k - 1) * spacing[d].
    points = (np.indices(grid) - 1) * np.reshape(spacing, (ndim,) + (1,) * ndim)
    voxels = np.indices(shape).astype(np.float64)
    a = rng.normal(scale=0.05, size=(ndim, ndim))
    b = rng.normal(size=ndim)
    constant = np.broadcast_to(b.reshape(ndim, *[1] * ndim), (ndim, *grid))
    linear = np.einsum("cd,d...->c...", a, points) + b.reshape(ndim, *[1] * ndim)
    expected_linear = np.einsum("cd,d...->c...", a, voxels) + b.reshape(ndim, *[1] * ndim)
    for values, expected in (
        (constant, np.broadcast_to(b.reshape(ndim, *[1] * ndim), (ndim, *shape))),
        (linear, expected_linear),
    ):
        control = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None]
        out = bspline_ffd(control, grid_spacing=spacing, shape=shape)[0].numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 40), min_size=2, max_size=3),
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
)
def test_ffd_linear_reproduction_property(shape, data, seed):
    ndim = len(shape)
    spacing = tuple(data.draw(st.integers(1, 10), label=f"s{d}") for d in range(ndim))
    grid = control_grid_shape(shape, spacing)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=ndim)
    points = (np.indices(grid) - 1) * np.reshape(spacing, (ndim,) + (1,) * ndim)
    control = np.tensordot(a, points, axes=(0, 0))[None, None]
    out = bspline_ffd(torch.from_numpy(control), grid_spacing=spacing, shape=shape)[0, 0].numpy()
    np.testing.assert_allclose(out, np.tensordot(a, np.indices(shape), axes=(0, 0)), atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), s=st.integers(1, 16))
def test_control_grid_shape_is_minimal_and_covers(n, s):
    (size,) = control_grid_shape((n,), (s,))
    # Point k sits at (k - 1) * s and moves the voxels closer than 2 s. Covers: the point after the
    # last one, at (size - 1) * s, would not reach the last voxel n - 1; minimal: the last point does.
    assert (size - 1) * s >= n - 1 + 2 * s
    assert (size - 2) * s < n - 1 + 2 * s
    basis = ffd_basis_matrix(n, s)
    assert basis.shape == (n, size)
    assert np.all(basis.max(axis=0) > 0)  # every control point moves some voxel
    np.testing.assert_allclose(
        basis.sum(axis=1), 1.0, atol=1e-14
    )  # partition of unity: no tap lost
    x = np.arange(n)
    np.testing.assert_allclose(
        basis, beta3(x[:, None] / s + 1 - np.arange(size)[None, :]), atol=1e-14
    )


def test_control_grid_shape_examples():
    assert control_grid_shape((128, 128, 128), (8, 8, 8)) == (19, 19, 19)
    assert control_grid_shape((128, 128, 6), (8, 8, 1)) == (19, 19, 8)
    assert control_grid_shape((129, 1), (8, 4)) == (19, 3)
    with pytest.raises(BenchError, match="grid_spacing"):
        control_grid_shape((10, 10), (0, 2))
    with pytest.raises(BenchError, match="grid_spacing"):
        control_grid_shape((10, 10), (2, 2, 2))


def test_ffd_module_gradient_and_shape_errors():
    shape, spacing = (12, 10, 5), (4, 4, 1)
    grid = control_grid_shape(shape, spacing)
    control = torch.randn(
        2, 3, *grid, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    module = BSplineFFD(shape, grid_spacing=spacing)
    assert module.grid_shape == grid
    torch.testing.assert_close(
        module(control), bspline_ffd(control, grid_spacing=spacing, shape=shape)
    )
    torch.testing.assert_close(
        module(control.float()), bspline_ffd(control.float(), grid_spacing=spacing, shape=shape)
    )
    small = torch.randn(
        1, 2, *control_grid_shape((5, 4), (2, 2)), dtype=torch.float64, requires_grad=True
    )
    torch.autograd.gradcheck(lambda c: bspline_ffd(c, grid_spacing=(2, 2), shape=(5, 4)), (small,))
    with pytest.raises(BenchError, match=r"\(N, C, 6, 6, 7\).*\(2, 3, 5, 5, 6\)"):
        bspline_ffd(torch.zeros(2, 3, 5, 5, 6), grid_spacing=spacing, shape=shape)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ffd_and_prefilter_on_cuda():
    control = torch.randn(
        2,
        3,
        *control_grid_shape((32, 32, 6), (8, 8, 1)),
        generator=torch.Generator().manual_seed(0),
    )
    cpu = bspline_ffd(control, grid_spacing=(8, 8, 1), shape=(32, 32, 6))
    gpu = bspline_ffd(control.cuda(), grid_spacing=(8, 8, 1), shape=(32, 32, 6))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
    image = torch.rand(1, 1, 20, 18, 6)
    torch.testing.assert_close(
        bspline_prefilter(image.cuda()).cpu(), bspline_prefilter(image), atol=1e-5, rtol=0
    )
