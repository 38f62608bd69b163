"""Patch size, U-Net factors and B-spline grid derived from the training data (geometry.py)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training import blob_pairs

from benchmark.core.errors import BenchError
from methods.training.config import TrainingConfig, make_config
from methods.training.geometry import THICK_PATCH, THIN_PATCH, data_geometry, resolve_geometry
from methods.training.trainer import load_model, train


@pytest.mark.parametrize(
    ("shapes", "spacings", "expected"),
    [
        # cine MRI (ACDC): 10 mm slices -> the paper's 2x2x1 and 8x8x1
        (
            [(216, 256, 10), (232, 256, 9)],
            [(1.5, 1.5, 10.0)] * 2,
            ((64, 64, 8), (2, 2, 1), (8, 8, 1)),
        ),
        # breast DCE-like: 2 mm slices are thin beside 1.5 mm; 28 slices -> 24 (a multiple of 8)
        (
            [(96, 100, 28), (90, 96, 33)],
            [(1.5, 1.5, 2.0)] * 2,
            ((64, 64, 24), (2, 2, 2), (8, 8, 8)),
        ),
        # isotropic 3D (brain, CT)
        ([(72, 88, 72)], [(2.0, 2.0, 2.0)], ((64, 64, 64), (2, 2, 2), (8, 8, 8))),
        # 2D
        ([(256, 200)], [(0.8, 0.8)], ((64, 64), (2, 2), (8, 8))),
        # a thick axis with fewer slices than THICK_PATCH, a thin one shorter than 8
        ([(80, 5, 4)], [(1.0, 1.0, 5.0)], ((64, 5, 4), (2, 2, 1), (8, 8, 1))),
    ],
)
def test_data_geometry_known_grids(shapes, spacings, expected):
    got = data_geometry(shapes, spacings)
    assert (got["patch_size"], got["unet_factors"], got["poolnet_grid"]) == expected


def test_data_geometry_rejects_mixed_or_missing_grids():
    with pytest.raises(BenchError, match="all be 2D or all be 3D"):
        data_geometry([(10, 10), (10, 10, 10)], [(1, 1), (1, 1, 1)])
    with pytest.raises(BenchError, match="one spacing per image shape"):
        data_geometry([(10, 10)], [])


_axis = st.tuples(st.integers(1, 300), st.floats(0.3, 12.0))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 3).flatmap(
        lambda n: st.lists(st.lists(_axis, min_size=n, max_size=n), min_size=1, max_size=4)
    ),
    st.sampled_from([0.25, 0.5, 2.0, 4.0]),
)
def test_data_geometry_properties(images, scale):
    shapes = [tuple(n for n, _ in image) for image in images]
    spacings = [tuple(s for _, s in image) for image in images]
    got = data_geometry(shapes, spacings)
    smallest = np.min(shapes, axis=0)
    median = np.median(spacings, axis=0)
    thick = median > 2.0 * median.min()
    for axis, (p, f, g) in enumerate(
        zip(got["patch_size"], got["unet_factors"], got["poolnet_grid"], strict=True)
    ):
        assert 1 <= p <= smallest[axis]  # never larger than the smallest image: no padding
        assert p <= (THICK_PATCH if thick[axis] else THIN_PATCH)
        assert (f, g) == ((1, 1) if thick[axis] else (2, 8))
    # the finest axis is thin; the order of the images and the unit of length (here a power of
    # two: exact in floating point) do not matter
    assert got["unet_factors"][int(np.argmin(median))] == 2
    assert data_geometry(shapes[::-1], spacings[::-1]) == got
    assert data_geometry(shapes, [tuple(s * scale for s in sp) for sp in spacings]) == got


def test_resolve_geometry_keeps_what_is_set():
    config = make_config("unet", "nmi", overrides={"patch_size": [32, 32, 4]})
    assert config.unet_factors is None and config.poolnet_grid is None
    resolved = resolve_geometry(config, [(100, 100, 10)], [(1.5, 1.5, 10.0)])
    assert resolved.patch_size == (32, 32, 4)  # given: kept
    assert resolved.unet_factors == (2, 2, 1) and resolved.poolnet_grid == (8, 8, 1)
    assert resolve_geometry(resolved, [(5, 5)], [(1.0, 1.0)]) is resolved  # nothing open
    with pytest.raises(BenchError, match="one entry per axis"):  # 3D patch, 2D data
        resolve_geometry(config, [(100, 100)], [(1.0, 1.0)])


def test_built_in_presets_leave_the_geometry_to_the_data():
    for preset in ("quick", "paper"):
        config = make_config("poolnet", "nmi", preset=preset)
        assert (config.patch_size, config.unet_factors, config.poolnet_grid) == (None, None, None)
        with pytest.raises(BenchError, match="derived from the training data"):
            _ = config.ndim


def test_training_resolves_the_geometry_and_reuses_the_model(tmp_path):
    # blob_pairs: 40x40x6 volumes of 1.5 x 1.5 x 8 mm -> the third axis is thick
    specs = blob_pairs(tmp_path)
    config = TrainingConfig(
        network="poolnet", similarity="ncc", iterations=3, batch_size=1, checkpoint_every=3
    )
    model_path = train(config, specs, tmp_path / "model", seed=0, progress=False)
    stored = json.loads((tmp_path / "model" / "model.json").read_text())["config"]
    expected = {"patch_size": [40, 40, 6], "unet_factors": [2, 2, 1], "poolnet_grid": [8, 8, 1]}
    assert {k: stored[k] for k in expected} == expected
    _, loaded = load_model(model_path)
    assert loaded.patch_size == (40, 40, 6) and loaded.poolnet_grid == (8, 8, 1)
    mtime = model_path.stat().st_mtime_ns  # the same open config again: the finished model
    assert train(config, specs, tmp_path / "model", seed=0, progress=False) == model_path
    assert model_path.stat().st_mtime_ns == mtime
