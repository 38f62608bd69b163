"""Parzen-window NMI loss: the fast paths (window, nodes) vs the float64 dense reference, gradients,
properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from methods.losses import NMILoss, nmi_loss, nmi_loss_dense, parzen_joint_histogram
from methods.losses.nmi import TRUNCATION_TOL, entropy_terms, nodes_per_bin, window_size

SIGMAS = [3e-3, 0.02, 0.05]


def _smooth_image(rng: np.random.Generator, shape: tuple[int, ...], blobs: int = 5) -> np.ndarray:
    """Sum of random Gaussian blobs rescaled into [0, 1)."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    out = np.zeros(shape)
    for _ in range(blobs):
        centre = rng.uniform(0, shape)
        width = rng.uniform(2.0, max(shape) / 2)
        out += rng.uniform(0.3, 1.0) * np.exp(
            -sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) / (2 * width**2)
        )
    out -= out.min()
    return out / (out.max() * (1 + 1e-6) + 1e-12)


def _pair(kind: str, shape: tuple[int, ...], seed: int, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    if kind == "random":
        a = rng.uniform(0, 1, size=(2, 1, *shape))
        b = rng.uniform(0, 1, size=(2, 1, *shape))
    else:  # structured: smooth image and a non-linearly related, noisy version
        a = np.stack([_smooth_image(rng, shape)[None] for _ in range(2)])
        b = np.clip((1 - a) ** 2 + rng.normal(0, 0.02, size=a.shape), 0, 1 - 1e-6)
    return torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)


def _value_and_grads(fn, a, b, **kw):
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    value = fn(a, b, reduction="none", **kw)
    value.sum().backward()
    return value.detach(), a.grad, b.grad


def _rel_grad_err(g: torch.Tensor, ref: torch.Tensor) -> float:
    return float((g.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def _assert_matches_dense(value, grads, ref_value, ref_grads, *, sigma: float, bins: int = 64):
    """Window path (narrow kernels, exact up to the truncation): loss within 1e-5 and gradients
    within 1e-3 of their largest entry. Node path (wide kernels): the exact loss and gradient of
    the histogram with node-interpolated weights (nodes sigma / 5 apart); on these small images
    the interpolation error does not average out as on a patch: loss within 5e-5, gradients
    within 20 % per entry and cosine above 0.98."""
    nodes = nodes_per_bin(bins, sigma) > 0
    assert torch.allclose(value.double(), ref_value, atol=5e-5 if nodes else 1e-5, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        g, r = g.double().flatten(), r.flatten()
        assert _rel_grad_err(g, r) < (0.2 if nodes else 1e-3)
        if nodes:
            assert torch.nn.functional.cosine_similarity(g, r, dim=0) > 0.98


def test_window_size_paper_settings_and_adapts_to_kernel_width():
    assert window_size(64, 3e-3) == 3
    sizes = [window_size(64, s) for s in (1e-3, 3e-3, 0.01, 0.02, 0.05, 0.5)]
    assert sizes == sorted(sizes) and sizes[-1] == 64
    # The truncated mass bound holds: the next Gaussian tail beyond the window is below tol.
    s = 3e-3 * 64
    assert math.exp(-((1.5**2 - 0.5**2) / (2 * s * s))) < TRUNCATION_TOL


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("shape", [(12, 11), (6, 7, 5)])
def test_fast_matches_dense_float64(sigma, kind, shape):
    a, b = _pair(kind, shape, seed=1)
    v, ga, gb = _value_and_grads(nmi_loss, a, b, sigma=sigma)
    rv, rga, rgb = _value_and_grads(nmi_loss_dense, a, b, sigma=sigma)
    _assert_matches_dense(v, (ga, gb), rv, (rga, rgb), sigma=sigma)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_fast_float32_matches_dense_float64(sigma):
    a, b = _pair("structured", (24, 20, 8), seed=2)
    v, ga, gb = _value_and_grads(nmi_loss, a.float(), b.float(), sigma=sigma)
    assert v.dtype == torch.float32 and ga.dtype == torch.float32
    rv, rga, rgb = _value_and_grads(nmi_loss_dense, a, b, sigma=sigma)
    _assert_matches_dense(v, (ga, gb), rv, (rga, rgb), sigma=sigma)


def test_fast_matches_dense_with_float_mask_and_out_of_range_values():
    a, b = _pair("random", (10, 9), seed=3)
    a[0, 0, 0, :3] = torch.tensor([-0.2, 1.0, 1.7], dtype=a.dtype)
    mask = torch.tensor(np.random.default_rng(3).uniform(0, 2, size=(2, 1, 10, 9)))
    mask[1, 0, :4] = 0
    v, ga, gb = _value_and_grads(nmi_loss, a, b, mask=mask)
    rv, rga, rgb = _value_and_grads(nmi_loss_dense, a, b, mask=mask)
    assert torch.allclose(v, rv, atol=1e-5, rtol=0)
    assert _rel_grad_err(ga, rga) < 1e-3 and _rel_grad_err(gb, rgb) < 1e-3


@pytest.mark.parametrize("fn", [nmi_loss, nmi_loss_dense])
@pytest.mark.parametrize("sigma", [3e-3, 0.05])
def test_gradcheck_float64(fn, sigma):
    rng = np.random.default_rng(4)
    a = torch.tensor(rng.uniform(0.05, 0.95, size=(2, 1, 3, 4)), requires_grad=True)
    b = torch.tensor(rng.uniform(0.05, 0.95, size=(2, 1, 3, 4)), requires_grad=True)
    mask = torch.tensor(rng.uniform(0.5, 1.0, size=(2, 1, 3, 4)))
    assert torch.autograd.gradcheck(
        lambda x, y: fn(x, y, sigma=sigma, mask=mask, reduction="none"),
        (a, b),
        eps=1e-7,
        atol=1e-6,
        rtol=1e-3,
    )


@pytest.mark.parametrize(("sigma", "atol"), [(5e-3, 1e-9), (0.02, 1e-4)])  # window, node path
def test_joint_histogram_is_a_probability_table_with_parzen_marginals(sigma, atol):
    a, b = _pair("random", (9, 8), seed=5)
    joint = parzen_joint_histogram(a, b, sigma=sigma)
    assert joint.shape == (2, 64, 64) and joint.dtype == torch.float64
    assert torch.allclose(joint.sum((1, 2)), torch.ones(2, dtype=torch.float64), atol=1e-12)
    centres = (np.arange(64) + 0.5) / 64
    w = np.exp(-((a.numpy().reshape(2, -1, 1) - centres) ** 2) / (2 * sigma**2))
    w /= w.sum(-1, keepdims=True)
    assert np.allclose(joint.sum(2).numpy(), w.mean(1), atol=atol)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), swap=st.booleans(), sigma=st.sampled_from(SIGMAS))
def test_symmetric_in_a_and_b(seed, swap, sigma):  # both histogram paths
    a, b = _pair("random" if swap else "structured", (8, 7), seed=seed)
    assert torch.allclose(
        nmi_loss(a, b, sigma=sigma, reduction="none"),
        nmi_loss(b, a, sigma=sigma, reduction="none"),
        atol=1e-12,
    )


def _at_centres(labels: np.ndarray, bins: int = 64) -> torch.Tensor:
    return torch.tensor((labels + 0.5) / bins, dtype=torch.float64)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_invariant_to_bijective_relabelling_of_bins(seed):
    rng = np.random.default_rng(seed)
    la = rng.integers(0, 64, size=(1, 1, 10, 9))
    lb = (la * 7 + rng.integers(0, 3, size=la.shape)) % 64
    perm = rng.permutation(64)
    a, b = _at_centres(la), _at_centres(lb)
    # sigma = 1e-3: the kernel leaks nothing into neighbouring bins, so relabelling is exact.
    ref = nmi_loss(a, b, sigma=1e-3)
    assert torch.allclose(nmi_loss(_at_centres(perm[la]), b, sigma=1e-3), ref, atol=1e-10)
    assert torch.allclose(nmi_loss(a, _at_centres(perm[lb]), sigma=1e-3), ref, atol=1e-10)
    # The paper's sigma leaks ~1e-6 of the mass into neighbouring bins: invariant up to that.
    ref3 = nmi_loss(a, b)
    assert torch.allclose(nmi_loss(_at_centres(perm[la]), b), ref3, atol=2e-4)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sigma=st.sampled_from(SIGMAS))
def test_self_nmi_is_maximal_and_range(seed, sigma):
    a, b = _pair("structured" if seed % 2 else "random", (9, 9), seed=seed)
    self_loss = nmi_loss(a, a, sigma=sigma, reduction="none")
    other = nmi_loss(a, b, sigma=sigma, reduction="none")
    assert bool((self_loss <= other + 1e-12).all())
    assert bool((self_loss >= -0.5 - 1e-12).all()) and bool((other <= 1e-12).all())


def test_self_nmi_of_discrete_image_is_minus_one_half():
    labels = np.random.default_rng(6).integers(0, 64, size=(1, 1, 12, 12))
    a = _at_centres(labels)
    assert nmi_loss(a, a, sigma=1e-3).item() == pytest.approx(-0.5, abs=1e-12)


def test_mask_selects_voxels():
    a, b = _pair("structured", (12, 10), seed=7)
    mask = torch.zeros(2, 1, 12, 10, dtype=torch.bool)
    mask[:, :, 2:9, 1:7] = True
    sub = nmi_loss(a[:, :, 2:9, 1:7], b[:, :, 2:9, 1:7], reduction="none")
    assert torch.allclose(nmi_loss(a, b, mask=mask, reduction="none"), sub, atol=1e-12)
    # Broadcastable mask (one for the batch) and float weights of 1 are equivalent.
    assert torch.allclose(nmi_loss(a, b, mask=mask[:1], reduction="none"), sub, atol=1e-12)
    assert torch.allclose(nmi_loss(a, b, mask=mask.double(), reduction="none"), sub, atol=1e-12)
    # An integer weight counts a voxel that many times.
    w = torch.ones(2, 1, 12, 10, dtype=torch.float64)
    w[:, :, 0, 0] = 2
    a_dup = torch.cat([a.flatten(2), a[:, :, :1, :1].flatten(2)], dim=2).unsqueeze(-1)
    b_dup = torch.cat([b.flatten(2), b[:, :, :1, :1].flatten(2)], dim=2).unsqueeze(-1)
    assert torch.allclose(nmi_loss(a, b, mask=w), nmi_loss(a_dup, b_dup), atol=1e-12)


@pytest.mark.parametrize(
    "case",
    [
        "constant",
        "one-intensity-centre",
        "single-voxel",
        "fully-masked",
        "both-constant",
        "out-of-range",
    ],
)
@pytest.mark.parametrize("fn", [nmi_loss, nmi_loss_dense])
def test_degenerate_inputs_are_finite(case, fn):
    rng = np.random.default_rng(8)
    a = torch.tensor(rng.uniform(0, 1, size=(2, 1, 6, 5)), dtype=torch.float32)
    b = torch.tensor(rng.uniform(0, 1, size=(2, 1, 6, 5)), dtype=torch.float32)
    mask = None
    if case == "constant":
        a = torch.full_like(a, 0.3)
    elif case == "one-intensity-centre":
        a = torch.full_like(a, 10.5 / 64)
    elif case == "single-voxel":
        a, b = a[:, :, :1, :1], b[:, :, :1, :1]
    elif case == "fully-masked":
        mask = torch.zeros(2, 1, 6, 5, dtype=torch.bool)
    elif case == "both-constant":
        a, b = torch.full_like(a, 0.0), torch.full_like(b, 10.5 / 64)
    else:
        a = a * 40 - 20
    a.requires_grad_(True)
    b.requires_grad_(True)
    loss = fn(a, b, mask=mask, reduction="none")
    loss.sum().backward()
    assert bool(torch.isfinite(loss).all())
    assert bool(torch.isfinite(a.grad).all()) and bool(torch.isfinite(b.grad).all())
    if case != "out-of-range":  # no information shared: I = 0
        assert torch.allclose(loss, torch.zeros_like(loss), atol=1e-5)
    if case == "fully-masked":
        assert not bool(a.grad.any()) and not bool(b.grad.any())


def test_reductions_batch_and_module():
    a, b = _pair("structured", (8, 8), seed=9)
    each = torch.stack([nmi_loss(a[i : i + 1], b[i : i + 1]) for i in range(2)])
    assert torch.allclose(nmi_loss(a, b, reduction="none"), each, atol=1e-12)
    assert torch.allclose(nmi_loss(a, b), each.mean(), atol=1e-12)
    assert torch.allclose(nmi_loss(a, b, reduction="sum"), each.sum(), atol=1e-12)
    module = NMILoss(sigma=0.02, reduction="none")
    assert torch.allclose(module(a, b), nmi_loss(a, b, sigma=0.02, reduction="none"))
    assert "bins=64" in repr(module)


def test_entropy_terms_of_independent_uniform_table():
    joint = torch.full((1, 4, 4), 1 / 16, dtype=torch.float64)
    h_a, h_b, h_ab = entropy_terms(joint)
    assert h_a.item() == pytest.approx(math.log(4)) and h_ab.item() == pytest.approx(math.log(16))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bins": 1}, "bins=1"),
        ({"bins": 6.5}, "bins=6.5"),
        ({"sigma": 0.0}, "sigma=0.0"),
        ({"sigma": "wide"}, "sigma='wide'"),
        ({"reduction": "max"}, "reduction must be one of 'mean', 'sum', 'none'; got 'max'"),
        ({"mask": torch.ones(3, 1, 5, 5)}, "cannot be broadcast"),
        ({"mask": -torch.ones(1, 1, 5, 5)}, "non-negative"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    a = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(BenchError, match=message.replace("(", r"\(")):
        nmi_loss(a, a, **kwargs)


def test_bad_shapes_raise():
    a = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(BenchError, match=r"\(2, 1, 5, 5\) and \(2, 1, 5, 4\)"):
        nmi_loss(a, a[..., :4])
    with pytest.raises(BenchError, match="one channel"):
        nmi_loss(a.expand(2, 2, 5, 5), a.expand(2, 2, 5, 5))
    with pytest.raises(BenchError, match="floating"):
        nmi_loss(a.long(), a.long())
    with pytest.raises(BenchError, match="shape"):
        nmi_loss(a[0], a[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sigma", SIGMAS)
def test_cuda_matches_cpu_dense(sigma):
    a, b = _pair("structured", (16, 12, 8), seed=10)
    rv, rga, rgb = _value_and_grads(nmi_loss_dense, a, b, sigma=sigma)
    v, ga, gb = _value_and_grads(nmi_loss, a.float().cuda(), b.float().cuda(), sigma=sigma)
    assert v.device.type == "cuda"
    _assert_matches_dense(v.cpu(), (ga.cpu(), gb.cpu()), rv, (rga, rgb), sigma=sigma)


def test_node_path_converges_to_the_gaussian_estimator_as_nodes_get_denser(monkeypatch):
    """The node path's only approximation is the node spacing: its gradient error shrinks about
    linearly with the spacing (piecewise-constant gradient), its loss error faster."""
    import methods.losses.nmi as nmi_module

    a, b = _pair("structured", (12, 10, 6), seed=11)
    mask = torch.ones(2, 1, 12, 10, 6, dtype=torch.float64)
    mask[:, :, :2] = 0.5
    ref = _value_and_grads(nmi_loss_dense, a, b, sigma=0.02, mask=mask)
    monkeypatch.setattr(nmi_module, "NODE_TABLE_MAX", 1 << 24)
    errors = []
    for spacing in (0.2, 0.05, 0.0125):
        monkeypatch.setattr(nmi_module, "NODE_SPACING", spacing)
        nmi_module.nodes_per_bin.cache_clear()
        assert nodes_per_bin(64, 0.02) > 0
        got = _value_and_grads(nmi_loss, a, b, sigma=0.02, mask=mask)
        errors.append(
            (
                float((got[0] - ref[0]).abs().max()),
                _rel_grad_err(got[1], ref[1]),
                _rel_grad_err(got[2], ref[2]),
            )
        )
    nmi_module.nodes_per_bin.cache_clear()
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert fine[0] < coarse[0] and fine[1] < coarse[1] / 2 and fine[2] < coarse[2] / 2
    assert errors[-1][0] < 1e-7 and max(errors[-1][1:]) < 0.02


def test_node_path_is_used_for_wide_kernels_only_and_bounds_its_table():
    assert nodes_per_bin(64, 3e-3) == 0  # the paper's kernel: exact window path
    assert nodes_per_bin(32, 0.02) == 8  # the quick preset's: nodes sigma / 5 apart
    assert nodes_per_bin(64, 0.05) == 2
    # many bins with a kernel just wide enough: the node table would exceed NODE_TABLE_MAX
    assert window_size(1024, 6e-4) > 6 and nodes_per_bin(1024, 6e-4) == 0


def test_self_nmi_with_the_default_window_is_above_minus_one_half():
    """The Parzen window spreads voxels over neighbouring bins: identical images with intensities
    spread over [0, 1) give about -0.46 at sigma 3e-3, not -0.5 (the docstring's measured value),
    and approach -0.5 as the window narrows."""
    x = torch.linspace(0, 0.999, 64 * 64 * 8, dtype=torch.float64).reshape(1, 1, 64, 64, 8)
    losses = [nmi_loss(x, x, sigma=s).item() for s in (0.02, 3e-3, 1e-3)]
    assert losses[1] == pytest.approx(-0.4628, abs=5e-4)
    assert losses[0] > losses[1] > losses[2] > -0.5


@pytest.fixture
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("sigma", "forward", "backward"),
    [(3e-3, "_window_weights", "_through_softmax"), (0.05, "_node_coordinates", "_node_backward")],
)  # window and node path
def test_loss_runs_single_threaded_and_restores_the_thread_count(
    monkeypatch, two_torch_threads, sigma, forward, backward
):
    import methods.losses.nmi as nmi_module

    seen: dict[str, list[int]] = {"forward": [], "backward": []}

    def spy(name, fn):
        def wrapped(*args, **kw):
            seen[name].append(torch.get_num_threads())
            return fn(*args, **kw)

        return wrapped

    monkeypatch.setattr(nmi_module, forward, spy("forward", getattr(nmi_module, forward)))
    monkeypatch.setattr(nmi_module, backward, spy("backward", getattr(nmi_module, backward)))
    a, b = _pair("structured", (9, 8), seed=12)
    v, ga, gb = _value_and_grads(nmi_loss, a, b, sigma=sigma)
    assert torch.get_num_threads() == 2
    assert seen["forward"] and set(seen["forward"]) == {nmi_module.LOSS_THREADS}
    assert seen["backward"] and set(seen["backward"]) == {nmi_module.LOSS_THREADS}
    # the thread setting does not change the numbers
    rv, rga, rgb = _value_and_grads(nmi_loss_dense, a, b, sigma=sigma)
    _assert_matches_dense(v, (ga, gb), rv, (rga, rgb), sigma=sigma)


@pytest.mark.parametrize(
    ("sigma", "where"),
    [(3e-3, "_window_weights"), (3e-3, "_through_softmax"), (0.05, "_node_backward")],
)
def test_thread_count_is_restored_when_the_loss_raises(
    monkeypatch, two_torch_threads, sigma, where
):
    import methods.losses.nmi as nmi_module

    def fail(*args, **kw):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(nmi_module, where, fail)
    a, b = _pair("random", (6, 5), seed=13)
    a.requires_grad_(True)
    with pytest.raises(RuntimeError, match="injected failure"):
        nmi_loss(a, b, sigma=sigma).backward()
    assert torch.get_num_threads() == 2


def test_loss_threads_context_restores_and_ignores_other_devices(two_torch_threads):
    from methods.losses.nmi import loss_threads

    with loss_threads(torch.device("cpu"), 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError), loss_threads(torch.device("cpu"), 1):
        raise ValueError
    assert torch.get_num_threads() == 2
    with loss_threads(torch.device("meta"), 1):  # not CPU work: untouched
        assert torch.get_num_threads() == 2


def test_loss_threads_default_is_read_at_call_time(monkeypatch, two_torch_threads):
    import methods.losses.nmi as nmi_module

    monkeypatch.setattr(nmi_module, "LOSS_THREADS", 3)
    with nmi_module.loss_threads(torch.device("cpu")):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2
