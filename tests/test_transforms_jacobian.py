"""The Jacobian determinant, in torch (methods.transforms, training) and in NumPy (metrics, the
scores): each against analytic fields and a float64 np.gradient + np.linalg.det reference, and
the two against each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.core.errors import BenchError
from methods.transforms import displacement_gradient
from methods.transforms import jacobian_determinant as torch_determinant
from metrics.jacobian import jacobian_determinant


def reference_determinant(disp: np.ndarray, spacing) -> np.ndarray:
    """np.gradient (edge_order=1, physical spacing) + np.linalg.det, float64."""
    ndim = disp.shape[0]
    grad = np.stack(
        [np.stack(np.gradient(disp[c], *spacing, edge_order=1), axis=0) for c in range(ndim)]
    )
    jac = np.moveaxis(grad, (0, 1), (-2, -1)) + np.eye(ndim)
    return np.linalg.det(jac)


@pytest.mark.parametrize("ndim", [2, 3])
def test_zero_field_gives_one(ndim):
    shape = (5, 4, 3)[:ndim]
    out = torch_determinant(torch.zeros(2, ndim, *shape, dtype=torch.float32))
    assert out.shape == (2, *shape) and out.dtype == torch.float32
    assert torch.all(out == 1.0)
    np_out = jacobian_determinant(np.zeros((ndim, *shape), dtype=np.float32))
    assert isinstance(np_out, np.ndarray) and np_out.dtype == np.float64 and np_out.shape == shape
    assert np.all(np_out == 1.0)


@settings(max_examples=25, deadline=None)
@given(ndim=st.sampled_from([2, 3]), seed=st.integers(0, 2**31 - 1))
def test_affine_field_gives_analytic_determinant(ndim, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 7, size=ndim))
    spacing = tuple(rng.uniform(0.4, 6.0, size=ndim))
    a = rng.normal(scale=0.4, size=(ndim, ndim))
    x_mm = np.indices(shape) * np.reshape(spacing, (ndim,) + (1,) * ndim)
    disp = np.einsum("cd,d...->c...", a, x_mm) + rng.normal(size=(ndim,) + (1,) * ndim)
    expected = np.linalg.det(np.eye(ndim) + a)
    out = jacobian_determinant(disp, spacing=spacing)
    np.testing.assert_allclose(out, np.full(shape, expected), atol=1e-10)
    torch_out = torch_determinant(torch.from_numpy(disp)[None], spacing=spacing)[0].numpy()
    np.testing.assert_allclose(torch_out, out, atol=1e-12)
    # The same field read in voxels (spacing=None) has a different, also analytic, determinant.
    a_vox = a * np.reshape(spacing, (1, ndim))
    np.testing.assert_allclose(
        jacobian_determinant(disp), np.linalg.det(np.eye(ndim) + a_vox), atol=1e-9
    )


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_smooth_field_matches_numpy_reference(ndim, dtype):
    rng = np.random.default_rng(ndim)
    shape = (14, 11, 7)[:ndim]
    spacing = (1.4, 0.9, 5.0)[:ndim]
    disp = np.stack(
        [ndimage.gaussian_filter(rng.normal(scale=6.0, size=shape), 2.0) for _ in range(ndim)]
    )
    expected = reference_determinant(disp, spacing)
    np.testing.assert_allclose(jacobian_determinant(disp, spacing=spacing), expected, atol=1e-12)
    batch = torch.from_numpy(np.stack([disp, 2 * disp])).to(dtype)
    out = torch_determinant(batch, spacing=spacing)
    assert out.dtype == dtype and out.shape == (2, *shape)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(out[0].double().numpy(), expected, atol=tol)
    np.testing.assert_allclose(
        out[1].double().numpy(), reference_determinant(2 * disp, spacing), atol=tol
    )
    grad = displacement_gradient(torch.from_numpy(disp)[None], spacing=spacing)[0].numpy()
    for c in range(ndim):
        for d, g in enumerate(np.gradient(disp[c], *spacing)):
            np.testing.assert_allclose(grad[c, d], g, atol=1e-12)


def test_detects_hand_built_fold():
    """u_0 falls with slope -2 on rows 6..12: x + u(x) runs backwards there, det = 1 - 2 = -1."""
    shape = (20, 8, 4)
    spacing = (2.0, 1.0, 3.0)
    i = np.arange(shape[0], dtype=np.float64)
    u0_mm = np.where(i < 6, 0.0, np.where(i <= 12, -2.0 * (i - 6) * spacing[0], -12.0 * spacing[0]))
    disp = np.zeros((3, *shape))
    disp[0] = u0_mm[:, None, None]
    det = jacobian_determinant(disp, spacing=spacing)
    expected_rows = np.ones(shape[0])
    expected_rows[7:12] = -1.0  # central differences inside the ramp
    expected_rows[[6, 12]] = 0.0  # half-slope at its ends
    np.testing.assert_allclose(
        det, np.broadcast_to(expected_rows[:, None, None], shape), atol=1e-12
    )
    folded = det <= 0
    assert folded.any() and not folded[:6].any() and not folded[13:].any()
    # In 2D, a rotation by more than 90 degrees around the field centre on top of identity folds too.
    yy, xx = np.indices((9, 9), dtype=np.float64) - 4
    disp2 = np.stack([-2.0 * yy, -2.0 * xx])  # x + u = -x: a point reflection, det = (+1)
    np.testing.assert_allclose(jacobian_determinant(disp2), 1.0, atol=1e-12)
    disp3 = np.stack([-2.0 * yy, 0 * xx])  # mirror one axis: det = -1
    np.testing.assert_allclose(jacobian_determinant(disp3), -1.0, atol=1e-12)


def test_singleton_axis_has_zero_derivative():
    disp = torch.zeros(1, 3, 6, 5, 1, dtype=torch.float64)
    disp[:, 0] = torch.arange(6, dtype=torch.float64).view(6, 1, 1) * 0.5
    torch.testing.assert_close(
        torch_determinant(disp), torch.full((1, 6, 5, 1), 1.5, dtype=torch.float64)
    )


def test_gradient_flows():
    disp = torch.randn(1, 2, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    disp.requires_grad_(True)
    torch.autograd.gradcheck(lambda u: torch_determinant(u, spacing=(1.5, 0.5)), (disp,))


def test_bad_input_raises_bench_error():
    with pytest.raises(BenchError, match=r"\(4, 5, 6\)"):
        jacobian_determinant(np.zeros((4, 5, 6)))
    with pytest.raises(BenchError, match=r"\(1, 3, 5, 6\)"):
        torch_determinant(torch.zeros(1, 3, 5, 6))
    with pytest.raises(BenchError, match="spacing"):
        jacobian_determinant(np.zeros((2, 5, 6)), spacing=(1.0,))


@pytest.mark.parametrize("shape", [(40, 9, 5), (17, 6, 4), (1, 6, 4), (2, 5, 5), (33, 17)])
def test_numpy_slabs_equal_the_whole_volume_bitwise(shape):
    """The NumPy path works in slabs along axis 0; every difference must be the whole volume's."""
    from metrics.jacobian import _determinant, _determinant_block

    disp = np.random.default_rng(1).normal(size=(len(shape), *shape))
    spacing = (1.5, 1.2, 3.0)[: len(shape)]
    whole = _determinant_block(disp, spacing)
    for slab in (1, 2, 3, 16):
        np.testing.assert_array_equal(_determinant(disp, spacing, slab=slab), whole)


@settings(max_examples=30, deadline=None)
@given(ndim=st.sampled_from([2, 3]), seed=st.integers(0, 2**31 - 1), sigma=st.floats(1.0, 3.0))
def test_torch_and_numpy_agree_on_random_smooth_fields(ndim, seed, sigma):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(3, 12, size=ndim))
    spacing = tuple(rng.uniform(0.5, 4.0, size=ndim))
    disp = np.stack(
        [ndimage.gaussian_filter(rng.normal(scale=4.0, size=shape), sigma) for _ in range(ndim)]
    )
    ours = jacobian_determinant(disp.astype(np.float32), spacing=spacing)
    theirs = torch_determinant(torch.from_numpy(disp.astype(np.float32))[None], spacing=spacing)
    np.testing.assert_allclose(theirs[0].double().numpy(), ours, atol=1e-6, rtol=1e-6)


def test_importing_the_metrics_and_folding_percentage_load_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, metrics\n"
        "u = np.zeros((3, 4, 5, 6)); u[0, 2:] = -3.0\n"
        "print(metrics.folding_percentage(u).count > 0, metrics.sdlogj(u).value > 0, "
        "'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "False"]
