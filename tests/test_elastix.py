"""The elastix adapter: parameter maps, geometry and field conversion (checked against independent
computations), the field direction with a known translation, recovery of a smooth deformation,
failures and parameter files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial.transform import Rotation
from test_method_contract import blob_image, foreground_interior

from benchmark.core.errors import BenchError
from benchmark.core.images import Image, read_image, write_image
from benchmark.core.pairs import RegistrationPair
from methods.base import RegistrationFailed
from methods.elastix import Elastix
from methods.elastix.conversion import (
    array_mm_to_physical,
    field_from_itk,
    itk_geometry,
    physical_to_array_mm,
    to_itk_image,
)
from methods.elastix.parameters import auto_grid_spacing, build_map, sample_region_size
from methods.registry import get_method

itk_missing = not Elastix.availability()[0]
needs_itk = pytest.mark.skipif(itk_missing, reason="itk-elastix is not installed")

#: A non-trivial RAS affine: axes 0 and 1 swapped and flipped (a 90 degree in-plane rotation),
#: anisotropic spacing (1.5, 1.2, 4.0) mm and an off-centre origin.
ROTATED = np.array(
    [[0.0, -1.2, 0.0, 30.0], [-1.5, 0.0, 0.0, 12.0], [0.0, 0.0, 4.0, -7.0], [0.0, 0.0, 0.0, 1.0]]
)
FAST = {"preset": "quick", "threads": 1}


def _vox(u_mm, spacing):
    return u_mm / np.asarray(spacing).reshape((-1,) + (1,) * (u_mm.ndim - 1))


# ------------------------------------------------------------------------------ parameter maps


def test_paper_map_has_the_papers_settings_and_documented_defaults():
    m = build_map("paper", shape=(128, 128, 10), spacing=(1.5, 1.5, 8.0))
    assert m["Metric"] == ["NormalizedMutualInformation"]
    assert m["NumberOfHistogramBins"] == ["64"]
    assert m["NumberOfResolutions"] == ["3"]
    # smoothing 4, 2, 1 in-plane; the 8 mm axis is not smoothed through-plane
    assert m["FixedImagePyramidSchedule"] == ["4", "4", "1", "2", "2", "1", "1", "1", "1"]
    assert m["MovingImagePyramidSchedule"] == m["FixedImagePyramidSchedule"]
    assert m["FixedImagePyramid"] == ["FixedSmoothingImagePyramid"]
    assert m["MaximumNumberOfIterations"] == ["1000"]
    assert m["ImageSampler"] == ["RandomCoordinate"]
    assert m["NumberOfSpatialSamples"] == ["4096"]
    assert m["UseRandomSampleRegion"] == ["true"] and m["NewSamplesEveryIteration"] == ["true"]
    assert m["SampleRegionSize"] == ["63.5"] * 9  # every axis, every resolution
    assert m["Optimizer"] == ["AdaptiveStochasticGradientDescent"]
    assert m["Transform"] == ["BSplineTransform"]
    assert m["FinalGridSpacingInPhysicalUnits"] == ["12.0", "12.0", "8.0"]  # PoolNet's 8x8x1
    assert m["FinalBSplineInterpolationOrder"] == ["3"]
    iso = build_map("paper", shape=(64, 64, 64), spacing=(1.0, 1.0, 1.2))
    assert iso["FixedImagePyramidSchedule"] == ["4"] * 3 + ["2"] * 3 + ["1"] * 3
    assert iso["FinalGridSpacingInPhysicalUnits"] == ["8.0", "8.0", "9.6"]  # 8x8x8 voxels


def test_quick_map_and_overrides():
    m = build_map(
        "quick", shape=(40, 30), spacing=(1.0, 1.0), iterations=7, grid_spacing=(5, 6), seed=3
    )
    assert m["NumberOfResolutions"] == ["2"]
    assert m["FixedImagePyramidSchedule"] == ["2", "2", "1", "1"]
    assert m["GridSpacingSchedule"] == ["2", "2", "1", "1"]
    assert m["MaximumNumberOfIterations"] == ["7"]
    assert m["FinalGridSpacingInPhysicalUnits"] == ["5.0", "6.0"]
    assert m["RandomSeed"] == ["3"]
    assert m["FixedImageDimension"] == ["2"]
    with pytest.raises(BenchError, match="preset must be one of 'paper', 'quick'; got 'fast'"):
        build_map("fast", shape=(4, 4), spacing=(1, 1))
    with pytest.raises(BenchError, match="grid_spacing must be 2 positive"):
        build_map("quick", shape=(4, 4), spacing=(1, 1), grid_spacing=(1, -1))


def test_sample_region_follows_elastix_default_rule_and_fits_the_image():
    # elastix refuses a region larger than (size - 1) * spacing along any axis
    for shape, spacing in [((48, 48, 8), (1.5, 1.5, 1.5)), ((128, 128, 10), (1.5, 1.5, 8.0))]:
        region = np.array(sample_region_size(shape, spacing))
        extent = (np.array(shape) - 1) * np.array(spacing)
        assert np.all(region <= extent)
        np.testing.assert_allclose(region, np.minimum(extent, extent.max() / 3))
    assert auto_grid_spacing((1.5, 1.5, 8.0)) == [12.0, 12.0, 8.0]


@needs_itk
def test_a_thin_image_registers_at_every_resolution():
    """elastix reads the sample region per resolution (level L's values from index L * ndim on)
    and uses its own default, a third of the largest extent along every axis, for a level
    without values: that default exceeded the 12 slices of this image at the second level (and
    made elastix fail on a breast study of demo-dce with 29 slices)."""
    fixed = blob_image((40, 40, 12), n_blobs=8, seed=3)
    moving = blob_image((40, 40, 12), n_blobs=8, seed=3, shift_vox=(1.0, 0.0, 0.0))
    pair = RegistrationPair(Image(fixed), Image(moving), case="c", pair="thin")
    result = get_method("elastix", iterations=20, **FAST).register(pair)
    assert np.isfinite(result.displacement).all()


# ------------------------------------------------------------------------------ conversion


def _affine(rot: np.ndarray, spacing, origin, flips) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(np.asarray(spacing) * np.asarray(flips))
    aff[:3, 3] = origin
    return aff


@settings(max_examples=60, deadline=None)
@given(
    quat=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
        lambda q: sum(x * x for x in q) > 0.1
    ),
    spacing=st.lists(st.floats(0.3, 10.0), min_size=3, max_size=3),
    flips=st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3),
    dv=st.lists(st.floats(-5, 5), min_size=3, max_size=3),
)
def test_physical_vectors_convert_to_array_axis_mm(quat, spacing, flips, dv):
    """Independent reference: a voxel displacement dv moves a point by A[:3,:3] @ dv in RAS, i.e.
    by diag(-1, -1, 1) @ that in LPS; the project's field is spacing * dv."""
    aff = _affine(Rotation.from_quat(quat).as_matrix(), spacing, (3.0, -2.0, 1.0), flips)
    geom = itk_geometry(aff, 3)
    d_lps = np.diag([-1.0, -1.0, 1.0]) @ (aff[:3, :3] @ np.asarray(dv))
    np.testing.assert_allclose(
        physical_to_array_mm(d_lps, geom), np.asarray(spacing) * dv, atol=1e-8
    )
    np.testing.assert_allclose(
        array_mm_to_physical(np.asarray(spacing) * dv, geom), d_lps, atol=1e-8
    )
    np.testing.assert_allclose(geom.spacing, spacing, rtol=1e-10)


def test_2d_geometry_and_oblique_fallback():
    aff = np.diag([-0.7, 0.9, 5.0, 1.0])
    geom = itk_geometry(aff, 2)
    np.testing.assert_allclose(geom.direction, np.diag([1.0, -1.0]))  # RAS (-x, +y) = LPS (+x, -y)
    np.testing.assert_allclose(physical_to_array_mm(np.array([0.7, 0.9]), geom), [0.7, -0.9])
    oblique = np.eye(4)
    oblique[:3, :3] = Rotation.from_euler("x", 30, degrees=True).as_matrix() @ np.diag(
        [1.0, 2.0, 3.0]
    )
    geom = itk_geometry(oblique, 2)
    np.testing.assert_allclose(geom.spacing, [1.0, 2.0])
    np.testing.assert_allclose(geom.direction, np.eye(2))


def test_field_from_itk_reorders_axes_and_checks_the_grid():
    shape = (4, 3, 2)
    aff = _affine(np.eye(3), (1.0, 2.0, 3.0), (0, 0, 0), (-1.0, 1.0, 1.0))
    itk_order = np.zeros((2, 3, 4, 3), np.float32)  # (k, j, i, component)
    itk_order[1, 2, 3] = (2.0, 0.0, 0.0)  # at i=3, j=2, k=1: +2 mm along LPS x = +2 mm along -R
    u = field_from_itk(itk_order, aff, shape)
    assert u.shape == (3, 4, 3, 2) and u.dtype == np.float32
    # array axis 0 points to -R = +L: the LPS vector (2, 0, 0) is +2 mm along axis 0
    np.testing.assert_allclose(u[:, 3, 2, 1], (2.0, 0.0, 0.0))
    assert np.count_nonzero(u) == 1
    with pytest.raises(
        BenchError, match=r"field grid \(4, 3, 2\) != fixed image shape \(4, 3, 5\)"
    ):
        field_from_itk(itk_order, aff, (4, 3, 5))


@needs_itk
def test_itk_image_matches_benchmark_images_io(tmp_path):
    """to_itk_image agrees with the project's own NRRD writer and reader (independent code)."""
    import itk

    arr = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    img = to_itk_image(arr, ROTATED)
    np.testing.assert_array_equal(itk.array_from_image(img), arr.T)
    path = write_image(tmp_path / "x.nrrd", Image(arr, ROTATED))
    ref = itk.imread(str(path))
    np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing())
    np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin())
    np.testing.assert_allclose(
        itk.array_from_matrix(img.GetDirection()), itk.array_from_matrix(ref.GetDirection())
    )
    back = read_image(path)
    np.testing.assert_allclose(back.affine, ROTATED, atol=1e-6)
    # the ITK physical point of voxel (i, j, k) is the LPS version of the affine's RAS point
    p = np.array(img.TransformIndexToPhysicalPoint([4, 1, 2]))
    np.testing.assert_allclose(p, np.diag([-1, -1, 1.0]) @ (ROTATED @ [4, 1, 2, 1])[:3])


# ------------------------------------------------------------------------------ registration


@needs_itk
def test_field_direction_with_a_known_translation(capfd):
    """moving = fixed shifted by +3 voxels along axis 0 and +1 along axis 2 on a rotated, flipped,
    anisotropic grid: the field must be (+3 sx, 0, +1 sz) mm and warp moving onto fixed."""
    shape, spacing = (40, 40, 10), (1.5, 1.2, 4.0)
    fixed = blob_image(shape, n_blobs=40, seed=3)
    moving = blob_image(shape, shift_vox=(3.0, 0.0, 1.0), n_blobs=40, seed=3)
    pair = RegistrationPair(Image(fixed, ROTATED), Image(moving, ROTATED), case="c", pair="t")
    result = get_method("elastix", preset="paper", threads=1).register(pair)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # the elastix log is kept, not printed
    assert "ELASTIX version" in result.log and "Transformix" in result.log.replace(
        "transformix", "Transformix"
    )
    assert result.meta["final_metric"] < 0 and result.runtime_s > 0
    u = _vox(result.displacement, spacing)
    fg = foreground_interior(fixed)
    fg[:, :, -2:] = False  # the last slices sample outside the moving volume
    median = np.median(u[:, fg], axis=1)
    np.testing.assert_allclose(median, (3.0, 0.0, 1.0), atol=0.35)
    # our own warp with the returned field: moving(x + u / spacing) ~ fixed(x)
    coords = np.indices(shape, dtype=np.float64) + u
    warped = ndimage.map_coordinates(moving, coords, order=3, mode="nearest")
    before = np.abs(moving - fixed)[fg].mean()
    after = np.abs(warped - fixed)[fg].mean()
    assert after < 0.25 * before, (before, after)
    assert result.warped is not None and result.warped.shape == shape


@needs_itk
def test_2d_translation_sign():
    shape, aff = (48, 40), np.diag([-1.0, 1.5, 1.0, 1.0])
    fixed = blob_image(shape, n_blobs=25, seed=5)
    moving = blob_image(shape, shift_vox=(0.0, -2.0), n_blobs=25, seed=5)
    pair = RegistrationPair(Image(fixed, aff), Image(moving, aff), case="c", pair="2d")
    result = get_method("elastix", **FAST).register(pair)
    assert result.displacement.shape == (2, *shape)
    u = _vox(result.displacement, (1.0, 1.5))
    np.testing.assert_allclose(
        np.median(u[:, foreground_interior(fixed)], axis=1), (0.0, -2.0), atol=0.3
    )


def smooth_pair(seed: int = 7):
    """A pair with a known smooth field: fixed(x) = moving(x + u(x)), u in-plane, up to 2.5 voxels."""
    shape, spacing = (56, 56, 8), (1.5, 1.5, 6.0)
    moving = blob_image(shape, n_blobs=60, seed=seed)
    i, j, k = np.indices(shape, dtype=np.float64)
    u_vox = np.stack(
        [
            2.5 * np.sin(2 * np.pi * j / shape[1]) * np.cos(np.pi * i / shape[0]),
            1.5 * np.cos(2 * np.pi * i / shape[0]),
            np.zeros(shape),
        ]
    )
    fixed = ndimage.map_coordinates(moving, np.indices(shape) + u_vox, order=3, mode="nearest")
    aff = np.diag([*spacing, 1.0])
    pair = RegistrationPair(
        Image(fixed.astype(np.float32), aff), Image(moving, aff), case="c", pair="smooth"
    )
    return pair, u_vox * np.asarray(spacing).reshape(3, 1, 1, 1)


@needs_itk
def test_recovers_a_known_smooth_deformation():
    pair, truth = smooth_pair()
    result = get_method("elastix", **FAST).register(pair)
    fg = foreground_interior(pair.fixed.array, margin=4)
    err = np.linalg.norm(result.displacement - truth, axis=0)[fg].mean()
    zero = np.linalg.norm(truth, axis=0)[fg].mean()
    assert err < 0.35 * zero, (err, zero)


@needs_itk
def test_failure_raises_registration_failed_with_elastixs_reason(tmp_path):
    import itk

    obj = itk.ParameterObject.New()
    bad = build_map("quick", shape=(20, 20), spacing=(1.0, 1.0))
    bad["Metric"] = ["NoSuchMetric"]
    obj.AddParameterMap(bad)
    path = tmp_path / "bad.txt"
    obj.WriteParameterFile(str(path))
    method = get_method("elastix", parameter_file=str(path), threads=1)
    img = blob_image((20, 20), n_blobs=5)
    pair = RegistrationPair(Image(img), Image(img.copy()), case="c", pair="bad")
    with pytest.raises(
        RegistrationFailed, match="elastix failed on pair c/bad: .*NoSuchMetric"
    ) as info:
        method.register(pair)
    assert info.value.log and "NoSuchMetric" in info.value.log
    mask = np.zeros((20, 20), bool)
    empty = RegistrationPair(Image(img), Image(img.copy()), mask=mask, case="c", pair="m")
    with pytest.raises(RegistrationFailed, match="fixed mask is empty"):
        get_method("elastix", **FAST).register(empty)


@needs_itk
def test_parameter_file_is_validated_and_used(tmp_path):
    import itk

    with pytest.raises(BenchError, match="parameter_file .*missing.txt'?: file not found"):
        get_method("elastix", parameter_file=str(tmp_path / "missing.txt"))
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    with pytest.raises(BenchError, match="not an elastix parameter file"):
        get_method("elastix", parameter_file=str(junk))
    obj = itk.ParameterObject.New()
    good = build_map("quick", shape=(24, 24), spacing=(1.0, 1.0), iterations=3)
    obj.AddParameterMap(good)
    path = tmp_path / "mine.txt"
    obj.WriteParameterFile(str(path))
    method = get_method("elastix", parameter_file=str(path))
    assert method.params["parameter_file"] == [str(path.resolve())]
    used = method.parameter_object((24, 24), (1.0, 1.0))
    assert used.GetParameterMap(0)["MaximumNumberOfIterations"] == ("3",)


def test_settings_are_validated():
    for kwargs, message in [
        ({"preset": "fast"}, "preset must be one of 'paper', 'quick'; got 'fast'"),
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"iterations": 2.5}, "iterations must be an integer >= 1"),
        ({"grid_spacing": -3}, "grid_spacing must be positive"),
        ({"grid_spacing": "x"}, "grid_spacing must be numbers"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ]:
        with pytest.raises(BenchError, match=message):
            get_method("elastix", **kwargs)
    m = get_method("elastix", grid_spacing=[10, 10, 8], threads=2)
    assert m.params == {
        "preset": "paper",
        "parameter_file": None,
        "grid_spacing": [10.0, 10.0, 8.0],
        "iterations": None,
        "threads": 2,
        "use_mask": True,
        "seed": 0,
    }


def test_a_bool_is_no_thread_count_or_seed():
    # elastix checks its tool settings as ants-syn and greedy do (check_tool_settings)
    for kwargs in ({"seed": True}, {"threads": True}, {"iterations": False}):
        with pytest.raises(BenchError, match="must be an integer >= "):
            get_method("elastix", **kwargs)


@pytest.mark.slow
@needs_itk
def test_paper_preset_recovers_the_smooth_deformation():
    pair, truth = smooth_pair()
    result = get_method("elastix", preset="paper").register(pair)
    fg = foreground_interior(pair.fixed.array, margin=4)
    err = np.linalg.norm(result.displacement - truth, axis=0)[fg].mean()
    assert err < 0.35 * np.linalg.norm(truth, axis=0)[fg].mean()


def test_error_reason_is_elastixs_description_on_one_line():
    from methods.conventional import error_reason as _error_reason

    log = (
        "Description: ITK ERROR: RandomCoordinateSampler(0x555c431ff340): ERROR: in your "
        "parameter file you selected\n  SampleRegionSize[ 2 ] = 12 mm,\n  while the fixed image "
        "size at dim = 2 is 8 voxels or 12 mm.\n\nError occurred during actual registration."
    )
    assert _error_reason(RuntimeError("Internal elastix error"), log) == (
        "in your parameter file you selected SampleRegionSize[ 2 ] = 12 mm, while the fixed "
        "image size at dim = 2 is 8 voxels or 12 mm."
    )
    assert _error_reason(RuntimeError("boom"), None) == "RuntimeError: boom"
