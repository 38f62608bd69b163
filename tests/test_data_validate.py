"""Validation: every kind of bad input is reported, each once, all at once, with file and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from acdc_lookalike import acdc_patients, affine_for, label_map, make_acdc, make_dce

from benchmark.cli import main
from benchmark.core.errors import ValidationError
from benchmark.core.images import read_image, write_displacement, write_image
from benchmark.data.manifest import load_manifest
from benchmark.data.validate import validate


def _frame(root: Path, case: str, phase: str, gt: bool = False) -> Path:
    p = {x.case: x for x in acdc_patients(8)}[case]
    number = p.ed if phase == "ED" else p.es
    return root / "training" / case / f"{case}_frame{number:02d}{'_gt' if gt else ''}.nii.gz"


@pytest.fixture
def broken_acdc(tmp_path):
    """8 look-alike patients, 7 of them broken in a different way (patient007 is fine)."""
    root = make_acdc(tmp_path / "acdc", 8, displacement=True)
    # 1: truncated gzip stream
    f = _frame(root, "patient001", "ED")
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    # 2: labels of another shape than their image
    img = read_image(_frame(root, "patient002", "ES"))
    write_image(
        _frame(root, "patient002", "ES", gt=True), np.zeros((4, 4, 2), np.uint8), img.affine
    )
    # 3: moving image (and its labels) shifted by 2 mm: fixed/moving affine mismatch only
    for gt in (False, True):
        im = read_image(_frame(root, "patient003", "ES", gt=gt))
        shifted = im.affine.copy()
        shifted[0, 3] += 2.0
        write_image(_frame(root, "patient003", "ES", gt=gt), im.array, shifted)
    es_ed = root / "training" / "patient003" / "patient003_disp_ES-ED.nii.gz"
    write_displacement(es_ed, np.zeros((3, *im.shape), np.float32), shifted)  # stays on ES grid
    # 4: undeclared label value 7
    lab = read_image(_frame(root, "patient004", "ED", gt=True))
    arr = lab.array.copy()
    arr[0, 0, 0] = 7
    write_image(lab.path, arr, lab.affine)
    # 5: a NaN voxel
    im = read_image(_frame(root, "patient005", "ES"))
    arr = im.array.copy()
    arr[1, 2, 0] = np.nan
    write_image(im.path, arr, im.affine)
    # 6: missing ED frame
    _frame(root, "patient006", "ED").unlink()
    # 8: ground-truth displacement on the wrong grid
    im = read_image(_frame(root, "patient008", "ED"))
    disp_path = root / "training" / "patient008" / "patient008_disp_ED-ES.nii.gz"
    write_displacement(disp_path, np.zeros((3, 2, 2, 2), np.float32), im.affine)
    return root


EXPECTED = [
    ("patient001", "ED", False, "cannot read image"),
    ("patient002", "ES", True, "shapes differ"),
    ("patient003", "ES", False, "fixed and moving images must share one grid: affines differ by up to 2 mm"),
    ("patient004", "ED", True, "label value(s) [7] not declared in the manifest (0=background, RV=1, LVm=2, LVb=3)"),
    ("patient005", "ES", False, "1 NaN or infinite voxel(s) (first at index (1, 2, 0))"),
    ("patient006", "ED", False, "missing ED frame image"),
]  # fmt: skip


def test_all_problems_at_once(broken_acdc):
    m = load_manifest("acdc", root=broken_acdc)
    with pytest.raises(ValidationError) as err:
        validate(m)
    problems = err.value.problems
    for case, phase, gt, reason in EXPECTED:
        path = str(_frame(broken_acdc, case, phase, gt=gt))
        hits = [p for p in problems if path in p and reason in p]
        assert len(hits) == 1, (case, reason, problems)  # reported once, not once per pair
    disp = [p for p in problems if "patient008_disp_ED-ES.nii.gz" in p]
    assert len(disp) == 1 and "displacement shape (3, 2, 2, 2)" in disp[0]
    assert not any("patient007" in p for p in problems)
    assert len(problems) == len(EXPECTED) + 1
    assert f"{len(problems)} problem(s)" in str(err.value)


def test_report_without_raising(broken_acdc):
    report = validate(load_manifest("acdc", root=broken_acdc), raise_on_problems=False)
    assert not report.ok and len(report.problems) == len(EXPECTED) + 1
    assert "patient006" not in report.cases  # its pairs could not be built
    assert len(report.cases) == 7 and len(report.folds) == 4
    assert report.labels["RV"]["absent_in"] == ["patient002"]  # its ES labels are all zero


def test_cli_exit_code_and_all_problems_on_stderr(broken_acdc, capsys):
    assert main(["data", "check", "--dataset", "acdc", "--root", str(broken_acdc)]) == 2
    captured = capsys.readouterr()
    assert f"{len(EXPECTED) + 1} problem(s)" in captured.err
    for case, _, _, reason in EXPECTED:
        assert case in captured.err and reason in captured.err
    assert "cases    7" in captured.out  # the summary of what could be read is still printed


def test_valid_dataset_passes(tmp_path):
    m = load_manifest("dce", root=make_dce(tmp_path / "dce", 3))
    report = validate(m)
    assert report.ok and report.files_read == 3 * 6  # 2 phases, 2 label maps, mask, truth


def _explicit(tmp_path: Path, pairs: list[dict], labels=None) -> Path:
    body = {
        "loader": "explicit",
        "contrast": "same",
        "labels": labels or {"a": 1, "b": 2},
        "cv": {"folds": 2, "stratify": None},
        "pairs": pairs,
    }
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_duplicate_ids_unsafe_ids_and_grids(tmp_path):
    rng = np.random.default_rng(0)
    shape, aff = (6, 5, 4), affine_for((1.0, 1.0, 2.0))
    write_image(tmp_path / "f.nii.gz", rng.random(shape).astype(np.float32), aff)
    write_image(tmp_path / "m.nii.gz", rng.random(shape).astype(np.float32), aff)
    write_image(tmp_path / "m5.nii.gz", rng.random((6, 5, 5)).astype(np.float32), aff)
    write_image(tmp_path / "lab.nii.gz", label_map(shape, rng, values=(1, 2)), aff)
    write_image(tmp_path / "frac.nii.gz", np.full(shape, 0.5, np.float32), aff)
    write_image(tmp_path / "mask.nii.gz", np.ones(shape, np.uint8), affine_for((1.0, 1.0, 2.5)))
    write_image(tmp_path / "inf.nii.gz", np.full(shape, np.inf, np.float32), aff)
    pairs = [
        {"case": "c1", "pair": "p", "fixed": "f.nii.gz", "moving": "m.nii.gz", "fixed_labels": "lab.nii.gz"},
        {"case": "c1", "pair": "p", "fixed": "f.nii.gz", "moving": "m.nii.gz"},
        {"case": "c2", "pair": "p", "fixed": "f.nii.gz", "moving": "m5.nii.gz"},
        {"case": "c3", "pair": "p", "fixed": "f.nii.gz", "moving": "m.nii.gz", "moving_labels": "frac.nii.gz"},
        {"case": "c4", "pair": "p", "fixed": "f.nii.gz", "moving": "m.nii.gz", "mask": "mask.nii.gz"},
        {"case": "c 5", "pair": "a/b", "fixed": "f.nii.gz", "moving": "inf.nii.gz"},
    ]  # fmt: skip
    m = load_manifest(_explicit(tmp_path, pairs), root=tmp_path)
    with pytest.raises(ValidationError) as err:
        validate(m)
    problems = err.value.problems
    expected = [
        "c1/p: duplicate pair id",
        "m5.nii.gz: fixed and moving images must share one grid: shapes differ, (6, 5, 4) vs (6, 5, 5)",
        "frac.nii.gz: label map has non-integer values",
    ]
    assert sum(expected[0] in p for p in problems) == 1
    assert sum(expected[1] in p for p in problems) == 1
    assert sum(expected[2] in p for p in problems) == 1
    assert (
        sum(
            "mask.nii.gz: the mask must be on the fixed image grid: affines differ" in p
            for p in problems
        )
        == 1
    )
    assert sum("case id 'c 5' is not file-system safe" in p for p in problems) == 1
    assert sum("pair id 'a/b' is not file-system safe" in p for p in problems) == 1
    assert sum("inf.nii.gz: 120 NaN or infinite voxel(s)" in p for p in problems) == 1
    assert len(problems) == 7, problems


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    shape, aff = (5, 5, 3), np.eye(4)
    write_image(tmp_path / "f.nii.gz", np.ones(shape, np.float32), aff)
    write_image(
        tmp_path / "lab.nii.gz", label_map(shape, np.random.default_rng(1)).astype(np.float32), aff
    )
    pairs = [
        {"case": f"c{i}", "pair": "p", "fixed": "f.nii.gz", "moving": "f.nii.gz",
         "fixed_labels": "lab.nii.gz", "moving_labels": "lab.nii.gz"}
        for i in range(2)
    ]  # fmt: skip
    report = validate(
        load_manifest(_explicit(tmp_path, pairs, {"x": 1, "y": 2, "z": 3}), root=tmp_path)
    )
    assert report.ok and report.files_read == 2
    lab = read_image(tmp_path / "lab.nii.gz").array
    assert report.labels["y"]["voxels"] == int((lab == 2).sum())  # unique files counted once


def test_displacement_affine_mismatch(tmp_path):
    root = make_dce(tmp_path / "dce", 2, labels=False, mask=False)
    disp = root / "study_1" / "disp_phase_00-phase_04.nii.gz"
    write_displacement(disp, np.zeros((3, 8, 8, 6), np.float32), affine_for((0.8, 0.8, 1.0)))
    report = validate(load_manifest("dce", root=root), raise_on_problems=False)
    assert len(report.problems) == 1
    assert str(disp) in report.problems[0] and "displacement affine differs" in report.problems[0]


def test_value_counts_matches_unique():
    from benchmark.data.validate import _value_counts

    rng = np.random.default_rng(4)
    for arr in (
        rng.integers(0, 4, (5, 6, 7)).astype(np.uint8),
        rng.integers(-3, 3, (4, 4)).astype(np.int16),
        rng.integers(0, 3, (4, 4)).astype(np.float32),
        np.array([70000, 0, 70000], np.int32),
    ):
        values, counts = np.unique(arr, return_counts=True)
        assert _value_counts(arr) == {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    assert _value_counts(np.zeros((0,), np.uint8)) == {}
