"""The ``ants-syn`` (antspyx) and ``greedy`` (picsl-greedy) adapters: their fields are converted
exactly to the harness's convention (checked against each tool's own resampling of the moving
image on a rotated, flipped, anisotropic grid), point the right way for known translations (3D and
2D), keep the tools' console output in the log, and validate their settings. Greedy picks its
metric and stages from the dataset's contrast (an explicit ``--set`` wins), and its multi-contrast
recipe (rigid NMI, then stationary-velocity NMI, composed) recovers a known rigid + smooth motion
between images of inverted contrast."""

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
from benchmark.data.demo.deform import GaussianBumps, Rigid, compose_sum, invert_map
from benchmark.data.demo.phantom import rotation_matrix
from methods.ants_syn import AntsSyN, registration_args
from methods.base import RegistrationFailed, RunContext
from methods.conventional import captured_output
from methods.greedy import Greedy, greedy_command, usable_levels
from methods.registry import get_method, setting_problems

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
        ("greedy", {"metric": "cc"}, "metric must be one of 'ncc', 'nmi', 'mi'; got 'cc'"),
        ("greedy", {"stationary_velocity": "yes"}, "stationary_velocity must be true or false"),
        ("greedy", {"rigid_mask": None}, "rigid_mask must be true or false"),
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


# ----------------------------------------------------------------- Greedy's settings by contrast


def _greedy_params(contrast=None, *, seed=0, **overrides):
    """Greedy's parameters for a quick run on data of ``contrast`` with ``--set greedy.KEY``."""
    context = RunContext(
        preset="quick",
        seed=seed,
        contrast=contrast,
        overrides={f"greedy.{k}": v for k, v in overrides.items()},
    )
    return Greedy.configure(context)


@pytest.mark.parametrize(
    ("contrast", "metric", "staged", "who"),
    [
        (None, "ncc", False, "preset"),
        ("same", "ncc", False, "contrast (same)"),
        ("different", "nmi", True, "contrast (different)"),
    ],
)
def test_the_contrast_picks_greedys_metric_and_stages(contrast, metric, staged, who):
    params = _greedy_params(contrast)
    assert params["metric"] == metric and params["contrast"] == contrast
    assert params["rigid_init"] is staged and params["stationary_velocity"] is staged
    settings = ("metric", "rigid_init", "stationary_velocity")
    assert params["chosen_by"] == dict.fromkeys(settings, who)
    assert params["preset"] == "quick" and params["rigid_mask"] is False
    # what configure records is what a worker builds the method from
    assert Greedy(**params).params == params


def test_an_explicit_set_wins_over_the_contrast():
    params = _greedy_params("different", metric="ncc", stationary_velocity=False)
    assert (params["metric"], params["rigid_init"], params["stationary_velocity"]) == (
        "ncc", True, False
    )
    assert params["chosen_by"] == {
        "metric": "user (--set greedy.metric=ncc)",
        "rigid_init": "contrast (different)",
        "stationary_velocity": "user (--set greedy.stationary_velocity=false)",
    }
    same = _greedy_params("same", metric="mi", rigid_init=True)
    assert (same["metric"], same["rigid_init"], same["stationary_velocity"]) == ("mi", True, False)
    # the contrast and the record of who chose are the harness's, not --set keys
    keys = Greedy.setting_keys()
    assert "greedy.rigid_init" in keys and "greedy.rigid_mask" in keys
    assert "greedy.contrast" not in keys and "greedy.chosen_by" not in keys
    bad = RunContext(overrides={"greedy.rigid_init": 1})
    assert any("rigid_init must be true or false; got 1" in p for p in setting_problems(bad))
    with pytest.raises(BenchError, match="chosen_by must map metric, rigid_init"):
        Greedy(chosen_by={"metric": "me"})
    with pytest.raises(BenchError, match="contrast must be one of 'same', 'different'"):
        Greedy(contrast="mixed")


def _shape_pair(shape) -> RegistrationPair:
    img = np.zeros(shape, np.float32)
    return RegistrationPair(Image(img), Image(img.copy()), case="c", pair="p")


def test_greedy_command_lines_for_each_setting():
    pair = _shape_pair((64, 64, 32))
    # one contrast: the single deformable stage of before this choice (same numbers)
    (deformable, written), (reslice, outputs) = Greedy(
        **_greedy_params("same", threads=2)
    ).stages(pair, mask=True)
    assert deformable == (
        "-d 3 -i fixed moving -m NCC 2x2x2 -n 100x50x20 -s 1.732vox 0.7071vox -wp 0 -seed 1 "
        "-o warp -gm mask -threads 2"
    )
    assert reslice == "-rf fixed -rm moving warped -r warp"  # the warp is the field itself
    assert written == ("warp",) and outputs == ("warped",)
    # different contrasts: rigid NMI from the headers on the whole image, then -it rigid -sv
    stages = Greedy(**_greedy_params("different", threads=2, seed=4)).stages(pair, mask=True)
    assert [c for c, _ in stages] == [
        "-d 3 -a -dof 6 -ia-identity -i fixed moving -m NMI -n 100x50x10 -seed 5 -o rigid "
        "-threads 2",
        "-d 3 -i fixed moving -it rigid -m NMI -n 100x50x20 -s 1.732vox 0.7071vox -sv -wp 0 "
        "-seed 5 -o warp -gm mask -threads 2",
        "-rf fixed -rm moving warped -r warp rigid -rc field",
    ]
    assert [w for _, w in stages] == [("rigid",), ("warp",), ("warped", "field")]
    # the rigid stage with the mask, MI, a paper preset on a 10-slice volume (two levels)
    masked_params = _greedy_params("different", rigid_mask=True, metric="mi")
    masked = Greedy(**{**masked_params, "preset": "paper"})
    rigid, deformable = (c for c, _ in masked.stages(_shape_pair((64, 64, 10)), mask=True)[:2])
    assert rigid == (
        "-d 3 -a -dof 6 -ia-identity -i fixed moving -m MI -n 50x10 -seed 1 -o rigid -gm mask"
    )
    assert "-m MI -n 100x50 " in deformable and "-it rigid" in deformable
    # 2D: Greedy's -dof 6 is rigid in 2D too; without a mask no -gm anywhere
    flat = Greedy(**_greedy_params("different")).stages(_shape_pair((48, 40)), mask=False)
    assert flat[0][0].startswith("-d 2 -a -dof 6 ") and "-m NCC" not in flat[1][0]
    assert not any("-gm" in c for c, _ in flat)


#: The multi-contrast pair: grid, spacing (mm) and a rotated, flipped RAS affine.
MC_SHAPE = (48, 44, 28)
MC_SPACING = (1.5, 1.5, 2.0)
MC_AFFINE = np.array(
    [[0.0, -1.5, 0.0, 30.0], [-1.5, 0.0, 0.0, 12.0], [0.0, 0.0, 2.0, -7.0], [0.0, 0.0, 0.0, 1.0]]
)


def _object_and_blobs(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoidal object (soft edge) and a smooth texture of 40 Gaussian blobs, at
    ``points`` (mm)."""
    extent = np.array(MC_SHAPE) * np.array(MC_SPACING)
    rel = (points - (extent / 2).reshape(3, 1, 1, 1)) / (0.38 * extent).reshape(3, 1, 1, 1)
    inside = 1.0 / (1.0 + np.exp((np.sqrt((rel**2).sum(0)) - 1.0) / 0.05))
    rng = np.random.default_rng(3)
    texture = np.zeros(points.shape[1:])
    for _ in range(40):
        c, s = rng.uniform(0.2, 0.8, 3) * extent, rng.uniform(4.0, 7.0, 3)
        r2 = sum(((points[d] - c[d]) / s[d]) ** 2 for d in range(3))
        texture += rng.uniform(0.5, 1.0) * np.exp(-0.5 * r2)
    return inside, texture


@pytest.fixture(scope="module")
def multi_contrast_pair() -> tuple[RegistrationPair, np.ndarray, np.ndarray]:
    """Fixed: an object with a blob texture; moving: the texture's contrast inverted inside the
    object (dark background in both), moved by a rigid motion (4 degrees about the centre,
    (2, -1.5, 1) mm) plus three smooth bumps of 1.5 mm. Returns the pair, the true field (mm,
    fixed -> moving, by fixed-point inversion of the analytic motion) and the interior
    foreground where it is scored."""
    points = np.indices(MC_SHAPE, dtype=np.float64) * np.reshape(MC_SPACING, (3, 1, 1, 1))
    extent = np.array(MC_SHAPE) * np.array(MC_SPACING)
    rotation = rotation_matrix(np.array([0.3, -0.5, 1.0]), np.deg2rad(4.0))
    rigid = Rigid(rotation, np.array([2.0, -1.5, 1.0]), extent / 2)
    bumps = GaussianBumps.random(
        np.random.default_rng(1), extent, bumps=3, amplitude_mm=1.5, sigma_mm=(10.0, 14.0)
    )
    motion = compose_sum(rigid, bumps)
    inside, texture = _object_and_blobs(points)
    fixed = inside * (0.3 + texture)
    inside_m, texture_m = _object_and_blobs(points + motion(points))
    moving = inside_m * (1.6 - texture_m)  # bright blobs turn dark
    truth = invert_map(motion, points, MC_SPACING, tol_voxels=0.01)
    scored = fixed > 0.25 * fixed.max()
    interior = np.zeros_like(scored)
    interior[4:-4, 4:-4, 3:-3] = True
    pair = RegistrationPair(
        Image(fixed.astype(np.float32), MC_AFFINE), Image(moving.astype(np.float32), MC_AFFINE),
        case="c", pair="multi-contrast",
    )
    return pair, truth, scored & interior


def test_the_multi_contrast_recipe_recovers_a_rigid_and_smooth_motion(multi_contrast_pair):
    """Greedy's different-contrast setup (rigid NMI, then stationary-velocity NMI from it) returns
    the composition of both stages: within 0.5 voxel of the true motion (90th percentile) where
    local NCC fails and the deformable stage alone does not get the rigid part; and the composed
    field is Greedy's own transform (its reslice of the moving image through both stages)."""
    pair, truth, scored = multi_contrast_pair
    voxels = np.reshape(MC_SPACING, (3, 1, 1, 1))

    def p90_error(params):
        result = get_method("greedy", **params).register(pair)
        err = np.linalg.norm((result.displacement - truth) / voxels, axis=0)[scored]
        return float(np.percentile(err, 90)), result

    before = float(np.percentile(np.linalg.norm(truth / voxels, axis=0)[scored], 90))
    assert before > 2.0
    error, result = p90_error({**_greedy_params("different"), "threads": 1})
    assert error < 0.5, error
    assert len(result.meta["rigid_matrix_ras"]) == 4
    u = result.displacement / voxels
    coords = np.indices(MC_SHAPE, dtype=np.float64) + u
    ours = ndimage.map_coordinates(
        percentile_normalize(pair.moving.array), coords, order=1, mode="constant"
    )
    inside = np.all((coords >= 0) & (coords <= np.reshape(MC_SHAPE, (3, 1, 1, 1)) - 1), axis=0)
    np.testing.assert_allclose(ours[inside], result.warped[inside], atol=1e-4)
    # the same pair with one contrast's setting, and without the rigid stage
    assert p90_error({**_greedy_params("same"), "threads": 1})[0] > 2.0
    assert p90_error({**_greedy_params("different", rigid_init=False), "threads": 1})[0] > 1.0


def test_greedy_composes_the_rigid_stage_after_the_warp(multi_contrast_pair):
    """Independent reference for the composed field: for the rigid matrix ``A`` (Greedy's RAS
    physical matrix) and the warp ``w`` (LPS mm) of the deformable stage started from it, the
    reslice stage must give ``A(x + w(x)) - x`` at every fixed voxel ``x`` (the deformable stage
    ran on the moving image resampled through ``A``), computed here in NumPy; ``A`` applied
    before the warp would give another field on this pair."""
    _tool("greedy")
    import io

    import picsl_greedy
    import SimpleITK as sitk

    from methods.elastix.conversion import itk_geometry
    from methods.greedy import _sitk_image

    pair = multi_contrast_pair[0]
    method = Greedy(**{**_greedy_params("different"), "threads": 1})
    geom = itk_geometry(pair.fixed.affine, 3)
    images = {
        role: _sitk_image(percentile_normalize(image.array).astype(np.float32), geom, sitk)
        for role, image in (("fixed", pair.fixed), ("moving", pair.moving))
    }
    g, log = picsl_greedy.Greedy3D(), io.StringIO()
    with captured_output():
        for command, written in method.stages(pair, mask=False):
            g.execute(command, out=log, err=log, **images, **dict.fromkeys(written))
            images = {}
    warp_image, matrix = g["warp"], np.asarray(g["rigid"], dtype=np.float64)
    warp, field = (sitk.GetArrayFromImage(im) for im in (warp_image, g["field"]))
    index = np.indices(pair.fixed.shape).reshape(3, -1).T[::7]
    points = np.array([warp_image.TransformIndexToPhysicalPoint(tuple(map(int, i))) for i in index])
    lps_to_ras = np.array([-1.0, -1.0, 1.0])

    def rigid(p):  # Greedy's RAS matrix on LPS points
        return ((p * lps_to_ras) @ matrix[:3, :3].T + matrix[:3, 3]) * lps_to_ras

    w = warp[index[:, 2], index[:, 1], index[:, 0]]
    expected = rigid(points + w) - points
    np.testing.assert_allclose(field[index[:, 2], index[:, 1], index[:, 0]], expected, atol=1e-6)
    assert np.abs(rigid(points) + w - points - expected).max() > 0.05
