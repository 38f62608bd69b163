"""Manifests: finding and parsing, root resolution, demo cache, folds and splits, DCE and explicit
loaders."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from acdc_lookalike import make_acdc, make_dce
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError, ValidationError
from benchmark.core.images import write_image
from benchmark.core.pairs import PairSpec
from benchmark.data import folds as F
from benchmark.data.cache import demo_cache_path
from benchmark.data.manifest import load_manifest
from benchmark.data.parse import find_manifest, known_manifests

SHIPPED = ("acdc", "dce", "demo-acdc", "demo-dce")
PRESET_KEYS = {"iterations", "batch_size", "patch_size", "unet_factors", "poolnet_grid"}


def write_manifest(folder: Path, body: dict, name: str = "m.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


# -- shipped manifests ---------------------------------------------------------------------
def test_shipped_manifests_are_known():
    assert set(SHIPPED) <= set(known_manifests())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifest_parses(name, tmp_path):
    m = load_manifest(name, root=tmp_path)
    assert m.name == name
    assert m.root == tmp_path.resolve() and m.root_source == "argument --root"
    assert m.sha256 == hashlib.sha256(m.path.read_bytes()).hexdigest()
    assert {"quick", "paper"} <= set(m.presets)
    for preset in ("quick", "paper"):
        assert PRESET_KEYS <= set(m.preset(preset))
    json.dumps(m.describe())  # JSON-able for run.json


def test_label_names_follow_conventions(tmp_path):
    for name in ("acdc", "demo-acdc"):
        labels = load_manifest(name, root=tmp_path).labels
        assert list(labels.items()) == [("RV", 1), ("LVm", 2), ("LVb", 3)]
    for name in ("dce", "demo-dce"):
        labels = load_manifest(name, root=tmp_path).labels
        assert list(labels.items()) == [("fat", 1), ("gland", 2), ("lesion", 3)]


def test_paper_presets_match_protocol(tmp_path):
    acdc = load_manifest("acdc", root=tmp_path)
    assert acdc.preset("paper")["iterations"] == 50000
    assert acdc.preset("paper")["patch_size"] == [128, 128, 6]
    assert acdc.preset("paper")["unet_factors"] == [2, 2, 1]
    assert acdc.preset("paper")["poolnet_grid"] == [8, 8, 1]
    assert (acdc.cv.folds, acdc.cv.stratify, acdc.cv.seed) == (4, "group", 0)
    dce = load_manifest("dce", root=tmp_path)
    assert dce.preset("paper") == {
        "iterations": 75000,
        "batch_size": 8,
        "patch_size": [64, 64, 64],
        "unet_factors": [2, 2, 2],
        "poolnet_grid": [8, 8, 8],
    }
    assert dce.split.parts() == {"train": 90, "val": 10, "test": 50}


def test_preset_copy_and_unknown(tmp_path):
    m = load_manifest("acdc", root=tmp_path)
    m.preset("quick")["iterations"] = -1
    assert m.preset("quick")["iterations"] != -1
    with pytest.raises(BenchError, match="known presets: paper, quick"):
        m.preset("fast")


def test_unknown_name_lists_known(tmp_path):
    with pytest.raises(BenchError) as err:
        load_manifest("acdcc", root=tmp_path)
    for name in SHIPPED:
        assert name in str(err.value)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(BenchError, match="not found"):
        find_manifest(tmp_path / "nope.yaml")


# -- root resolution -------------------------------------------------------------------------
def test_missing_root_names_env_var(monkeypatch):
    monkeypatch.delenv("ACDC_ROOT", raising=False)
    with pytest.raises(BenchError) as err:
        load_manifest("acdc")
    assert "ACDC_ROOT" in str(err.value) and "--root" in str(err.value)


def test_root_precedence(tmp_path, monkeypatch):
    for d in ("arg", "env", "rel"):
        (tmp_path / d).mkdir()
    path = write_manifest(
        tmp_path,
        {"loader": "acdc", "root_env": "MIRBENCH_TEST_ROOT", "root": "rel", "labels": {"a": 1}},
    )
    monkeypatch.setenv("MIRBENCH_TEST_ROOT", str(tmp_path / "env"))
    assert load_manifest(path, root=tmp_path / "arg").root == (tmp_path / "arg").resolve()
    m = load_manifest(path)
    assert m.root == (tmp_path / "env").resolve()
    assert m.root_source == "environment MIRBENCH_TEST_ROOT"
    monkeypatch.delenv("MIRBENCH_TEST_ROOT")
    m = load_manifest(str(path))
    assert m.root == (tmp_path / "rel").resolve() and m.name == "m"


def test_root_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("ACDC_ROOT", str(tmp_path / "missing"))
    with pytest.raises(BenchError, match=r"missing \(from environment ACDC_ROOT\) does not exist"):
        load_manifest("acdc")


# -- invalid manifests -----------------------------------------------------------------------
BASE = {"loader": "acdc", "labels": {"RV": 1}}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"loader": "nifti"}, "loader must be one of acdc, dce, explicit"),
        ({"folds": 4}, r"unknown key\(s\) \['folds'\]"),
        ({"labels": {"a": 1, "b": 1}}, "label value 1 is used twice"),
        ({"labels": {"a": 0}}, r"labels.a must be >= 1"),
        ({"labels": []}, "labels must be a non-empty mapping"),
        ({"cv": {"folds": 1}}, r"cv.folds must be >= 2"),
        ({"cv": {"folds": 4, "stratify": 3}}, "stratify must be a field name"),
        ({"cv": {"k": 4}}, r"unknown key\(s\) \['k'\] in cv"),
        ({"cv": {"folds": 2}, "split": {"train": 1, "test": 1}}, "either cv"),
        ({"split": {"train": 0, "test": 1}}, "train > 0 and test > 0"),
        ({"split": {"train": -1, "test": 1}}, "split.train must be"),
        ({"pairs": ["ED-ED"]}, "pairs must be a non-empty list of ED-ES, ES-ED"),
        ({"pairs": ["ED-ES", "ED-ES"]}, "lists a pair twice"),
        ({"subset": "validation"}, "subset must be one of training, testing"),
        ({"presets": {"quick": 3}}, "presets must map preset names"),
        ({"demo": {"cases": 3}}, "demo must be a mapping with generator"),
        ({"name": "a/b"}, "name must be a non-empty string without '/'"),
        ({"loader": "dce", "pairs": "pre-first"}, "pairs must be one of pre-last, pre-each"),
        ({"loader": "explicit"}, "needs exactly one of pairs"),
        ({"loader": "explicit", "pairs": ["a"]}, "pairs must be a non-empty list of mappings"),
    ],
)
def test_invalid_manifest(tmp_path, change, expected):
    path = write_manifest(tmp_path, {**BASE, **change})
    with pytest.raises(BenchError, match=expected) as err:
        load_manifest(path, root=tmp_path)
    assert str(path) in str(err.value)


def test_manifest_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loader: [acdc\n")
    with pytest.raises(BenchError, match="not valid YAML"):
        load_manifest(path, root=tmp_path)


# -- demo cache --------------------------------------------------------------------------------
def test_demo_generated_once_into_cache(tmp_path, monkeypatch):
    import benchmark.data.demo as demo

    calls = []

    def fake_generate(name, out, *, cases=None, seed=0):
        calls.append((name, Path(out), cases, seed))
        assert Path(out).is_dir() and not any(Path(out).iterdir())
        return make_acdc(Path(out) / "data", cases, seed=seed)

    monkeypatch.setattr(demo, "generate", fake_generate, raising=False)
    monkeypatch.setenv("MIRBENCH_CACHE", str(tmp_path / "cache"))
    m = load_manifest("demo-acdc")
    target = tmp_path / "cache" / "demo" / "demo-acdc-seed0-n8"
    assert m.root == (target / "data").resolve() and m.root_source == "demo cache"
    assert calls == [("demo-acdc", calls[0][1], 8, 0)]
    assert calls[0][1].parent == target.parent  # generated beside the target, then renamed
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert len(m.pairs()) == 16 and len(m.folds()) == 2
    again = load_manifest("demo-acdc")
    assert again.root == m.root and len(calls) == 1
    assert demo_cache_path("demo-acdc", m.demo) == target


def test_demo_generation_failure_leaves_nothing(tmp_path, monkeypatch):
    import benchmark.data.demo as demo

    def failing(name, out, *, cases=None, seed=0):
        (Path(out) / "half-written.nii.gz").write_bytes(b"x")
        raise BenchError("generator broke")

    monkeypatch.setattr(demo, "generate", failing, raising=False)
    monkeypatch.setenv("MIRBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BenchError, match="generator broke"):
        load_manifest("demo-dce")
    assert list((tmp_path / "cache" / "demo").iterdir()) == []
    m = load_manifest("demo-dce", generate=False)  # no generation: the cache path, not created
    assert not m.root.exists() and m.root.name == "demo-dce-seed0-n24"


# -- folds -------------------------------------------------------------------------------------
def strata_strategy():
    return st.dictionaries(
        st.from_regex(r"p[0-9]{1,3}", fullmatch=True),
        st.sampled_from(["", "A", "B", "C", "DCM"]),
        min_size=2,
        max_size=40,
    )


@settings(max_examples=60, deadline=None)
@given(strata=strata_strategy(), k=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_assign_folds_properties(strata, k, seed):
    if len(strata) < k:
        with pytest.raises(BenchError, match=f"cannot make {k} folds"):
            F.assign_folds(strata, folds=k, seed=seed)
        return
    a = F.assign_folds(strata, folds=k, seed=seed)
    assert set(a) == set(strata) and set(a.values()) <= set(range(k))
    sizes = Counter(a.values())
    assert max(sizes.values()) - min(sizes[f] for f in range(k)) <= 1  # every fold used, balanced
    for group in set(strata.values()):
        per_fold = Counter(a[c] for c in strata if strata[c] == group)
        assert max(per_fold.values()) - min(per_fold.get(f, 0) for f in range(k)) <= 1
    # deterministic, and independent of the order in which the cases are given
    shuffled = dict(reversed(list(strata.items())))
    assert F.assign_folds(shuffled, folds=k, seed=seed) == a


def test_folds_depend_on_seed():
    strata = {f"p{i:03d}": "ABCDE"[i % 5] for i in range(100)}
    a = F.assign_folds(strata, folds=4, seed=0)
    assert a == F.assign_folds(strata, folds=4, seed=0)
    assert a != F.assign_folds(strata, folds=4, seed=1)
    # 100 ACDC-like patients, 5 groups of 20: 25 per fold, 5 of each group
    assert Counter(a.values()) == {0: 25, 1: 25, 2: 25, 3: 25}
    for g in "ABCDE":
        assert Counter(a[c] for c in strata if strata[c] == g) == {0: 5, 1: 5, 2: 5, 3: 5}


def _pairs(n_cases: int, per_case=("ED-ES", "ES-ED"), groups="ABC") -> list[PairSpec]:
    return [
        PairSpec("d", f"c{i:02d}", p, Path("f"), Path("m"), group=groups[i % len(groups)])
        for i in range(n_cases)
        for p in per_case
    ]


def test_make_folds_split_cases_not_pairs():
    pairs = _pairs(11)
    folds = F.make_folds(pairs, folds=4, stratify="group", seed=3)
    tested = [c for f in folds for c in f.test_cases]
    assert sorted(tested) == sorted({p.case for p in pairs})  # each case tested exactly once
    for f in folds:
        assert not set(f.train_cases) & set(f.test_cases)
        assert len(f.train) + len(f.test) == len(pairs)
        assert all(len([p for p in f.test if p.case == c]) == 2 for c in f.test_cases)
    table = F.folds_table(folds)
    assert list(table) == ["0", "1", "2", "3"]
    assert table["1"]["test"] == [p.key for p in folds[1].test]
    assert json.loads(json.dumps(table)) == table


def test_case_strata_disagreement_and_meta():
    pairs = _pairs(2)
    bad = [*pairs, PairSpec("d", "c00", "x", Path("f"), Path("m"), group="Z")]
    with pytest.raises(BenchError, match="case c00: pairs disagree"):
        F.case_strata(bad, "group")
    meta = [PairSpec("d", "c1", "p", Path("f"), Path("m"), meta={"site": 2})]
    assert F.case_strata(meta, "site") == {"c1": "2"}
    assert F.case_strata(pairs, None) == {"c00": "", "c01": ""}


@pytest.mark.parametrize(
    ("n", "split", "expected"),
    [
        (150, {"train": 90, "val": 10, "test": 50}, (90, 10, 50)),
        (15, {"train": 90, "val": 10, "test": 50}, (9, 1, 5)),
        (6, {"train": 4, "val": 0, "test": 2}, (4, 0, 2)),
        (9, {"train": 4, "val": 0, "test": 2}, (6, 0, 3)),
        (10, {"train": 0.7, "test": 0.3}, (7, 0, 3)),
        (5, {"train": 90, "val": 10, "test": 50}, (3, 0, 2)),
    ],
)
def test_split_counts(n, split, expected):
    counts = F.split_counts(n, split)
    assert (counts["train"], counts["val"], counts["test"]) == expected


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    parts=st.tuples(st.integers(1, 100), st.integers(0, 100), st.integers(1, 100)),
)
def test_split_counts_add_up(n, parts):
    split = dict(zip(("train", "val", "test"), parts, strict=True))
    try:
        counts = F.split_counts(n, split)
    except BenchError as exc:
        assert "at least one training and one test case" in str(exc)
        return
    assert sum(counts.values()) == n
    total = sum(parts)
    for k, v in split.items():
        assert abs(counts[k] - n * v / total) < 1 + 1e-9  # largest remainder: within one


def test_split_counts_errors():
    with pytest.raises(BenchError, match="unknown part"):
        F.split_counts(10, {"train": 1, "test": 1, "tune": 1})
    with pytest.raises(BenchError, match="at least one training and one test"):
        F.split_counts(2, {"train": 1, "val": 100, "test": 1})


def test_holdout_is_stratified_and_deterministic():
    strata = {f"s{i:03d}": ("A" if i < 100 else "B") for i in range(150)}
    parts = F.assign_split(strata, {"train": 90, "val": 10, "test": 50}, seed=5)
    assert parts == F.assign_split(
        dict(reversed(strata.items())), {"train": 90, "val": 10, "test": 50}, seed=5
    )
    counts = Counter((parts[c], strata[c]) for c in strata)
    assert counts[("train", "A")] + counts[("train", "B")] == 90
    assert abs(counts[("test", "A")] - 50 * 2 / 3) <= 1  # proportional to the strata
    assert abs(counts[("train", "A")] - 90 * 2 / 3) <= 1


# -- DCE loader --------------------------------------------------------------------------------
def test_dce_loader_and_holdout(tmp_path):
    root = make_dce(tmp_path / "dce", 5)
    m = load_manifest("dce", root=root)
    pairs = m.pairs()
    assert [p.key for p in pairs] == [f"study_{k}/pre-post" for k in range(1, 6)]
    p = pairs[0]
    assert (p.fixed.name, p.moving.name) == ("phase_00.nii.gz", "phase_04.nii.gz")
    assert p.fixed_labels.name == "phase_00_labels.nii.gz"
    assert p.moving_labels.name == "phase_04_labels.nii.gz"
    assert p.mask.name == "mask.nii.gz"
    assert p.displacement.name == "disp_phase_00-phase_04.nii.gz"
    assert [p.group for p in pairs] == ["A", "B", "A", "B", "A"]
    folds = m.folds()
    assert len(folds) == 1 and folds[0].holdout
    table = m.folds_table()
    assert set(table) == {"0"} and table["0"]["val"] == []
    assert (len(table["0"]["train"]), len(table["0"]["test"])) == (3, 2)  # 90/10/50 of 5


def test_dce_natural_sort_and_pre_each(tmp_path):
    root = make_dce(tmp_path / "dce", 2, phases=11, labels=False, mask=False, displacement=False)
    path = write_manifest(
        tmp_path, {"loader": "dce", "labels": {"fat": 1}, "pairs": "pre-each", "cv": {"folds": 2}}
    )
    pairs = load_manifest(path, root=root).pairs()
    assert [p.pair for p in pairs[:10]] == [f"pre-post{k}" for k in range(1, 11)]
    assert pairs[9].moving.name == "phase_10.nii.gz"  # natural order: phase_10 after phase_9
    assert pairs[1].moving.name == "phase_2.nii.gz"
    assert all(p.fixed.name == "phase_0.nii.gz" and p.fixed_labels is None for p in pairs)
    m = load_manifest(path, root=root)
    last = [p for p in m.pairs() if p.pair == "pre-post10"]
    assert len(last) == 2


def test_dce_layout_problems(tmp_path):
    root = make_dce(tmp_path / "dce", 3)
    for f in (root / "study_2").glob("phase_0[1-4]*"):
        f.unlink()
    (root / "studies.csv").write_text("study,group\nstudy_1,A\nstudy_1,B\nstudy_9,A\n")
    m = load_manifest("dce", root=root)
    problems = m.scan().problems
    assert any("study_2: found 1 phase file(s)" in p for p in problems)
    assert any("duplicate study id 'study_1'" in p for p in problems)
    assert any("lists studies without a folder: study_9" in p for p in problems)
    with pytest.raises(ValidationError) as err:
        m.pairs()
    assert len(err.value.problems) == 3
    assert [p.case for p in m.pairs(strict=False)] == ["study_1", "study_3"]


# -- explicit loader -------------------------------------------------------------------------
def _own_data(root: Path, cases=("subj01", "subj02", "subj03", "subj04")) -> Path:
    rng = np.random.default_rng(0)
    for case in cases:
        for name in ("base", "follow"):
            write_image(root / case / f"{name}.nii.gz", rng.random((6, 5, 4)).astype(np.float32))
            write_image(root / case / f"{name}_seg.nii.gz", np.ones((6, 5, 4), np.uint8))
    return root


def test_example_own_data_manifest(tmp_path):
    root = _own_data(tmp_path / "data")
    example = Path(__file__).parents[1] / "data_manifests" / "examples" / "own-data.yaml"
    m = load_manifest(example, root=root)
    pairs = m.pairs()
    assert [p.key for p in pairs] == [f"subj0{i}/base-follow" for i in range(1, 5)]
    assert pairs[0].fixed == root.resolve() / "subj01" / "base.nii.gz"
    assert pairs[0].fixed_labels is not None and pairs[2].fixed_labels is None
    assert [p.group for p in pairs] == ["A", "A", "B", "B"]
    folds = m.folds()
    for f in folds:  # stratified: one A and one B case per test fold
        assert sorted(p.group for p in f.test) == ["A", "B"]


def test_explicit_inline_pairs_and_problems(tmp_path):
    root = _own_data(tmp_path / "data", cases=("subj01", "subj02"))
    body = {
        "loader": "explicit",
        "contrast": "same",
        "labels": {"organ": 1},
        "cv": {"folds": 2, "stratify": None},
        "pairs": [
            {"case": "subj01", "pair": "b-f", "fixed": "subj01/base.nii.gz",
             "moving": "subj01/follow.nii.gz", "site": "x"},
            {"case": "subj02", "pair": "b-f", "fixed": "subj02/base.nii.gz",
             "moving": "subj02/follow.nii.gz", "fixed_labels": "subj02/nope.nii.gz"},
            {"case": "subj03", "fixed": "subj01/base.nii.gz", "moving": "subj01/follow.nii.gz"},
        ],
    }  # fmt: skip
    m = load_manifest(write_manifest(tmp_path, body), root=root)
    problems = m.scan().problems
    assert len(problems) == 2
    assert "pairs[1]: file(s) not found: fixed_labels" in problems[0]
    assert "nope.nii.gz" in problems[0]
    assert "pairs[2]: missing value(s) for pair" in problems[1]
    (good,) = m.pairs(strict=False)
    assert good.meta == {"site": "x"} and good.key == "subj01/b-f"


def test_explicit_csv_beside_manifest_or_under_root(tmp_path):
    root = _own_data(tmp_path / "data", cases=("s1", "s2"))
    table = "case,pair,fixed,moving\ns1,p,s1/base.nii.gz,s1/follow.nii.gz\ns2,p,s2/base.nii.gz,s2/follow.nii.gz\n"
    (root / "list.csv").write_text(table)
    body = {"loader": "explicit", "contrast": "same", "labels": {"a": 1}, "pairs_csv": "list.csv",
            "cv": {"folds": 2}}
    m = load_manifest(write_manifest(tmp_path / "manifests", body), root=root)
    assert [p.case for p in m.pairs()] == ["s1", "s2"]
    (root / "list.csv").write_text("case,fixed\ns1,a\n")
    m = load_manifest(write_manifest(tmp_path / "manifests", body), root=root)
    assert "missing column(s) pair, moving" in m.scan().problems[0]


def test_no_pairs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    m = load_manifest("acdc", root=tmp_path / "empty")
    with pytest.raises(ValidationError, match="no patientNNN folders"):
        m.folds()
    with pytest.raises(BenchError, match="no pairs found"):
        m.folds(strict=False)


def test_env_var_root(tmp_path, monkeypatch):
    root = make_acdc(tmp_path / "acdc", 4)
    monkeypatch.setenv("ACDC_ROOT", os.fspath(root))
    m = load_manifest("acdc")
    assert m.root_source == "environment ACDC_ROOT" and len(m.pairs()) == 8


def test_outdated_demo_cache_is_regenerated(tmp_path, monkeypatch):
    import benchmark.data.demo as demo

    calls = []

    def fake_generate(name, out, *, cases=None, seed=0):
        calls.append(name)
        root = make_acdc(Path(out), 2, seed=seed)
        (root / demo.MARKER).write_text(json.dumps({"version": demo.GENERATOR_VERSION}))
        return root

    monkeypatch.setattr(demo, "generate", fake_generate)
    monkeypatch.setenv("MIRBENCH_CACHE", str(tmp_path))
    first = load_manifest("demo-acdc")
    assert load_manifest("demo-acdc").root == first.root and len(calls) == 1
    monkeypatch.setattr(demo, "GENERATOR_VERSION", demo.GENERATOR_VERSION + 1)
    again = load_manifest("demo-acdc")
    assert len(calls) == 2 and again.root == first.root
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["demo-acdc-seed0-n8"]


def test_bench_data_demo_uses_manifest_cases(tmp_path, monkeypatch, capsys):
    import benchmark.data.demo as demo
    from benchmark.cli import main

    seen = []

    def fake_generate(name, out, *, cases=None, seed=0):
        seen.append((name, cases, seed))
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)

    monkeypatch.setattr(demo, "generate", fake_generate)
    assert main(["data", "demo", "demo-dce", "--out", str(tmp_path / "a")]) == 0
    assert (
        main(["data", "demo", "demo-acdc", "--out", str(tmp_path), "--cases", "3", "--seed", "4"])
        == 0
    )
    assert seen == [("demo-dce", 24, 0), ("demo-acdc", 3, 4)]
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "a"), str(tmp_path)]
    assert main(["data", "demo", "demo-acdc", "--out", str(tmp_path), "--cases", "0"]) == 2


def test_real_demo_dce_is_loadable(tmp_path):
    """The demo-dce generator writes exactly the layout the dce loader reads."""
    from benchmark.data.demo import generate
    from benchmark.data.validate import validate

    root = generate("demo-dce", tmp_path / "dce", cases=2, seed=3)
    m = load_manifest("demo-dce", root=root)
    report = validate(m)
    assert report.ok and len(report.pairs) == 2
    for p in m.pairs():
        assert p.pair == "pre-post" and p.fixed.name == "phase_00.nii.gz"
        assert p.moving.name == "phase_04.nii.gz" and p.displacement is not None
        assert p.mask is not None and p.fixed_labels is not None and p.group


def test_dce_wide_pattern_skips_mask_labels_and_truth(tmp_path):
    root = make_dce(tmp_path / "dce", 2, phases=3)
    path = write_manifest(
        tmp_path, {"loader": "dce", "labels": {"fat": 1}, "pattern": "*.nii.gz", "cv": {"folds": 2}}
    )
    pairs = load_manifest(path, root=root).pairs()
    assert [p.meta["phases"] for p in pairs] == [["phase_00", "phase_01", "phase_02"]] * 2
    assert pairs[0].displacement.name == "disp_phase_00-phase_02.nii.gz"


# -- parsing and resolving are separate; the loaders import neither ----------------------------
def test_no_import_cycle_in_the_data_package():
    """An AST scan of every import of ``benchmark.data`` (inside functions and TYPE_CHECKING
    blocks too): the module graph has no cycle; the loaders import no manifest module."""
    from test_architecture import imported_modules, project_files, read

    modules = {}
    for path in project_files():
        source, module, is_package = read(path)
        if module.startswith("benchmark.data"):
            modules[module] = imported_modules(source, module, is_package=is_package)
    graph: dict[str, set[str]] = {}
    for module, imports in modules.items():
        graph[module] = set()
        for _, target in imports:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    for module in modules:
        if module.startswith("benchmark.data.loaders"):
            assert not graph[module] & {"benchmark.data.manifest", "benchmark.data.parse"}, module

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            seen.add(nxt)
            if nxt == goal or reaches(nxt, goal, seen):
                return True
        return False

    cycles = [m for m in graph if reaches(m, m, set())]
    assert not cycles, f"modules on an import cycle: {cycles}"


_KEY = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)
_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEY, _VALUE, min_size=1, max_size=6))
def test_strict_yaml_reads_what_safe_load_reads(tmp_path_factory, mapping):
    """Any mapping with text keys that PyYAML writes is read back as ``yaml.safe_load`` reads it:
    the strict reader refuses only constructs a writer never produces."""
    from benchmark.data.yamlfile import load_mapping

    path = tmp_path_factory.mktemp("yaml") / "m.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    raw, data = load_mapping(path)
    assert raw == yaml.safe_load(data.decode("utf-8"))
    if not any(c in _texts(mapping) for c in "\x85\u2028\u2029"):  # YAML line breaks fold to " "
        assert raw == mapping


def _texts(value) -> str:
    """Every key and text value of a nested mapping or list, joined (``str()`` would escape them)."""
    if isinstance(value, dict):
        return "".join(_texts(k) + _texts(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(_texts(v) for v in value)
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifests_read_as_safe_load_reads_them(name):
    from benchmark.data.yamlfile import load_mapping

    path = find_manifest(name)
    assert load_mapping(path)[0] == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path):
    """Nine levels of nine aliases (9**9 strings once expanded: 3 GB and 48 s in the parser of
    before) are refused while composing: milliseconds, kilobytes."""
    import time
    import tracemalloc

    rows = ['  a0: &a0 "lol"'] + [
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    path = write_manifest(tmp_path, BASE)
    path.write_text(path.read_text() + "description:\n" + "\n".join(rows) + "\n")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BenchError, match="anchors and aliases") as err:
            load_manifest(path, root=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5 and peak < 20 * 2**20
    assert str(path) in str(err.value) and "line " in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("loader: explicit\nlabels: {a: 1}\nlabels: {a: 2}\n", "key labels appears twice (lines 2 and 3)"),
        ("loader: explicit\ncv:\n  folds: 2\n  seed: 1\n  folds: 3\n", "key cv.folds appears twice (lines 3 and 5)"),
        ("loader: explicit\npairs:\n  - {case: a, case: b}\n", "key pairs[0].case appears twice (lines 3 and 3)"),
        ("loader: explicit\n'loader': dce\n", "key loader appears twice (lines 1 and 2)"),
    ],
)  # fmt: skip
def test_duplicate_keys_name_the_key_and_both_lines(tmp_path, text, expected):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(BenchError) as err:
        load_manifest(path, root=tmp_path)
    assert str(err.value) == f"manifest {path.resolve()}: {expected}; keep one"


def test_every_dataset_states_its_contrast(tmp_path, capsys):
    """ACDC and its demo: one contrast; DCE and its demo: the phases differ; own data must say
    (a clear error naming the manifest); bench data check prints it."""
    from benchmark.cli import main
    from benchmark.data.parse import read_manifest

    for name, contrast in (("acdc", "same"), ("demo-acdc", "same"), ("dce", "different"),
                           ("demo-dce", "different")):
        assert read_manifest(name).fields["contrast"] == contrast, name
    own = tmp_path / "own.yaml"
    own.write_text("loader: explicit\nlabels: {a: 1}\npairs: [{case: c, pair: p, fixed: f.nii.gz, "
                   "moving: m.nii.gz}]\n")
    with pytest.raises(BenchError, match=rf"manifest {own}: contrast is required"):
        read_manifest(own)
    own.write_text(own.read_text() + "contrast: T1-T2\n")
    with pytest.raises(BenchError, match="contrast must be one of same, different, got 'T1-T2'"):
        read_manifest(own)
    acdc = tmp_path / "acdc.yaml"
    acdc.write_text("loader: acdc\nlabels: {RV: 1}\ncontrast: different\n")
    assert read_manifest(acdc).fields["contrast"] == "different"  # the manifest wins
    root = tmp_path / "demo"
    assert main(["data", "demo", "demo-dce", "--out", str(root), "--cases", "3"]) == 0
    capsys.readouterr()
    main(["data", "check", "--dataset", "demo-dce", "--root", str(root)])
    assert "contrast different (fixed and moving images differ in contrast)" in capsys.readouterr().out
