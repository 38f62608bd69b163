"""Precomputed fields (``--methods fields:NAME=DIR``) and the Learn2Reg convention: naming,
conversion checked against Learn2Reg's own warping formula, lookup, missing and malformed files,
and ``bench export-fields`` -> ``fields:`` giving identical metrics."""

from __future__ import annotations

import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from benchmark.cli import main
from benchmark.core.errors import BenchError, FieldFileError
from benchmark.core.images import Image, write_displacement
from benchmark.core.learn2reg import (
    from_l2r,
    l2r_name,
    l2r_names,
    read_l2r_field,
    to_l2r,
    write_l2r_field,
)
from benchmark.core.pairs import RegistrationPair
from methods import registry
from methods.base import Method, RegistrationFailed, RegistrationResult
from methods.fields import FieldsMethod, parse_fields_spec
from methods.registry import get_method, resolve_methods
from methods.transforms import warp_array

# ------------------------------------------------------------------------------ convention


def test_l2r_names_follow_learn2reg_and_the_documented_rule():
    # Learn2Reg's evaluation (evaluation.py L42-64): the short name only for 0000 -> 0001, else
    # the full one; the short name of equal modalities (its earlier rule) is still read
    assert l2r_name("img/AbdomenCTCT_0001_0000.nii.gz", "x/AbdomenCTCT_0004_0000.nii.gz", "c") == (
        "disp_0001_0000_0004_0000"
    )
    assert l2r_names("img/OASIS_0395_0000.nii.gz", "OASIS_0396_0000.nii.gz", "c") == [
        "disp_0395_0000_0396_0000", "disp_0395_0396"
    ]
    assert l2r_name("LungCT_0003_0000.nii.gz", "LungCT_0003_0001.nii.gz", "c") == "disp_0003_0003"
    assert l2r_name("T_0002_0001.nii.gz", "T_0002_0000.nii.gz", "c") == "disp_0002_0001_0002_0000"
    # other files: their names, prefixed with the case unless they start with it
    assert l2r_name(
        "/d/patient001_frame01.nii.gz", "/d/patient001_frame12.nii.gz", "patient001"
    ) == ("disp_patient001_frame01_patient001_frame12")
    assert l2r_name("/s/phase_00.nii.gz", "/s/phase_04.nii.gz", "study001") == (
        "disp_study001_phase_00_study001_phase_04"
    )


@settings(max_examples=30, deadline=None)
@given(
    spacing=st.lists(st.floats(0.3, 9.0), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_l2r_conversion_matches_learn2regs_warping_formula(spacing, seed):
    """Independent reference: Learn2Reg's evaluation warps with
    ``map_coordinates(moving, identity + disp.transpose(3, 0, 1, 2))``; the harness's warp of the
    same field in mm must give the same image."""
    rng = np.random.default_rng(seed)
    shape = (9, 8, 7)
    moving = rng.random(shape)
    u_mm = (rng.normal(size=(3, *shape)) * 1.5 * np.reshape(spacing, (3, 1, 1, 1))).astype(
        np.float32
    )
    disp = to_l2r(u_mm, spacing)
    assert disp.shape == (*shape, 3)
    identity = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    theirs = ndimage.map_coordinates(
        moving, identity + disp.transpose(3, 0, 1, 2), order=1, mode="nearest"
    )
    ours = warp_array(moving, u_mm, spacing=spacing, mode="linear", padding="border")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    back = from_l2r(disp, spacing)
    np.testing.assert_array_equal(back, u_mm)  # float64 in between: exact


def test_l2r_file_round_trip_is_exact_and_shapes_are_checked(tmp_path):
    rng = np.random.default_rng(1)
    aff = np.diag([-1.5, 1.3, 4.0, 1.0])
    u = rng.normal(size=(3, 6, 5, 4)).astype(np.float32)
    path = write_l2r_field(tmp_path / "disp_a_b.nii.gz", u, aff)
    nii = nib.load(str(path))
    assert nii.shape == (6, 5, 4, 3) and nii.get_data_dtype() == np.float64
    np.testing.assert_allclose(nii.get_fdata()[2, 1, 3], u[:, 2, 1, 3] / [1.5, 1.3, 4.0])
    np.testing.assert_array_equal(read_l2r_field(path, shape=(6, 5, 4), spacing=(1.5, 1.3, 4.0)), u)
    with pytest.raises(
        FieldFileError,
        match=r"disp_a_b.nii.gz: Learn2Reg field shape \(6, 5, 4, 3\) != expected \(6, 5, 5, 3\)",
    ):
        read_l2r_field(path, shape=(6, 5, 5), spacing=(1.5, 1.3, 4.0))
    np.savez(tmp_path / "disp_c.npz", to_l2r(u, (1.5, 1.3, 4.0)).astype(np.float32))
    np.testing.assert_allclose(
        read_l2r_field(tmp_path / "disp_c.npz", shape=(6, 5, 4), spacing=(1.5, 1.3, 4.0)),
        u,
        rtol=1e-6,
    )
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(FieldFileError, match="junk.nii.gz: cannot read field"):
        read_l2r_field(tmp_path / "junk.nii.gz", shape=(6, 5, 4), spacing=(1, 1, 1))
    with pytest.raises(BenchError, match="dtype must be one of 'float64', 'float32', 'float16'; got 'int8'"):
        write_l2r_field(tmp_path / "x.nii.gz", u, aff, dtype="int8")


# ------------------------------------------------------------------------------ the method


def _pair(tmp_path, shape=(10, 9, 6), spacing=(1.5, 1.5, 4.0)):
    aff = np.diag([*spacing, 1.0])
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    fixed = Image(img, aff, tmp_path / "c1_fix.nii.gz")
    moving = Image(img.copy(), aff, tmp_path / "c1_mov.nii.gz")
    return RegistrationPair(fixed, moving, case="c1", pair="A-B", fold=2)


def test_fields_method_finds_each_layout_and_fails_missing_pairs(tmp_path, clean_registry):
    pair = _pair(tmp_path)
    u = np.random.default_rng(3).normal(size=(3, 10, 9, 6)).astype(np.float32)
    root = tmp_path / "fields"
    root.mkdir()
    (name,) = resolve_methods(f"fields:ext={root}")
    cls = registry.available_methods()[name]
    method = get_method("ext")
    assert isinstance(method, FieldsMethod) and method.params == {"directory": str(root.resolve())}
    with pytest.raises(
        RegistrationFailed,
        match=r"missing field: none of c1/A-B/displacement.nii.gz, fold2/c1/A-B/displacement.nii.gz, disp_c1_fix_c1_mov.nii.gz, disp_c1_fix_c1_mov.npz in",
    ):
        method.register(pair)
    write_l2r_field(root / "disp_c1_fix_c1_mov.nii.gz", u, pair.fixed.affine)
    result = method.register(pair)
    np.testing.assert_array_equal(result.displacement, u)
    assert np.isnan(result.runtime_s)  # not measured: the registration ran elsewhere
    # the harness layout (a run's pairs/METHOD) wins over the Learn2Reg name
    (root / "fold2" / "c1" / "A-B").mkdir(parents=True)
    write_displacement(
        root / "fold2" / "c1" / "A-B" / "displacement.nii.gz", 2 * u, pair.fixed.affine
    )
    np.testing.assert_array_equal(method.register(pair).displacement, 2 * u)
    # instances travel to worker processes although their class is made at run time
    clone = pickle.loads(pickle.dumps(method))
    assert type(clone).name == "ext" and clone.directory == cls.directory


def test_wrong_files_are_errors_naming_the_file(tmp_path, clean_registry):
    pair = _pair(tmp_path)
    root = tmp_path / "f"
    (root / "c1" / "A-B").mkdir(parents=True)
    resolve_methods(f"fields:bad={root}")
    method = get_method("bad")
    target = root / "c1" / "A-B" / "displacement.nii.gz"
    write_displacement(target, np.zeros((3, 10, 9, 5), np.float32), pair.fixed.affine)
    with pytest.raises(
        FieldFileError,
        match=rf"{target}: displacement shape \(3, 10, 9, 5\) != expected \(3, 10, 9, 6\)",
    ):
        method.register(pair)
    write_displacement(target, np.zeros((3, 10, 9, 6), np.float32), np.eye(4))
    with pytest.raises(FieldFileError, match="affine differs from the fixed image's of c1/A-B"):
        method.register(pair)
    assert not issubclass(FieldFileError, BenchError)  # a BenchError would only fail the pair


def test_fields_specs_are_validated(tmp_path, clean_registry):
    for item in ("fields:", "fields:x", "fields:=dir", "fields:x="):
        with pytest.raises(BenchError, match="expected fields:NAME=DIR"):
            parse_fields_spec(item)
    assert parse_fields_spec("fields: a = /d=1 ") == ("a", Path("/d=1"))
    with pytest.raises(BenchError, match="is not a folder"):
        resolve_methods(f"identity,fields:x={tmp_path / 'nope'}")
    with pytest.raises(BenchError, match="'elastix' is taken by methods.elastix"):
        resolve_methods(f"fields:elastix={tmp_path}")
    with pytest.raises(BenchError, match="not a valid method name"):
        resolve_methods(f"fields:Bad Name={tmp_path}")
    assert resolve_methods(f"identity, fields:mine={tmp_path}") == ["identity", "mine"]


# ------------------------------------------------------------------------------ end to end


class SmoothField(Method):
    """A deterministic, non-trivial field (test double): a few voxels of smooth in-plane motion."""

    name = "test-smooth-field"
    description = "smooth sinusoidal field (test double)"

    def register(self, pair):
        grid = np.indices(pair.fixed.shape, dtype=np.float64)
        n = np.asarray(pair.fixed.shape, dtype=np.float64).reshape(-1, 1, 1, 1)
        u = np.zeros((pair.ndim, *pair.fixed.shape))
        u[0] = 1.7 * np.sin(2 * np.pi * grid[1] / n[1]) * pair.spacing[0]
        u[1] = -1.3 * np.cos(2 * np.pi * grid[0] / n[0]) * pair.spacing[1]
        return RegistrationResult(displacement=u.astype(np.float32), runtime_s=0.01)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-acdc")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return root


def test_exported_fields_read_back_give_identical_metrics(
    demo_root, tmp_path, clean_registry, monkeypatch, capsys
):
    monkeypatch.setitem(registry._REGISTERED, SmoothField.name, SmoothField)
    common = ["--dataset", "demo-acdc", "--root", str(demo_root), "--folds", "0"]
    run = tmp_path / "run"
    assert main(["run", "--methods", "identity,test-smooth-field", "--out", str(run), *common]) == 0
    assert main(["export-fields", str(run), "--format", "l2r"]) == 0
    exported = run / "export" / "l2r" / "test-smooth-field"
    files = sorted(exported.glob("disp_*.nii.gz"))
    n = len(pd.read_csv(run / "pairs.csv"))  # fold 0's test pairs
    assert n >= 2 and len(files) == n and all(f.name.startswith("disp_patient") for f in files)
    assert f"test-smooth-field: {n} field(s)" in capsys.readouterr().out

    back = tmp_path / "back"
    spec = f"fields:from-l2r={exported},fields:from-run={run / 'pairs' / 'test-smooth-field'}"
    assert main(["run", "--methods", spec, "--out", str(back), *common]) == 0
    original = pd.read_csv(run / "results.csv")
    again = pd.read_csv(back / "results.csv")
    keys = ["fold", "case", "pair", "structure", "metric"]
    ref = original[original["method"] == "test-smooth-field"].set_index(keys).sort_index()
    assert ref.loc[ref.index.get_level_values("metric") == "dice", "value"].lt(0.999).any()
    for name in ("from-l2r", "from-run"):
        got = again[again["method"] == name].set_index(keys).sort_index()
        assert got.index.equals(ref.index)
        timed = got.index.get_level_values("metric") == "runtime_s"
        pd.testing.assert_series_equal(got.loc[~timed, "value"], ref.loc[~timed, "value"])
        assert (got.loc[~timed, "status"] == ref.loc[~timed, "status"]).all()
        assert (
            got.loc[timed, "value"].isna().all()
            and (got.loc[timed, "status"] == "not-measured").all()
        )

    # a missing field is a failed row with a clear status; a wrong shape fails its task (not
    # cached: the next run tries again), named in the summary, and the run exits with 1
    files[0].unlink()
    part = tmp_path / "part"
    assert main(["run", "--methods", f"fields:part={exported}", "--out", str(part), *common]) == 0
    status = pd.read_csv(part / "results.csv").groupby(["case", "pair"])["status"].first()
    assert status.str.startswith("failed: missing field: none of").sum() == 1
    assert (status == "ok").sum() == n - 1
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3)), np.eye(4)), str(files[0]))
    wrong = tmp_path / "wrong"
    assert main(["run", "--methods", f"fields:wrong={exported}", "--out", str(wrong), *common]) == 1
    err = capsys.readouterr().err
    assert f"{files[0]}: Learn2Reg field shape (4, 4, 4, 3) != expected" in err
