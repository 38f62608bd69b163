"""NCC (global Pearson and VoxelMorph local windows) and MSE against independent float64 references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from methods.losses import MSELoss, NCCLoss, mse_loss, ncc_loss


def _images(seed: int, shape: tuple[int, ...], n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, size=(n, 1, *shape))
    b = 0.5 * a**2 + 0.5 * rng.uniform(0, 1, size=a.shape)
    return a, b


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shape=st.sampled_from([(5, 7), (3, 4, 5)]))
def test_global_ncc_is_pearson(seed, shape):
    a, b = _images(seed, shape)
    expected = [-np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(2)]
    got = ncc_loss(torch.tensor(a), torch.tensor(b), reduction="none")
    assert np.allclose(got.numpy(), expected, atol=1e-10)


def test_global_ncc_masked_equals_subset():
    a, b = _images(1, (6, 6))
    mask = np.zeros_like(a, dtype=bool)
    mask[:, :, 1:5, 2:6] = True
    expected = [-np.corrcoef(a[i][mask[i]], b[i][mask[i]])[0, 1] for i in range(2)]
    got = ncc_loss(torch.tensor(a), torch.tensor(b), mask=torch.tensor(mask), reduction="none")
    assert np.allclose(got.numpy(), expected, atol=1e-10)


def _local_ncc_loop(a: np.ndarray, b: np.ndarray, window: tuple[int, ...], eps: float) -> float:
    """Direct float64 local NCC of one single-channel image (windows cropped to the image)."""
    shape = a.shape
    half = [w // 2 for w in window]
    total = 0.0
    for x in itertools.product(*[range(s) for s in shape]):
        n = sa = sb = saa = sbb = sab = 0.0
        for off in itertools.product(*[range(-h, h + 1) for h in half]):
            y = tuple(xi + oi for xi, oi in zip(x, off, strict=True))
            if all(0 <= yi < si for yi, si in zip(y, shape, strict=True)):
                va, vb = a[y], b[y]
                n += 1
                sa, sb, saa, sbb, sab = (
                    sa + va,
                    sb + vb,
                    saa + va * va,
                    sbb + vb * vb,
                    sab + va * vb,
                )
        cross = sab - sa * sb / n
        total += cross * cross / ((saa - sa * sa / n) * (sbb - sb * sb / n) + eps)
    return -total / int(np.prod(shape))


@pytest.mark.parametrize(
    "shape, window", [((7, 6), 3), ((7, 6), (5, 3)), ((5, 4, 6), 3), ((4, 5, 3), (3, 5, 1))]
)
def test_local_ncc_matches_direct_loop(shape, window):
    a, b = _images(2, shape)
    win = window if isinstance(window, tuple) else (window,) * len(shape)
    expected = [_local_ncc_loop(a[i, 0], b[i, 0], win, 1e-5) for i in range(2)]
    got = ncc_loss(torch.tensor(a), torch.tensor(b), window=window, reduction="none")
    assert np.allclose(got.numpy(), expected, atol=1e-10)


def test_local_ncc_float32_default_window_and_self_similarity():
    a, _ = _images(3, (16, 16, 12))
    at = torch.tensor(a, dtype=torch.float32)
    got = ncc_loss(at, at, window=9)
    assert got.dtype == torch.float32
    assert -1.0 <= got.item() < -0.999
    assert ncc_loss(at, at).item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("window", [None, 3])
def test_constant_images_give_zero_with_finite_gradients(window):
    a = torch.full((1, 1, 6, 6), 0.4, requires_grad=True)
    b = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = ncc_loss(a, b, window=window)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert bool(torch.isfinite(a.grad).all()) and bool(torch.isfinite(b.grad).all())


def test_ncc_gradcheck_and_module():
    a, b = (torch.tensor(x, requires_grad=True) for x in _images(4, (4, 5)))
    assert torch.autograd.gradcheck(lambda x, y: ncc_loss(x, y, window=3), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: ncc_loss(x, y), (a, b))
    module = NCCLoss(window=(3, 3), reduction="sum")
    assert torch.allclose(module(a, b), ncc_loss(a, b, window=(3, 3), reduction="sum"))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_mse_matches_numpy_with_and_without_mask(seed):
    a, b = _images(seed, (4, 5, 3))
    mask = np.random.default_rng(seed).uniform(0, 1, size=a.shape) > 0.4
    mask[1] = False  # fully masked element -> 0
    got = mse_loss(torch.tensor(a), torch.tensor(b), reduction="none").numpy()
    assert np.allclose(got, ((a - b) ** 2).reshape(2, -1).mean(1), atol=1e-12)
    got_m = mse_loss(
        torch.tensor(a), torch.tensor(b), mask=torch.tensor(mask), reduction="none"
    ).numpy()
    assert got_m[0] == pytest.approx(((a[0] - b[0]) ** 2)[mask[0]].mean(), abs=1e-12)
    assert got_m[1] == 0.0
    assert MSELoss()(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(
        ((a - b) ** 2).mean()
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 4}, "window=4"),
        ({"window": (3, 3, 3)}, r"window=\(3, 3, 3\)"),
        ({"window": True}, "window=True"),
        ({"eps": 0.0}, "eps=0.0"),
        ({"reduction": "avg"}, "reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
    ],
)
def test_ncc_bad_settings_raise(kwargs, message):
    a = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with pytest.raises(BenchError, match=message):
        ncc_loss(a, a, **kwargs)


def test_shape_mismatch_names_both_shapes():
    a = torch.zeros(1, 1, 6, 6)
    for fn in (ncc_loss, mse_loss):
        with pytest.raises(BenchError, match=r"\(1, 1, 6, 6\) and \(1, 1, 6, 5\)"):
            fn(a, a[..., :5])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a, b = (torch.tensor(x, dtype=torch.float32) for x in _images(5, (12, 10, 8)))
    for kw in ({}, {"window": 5}):
        assert torch.allclose(
            ncc_loss(a.cuda(), b.cuda(), **kw).cpu(), ncc_loss(a, b, **kw), atol=1e-5
        )
    assert torch.allclose(mse_loss(a.cuda(), b.cuda()).cpu(), mse_loss(a, b), atol=1e-6)
