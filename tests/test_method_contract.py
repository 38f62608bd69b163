"""The contract every registered method must pass, and its run over the built-in methods.

:func:`check_method_contract` is reusable: a plug-in author (or the learning methods' tests, after
``fit``) calls it on a ready method instance. It checks the interface (name, description,
JSON-able params, availability), the result (``float32``, shape ``(ndim, *spatial)``, finite, input
arrays untouched), that a no-motion pair gives an almost zero field (max ``|u|`` below half a voxel)
and that a known translation of 2 voxels along in-plane axis 0 is recovered within one voxel in
the interior of the foreground.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.core.images import Image
from benchmark.core.pairs import RegistrationPair
from methods.base import Method, RegistrationResult
from methods.registry import available_methods, get_method

#: Grid of the contract pairs: ACDC-like, anisotropic (in-plane 1.5 mm, slices 8 mm apart).
CONTRACT_SHAPE = (48, 48, 8)
CONTRACT_SPACING = (1.5, 1.5, 8.0)
#: The known translation in voxels (moving = fixed shifted by +2 voxels along array axis 0).
CONTRACT_SHIFT_VOX = (2.0, 0.0, 0.0)

#: Settings that keep a method's contract run short (registry name -> parameters).
CONTRACT_PARAMS: dict[str, dict] = {
    "elastix": {"preset": "quick", "threads": 1},
    "ants-syn": {"preset": "quick", "threads": 1},
    "greedy": {"preset": "quick", "threads": 1},
}


def blob_image(
    shape: tuple[int, ...],
    *,
    shift_vox: tuple[float, ...] | None = None,
    seed: int = 0,
    n_blobs: int = 10,
) -> np.ndarray:
    """A smooth image: a sum of anisotropic Gaussian blobs, evaluated analytically.

    ``shift_vox`` translates the pattern: the result is ``f(x - shift)``, so that with
    ``fixed = f`` and ``moving = f(x - t)`` the true field is ``u = +t`` (``moving(x + t) = f(x)``).
    Blob centres stay at least 10 voxels in-plane from the border so the shifted pattern is whole.
    """
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    shift = np.zeros(ndim) if shift_vox is None else np.asarray(shift_vox, dtype=np.float64)
    grid = np.indices(shape, dtype=np.float64)
    out = np.zeros(shape, dtype=np.float64)
    for _ in range(n_blobs):
        centre = np.array(
            [rng.uniform(10, s - 11) if s > 22 else rng.uniform(1, s - 2) for s in shape]
        )
        sigma = np.array(
            [rng.uniform(2.5, 4.5) if s > 22 else rng.uniform(1.5, 2.5) for s in shape]
        )
        r2 = sum(((grid[d] - shift[d] - centre[d]) / sigma[d]) ** 2 for d in range(ndim))
        out += rng.uniform(0.5, 1.0) * np.exp(-0.5 * r2)
    return (100.0 * out).astype(np.float32)


def contract_affine(spacing: tuple[float, ...] = CONTRACT_SPACING) -> np.ndarray:
    """A non-trivial RAS affine: flipped first axis, the given spacing, an off-centre origin."""
    aff = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    aff[:3, 3] = (40.0, -25.0, 12.0)
    return aff


def contract_pairs(*, seed: int = 0) -> dict[str, RegistrationPair]:
    """The contract's synthetic pairs: ``no-motion`` (identical images) and ``translation``."""
    aff = contract_affine()
    fixed = blob_image(CONTRACT_SHAPE, seed=seed, n_blobs=30)
    moving = blob_image(CONTRACT_SHAPE, shift_vox=CONTRACT_SHIFT_VOX, seed=seed, n_blobs=30)
    return {
        "no-motion": RegistrationPair(
            Image(fixed, aff), Image(fixed.copy(), aff), dataset="contract", case="c0", pair="same"
        ),
        "translation": RegistrationPair(
            Image(fixed, aff), Image(moving, aff), dataset="contract", case="c0", pair="shift"
        ),
    }


def _check_interface(method: Method) -> None:
    cls = type(method)
    assert isinstance(method, Method), f"{cls.__name__} is not a methods.base.Method"
    assert isinstance(cls.name, str) and cls.name, "Method.name must be a non-empty string"
    assert isinstance(cls.description, str) and cls.description.strip(), "empty description"
    assert "\n" not in cls.description.strip(), "description must be one line"
    assert isinstance(cls.learns, bool), "Method.learns must be a bool"
    json.dumps(method.params, allow_nan=False)  # params are recorded in run.json
    ok, reason = cls.availability()
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok, f"method {cls.name!r} is not available: {reason}"


def _register_checked(method: Method, pair: RegistrationPair) -> RegistrationResult:
    before = (pair.fixed.array.copy(), pair.moving.array.copy())
    result = method.register(pair)
    name = type(method).name
    assert isinstance(result, RegistrationResult), (
        f"{name}: register() must return RegistrationResult"
    )
    u = result.displacement
    assert u.dtype == np.float32, f"{name}: displacement dtype {u.dtype}, expected float32"
    expected = (pair.ndim, *pair.fixed.shape)
    assert u.shape == expected, f"{name}: displacement shape {u.shape}, expected {expected}"
    assert np.isfinite(u).all(), f"{name}: displacement has NaN or infinite values"
    assert result.runtime_s >= 0.0
    assert np.array_equal(pair.fixed.array, before[0]), f"{name}: register() modified fixed"
    assert np.array_equal(pair.moving.array, before[1]), f"{name}: register() modified moving"
    return result


def _voxels(u_mm: np.ndarray, spacing) -> np.ndarray:
    return u_mm / np.asarray(spacing, dtype=np.float64).reshape((-1,) + (1,) * (u_mm.ndim - 1))


def foreground_interior(image: np.ndarray, *, margin: int = 6, level: float = 0.25) -> np.ndarray:
    """Voxels brighter than ``level`` x max, at least ``margin`` voxels from the in-plane border
    (and not on the first or last slice of a 3D image)."""
    mask = image > level * image.max()
    inner = np.zeros_like(mask)
    sl = [slice(margin, s - margin) for s in image.shape[:2]]
    if image.ndim == 3:
        sl.append(slice(1, image.shape[2] - 1))
    inner[tuple(sl)] = True
    return mask & inner


def check_method_contract(
    method: Method, *, translation: bool = True, pairs: dict[str, RegistrationPair] | None = None
) -> dict[str, float]:
    """Assert that ``method`` (ready to register: fitted if it learns) obeys the method contract.

    Parameters
    ----------
    method : Method
        The instance to check.
    translation : bool
        Also require that the 2-voxel translation is recovered (False only for methods that do not
        register by design, such as ``identity``).
    pairs : dict, optional
        Pairs as returned by :func:`contract_pairs` (default: ``contract_pairs()``).

    Returns
    -------
    dict
        ``max_abs_vox_no_motion`` and ``p90_error_vox_translation`` (for reports).

    Raises
    ------
    AssertionError
        Naming the method and the violated rule.
    """
    _check_interface(method)
    name = type(method).name
    pairs = contract_pairs() if pairs is None else pairs
    spacing = CONTRACT_SPACING
    out: dict[str, float] = {}

    same = pairs["no-motion"]
    u = _voxels(_register_checked(method, same).displacement, same.spacing)
    out["max_abs_vox_no_motion"] = float(np.abs(u).max())
    assert out["max_abs_vox_no_motion"] < 0.5, (
        f"{name}: identical images must give |u| < 0.5 voxel, got max {out['max_abs_vox_no_motion']:.3f}"
    )

    if translation:
        pair = pairs["translation"]
        u = _voxels(_register_checked(method, pair).displacement, spacing)
        where = foreground_interior(pair.fixed.array)
        truth = np.asarray(CONTRACT_SHIFT_VOX).reshape(-1, 1)
        err = np.sqrt(((u[:, where] - truth) ** 2).sum(axis=0))
        out["p90_error_vox_translation"] = float(np.percentile(err, 90))
        assert out["p90_error_vox_translation"] < 1.0, (
            f"{name}: a translation of {CONTRACT_SHIFT_VOX} voxels must be recovered within one voxel "
            f"in the foreground interior; 90th percentile error {out['p90_error_vox_translation']:.3f} "
            f"voxels, median u = {np.median(u[:, where], axis=1).round(3).tolist()}"
        )
    return out


def _contract_methods() -> list:
    """Every registered method that does not learn; one that cannot run here is skipped with
    the reason (e.g. its optional package is not installed)."""
    out = []
    for name, cls in available_methods().items():
        if cls.learns:
            continue
        ok, why = cls.availability()
        marks = () if ok else (pytest.mark.skip(reason=f"{name} is not available: {why}"),)
        out.append(pytest.param(name, marks=marks))
    return out


# ----------------------------------------------------------------------------- tests


def test_contract_pairs_have_the_stated_translation():
    """The synthetic translation is what the contract claims: moving(x + t) == fixed(x)."""
    pairs = contract_pairs()
    fixed = pairs["translation"].fixed.array
    moving = pairs["translation"].moving.array
    t = int(CONTRACT_SHIFT_VOX[0])
    np.testing.assert_allclose(moving[t:], fixed[:-t], rtol=1e-5, atol=1e-3)
    assert np.abs(moving - fixed).max() > 0.1 * fixed.max()
    assert foreground_interior(fixed).sum() > 500


@pytest.mark.parametrize("name", _contract_methods())
def test_builtin_method_passes_contract(name):
    method = get_method(name, **CONTRACT_PARAMS.get(name, {}))
    check_method_contract(method, translation=name != "identity")


def test_contract_rejects_a_method_that_does_not_move():
    """The translation rule can fail: the zero field of identity does not pass it."""
    with pytest.raises(AssertionError, match="within one voxel"):
        check_method_contract(get_method("identity"), translation=True)


class _Shifted(Method):
    """A wrong method for the contract's own test: returns the translation with the wrong sign."""

    name = "test-wrong-sign"
    description = "returns -t"

    def register(self, pair):
        u = np.zeros((pair.ndim, *pair.fixed.shape), dtype=np.float32)
        if not np.array_equal(pair.fixed.array, pair.moving.array):
            u[0] = -CONTRACT_SHIFT_VOX[0] * pair.spacing[0]
        return RegistrationResult(displacement=u)


class _Exact(_Shifted):
    name = "test-exact"

    def register(self, pair):
        result = super().register(pair)
        return RegistrationResult(displacement=-result.displacement)


def test_contract_detects_a_sign_error_and_accepts_the_exact_field():
    with pytest.raises(AssertionError, match="within one voxel"):
        check_method_contract(_Shifted())
    stats = check_method_contract(_Exact())
    assert stats["p90_error_vox_translation"] < 1e-5


class _Noisy(_Shifted):
    name = "test-noisy"

    def register(self, pair):
        u = np.full((pair.ndim, *pair.fixed.shape), 0.6 * pair.spacing[0], dtype=np.float32)
        return RegistrationResult(displacement=u)


def test_contract_rejects_motion_on_identical_images():
    with pytest.raises(AssertionError, match="identical images"):
        check_method_contract(_Noisy())
