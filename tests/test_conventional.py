"""The ``ants-syn`` (antspyx) and ``greedy`` (picsl-greedy) adapters: their fields are converted
exactly to the harness's convention (checked against each tool's own resampling of the moving
image on a rotated, flipped, anisotropic grid), point the right way for known translations (3D and
2D), keep the tools' console output in the log, and validate their settings."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import ndimage
from test_method_contract import blob_image, foreground_interior

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.images import Image
from benchmark.core.normalize import percentile_normalize
from benchmark.core.pairs import RegistrationPair
from methods.ants_syn import AntsSyN, registration_args
from methods.base import RegistrationFailed
from methods.greedy import Greedy, greedy_command, usable_levels
from methods.registry import get_method

#: As in test_elastix: axes 0 and 1 swapped and flipped, spacing (1.5, 1.2, 4.0) mm, off-centre.
ROTATED = np.array(
    [[0.0, -1.2, 0.0, 30.0], [-1.5, 0.0, 0.0, 12.0], [0.0, 0.0, 4.0, -7.0], [0.0, 0.0, 0.0, 1.0]]
)
SPACING = (1.5, 1.2, 4.0)

TOOLS = {
    "ants-syn": (AntsSyN, {"preset": "quick", "threads": 1}),
    "greedy": (Greedy, {"preset": "quick", "threads": 1, "metric": "nmi"}),
}


def _tool(name: str):
    cls, params = TOOLS[name]
    ok, why = cls.availability()
    if not ok:
        pytest.skip(f"{name}: {why}")
    return get_method(name, **params)


def _vox(u_mm: np.ndarray, spacing) -> np.ndarray:
    return u_mm / np.asarray(spacing).reshape((-1,) + (1,) * (u_mm.ndim - 1))


@pytest.fixture(scope="module")
def translated_pair() -> RegistrationPair:
    """moving = fixed shifted by +3 voxels along axis 0 and +1 slice along axis 2."""
    shape = (40, 40, 10)
    fixed = blob_image(shape, n_blobs=40, seed=3)
    moving = blob_image(shape, shift_vox=(3.0, 0.0, 1.0), n_blobs=40, seed=3)
    return RegistrationPair(Image(fixed, ROTATED), Image(moving, ROTATED), case="c", pair="t")


@pytest.mark.parametrize("name", list(TOOLS))
def test_field_is_the_tools_own_transform_on_a_rotated_anisotropic_grid(
    name, translated_pair, capfd
):
    """Independent reference: each tool resamples the (normalised) moving image itself with
    linear interpolation (``RegistrationResult.warped``); sampling it at ``x + u / spacing`` with
    scipy must give the same image wherever the sample lies inside the volume. A wrong direction,
    unit, axis order or LPS/RAS flip would break this by whole intensity steps."""
    pair = translated_pair
    result = _tool(name).register(pair)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # the tools' output goes to the log only
    assert result.log and result.runtime_s > 0
    u = _vox(result.displacement, SPACING)
    coords = np.indices(pair.fixed.shape, dtype=np.float64) + u
    ours = ndimage.map_coordinates(
        percentile_normalize(pair.moving.array), coords, order=1, mode="constant"
    )
    limits = np.reshape(pair.fixed.shape, (3, 1, 1, 1)) - 1
    inside = np.all((coords >= 0) & (coords <= limits), axis=0)
    assert inside.mean() > 0.7
    np.testing.assert_allclose(ours[inside], result.warped[inside], atol=1e-4)
    # and the translation is found: right sign along each axis, most of its size
    fg = foreground_interior(pair.fixed.array)
    fg[:, :, -2:] = False  # the last slices sample outside the moving volume
    median = np.median(u[:, fg], axis=1)
    assert 2.0 < median[0] < 3.6 and abs(median[1]) < 0.5 and 0.5 < median[2] < 1.5, median
    warped = ndimage.map_coordinates(pair.moving.array, coords, order=3, mode="nearest")
    before = np.abs(pair.moving.array - pair.fixed.array)[fg].mean()
    assert np.abs(warped - pair.fixed.array)[fg].mean() < 0.3 * before


@pytest.mark.parametrize("name", list(TOOLS))
def test_2d_translation_sign(name):
    shape, aff = (48, 40), np.diag([-1.0, 1.5, 1.0, 1.0])
    fixed = blob_image(shape, n_blobs=25, seed=5)
    moving = blob_image(shape, shift_vox=(0.0, -2.0), n_blobs=25, seed=5)
    pair = RegistrationPair(Image(fixed, aff), Image(moving, aff), case="c", pair="2d")
    result = _tool(name).register(pair)
    assert result.displacement.shape == (2, *shape)
    u = _vox(result.displacement, (1.0, 1.5))
    median = np.median(u[:, foreground_interior(fixed)], axis=1)
    np.testing.assert_allclose(median, (0.0, -2.0), atol=0.5)


@pytest.mark.parametrize("name", list(TOOLS))
def test_an_empty_mask_fails_the_pair(name):
    img = blob_image((24, 24, 8), n_blobs=5)
    pair = RegistrationPair(
        Image(img), Image(img.copy()), mask=np.zeros(img.shape, bool), case="c", pair="m"
    )
    with pytest.raises(RegistrationFailed, match=f"{name}, pair c/m: the fixed mask is empty"):
        _tool(name).register(pair)


def test_ants_arguments_follow_the_preset_with_smoothing_in_mm():
    args = registration_args(
        "F", "M", prefix="/t/p_", ndim=3, spacing=(1.5, 1.5, 8.0), preset="paper", mask="K"
    )
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert opts["--transform"] == "SyN[0.1,3.0,0.0]"
    assert opts["--metric"] == "Mattes[F,M,1,32]"
    assert opts["--convergence"] == "[100x70x50x20,1e-06,10]"
    assert opts["--shrink-factors"] == "8x4x2x1"
    # 3, 2, 1, 0 voxels of the finest (1.5 mm) axis, so the 8 mm axis is blurred less
    assert opts["--smoothing-sigmas"] == "4.5x3x1.5x0mm"
    assert opts["--masks"] == "[K,NULL]" and "--initial-moving-transform" not in opts
    quick = registration_args(
        "F", "M", prefix="p", ndim=2, spacing=(1, 1), preset="quick", iterations=[5, 4, 3]
    )
    assert "[5x4x3,1e-06,10]" in quick and "2" == quick[quick.index("--dimensionality") + 1]
    with pytest.raises(BenchError, match="must have 3 levels"):
        registration_args(
            "F", "M", prefix="p", ndim=2, spacing=(1, 1), preset="quick", iterations=[1]
        )


def test_greedy_command_and_levels():
    cmd = greedy_command(ndim=3, preset="paper", metric="nmi", shape=(128, 128, 64), seed=0)
    assert "-m NMI" in cmd and "-n 200x100x50" in cmd and "-wp 0" in cmd and "-seed 1" in cmd
    ncc = greedy_command(ndim=2, preset="quick", metric="ncc", ncc_radius=3, mask=True, threads=2)
    assert "-m NCC 3x3" in ncc and "-gm mask" in ncc and "-threads 2" in ncc
    # Greedy's Gaussian filters need >= 4 voxels per axis at the coarsest level
    assert [usable_levels(s) for s in [(128, 128, 10), (64, 64, 64), (5, 5), (3, 90)]] == [
        2,
        5,
        1,
        1,
    ]
    thin = greedy_command(ndim=3, preset="quick", metric="nmi", shape=(128, 128, 10))
    assert "-n 50x20 " in thin


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("ants-syn", {"preset": "fast"}, "preset must be one of 'paper', 'quick'; got 'fast'"),
        ("ants-syn", {"iterations": [10, 5]}, "must have 4 levels for preset 'paper'"),
        ("ants-syn", {"iterations": [10, -1, 2, 1]}, "iterations must be a list of integers"),
        ("ants-syn", {"threads": 0}, "threads must be an integer >= 1"),
        ("greedy", {"metric": "mi"}, "metric must be one of 'ncc', 'nmi'; got 'mi'"),
        ("greedy", {"ncc_radius": 0}, "ncc_radius must be an integer >= 1"),
        ("greedy", {"seed": -2}, "seed must be an integer >= 0"),
    ],
)
def test_settings_are_validated(name, kwargs, message):
    with pytest.raises(BenchError, match=message):
        get_method(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "module", "hint"),
    [
        ("ants-syn", "ants", "pip install antspyx"),
        ("greedy", "picsl_greedy", "pip install picsl-greedy"),
    ],
)
def test_bench_methods_says_how_to_install_a_missing_tool(name, module, hint, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    assert main(["methods"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(name + " "))
    assert f"no: not installed: {hint}" in line
    with pytest.raises(BenchError, match=f"not installed: {hint}"):
        get_method(name).register(
            RegistrationPair(Image(np.zeros((8, 8))), Image(np.zeros((8, 8))), case="c", pair="p")
        )


def test_greedy_identical_images_give_the_zero_field_and_nan_fails_the_pair(monkeypatch):
    method = _tool("greedy")
    assert get_method("greedy").params["metric"] == "ncc"  # the default; NMI is NaN here
    img = blob_image((24, 24, 8), n_blobs=8)
    same = RegistrationPair(Image(img), Image(img.copy()), case="c", pair="same")
    result = method.register(same)
    assert not result.displacement.any() and result.meta == {"identical_images": True}
    # a NaN from Greedy (as its NMI gives for identical images) is a failed pair, not a number
    import SimpleITK as sitk

    real = sitk.GetArrayFromImage
    monkeypatch.setattr(sitk, "GetArrayFromImage", lambda im: real(im) * np.nan)
    moved = RegistrationPair(Image(img), Image(np.roll(img, 1, axis=0)), case="c", pair="nan")
    with pytest.raises(RegistrationFailed, match="pair c/nan: Greedy returned .* NaN"):
        method.register(moved)


def test_ants_mask_covering_the_image_changes_nothing():
    """antsRegistration reads the mask as an unsigned char image: a mask over the whole image must
    give the field of no mask (a float32 mask was read as scrambled bytes: half the voxels on)."""
    fixed = blob_image((48, 44), n_blobs=6, seed=5)
    moving = blob_image((48, 44), n_blobs=6, seed=5, shift_vox=(1.5, -1.0))
    full = np.ones(fixed.shape, bool)
    plain = RegistrationPair(Image(fixed), Image(moving), case="c", pair="plain")
    masked = RegistrationPair(Image(fixed), Image(moving), mask=full, case="c", pair="masked")
    u_plain = _tool("ants-syn").register(plain).displacement
    u_masked = _tool("ants-syn").register(masked).displacement
    assert np.abs(u_plain).max() > 0.5
    np.testing.assert_allclose(u_masked, u_plain, atol=1e-4)


def test_ants_failure_is_a_failed_pair_with_itks_reason():
    blank = np.zeros((12, 12, 6), np.float32)
    pair = RegistrationPair(Image(blank), Image(blank.copy()), case="c", pair="blank")
    with pytest.raises(
        RegistrationFailed, match="ants-syn failed on pair c/blank: Joint PDF summed to zero"
    ) as info:
        _tool("ants-syn").register(pair)
    assert "MattesMutualInformation" in info.value.log
