"""ACDC loader on generated look-alikes of the real layout, and ``bench data check`` on them."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from acdc_lookalike import GROUPS, acdc_patients, make_acdc

from benchmark.cli import main
from benchmark.core.errors import ValidationError
from benchmark.data.loaders.acdc import parse_info_cfg, patients_folder
from benchmark.data.manifest import load_manifest


@pytest.fixture(scope="module")
def acdc_root(tmp_path_factory):
    return make_acdc(tmp_path_factory.mktemp("acdc"), 10, displacement=True)


def test_info_cfg_variants(tmp_path):
    cfg = tmp_path / "Info.cfg"
    cfg.write_text(
        "\ufeffED:1\nES :   12\n  Group\t:\tDCM  \nHeight: 184.0\nNbFrame:30\nWeight : 95.0\n"
        "Comment: a: b\n# comment\n\ngarbage line\n"
    )
    info = parse_info_cfg(cfg)
    assert info == {
        "ED": "1",
        "ES": "12",
        "Group": "DCM",
        "Height": "184.0",
        "NbFrame": "30",
        "Weight": "95.0",
        "Comment": "a: b",
    }


def test_patients_pairs_and_meta(acdc_root):
    m = load_manifest("acdc", root=acdc_root)
    pairs = m.pairs()
    expected = acdc_patients(10)
    assert [p.key for p in pairs] == [f"{e.case}/{x}" for e in expected for x in ("ED-ES", "ES-ED")]
    for e in expected:
        ed_es, es_ed = [p for p in pairs if p.case == e.case]
        folder = acdc_root / "training" / e.case
        assert ed_es.fixed == folder / f"{e.case}_frame{e.ed:02d}.nii.gz"
        assert ed_es.moving == folder / f"{e.case}_frame{e.es:02d}.nii.gz"
        assert ed_es.fixed_labels == folder / f"{e.case}_frame{e.ed:02d}_gt.nii.gz"
        assert ed_es.moving_labels == folder / f"{e.case}_frame{e.es:02d}_gt.nii.gz"
        assert (es_ed.fixed, es_ed.moving) == (ed_es.moving, ed_es.fixed)
        assert ed_es.displacement == folder / f"{e.case}_disp_ED-ES.nii.gz"
        assert es_ed.displacement == folder / f"{e.case}_disp_ES-ED.nii.gz"
        assert ed_es.group == es_ed.group == e.group
        assert (ed_es.meta["ED"], ed_es.meta["ES"], ed_es.meta["NbFrame"]) == (e.ed, e.es, e.es + 3)
        assert (es_ed.meta["fixed_phase"], es_ed.meta["moving_frame"]) == ("ES", e.ed)
        assert ed_es.dataset == "acdc"
    assert not any("4d" in str(p.fixed) or "4d" in str(p.moving) for p in pairs)


def test_folds_stratified_by_group(tmp_path):
    root = make_acdc(tmp_path / "acdc", 20)
    m = load_manifest("acdc", root=root)
    folds = m.folds()
    assert len(folds) == 4
    tested = Counter(c for f in folds for c in f.test_cases)
    assert set(tested.values()) == {1} and len(tested) == 20
    for f in folds:
        assert len(f.test_cases) == 5 and len(f.test) == 10
        assert not set(f.train_cases) & set(f.test_cases)
        assert sorted(p.group for p in f.test if p.pair == "ED-ES") == sorted(GROUPS)
    table = m.folds_table()
    assert table == load_manifest("acdc", root=root).folds_table()  # deterministic
    assert {k.split("/")[0] for k in table["2"]["test"]} == set(folds[2].test_cases)


def test_root_may_be_the_training_folder(acdc_root):
    direct = load_manifest("acdc", root=acdc_root / "training")
    assert [p.key for p in direct.pairs()] == [
        p.key for p in load_manifest("acdc", root=acdc_root).pairs()
    ]
    assert patients_folder(acdc_root) == acdc_root / "training"


def test_root_may_hold_database_folder(tmp_path):
    make_acdc(tmp_path / "ACDC" / "database", 3)
    m = load_manifest("acdc", root=tmp_path / "ACDC")
    assert [p.case for p in m.pairs()][::2] == ["patient001", "patient002", "patient003"]


def test_testing_subset_and_pair_choice(tmp_path):
    root = make_acdc(tmp_path / "acdc", 3, subset="testing")
    make_acdc(tmp_path / "acdc", 2, subset="training", seed=1)
    manifest = tmp_path / "acdc-test.yaml"
    manifest.write_text(
        "loader: acdc\nsubset: testing\nlabels: {RV: 1, LVm: 2, LVb: 3}\npairs: ES-ED\n"
        "cv: {folds: 3, stratify: null}\n"
    )
    m = load_manifest(manifest, root=root)
    assert [p.key for p in m.pairs()] == [f"patient00{i}/ES-ED" for i in (1, 2, 3)]
    assert all(p.displacement is None for p in m.pairs())


def test_layout_problems_reported_together(tmp_path):
    root = make_acdc(tmp_path / "acdc", 8)
    t = root / "training"
    pats = {p.case: p for p in acdc_patients(8)}
    (t / "patient001" / "Info.cfg").unlink()
    (t / "patient002" / f"patient002_frame{pats['patient002'].es:02d}.nii.gz").unlink()
    (t / "patient003" / f"patient003_frame{pats['patient003'].ed:02d}_gt.nii.gz").unlink()
    (t / "patient004" / "Info.cfg").write_text("ED: 1\nES: one\nGroup: NOR\n")
    (t / "patient005" / "Info.cfg").write_text("ED: 1\nES: 1\nGroup: NOR\n")
    (t / "patient006" / "Info.cfg").write_text(
        f"ED: {pats['patient006'].ed}\nES: {pats['patient006'].es}\nNbFrame: 4\n"
    )
    (t / "notapatient").mkdir()
    m = load_manifest("acdc", root=root)
    problems = m.scan().problems
    expected = [
        "patient001/Info.cfg: missing Info.cfg",
        f"patient002_frame{pats['patient002'].es:02d}.nii.gz: missing ES frame image",
        f"patient003_frame{pats['patient003'].ed:02d}_gt.nii.gz: missing ED ground-truth labels",
        "patient004/Info.cfg: ES must be a frame number, got 'one'",
        "patient005/Info.cfg: ED and ES are the same frame (1)",
        f"patient006/Info.cfg: ES frame {pats['patient006'].es} is outside 1..NbFrame (4)",
        "patient006/Info.cfg: no Group",
    ]
    assert len(problems) == len(expected)
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    with pytest.raises(ValidationError) as err:
        m.pairs()
    assert err.value.problems == problems
    # strict=False keeps the patients without problems (and patient006: frames exist)
    assert sorted({p.case for p in m.pairs(strict=False)}) == [
        "patient006",
        "patient007",
        "patient008",
    ]


def test_missing_group_is_fine_without_stratification(tmp_path):
    root = make_acdc(tmp_path / "acdc", 2)
    (root / "training" / "patient001" / "Info.cfg").write_text("ED: 1\nES: 5\n")
    shutil.copy(
        root / "training" / "patient001" / f"patient001_frame{acdc_patients(2)[0].es:02d}.nii.gz",
        root / "training" / "patient001" / "patient001_frame05.nii.gz",
    )
    shutil.copy(
        root
        / "training"
        / "patient001"
        / f"patient001_frame{acdc_patients(2)[0].es:02d}_gt.nii.gz",
        root / "training" / "patient001" / "patient001_frame05_gt.nii.gz",
    )
    manifest = tmp_path / "m.yaml"
    manifest.write_text("loader: acdc\nlabels: {RV: 1}\ncv: {folds: 2, stratify: null}\n")
    pairs = load_manifest(manifest, root=root).pairs()
    assert pairs[0].group is None and pairs[0].meta["ES"] == 5


# -- the command ---------------------------------------------------------------------------
def test_cli_check_ok(acdc_root, capsys):
    assert main(["data", "check", "--dataset", "acdc", "--root", str(acdc_root)]) == 0
    out = capsys.readouterr().out
    assert "cases    10" in out and "pairs    20 (ED-ES, ES-ED)" in out
    assert "fold 3" in out and "RV (1)" in out and "spacing" in out


def test_cli_check_json(acdc_root, capsys):
    assert main(["data", "check", "--dataset", "acdc", "--root", str(acdc_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == []
    assert report["cases"] == [f"patient{i:03d}" for i in range(1, 11)]
    assert len(report["pairs"]) == 20 and len(report["folds"]) == 4
    assert sum(f["test_cases"] for f in report["folds"]) == 10
    assert report["groups"] == {g: 2 for g in sorted(GROUPS)}
    expected = acdc_patients(10)
    assert report["spacing"]["min"][2] == min(p.spacing[2] for p in expected)
    assert report["spacing"]["max"][0] == pytest.approx(max(p.spacing[0] for p in expected))
    assert report["shapes"]["max"] == [max(p.shape[a] for p in expected) for a in range(3)]
    assert set(report["labels"]) == {"RV", "LVm", "LVb"}
    assert all(v["voxels"] > 0 and v["absent_in"] == [] for v in report["labels"].values())
    assert report["files_read"] == 10 * 6  # 2 frames, 2 label maps, 2 displacements


def test_cli_check_missing_root_exit_code(monkeypatch, capsys):
    monkeypatch.delenv("ACDC_ROOT", raising=False)
    assert main(["data", "check", "--dataset", "acdc"]) == 2
    assert "ACDC_ROOT" in capsys.readouterr().err


def test_cli_check_unknown_dataset(capsys, tmp_path):
    assert main(["data", "check", "--dataset", "nope", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "demo-acdc" in err


def test_real_demo_acdc_is_loadable(tmp_path, capsys):
    """The demo-acdc generator writes the real ACDC layout: no special case in the loader."""
    from benchmark.data.demo import generate

    root = generate("demo-acdc", tmp_path / "demo", cases=2, seed=5)
    assert main(["data", "check", "--dataset", "demo-acdc", "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and len(report["cases"]) == 2 and len(report["pairs"]) == 4
    m = load_manifest("acdc", root=root)
    assert all(p.displacement is not None and p.group for p in m.pairs())


def test_cli_check_env_var_root(acdc_lookalike_root, monkeypatch, capsys):
    monkeypatch.setenv("ACDC_ROOT", str(acdc_lookalike_root))
    assert main(["data", "check", "--dataset", "acdc"]) == 0
    assert "cases    8" in capsys.readouterr().out
