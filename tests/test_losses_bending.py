"""Bending energy of dense fields and B-spline control grids: analytic cases and a direct loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from methods.losses import BendingEnergy, bending_energy, bspline_bending_energy


def _coords(shape, spacing):
    axes = [torch.arange(n, dtype=torch.float64) * h for n, h in zip(shape, spacing, strict=True)]
    return torch.meshgrid(*axes, indexing="ij")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ndim=st.sampled_from([2, 3]))
def test_affine_fields_have_zero_energy(seed, ndim):
    rng = np.random.default_rng(seed)
    shape = (5, 6, 4)[:ndim]
    spacing = tuple(rng.uniform(0.5, 3.0, size=ndim))
    x = _coords(shape, spacing)
    mat, shift = rng.normal(size=(ndim, ndim)), rng.normal(size=ndim)
    disp = torch.stack(
        [sum(mat[c, d] * x[d] for d in range(ndim)) + shift[c] for c in range(ndim)]
    )[None]
    assert bending_energy(disp, spacing=spacing).item() == pytest.approx(0.0, abs=1e-18 + 1e-12)


def test_quadratic_field_analytic_value_with_spacing():
    # u_0 = a x^2 + b x y + c z^2, u_1 = d y z, u_2 = e x^2  (x, y, z in mm)
    a, b, c, d, e = 0.3, -0.7, 0.2, 1.1, -0.4
    spacing = (1.5, 0.8, 2.5)
    x, y, z = _coords((5, 6, 4), spacing)
    disp = torch.stack([a * x**2 + b * x * y + c * z**2, d * y * z, e * x**2])[None]
    # Hessians: u_0 [[2a, b, 0], [b, 0, 0], [0, 0, 2c]], u_1 mixed yz = d, u_2 xx = 2e
    expected = (2 * a) ** 2 + 2 * b**2 + (2 * c) ** 2 + 2 * d**2 + (2 * e) ** 2
    assert bending_energy(disp, spacing=spacing).item() == pytest.approx(expected, rel=1e-10)


def test_spacing_scaling():
    rng = np.random.default_rng(1)
    disp = torch.tensor(rng.normal(size=(2, 2, 7, 6)))
    base = bending_energy(disp, reduction="none")
    # A field sampled at spacing s has second derivatives divided by s^2: energy / s^4.
    assert torch.allclose(bending_energy(disp, spacing=(2.0, 2.0), reduction="none"), base / 16)


def _loop_energy(u: np.ndarray, spacing: tuple[float, ...]) -> float:
    ndim = u.shape[0]
    shape = u.shape[1:]
    total, count = 0.0, 0
    for x in itertools.product(*[range(1, s - 1) for s in shape]):
        for c in range(ndim):
            for i in range(ndim):
                for j in range(ndim):
                    if i == j:
                        p, m = list(x), list(x)
                        p[i] += 1
                        m[i] -= 1
                        d2 = (u[(c, *p)] - 2 * u[(c, *x)] + u[(c, *m)]) / spacing[i] ** 2
                    else:
                        vals = []
                        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                            y = list(x)
                            y[i] += si
                            y[j] += sj
                            vals.append(si * sj * u[(c, *y)])
                        d2 = sum(vals) / (4 * spacing[i] * spacing[j])
                    total += d2 * d2
        count += 1
    return total / count


@pytest.mark.parametrize("shape, spacing", [((6, 5), (1.0, 2.0)), ((4, 5, 3), (0.7, 1.3, 2.0))])
def test_random_field_matches_direct_loop(shape, spacing):
    u = np.random.default_rng(2).normal(size=(2, len(shape), *shape))
    got = bending_energy(torch.tensor(u), spacing=spacing, reduction="none").numpy()
    assert np.allclose(got, [_loop_energy(u[k], spacing) for k in range(2)], rtol=1e-12)


def test_control_grid_energy():
    rng = np.random.default_rng(3)
    grid_spacing, spacing = (8, 8, 1), (1.25, 1.25, 10.0)
    shape = (5, 5, 6)
    phys = tuple(g * s for g, s in zip(grid_spacing, spacing, strict=True))
    x = _coords(shape, phys)
    mat = rng.normal(size=(3, 3))
    linear = torch.stack([sum(mat[c, d] * x[d] for d in range(3)) for c in range(3)])[None]
    assert bspline_bending_energy(
        linear, grid_spacing=grid_spacing, spacing=spacing
    ).item() == pytest.approx(0.0, abs=1e-12)
    quad = torch.stack([0.5 * x[0] ** 2, torch.zeros_like(x[0]), x[1] * x[2]])[None]
    assert bspline_bending_energy(
        quad, grid_spacing=grid_spacing, spacing=spacing
    ).item() == pytest.approx(1.0 + 2.0, rel=1e-10)
    u = torch.tensor(rng.normal(size=(1, 2, 5, 4)))
    assert torch.allclose(
        bspline_bending_energy(u, grid_spacing=4), bending_energy(u, spacing=(4.0, 4.0))
    )


def test_gradient_module_and_reduction():
    u = torch.tensor(np.random.default_rng(4).normal(size=(2, 2, 5, 5)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: bending_energy(v, spacing=(1.0, 2.0)), (u,))
    each = bending_energy(u, reduction="none")
    assert each.shape == (2,)
    assert torch.allclose(BendingEnergy(reduction="sum")(u), each.sum())
    assert bending_energy(u.float()).dtype == torch.float32


@pytest.mark.parametrize(
    "disp, kwargs, message",
    [
        (torch.zeros(1, 3, 5, 5), {}, r"\(1, 3, 5, 5\)"),
        (torch.zeros(1, 2, 2, 5), {}, "at least 3"),
        (torch.zeros(1, 2, 5, 5), {"spacing": (1.0, 0.0)}, "spacing"),
        (torch.zeros(1, 2, 5, 5), {"reduction": "max"}, "reduction must be one of 'mean', 'sum', 'none'; got 'max'"),
    ],
)
def test_bad_inputs_raise(disp, kwargs, message):
    with pytest.raises(BenchError, match=message):
        bending_energy(disp, **kwargs)
    with pytest.raises(BenchError, match="grid_spacing"):
        bspline_bending_energy(torch.zeros(1, 2, 5, 5), grid_spacing=(4, -1))
