"""Learn2Reg tasks: ``--dataset PATH/TASK_dataset.json`` with no manifest (the ``learn2reg``
loader), the dataset option ``--set split=...``, bad task folders (table-driven: every fault an
``error:`` naming the key or file, exit 2, no traceback), full runs of identity and elastix on
three look-alike layouts (``tests/l2r_lookalike.py``), the Learn2Reg names of their exported
fields, and ``bench stats l2r``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from l2r_lookalike import SHIFT, make_abdomen_mrct, make_lungct, make_oasis

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.images import write_image
from benchmark.core.landmarks import has_row_ids, read_landmarks
from benchmark.data.manifest import load_manifest


def load(path, **options):
    return load_manifest(path, options=options)


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    task = json.loads(path.read_text())
    change(task)
    path.write_text(json.dumps(task))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """The three look-alikes, written once (read-only: copy a folder before changing it)."""
    root = tmp_path_factory.mktemp("l2r")
    return {
        "oasis": make_oasis(root / "oasis"),
        "lungct": make_lungct(root / "lungct"),
        "abdomen_mrct": make_abdomen_mrct(root / "abdomen"),
    }


def copy_task(tasks, name: str, tmp_path: Path) -> Path:
    source = tasks[name]
    shutil.copytree(source.parent, tmp_path / name)
    return tmp_path / name / source.name


# ------------------------------------------------------------------------------ the loader
def test_oasis_like_task_is_read_from_its_json(tasks):
    m = load(tasks["oasis"])
    assert (m.name, m.loader, m.root) == ("OASIS", "learn2reg", tasks["oasis"].parent)
    assert list(m.labels) == ["Left-Cerebral-White-Matter", "Left-Cerebral-Cortex",
                              "Left-Lateral-Ventricle", "Left-Thalamus"]
    assert list(m.labels.values()) == [1, 2, 3, 4]
    assert [p.key for p in m.pairs()] == ["0005/0005_0000-0006_0000", "0006/0006_0000-0007_0000"]
    first = m.pairs()[0]
    assert first.fixed_labels.name == "OASIS_0005_0000.nii.gz" and first.mask is not None
    assert first.meta["contrast"] == "same" and m.contrast == m.describe()["contrast"] == "same"
    (fold,) = m.folds()
    evaluated = {p.fixed for p in fold.test} | {p.moving for p in fold.test}
    assert not evaluated & ({p.fixed for p in fold.train} | {p.moving for p in fold.train})
    # unpaired: every training image is fixed once, with another subject's image as moving
    assert sorted(p.case for p in fold.train) == ["0001", "0002", "0003", "0004"]
    assert all(p.pair.split("-")[1][:4] != p.case for p in fold.train)
    assert not set(fold.train_cases) & set(fold.test_cases)


def test_unpaired_training_pairs_are_seeded(tasks, tmp_path):
    path = copy_task(tasks, "oasis", tmp_path)
    keys = [p.key for p in load(path).training_pairs()]
    assert keys == [p.key for p in load(path).training_pairs()]
    yaml = tmp_path / "oasis.yaml"
    raw = load(path).raw
    draws = set()
    for seed in range(6):
        yaml.write_text(json.dumps({**raw, "task_json": str(path), "root": str(path.parent),
                                    "training_seed": seed}))
        draws.add(tuple(p.key for p in load_manifest(yaml).training_pairs()))
    assert len(draws) > 1 and tuple(keys) in draws  # seed 0 is the default; seeds differ


def test_split_option_chooses_the_evaluated_list(tasks):
    m = load(tasks["oasis"], split="test")
    assert [p.key for p in m.pairs()] == ["0008/0008_0000-0009_0000"]
    assert m.pairs()[0].fixed_labels is None  # test labels are not released
    assert m.pairing == ["registration_test"] and m.option_keys == ("split",)
    assert load(tasks["oasis"]).pairing == ["registration_val"]
    with pytest.raises(BenchError, match=r"--set split='train': expected one of val, test"):
        load(tasks["oasis"], split="train")


def test_paired_lung_task_has_masks_and_keypoints(tasks):
    m = load(tasks["lungct"])
    assert m.labels == {} and m.contrast == m.describe()["contrast"] == "same"
    pair = m.pairs()[0]
    assert pair.key == "0004/0004_0000-0004_0001"
    assert pair.fixed_landmarks.name == "LungCT_0004_0000.csv" and has_row_ids(pair.fixed_landmarks)
    loaded = pair.load()
    fixed_points, moving_points = loaded.landmarks
    np.testing.assert_allclose(moving_points - fixed_points, np.broadcast_to(SHIFT, (12, 3)),
                               atol=1e-3)
    assert loaded.mask is not None and loaded.mask.any()
    train = m.training_pairs()  # training_paired_images of the JSON
    assert [p.key for p in train] == [f"000{s}/000{s}_0000-000{s}_0001" for s in (1, 2, 3)]


def test_multimodal_hybrid_task_pairs_within_and_across_subjects(tasks):
    m = load(tasks["abdomen_mrct"])
    assert m.contrast == m.describe()["contrast"] == "different"
    assert m.describe()["loader_options"]["modalities"] == {"0": "MR", "1": "CT"}
    assert list(m.labels) == ["liver", "spleen", "right kidney", "left kidney"]
    assert m.pairs()[0].meta == {"fixed_modality": "MR", "moving_modality": "CT",
                                 "contrast": "different"}
    train = m.training_pairs()
    intra = [p for p in train if p.pair.split("-")[1][:4] == p.case]
    across = [p for p in train if p not in intra]
    assert [p.case for p in intra] == ["0001", "0002", "0003"]
    # the MR-only subjects (4, 5) with a CT-only subject's image (6, 7)
    assert sorted(p.case for p in across) == ["0004", "0005"]
    assert all(p.pair.endswith("_0001") and p.pair.split("-")[1][:4] in ("0006", "0007")
               for p in across)


def test_paired_task_without_a_list_pairs_each_subjects_images(tmp_path):
    path = make_abdomen_mrct(tmp_path / "paired", pairings="paired", list_paired=False)
    assert [p.key for p in load(path).training_pairs()] == [
        f"000{s}/000{s}_0000-000{s}_0001" for s in (1, 2, 3)
    ]


def test_headerless_keypoint_files(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("1.5,2,3\n4,5,6.25\n")
    ids, points = read_landmarks(path)
    assert ids == ["1", "2"] and points.tolist() == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.25]]
    path.write_text("1,2,3\n4,5\n")
    with pytest.raises(BenchError, match=r"k.csv:2: 2 coordinate\(s\); expected 3"):
        read_landmarks(path)
    path.write_text("1,2,3\n4,x,6\n")
    with pytest.raises(BenchError, match=r"k.csv:2: expected numbers"):
        read_landmarks(path)


# ------------------------------------------------------------------------------ bad input
@dataclass
class Bad:
    """One broken task folder: ``task`` to copy, ``breaks`` it, the command, what stderr says."""

    name: str
    task: str
    breaks: Callable[[Path], None]
    expect: tuple[str, ...]
    command: str = "check"
    options: tuple[str, ...] = ()


def _json(change):
    return lambda path: edit_json(path, change)


def _first_val(path: Path, key: str = "fixed") -> Path:
    return path.parent / json.loads(path.read_text())["registration_val"][0][key]


def _other_shape(path: Path) -> None:
    moving = _first_val(path, "moving")
    write_image(moving, np.zeros((20, 24, 15), np.float32), np.eye(4))


def _other_affine(path: Path) -> None:
    moving = _first_val(path, "moving")
    image = nib.load(str(moving))
    write_image(moving, np.asarray(image.dataobj), np.diag([1.0, 1.0, 1.2, 1.0]))


def _keypoints(path: Path, text: str, image: str = "LungCT_0004_0000") -> None:
    (path.parent / "keypointsTr" / f"{image}.csv").write_text(text)


def _not_a_l2r_name(path: Path) -> None:
    fixed = _first_val(path)
    shutil.copy(fixed, fixed.parent / "brain.nii.gz")
    edit_json(path, lambda t: t["registration_val"][0].update(fixed="./imagesTr/brain.nii.gz"))


def _undeclared_label(path: Path) -> None:
    labels = path.parent / "labelsTr" / "OASIS_0005_0000.nii.gz"
    image = nib.load(str(labels))
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 9
    write_image(labels, data, image.affine)


BAD = [
    Bad("invalid-json", "oasis", lambda p: p.write_text(p.read_text()[:-20]),
        ("OASIS_dataset.json: not valid JSON", "line")),
    Bad("not-an-object", "oasis", lambda p: p.write_text("[1, 2]"),
        ("expected a JSON object", "pairings")),
    Bad("no-pairings", "oasis", _json(lambda t: t.pop("pairings")),
        ("key 'pairings' is None", "paired, unpaired, hybrid")),
    Bad("unknown-pairings", "oasis", _json(lambda t: t.update(pairings="sometimes")),
        ("key 'pairings' is 'sometimes'",)),
    Bad("no-registration-val", "oasis", _json(lambda t: t.pop("registration_val")),
        ("key 'registration_val' is missing",)),
    Bad("no-training", "lungct", _json(lambda t: t.pop("training")),
        ("key 'training' is missing",)),
    Bad("bad-labels", "oasis", _json(lambda t: t.update(labels={"0": 5})),
        ("key 'labels' must map label values to names",)),
    Bad("label-name-conflict", "abdomen_mrct",
        _json(lambda t: t["labels"]["1"].update({"2": "stomach"})),
        ("labels['1']['2']", "'stomach'", "'spleen'")),
    Bad("pair-without-moving", "oasis", _json(lambda t: t["registration_val"][0].pop("moving")),
        ("registration_val[0]: expected {fixed, moving}",)),
    Bad("missing-image", "oasis", lambda p: _first_val(p).unlink(),
        ("registration_val[0]: not found: fixed", "OASIS_0005_0000.nii.gz")),
    Bad("missing-listed-label", "oasis",
        lambda p: (p.parent / "labelsTr" / "OASIS_0006_0000.nii.gz").unlink(),
        ("training[5].label", "labelsTr/OASIS_0006_0000.nii.gz not found")),
    Bad("missing-keypoints", "lungct",
        lambda p: (p.parent / "keypointsTr" / "LungCT_0004_0001.csv").unlink(),
        ("training[7].keypoints", "LungCT_0004_0001.csv not found")),
    Bad("not-a-learn2reg-name", "oasis", _not_a_l2r_name,
        ("registration_val[0]: './imagesTr/brain.nii.gz'", "is not a Learn2Reg image name")),
    Bad("shape-not-tensorImageShape", "oasis", _other_shape,
        ("OASIS_0006_0000.nii.gz has shape (20, 24, 15)", "tensorImageShape is [20, 24, 16]")),
    Bad("grids-differ", "oasis", _other_affine,
        ("fixed and moving images must share one grid", "affines differ")),
    Bad("keypoints-outside", "lungct", lambda p: _keypoints(p, "5,4,3\n99.5,1,1\n"),
        ("LungCT_0004_0000.csv: 1 point(s) outside the image", "shape (20, 18, 16)",
         "id 2, [99.5, 1.0, 1.0]")),
    Bad("keypoints-outside-run", "lungct", lambda p: _keypoints(p, "-1,4,3\n"),
        ("outside the image",), command="run"),
    Bad("keypoint-rows-differ", "lungct",
        lambda p: _keypoints(p, "5,4,3\n6,5,4\n", "LungCT_0005_0001"),
        ("(2 points)", "(12 points)", "must have the same number of rows")),
    Bad("keypoints-not-numbers", "lungct", lambda p: _keypoints(p, "1,2,3\n4,five,6\n"),
        ("LungCT_0004_0000.csv:2: expected numbers",)),
    Bad("empty-test-split", "lungct", lambda p: None,
        ("key 'registration_test' is empty", "--set split=val or split=test"),
        options=("--set", "split=test")),
    Bad("bad-split-value", "oasis", lambda p: None, ("--set split='all'", "val, test"),
        options=("--set", "split=all")),
    Bad("undeclared-label-value", "oasis", _undeclared_label,
        ("label value(s) [9] not declared",)),
    Bad("missing-image-run", "oasis", lambda p: _first_val(p).unlink(),
        ("not found: fixed",), command="run"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_task_folders_are_clear_errors(case, tasks, tmp_path, capsys):
    path = copy_task(tasks, case.task, tmp_path)
    case.breaks(path)
    args = (["data", "check", "--dataset", str(path)] if case.command == "check" else
            ["run", "--methods", "identity", "--dataset", str(path), "--out", str(tmp_path / "r")])
    assert main([*args, *case.options]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    for text in case.expect:
        assert text in err, f"{text!r} not in {err!r}"
    if case.command == "run":
        assert not (tmp_path / "r" / "run.json").exists()  # nothing written before the checks


def test_split_is_an_error_for_a_dataset_that_does_not_take_it(tmp_path, capsys):
    from test_bad_input import make_dataset

    ds = make_dataset(tmp_path / "tiny")
    assert main(["data", "check", "--dataset", str(ds.manifest), "--set", "split=test"]) == 2
    assert "--set split='test': unknown setting 'split'" in capsys.readouterr().err
    out = tmp_path / "r"
    assert main(["run", "--methods", "identity", "--dataset", str(ds.manifest), "--out", str(out),
                 "--set", "split=test", "--dry-run"]) == 2
    assert "unknown setting 'split'" in capsys.readouterr().err


def test_the_split_option_is_taken_by_run_and_left_out_of_the_method_settings(
    tasks, tmp_path, capsys
):
    out = tmp_path / "r"
    assert main(["run", "--methods", "identity", "--dataset", str(tasks["oasis"]), "--out",
                 str(out), "--set", "split=test", "--dry-run"]) == 0
    assert "0008/0008_0000-0009_0000" in capsys.readouterr().out
    from benchmark.runner.preflight import method_settings

    assert method_settings(load(tasks["oasis"]), {"split": "test", "iterations": 5}) == {
        "iterations": 5
    }


# ------------------------------------------------------------------------------ full runs
LAYOUTS = {
    "oasis": ("OASIS", 2, True, False),
    "lungct": ("LungCT", 2, False, True),
    "abdomen_mrct": ("AbdomenMRCT", 2, True, False),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_lookalike_tasks_run_with_identity_and_elastix(layout, tasks, tmp_path, capsys):
    name, n_pairs, has_labels, has_landmarks = LAYOUTS[layout]
    path = tasks[layout]
    assert main(["data", "check", "--dataset", str(path)]) == 0
    out = tmp_path / "run"
    assert main(["run", "--methods", "identity,elastix", "--preset", "quick",
                 "--dataset", str(path), "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv", dtype={"case": str, "pair": str})
    assert set(results["method"]) == {"identity", "elastix"}
    assert (results["status"] == "ok").all(), results[results["status"] != "ok"]
    labels = list(load(path).labels)
    for method in ("identity", "elastix"):
        rows = results[results["method"] == method]
        assert rows[["case", "pair"]].drop_duplicates().shape[0] == n_pairs
        dice = rows[rows["metric"] == "dice"]
        assert sorted(dice["structure"].unique()) == sorted(labels)  # every label, every pair
        assert len(dice) == n_pairs * len(labels)
        assert (rows["metric"] == "tre_mm").sum() == (n_pairs if has_landmarks else 0)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["dataset"]["loader"] == "learn2reg" and run_json["dataset"]["name"] == name
    pairs = pd.read_csv(out / "pairs.csv", keep_default_na=False)
    assert (pairs["fixed_landmarks"] != "").all() == has_landmarks
    elastix = results[results["method"] == "elastix"]
    identity = results[results["method"] == "identity"]
    metric = "dice" if has_labels else "tre_mm"
    better = elastix[elastix["metric"] == metric]["value"].mean()
    before = identity[identity["metric"] == metric]["value"].mean()
    assert (better > before) if has_labels else (better < before)

    # submission-ready fields: the names Learn2Reg's evaluation finds (long unless 0000 -> 0001)
    assert main(["export-fields", str(out), "--methods", "elastix"]) == 0
    files = sorted(p.name for p in (out / "export" / "l2r" / "elastix").glob("disp_*"))
    expected = {
        "oasis": ["disp_0005_0000_0006_0000.nii.gz", "disp_0006_0000_0007_0000.nii.gz"],
        "lungct": ["disp_0004_0004.nii.gz", "disp_0005_0005.nii.gz"],
        "abdomen_mrct": ["disp_0008_0008.nii.gz", "disp_0009_0009.nii.gz"],
    }[layout]
    assert files == expected

    # both conventions from the run folder
    capsys.readouterr()
    assert main(["stats", "l2r", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    scores = pd.read_csv(out / "l2r_scores.csv", dtype={"case": str, "pair": str})
    assert list(scores.columns) == ["method", "case", "pair", "metric", "convention", "value",
                                    "unit"]
    assert set(scores["convention"]) == {"mirbench", "l2r"}
    metrics = {"sdlogj", "folding", "runtime"} | ({"dsc", "hd95"} if has_labels else set())
    assert set(scores["metric"]) == metrics | ({"tre"} if has_landmarks else set())
    assert {r["method"] for r in report["ranking"]} == {"identity", "elastix"}
    assert report["masked_sdlogj"] == (layout != "oasis")  # the task configs' masked_evaluation


# ------------------------------------------------------------------------------ stats l2r
def test_stats_l2r_on_any_run_folder(fake_run_dir, tmp_path, capsys):
    """A run that is no Learn2Reg task (the fake ACDC-like run): every number both ways; the
    Learn2Reg numbers equal :func:`metrics.learn2reg.l2r_pair_scores` of the pair's files."""
    from benchmark.core.images import read_displacement, read_image
    from benchmark.core.learn2reg import to_l2r
    from benchmark.stats.learn2reg import l2r_report_tables
    from metrics.learn2reg import l2r_pair_scores

    run = tmp_path / "run"
    shutil.copytree(fake_run_dir, run)
    assert main(["stats", "l2r", str(run)]) == 0
    text = capsys.readouterr().out
    assert "DSC30 (L2R ranking)" in text and "rank differs" in text and "issues #7, #8" in text
    scores = pd.read_csv(run / "l2r_scores.csv", dtype={"case": str, "pair": str})
    results = pd.read_csv(run / "results.csv", dtype={"case": str, "pair": str})
    pairs = pd.read_csv(run / "pairs.csv", dtype={"case": str, "pair": str}, keep_default_na=False)
    row = pairs.iloc[0]
    labels = json.loads((run / "run.json").read_text())["dataset"]["labels"]
    for method in ("elastix", "unet-nmi"):
        u, affine = read_displacement(
            run / "pairs" / method / f"fold{row.fold}" / row.case / row.pair / "displacement.nii.gz"
        )
        expected = l2r_pair_scores(
            to_l2r(u, read_image(row.fixed).spacing), labels=labels,
            fixed_labels=read_image(row.fixed_labels).array,
            moving_labels=read_image(row.moving_labels).array,
        )
        mine = scores[(scores["method"] == method) & (scores["case"] == row.case)
                      & (scores["pair"] == row.pair)].set_index(["metric", "convention"])["value"]
        assert mine["dsc", "l2r"] == pytest.approx(expected.dice_mean, rel=1e-12)
        assert mine["hd95", "l2r"] == pytest.approx(expected.hd95_mean, rel=1e-12)
        assert mine["sdlogj", "l2r"] == pytest.approx(expected.sdlogj, rel=1e-12)
        assert mine["folding", "l2r"] == 0
        ours = results[(results["method"] == method) & (results["case"] == row.case)
                       & (results["pair"] == row.pair)]
        assert mine["dsc", "mirbench"] == pytest.approx(
            ours[ours["metric"] == "dice"]["value"].mean())
        assert mine["folding", "mirbench"] == pytest.approx(
            ours[ours["metric"] == "folding_pct"]["value"].iloc[0])
    # the fake U-Nets fold: MIRBench sees it, Learn2Reg's count never does
    unet = scores[(scores["method"] == "unet-ncc") & (scores["metric"] == "folding")]
    assert unet[unet["convention"] == "mirbench"]["value"].max() > 0
    assert (unet[unet["convention"] == "l2r"]["value"] == 0).all()
    tables, notes = l2r_report_tables(run)
    assert [t for t, _ in tables] == ["Scores both ways (means over pairs)",
                                      "Ranking: Learn2Reg and MIRBench"]
    ranking = tables[1][1]
    assert set(ranking["rank differs"]) <= {"yes", "no"} and len(ranking) == 6
    assert ranking["L2R score"].between(0.1 - 1e-12, 1.0 + 1e-12).all()
    assert any(n.startswith("ranking:") and "ranksums" in n for n in notes)


def test_stats_l2r_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["stats", "l2r", str(tmp_path)]) == 2
    assert "not a run folder (run.json is missing)" in capsys.readouterr().err


def test_the_report_of_a_task_has_the_l2r_conventions_section(tasks, tmp_path, capsys):
    """One command from the downloaded folder to the report; the section shows both conventions
    and both rankings and explains each difference."""
    from pypdf import PdfReader

    out = tmp_path / "run"
    assert main(["run", "--methods", "identity,elastix", "--dataset", str(tasks["oasis"]),
                 "--preset", "quick", "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    report = out / "report"
    methods = pd.read_csv(report / "tables" / "l2r_methods.csv")
    ranking = pd.read_csv(report / "tables" / "l2r_ranking.csv")
    assert set(methods["method"]) == set(ranking["method"]) == {"identity", "elastix"}
    text = "\n".join(page.extract_text() for page in PdfReader(report / "report.pdf").pages)
    assert "L2R conventions" in text and "L2R conventions: the differences" in text
    assert "J + 3" in text or "J+3" in text  # the SDlogJ note cites Learn2Reg's formula
