"""Adversarial data inputs, table-driven: every manifest key given a value of the wrong type or
range, YAML a manifest has no use for, and damaged files of every kind the loaders read (NIfTI,
MHA, NRRD, the pairs CSV, landmark CSVs, ACDC ``Info.cfg``, the DCE layout).

Each :class:`Case` copies one of three small datasets (explicit pairs, ACDC layout, DCE layout),
breaks one thing and runs ``bench data check`` in-process. A bad input must exit 2 with
``error:`` and every string of ``expect`` (the file, the key, what is expected) and never a
traceback; a legal but suspect input exits 0 with its warning; a legal input exits 0.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import yaml
from acdc_lookalike import make_acdc, make_dce

from benchmark.cli import main
from benchmark.core.images import write_displacement, write_image

SHAPE = (12, 10, 4)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
LABELS = {"a": 1, "b": 2}


# ------------------------------------------------------------------------------ the datasets
def _explicit(root: Path) -> None:
    """4 cases ``cK`` of fixed/moving images, labels and landmark CSVs; ``tiny.yaml``."""
    rng = np.random.default_rng(0)
    pairs = []
    for c in range(4):
        for role in ("ED", "ES"):
            image = (rng.random(SHAPE) * 100).astype(np.float32)
            write_image(root / f"c{c}_{role}.nii.gz", image, AFFINE)
            write_image(root / f"c{c}_{role}_gt.nii.gz", (image > 50).astype(np.uint8), AFFINE)
            (root / f"c{c}_{role}_lm.csv").write_text("id,i,j,k\np1,2,3,1\np2,5.5,4,2\n")
        pairs.append(
            {"case": f"c{c}", "pair": "ED-ES", "fixed": f"c{c}_ED.nii.gz",
             "moving": f"c{c}_ES.nii.gz", "fixed_labels": f"c{c}_ED_gt.nii.gz",
             "moving_labels": f"c{c}_ES_gt.nii.gz"}
        )  # fmt: skip
    manifest = {"name": "tiny", "loader": "explicit", "contrast": "same", "root": ".",
                "labels": dict(LABELS), "cv": {"folds": 2, "stratify": None}, "pairs": pairs}  # fmt: skip
    (root / "tiny.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _acdc(root: Path) -> None:
    make_acdc(root, 4)
    manifest = {"name": "acdc-like", "loader": "acdc", "root": ".",
                "labels": {"RV": 1, "LVm": 2, "LVb": 3}, "pairs": ["ED-ES"],
                "cv": {"folds": 2, "stratify": None}}  # fmt: skip
    (root / "tiny.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _dce(root: Path) -> None:
    make_dce(root, 4)
    manifest = {"name": "dce-like", "loader": "dce", "root": ".", "labels": {"fat": 1, "gland": 2,
                "lesion": 3}, "pairs": "pre-last", "cv": {"folds": 2, "stratify": "group"}}  # fmt: skip
    (root / "tiny.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


BUILDERS = {"explicit": _explicit, "acdc": _acdc, "dce": _dce}


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind, build in BUILDERS.items():
        out[kind] = tmp_path_factory.mktemp(kind)
        build(out[kind])
    return out


# ------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    """One input: ``base`` dataset, ``breaks(root)`` damages it; ``rc`` and the strings that the
    output must contain (``{root}`` and ``{manifest}`` are filled in)."""

    id: str
    breaks: Callable[[Path], None]
    expect: tuple[str, ...] = ()
    base: str = "explicit"
    rc: int = 2
    absent: tuple[str, ...] = ()


def _manifest(root: Path) -> Path:
    return root / "tiny.yaml"


def _raw(root: Path) -> dict:
    return yaml.safe_load(_manifest(root).read_text())


def _dump(root: Path, raw: dict) -> None:
    _manifest(root).write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parts(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _PART.findall(path)]


def key(path: str, value: Any, *, drop: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """Set the manifest key ``path`` (``cv.seed``, ``pairs[0].case``) to ``value``, after
    removing the top-level keys ``drop``; missing mappings on the way are created."""

    def apply(root: Path) -> None:
        raw = _raw(root)
        for name in drop:
            raw.pop(name, None)
        *parents, last = _parts(path)
        node = raw
        for part in parents:
            if isinstance(node, dict) and not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        node[last] = value
        _dump(root, raw)

    return apply


def text(edit: Callable[[str], str]) -> Callable[[Path], None]:
    """Rewrite the manifest's text with ``edit``."""
    return lambda root: _manifest(root).write_text(edit(_manifest(root).read_text()))


def data(payload: bytes) -> Callable[[Path], None]:
    """Replace the manifest file's bytes."""
    return lambda root: _manifest(root).write_bytes(payload)


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for step in steps:
            step(root)

    return apply


def ok(root: Path) -> None:
    """No change (a legal input)."""


# -- manifest keys ----------------------------------------------------------------------------
def wrong(
    path: str,
    *values: Any,
    expect: str,
    drop: tuple[str, ...] = (),
    base="explicit",
    setup: Callable[[Path], None] = ok,
) -> list[Case]:
    """One case per value: ``path`` set to it (after ``setup``) must fail naming the manifest
    file and ``expect``."""
    return [
        Case(f"{base}-{path}={value!r}", both(setup, key(path, value, drop=drop)),
             ("{manifest}: " + expect,), base=base)
        for value in values
    ]  # fmt: skip


NO_CV = ("cv",)
NO_PAIRS = ("pairs",)
DEMO = {"generator": "demo-acdc", "cases": 2, "seed": 0}
WITH_DEMO = key("demo", DEMO)
WITH_SPLIT = key("split", {"train": 2, "test": 2}, drop=NO_CV)
KEYS = [
    *wrong("name", 5, "", "  ", ["a"], "a\x00b", expect="name must be a non-empty string"),
    *wrong("description", 5, ["a"], {"a": 1}, expect="description must be text"),
    *wrong("loader", ["explicit"], 1, None, "nifti", expect="loader must be one of"),
    *wrong("root", 5, ["."], "", expect="root must be a folder"),
    *wrong("root_env", 5, "A B", "", "A=B", ["A"], expect="root_env must be an environment"),
    *wrong("labels", [1, 2], "a", None, {}, expect="labels must be a non-empty mapping"),
    *wrong("labels.a", 1.5, True, "1", [1], None, expect="labels.a must be an integer"),
    *wrong("labels.a", -1, 0, expect="labels.a must be >= 1"),
    *wrong("labels.a", 40000, expect="labels.a must be <= 32767"),
    *wrong("pairs", "x", [], {"a": 1}, [1, 2], [[]], expect="pairs must be a non-empty list"),
    *wrong("pairs[0].case", 10, 1.5, True, ["c"], expect="pairs[0].case must be text"),
    *wrong("pairs[0].pair", 90, expect="pairs[0].pair must be text"),
    *wrong("pairs[0].fixed", ["a"], 5, {"a": 1}, expect="pairs[0].fixed must be text"),
    *wrong("pairs[0].moving", True, expect="pairs[0].moving must be text"),
    *wrong("pairs[0].fixed_labels", 5, expect="pairs[0].fixed_labels must be text"),
    *wrong("pairs[0].mask", {"a": 1}, expect="pairs[0].mask must be text"),
    *wrong("pairs[0].group", ["A"], {"g": 1}, expect="pairs[0].group must be a single value"),
    *wrong("pairs[0].site", [1], expect="pairs[0].site must be a single value"),
    *wrong("pairs_csv", 5, "", ["a"], expect="pairs_csv must be a file name", drop=NO_PAIRS),
    *wrong("training_pairs", "x", 5, expect="training_pairs: pairs must be a non-empty list"),
    *wrong("cv", [], 4, "x", expect="cv must be a mapping"),
    *wrong("cv.folds", 2.5, "4", True, None, expect="cv.folds must be an integer"),
    *wrong("cv.folds", 1, -3, expect="cv.folds must be >= 2"),
    *wrong("cv.folds", 10**6, expect="cv: cannot make 1000000 folds from 4 case(s)"),
    *wrong("cv.stratify", 5, ["group"], "", True, expect="cv.stratify must be a field name"),
    *wrong("cv.seed", -1, 2**32, expect="cv.seed must be an integer in 0..4294967295"),
    *wrong("cv.seed", 1.5, "0", True, expect="cv.seed must be an integer"),
    *wrong("cv.extra", 1, expect="unknown key(s) ['extra'] in cv"),
    *wrong("split", [], 5, expect="split must be a mapping", drop=NO_CV),
    *wrong("split.train", -1, float("inf"), float("nan"), "1", True, None,
           expect="split.train must be a finite count or fraction >= 0", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("split.test", 0, expect="split needs train > 0 and test > 0", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("split.val", -0.5, expect="split.val must be", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("split.seed", -1, 2**40, expect="split.seed must be an integer in 0..", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("split.stratify", 3, expect="split.stratify must be a field name", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("split.x", 1, expect="unknown key(s) ['x'] in split", drop=NO_CV, setup=WITH_SPLIT),
    *wrong("presets", [], "quick", 5, expect="presets must map preset names to mappings"),
    *wrong("presets.quick", 5, ["a"], "x", expect="presets must map preset names to mappings"),
    *wrong("presets.quick.iterations", -1, "many", 2.5, expect="presets.quick.iterations="),
    *wrong("presets.quick.batch_size", 0, expect="presets.quick.batch_size="),
    *wrong("demo", 5, "demo-acdc", {"cases": 2}, expect="demo must be a mapping with generator"),
    *wrong("demo.generator", 5, expect="demo must be a mapping with generator"),
    *wrong("demo.generator", "nope", expect="demo.generator must be one of demo-acdc, demo-dce"),
    *wrong("demo.cases", 0, -2, expect="demo.cases must be >= 1", setup=WITH_DEMO),
    *wrong("demo.cases", "8", 2.5, expect="demo.cases must be an integer", setup=WITH_DEMO),
    *wrong("demo.seed", -1, expect="demo.seed must be an integer in 0..4294967295", setup=WITH_DEMO),
    *wrong("demo.seed", "x", expect="demo.seed must be an integer", setup=WITH_DEMO),
    *wrong("demo.extra", 1, expect="unknown key(s) ['extra'] in demo", setup=WITH_DEMO),
    *wrong("landmarks", 5, "x.csv", "a/{stem}.csv", "{stem}{x}.csv", "{stem", "{0}{stem}",
           expect="landmarks must be a file-name pattern with {stem}"),
    *wrong("Labels", 1, expect="unknown key(s) ['Labels'] in the manifest"),
    *wrong("subset", "x", expect="unknown key(s) ['subset']"),
    # ACDC options
    *wrong("subset", "train", 1, ["training"], expect="subset must be one of training, testing",
           base="acdc"),
    *wrong("require_labels", "yes", 1, None, expect="require_labels must be true or false",
           base="acdc"),
    *wrong("pairs", ["ED-ED"], 5, [], {"a": 1}, [["ED-ES"]],
           expect="pairs must be a non-empty list of ED-ES, ES-ED", base="acdc"),
    *wrong("pairs", ["ED-ES", "ED-ES"], expect="pairs lists a pair twice", base="acdc"),
    *wrong("training_pairs", ["X"], expect="training_pairs: pairs must be", base="acdc"),
    *wrong("pattern", "x", expect="unknown key(s) ['pattern']", base="acdc"),
    # DCE options
    *wrong("pattern", 5, "", "a/b*.nii.gz", ["x"], expect="pattern must be a file glob",
           base="dce"),
    *wrong("pairs", "pre-first", ["pre-last", "pre-each"], 5, {"a": 1},
           expect="pairs must be one of pre-last, pre-each", base="dce"),
    *wrong("training_pairs", "x", expect="training_pairs: pairs must be one of", base="dce"),
    *wrong("pairs_csv", "x.csv", expect="unknown key(s) ['pairs_csv']", base="dce"),
    # values that are right: they must pass
    Case("demo-with-root", key("demo", DEMO), rc=0, expect=("ok: 4 cases",)),
    Case("split-fractions", key("split", {"train": 0.5, "test": 0.5}, drop=NO_CV), rc=0,
         expect=("ok: 4 cases",)),
    Case("cv-stratify-false", key("cv.stratify", False), rc=0, expect=("ok: 4 cases",)),
    Case("acdc-pairs-as-text", key("pairs", "ES-ED"), base="acdc", rc=0,
         expect=("ok: 4 cases",)),
    Case("seed-max", key("cv.seed", 2**32 - 1), rc=0, expect=("ok: 4 cases",)),
    # values the manifest accepts whose data is absent or wrong: named by the loader
    Case("root-missing", key("root", "nowhere"),
         ("dataset tiny: data folder {root}/nowhere (from manifest root) does not exist",)),
    Case("root-is-a-file", key("root", "c0_ED.nii.gz"),
         ("data folder {root}/c0_ED.nii.gz (from manifest root) is a file, not a folder",)),
    Case("pairs-case-empty", key("pairs[0].case", ""),
         ("{root}/tiny.yaml: pairs[0]: missing value(s) for case",)),
    Case("pairs-file-missing", key("pairs[0].fixed", "/nowhere/x.nii.gz"),
         ("{root}/tiny.yaml: pairs[0]: file(s) not found: fixed /nowhere/x.nii.gz",)),
]  # fmt: skip

# -- YAML a manifest has no use for ------------------------------------------------------------
BOMB = "description:\n  a0: &a0 lol\n" + "".join(
    f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)
YAML = [
    Case("yaml-duplicate-nested", text(lambda t: t.replace("  folds: 2\n", "  folds: 2\n  folds: 3\n")),
         ("{manifest}: key cv.folds appears twice",)),
    Case("yaml-duplicate-in-a-pair", text(lambda t: t.replace("  pair: ED-ES\n", "  pair: ED-ES\n  pair: X\n", 1)),
         ("{manifest}: key pairs[0].pair appears twice",)),
    Case("yaml-duplicate-quoted", text(lambda t: t + '"labels": {a: 2, b: 1}\n'),
         ("{manifest}: key labels appears twice",)),
    Case("yaml-alias-bomb", text(lambda t: t + BOMB), ("{manifest}: line", "anchor &a0")),
    Case("yaml-small-alias", text(lambda t: t + "description: &d x\nname: *d\n"),
         ("{manifest}: line", "anchors and aliases")),
    Case("yaml-merge-key", text(lambda t: t.replace("cv:\n", "cv:\n  <<: {seed: 3}\n")),
         ("{manifest}: line", "merge key '<<' in cv")),
    Case("yaml-int-key", text(lambda t: t + "1: x\n"), ("{manifest}: line", "key 1 in the top level is read as a number")),
    Case("yaml-float-key", text(lambda t: t.replace("  a: 1", "  1.5: 1")), ("key 1.5 in labels is read as a number",)),
    Case("yaml-bool-key", text(lambda t: t.replace("  a: 1", "  yes: 1")), ("key yes in labels is read as true/false",)),
    Case("yaml-on-key", text(lambda t: t.replace("  a: 1", "  on: 1")), ("key on in labels is read as true/false",)),
    Case("yaml-null-key", text(lambda t: t.replace("  a: 1", "  ~: 1")), ("key ~ in labels is read as null",)),
    Case("yaml-date-key", text(lambda t: t.replace("  a: 1", "  2020-01-01: 1")), ("key 2020-01-01 in labels is read as a date",)),
    Case("yaml-list-key", text(lambda t: t + "? [a, b]\n: 1\n"), ("{manifest}: line", "a list as a key in the top level")),
    Case("yaml-two-documents", text(lambda t: t + "---\nname: other\n"), ("{manifest}: line", "a second YAML document")),
    Case("yaml-empty", data(b""), ("{manifest}: the file holds no YAML",)),
    Case("yaml-comments-only", data(b"# nothing\n\n"), ("{manifest}: the file holds no YAML",)),
    Case("yaml-scalar", data(b"hello\n"), ("{manifest}: expected a YAML mapping", "'hello'")),
    Case("yaml-null-document", data(b"~\n"), ("{manifest}: expected a YAML mapping",)),
    Case("yaml-list", data(b"- a\n"), ("{manifest}: expected a YAML mapping", "a list")),
    Case("yaml-tab-indent", text(lambda t: t.replace("  folds: 2", "\tfolds: 2")), ("{manifest}: not valid YAML",)),
    Case("yaml-nul-byte", text(lambda t: t + "description: a\x00b\n"), ("{manifest}: not valid YAML",)),
    Case("yaml-latin-1", data(b"name: caf\xe9\n"), ("{manifest}: not UTF-8 text", "byte 0xe9")),
    Case("yaml-utf-16", lambda root: _manifest(root).write_text(_manifest(root).read_text(), encoding="utf-16"),
         ("{manifest}: not UTF-8 text (byte 0xff at position 0)",)),
    Case("yaml-too-large", text(lambda t: t + ("#" * 1023 + "\n") * 8200), ("{manifest}: larger than 8 MiB",)),
    Case("yaml-too-deep", text(lambda t: t + "description: " + "[" * 3000 + "]" * 3000 + "\n"),
         ("{manifest}: line", "nested more than 20 levels")),
    Case("yaml-python-tag", text(lambda t: t + "description: !!python/object/apply:os.system [echo hi]\n"),
         ("{manifest}: not valid YAML", "python/object/apply")),
    Case("yaml-custom-tag", text(lambda t: t + "description: !foo x\n"), ("{manifest}: not valid YAML", "!foo")),
    Case("yaml-binary", text(lambda t: t + "description: !!binary aGVsbG8=\n"), ("{manifest}: description must be text",)),
    Case("yaml-set", text(lambda t: t.replace("labels:\n  a: 1\n  b: 2\n", "labels: !!set {a, b}\n")),
         ("{manifest}: labels must be a non-empty mapping name -> value",)),
    Case("yaml-octal-case", text(lambda t: t.replace("case: c0", "case: 010")), ("{manifest}: pairs[0].case must be text", "got 8")),
    Case("yaml-sexagesimal-pair", text(lambda t: t.replace("pair: ED-ES", "pair: 1:30", 1)), ("{manifest}: pairs[0].pair must be text", "got 90")),
    Case("yaml-bom", lambda root: _manifest(root).write_bytes(b"\xef\xbb\xbf" + _manifest(root).read_bytes()), rc=0, expect=("ok: 4 cases",)),
    Case("yaml-crlf", lambda root: _manifest(root).write_bytes(_manifest(root).read_bytes().replace(b"\n", b"\r\n")), rc=0, expect=("ok: 4 cases",)),
]  # fmt: skip


# -- image files ------------------------------------------------------------------------------
def image(name: str, array, affine=AFFINE, *, raw: bool = False) -> Callable[[Path], None]:
    """Write ``root/name`` (``raw``: through nibabel as is, no dtype conversion)."""

    def apply(root: Path) -> None:
        if raw:
            header = nib.Nifti1Header()
            header.set_data_dtype(np.asarray(array).dtype)
            nib.save(nib.Nifti1Image(np.asarray(array), affine, header), str(root / name))
        else:
            write_image(root / name, np.asarray(array), affine)

    return apply


def damage(name: str, how: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda root: (root / name).write_bytes(how((root / name).read_bytes()))


def use(role: str, name: str, case: int = 0) -> Callable[[Path], None]:
    """Point ``role`` of pair ``case`` at ``name``."""
    return key(f"pairs[{case}].{role}", name)


def case_files(
    case: int, change: Callable[[np.ndarray, np.ndarray], tuple]
) -> Callable[[Path], None]:
    """Rewrite the four images of ``case`` with ``change(array, affine) -> (array, affine)``."""

    def apply(root: Path) -> None:
        for role in ("ED", "ES", "ED_gt", "ES_gt"):
            path = root / f"c{case}_{role}.nii.gz"
            img = nib.load(path)
            write_image(path, *change(np.asarray(img.dataobj), img.affine))

    return apply


def as_itk(suffix: str, case: int = 0) -> Callable[[Path], None]:
    """Case ``case``'s images (and labels) rewritten as ``suffix`` files, the manifest updated."""

    def apply(root: Path) -> None:
        for role, column in (("ED", "fixed"), ("ES", "moving"), ("ED_gt", "fixed_labels"),
                             ("ES_gt", "moving_labels")):  # fmt: skip
            img = nib.load(root / f"c{case}_{role}.nii.gz")
            write_image(root / f"c{case}_{role}{suffix}", np.asarray(img.dataobj), img.affine)
            use(column, f"c{case}_{role}{suffix}", case)(root)

    return apply


def noise(shape, dtype=np.float32):
    return (np.random.default_rng(1).random(shape) * 100).astype(dtype)


def with_value(index, value, dtype=np.float32):
    array = noise(SHAPE, dtype)
    array[index] = value
    return array


def truncate(fraction: float) -> Callable[[bytes], bytes]:
    return lambda b: b[: int(len(b) * fraction)]


NII = "c0_ED.nii.gz"
F = "{root}/c0_ED.nii.gz"
IMAGES = [
    Case("nii-empty", damage(NII, lambda b: b""), (F + ": cannot read image",)),
    Case("nii-gzip-of-garbage", damage(NII, lambda b: gzip.compress(b"garbage" * 100)), (F + ": cannot read image",)),
    Case("nii-header-only", both(image("c0_ED.nii", noise(SHAPE), raw=True), damage("c0_ED.nii", lambda b: b[:348]),
                                 use("fixed", "c0_ED.nii")), ("{root}/c0_ED.nii: cannot read image",)),
    Case("nii-plain-truncated", both(image("c0_ED.nii", noise(SHAPE), raw=True), damage("c0_ED.nii", truncate(0.7)),
                                     use("fixed", "c0_ED.nii")), ("{root}/c0_ED.nii: cannot read image",)),
    Case("nii-plain-ok", both(image("c0_ED.nii", noise(SHAPE), raw=True), use("fixed", "c0_ED.nii")), rc=0,
         expect=("ok: 4 cases",)),
    Case("nii-complex128", image(NII, (noise(SHAPE) * (1 + 1j)).astype(np.complex128), raw=True), (F + ": complex-valued voxels (dtype complex128)",)),
    Case("nii-rgb", image(NII, np.zeros(SHAPE, [("R", "u1"), ("G", "u1"), ("B", "u1")]), raw=True),
         (F + ": compound voxels with fields R, G, B",)),
    Case("nii-1d", image(NII, noise((12,))), (F + ": expected a 2D or 3D image, got shape (12,)",)),
    Case("nii-5d-vector", image(NII, noise((*SHAPE, 1, 3))), (F + ": expected a 2D or 3D image",)),
    Case("nii-2d-in-3d-pair", image(NII, noise(SHAPE[:2])), ("shapes differ, (12, 10) vs (12, 10, 4)",)),
    Case("nii-int64", image(NII, noise(SHAPE, np.int64), raw=True), rc=0, expect=("ok: 4 cases",)),
    Case("nii-float64", image(NII, noise(SHAPE, np.float64), raw=True), rc=0, expect=("ok: 4 cases",)),
    Case("nii-uint8", image(NII, noise(SHAPE, np.uint8)), rc=0, expect=("ok: 4 cases",)),
    Case("nii-inf", image(NII, with_value((0, 0, 0), -np.inf)), (F + ": 1 NaN or infinite voxel(s)",)),
    Case("labels-nan", image("c0_ED_gt.nii.gz", with_value((1, 1, 1), np.nan)),
         ("{root}/c0_ED_gt.nii.gz: 1 NaN or infinite voxel(s)",)),
    Case("labels-negative", image("c0_ED_gt.nii.gz", np.full(SHAPE, -1, np.int16)),
         ("{root}/c0_ED_gt.nii.gz: label value(s) [-1] not declared",)),
    Case("labels-complex", image("c0_ED_gt.nii.gz", np.ones(SHAPE, np.complex64), raw=True),
         ("{root}/c0_ED_gt.nii.gz: complex-valued voxels",)),
    Case("image-3x3x3", case_files(0, lambda a, aff: (a[:3, :3, :3], aff)),
         (F + ": image of shape (3, 3, 3) is too small to register",)),
    Case("image-12x1x1", case_files(0, lambda a, aff: (a[:, :1, :1], aff)),
         (F + ": image of shape (12, 1, 1) is too small",)),
    Case("image-2d-4x3", case_files(0, lambda a, aff: (a[:4, :3, 0], aff)),
         (F + ": image of shape (4, 3) is too small",)),
    Case("image-slab-12x10x1", case_files(0, lambda a, aff: (a[:, :, :1], aff)), rc=0, expect=("ok: 4 cases",)),
    Case("image-4x4x1", case_files(0, lambda a, aff: (a[:4, :4, :1], aff)), rc=0, expect=("ok: 4 cases",)),
    Case("spacing-tiny-refused", case_files(0, lambda a, aff: (a, np.diag([1e-5, 1e-5, 1e-5, 1]))),
         (F + ": voxel spacing i 1e-05, j 1e-05, k 1e-05 mm is outside 0.0001..1000 mm",)),
    Case("spacing-metres-warns", case_files(0, lambda a, aff: (a, np.diag([0.0015, 0.0015, 0.003, 1]))), rc=0,
         expect=("warning: " + F + ": voxel spacing i 0.0015, j 0.0015, k 0.003 mm is outside 0.01..30",)),
    Case("spacing-large-warns", case_files(0, lambda a, aff: (a, np.diag([50.0, 1.5, 3, 1]))), rc=0,
         expect=("warning: " + F + ": voxel spacing i 50 mm",)),
    Case("mask-wrong-grid", both(image("mask.nii.gz", np.ones((4, 4, 4), np.uint8)), use("mask", "mask.nii.gz")),
         ("the mask must be on the fixed image grid",)),
    Case("mask-nan", both(image("mask.nii.gz", with_value((0, 0, 0), np.nan)), use("mask", "mask.nii.gz")),
         ("{root}/mask.nii.gz: 1 NaN or infinite voxel(s)",)),
    Case("mask-complex", both(image("mask.nii.gz", np.ones(SHAPE, np.complex64), raw=True), use("mask", "mask.nii.gz")),
         ("{root}/mask.nii.gz: complex-valued voxels",)),
    Case("disp-not-a-vector-field", both(image("disp.nii.gz", noise(SHAPE)), use("displacement", "disp.nii.gz")),
         ("{root}/disp.nii.gz: expected a NIfTI vector field",)),
    Case("disp-wrong-shape", both(lambda r: write_displacement(r / "disp.nii.gz", np.zeros((3, 4, 4, 4), np.float32), AFFINE),
                                  use("displacement", "disp.nii.gz")), ("{root}/disp.nii.gz: displacement shape (3, 4, 4, 4)",)),
    Case("disp-wrong-affine", both(lambda r: write_displacement(r / "disp.nii.gz", np.zeros((3, *SHAPE), np.float32), np.eye(4)),
                                   use("displacement", "disp.nii.gz")), ("{root}/disp.nii.gz: displacement affine differs",)),
    Case("disp-nan", both(lambda r: write_displacement(r / "disp.nii.gz", np.full((3, *SHAPE), np.nan, np.float32), AFFINE),
                          use("displacement", "disp.nii.gz")), ("{root}/disp.nii.gz: 1440 NaN or infinite voxel(s)",)),
    Case("disp-complex", both(image("disp.nii.gz", np.zeros((*SHAPE, 1, 3), np.complex64), raw=True),
                              use("displacement", "disp.nii.gz")), ("{root}/disp.nii.gz: complex-valued voxels",)),
    Case("disp-truncated", both(lambda r: write_displacement(r / "disp.nii.gz", np.zeros((3, *SHAPE), np.float32), AFFINE),
                                damage("disp.nii.gz", truncate(0.5)), use("displacement", "disp.nii.gz")),
         ("{root}/disp.nii.gz: cannot read displacement",)),
    # ITK formats
    Case("mha-ok", as_itk(".mha"), rc=0, expect=("ok: 4 cases",)),
    Case("nrrd-ok", as_itk(".nrrd"), rc=0, expect=("ok: 4 cases",)),
    Case("mha-truncated", both(as_itk(".mha"), damage("c0_ED.mha", truncate(0.6))), ("{root}/c0_ED.mha: cannot read image",)),
    Case("mha-empty", both(as_itk(".mha"), damage("c0_ED.mha", lambda b: b"")), ("{root}/c0_ED.mha: cannot read image",)),
    Case("mha-garbage", both(as_itk(".mha"), damage("c0_ED.mha", lambda b: b"not an image\n" * 50)),
         ("{root}/c0_ED.mha: cannot read image",)),
    Case("nrrd-truncated", both(as_itk(".nrrd"), damage("c0_ED.nrrd", truncate(0.6))), ("{root}/c0_ED.nrrd: cannot read image",)),
    Case("nrrd-empty", both(as_itk(".nrrd"), damage("c0_ED.nrrd", lambda b: b"")), ("{root}/c0_ED.nrrd: cannot read image",)),
    Case("mhd-missing-raw", both(
        lambda r: (r / "c0_ED.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 12 10 4\n"
                                               "ElementType = MET_FLOAT\nElementDataFile = gone.raw\n"),
        use("fixed", "c0_ED.mhd")), ("{root}/c0_ED.mhd: cannot read image",)),
    Case("nhdr-missing-data", both(
        lambda r: (r / "c0_ED.nhdr").write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 12 10 4\n"
                                                "encoding: raw\ndata file: gone.raw\n"),
        use("fixed", "c0_ED.nhdr")), ("{root}/c0_ED.nhdr: cannot read image",)),
    Case("mha-4d", both(as_itk(".mha"), lambda r: write_image(r / "c0_ED.mha", noise((*SHAPE, 2)), AFFINE)),
         ("{root}/c0_ED.mha: expected a 2D or 3D image",)),
    Case("mha-vs-nii-grid", both(as_itk(".mha"), lambda r: write_image(r / "c0_ED.mha", noise(SHAPE), np.diag([1.5, 1.5, 2.0, 1]))),
         ("{root}/c0_ED.mha vs {root}/c0_ES.mha", "affines differ")),
    Case("mha-tiny-spacing", both(as_itk(".mha"), lambda r: write_image(r / "c0_ED.mha", noise(SHAPE), np.diag([1e-6, 1e-6, 1e-6, 1]))),
         ("{root}/c0_ED.mha: voxel spacing",)),
]  # fmt: skip


# -- CSV tables --------------------------------------------------------------------------------
HEADER = "case,pair,fixed,moving,fixed_labels,moving_labels"


def _rows(root: Path) -> list[str]:
    return [",".join(p[c] for c in HEADER.split(",")) for p in _raw(root)["pairs"]]


def pairs_csv(make: Callable[[list[str]], bytes | str]) -> Callable[[Path], None]:
    """Replace the inline pairs by ``pairs.csv`` holding ``make(rows)`` (header not included)."""

    def apply(root: Path) -> None:
        body = make(_rows(root))
        (root / "pairs.csv").write_bytes(body if isinstance(body, bytes) else body.encode())
        raw = _raw(root)
        raw.pop("pairs")
        _dump(root, {**raw, "pairs_csv": "pairs.csv"})

    return apply


def table(*lines: str) -> str:
    return "\n".join(lines) + "\n"


P = "{root}/pairs.csv"
CSV = [
    Case("pairs-csv-ok", pairs_csv(lambda r: table(HEADER, *r)), rc=0, expect=("ok: 4 cases",)),
    Case("pairs-csv-crlf", pairs_csv(lambda r: table(HEADER, *r).replace("\n", "\r\n")), rc=0, expect=("ok: 4 cases",)),
    Case("pairs-csv-empty", pairs_csv(lambda r: b""), (P + ": missing column(s) case, pair, fixed, moving",)),
    Case("pairs-csv-nul", pairs_csv(lambda r: table(HEADER, r[0] + "\x00", *r[1:])), (P + ": line 2: a NUL byte",)),
    Case("pairs-csv-latin-1", pairs_csv(lambda r: table(HEADER, *r).encode() + "c9,é".encode("latin-1")),
         (P + ": cannot read pairs table (UnicodeDecodeError",)),
    Case("pairs-csv-semicolons", pairs_csv(lambda r: table(HEADER.replace(",", ";"), *(x.replace(",", ";") for x in r))),
         (P + ": missing column(s)", "the header is separated by ';'; the table must use commas")),
    Case("pairs-csv-tabs", pairs_csv(lambda r: table(HEADER.replace(",", "\t"), *(x.replace(",", "\t") for x in r))),
         ("the header is separated by tabs",)),
    Case("pairs-csv-short-row", pairs_csv(lambda r: table(HEADER, *r, "c9,ED-ES,x")), (P + ": line 6: missing field(s)",)),
    Case("pairs-csv-duplicate-row", pairs_csv(lambda r: table(HEADER, *r, r[0])), ("c0/ED-ES: duplicate pair id",)),
    Case("pairs-csv-file-missing", pairs_csv(lambda r: table(HEADER, *r, "c9,ED-ES,gone.nii.gz,c0_ES.nii.gz,,")),
         (P + ": line 6: file(s) not found: fixed {root}/gone.nii.gz",)),
    Case("pairs-csv-absent", both(pairs_csv(lambda r: table(HEADER, *r)), lambda root: (root / "pairs.csv").unlink()),
         ("pairs_csv 'pairs.csv' of {root}/tiny.yaml: file not found (looked for {root}/pairs.csv)",)),
    Case("pairs-csv-bom", pairs_csv(lambda r: "\ufeff" + table(HEADER, *r)), rc=0, expect=("ok: 4 cases",)),
]  # fmt: skip


def landmarks(text_of: Callable[[str], str] | None = None, *, only: str | None = None):
    """Turn on ``landmarks:``; the files (all, or ``only``) rewritten with ``text_of(name)``."""

    def apply(root: Path) -> None:
        key("landmarks", "{stem}_lm.csv")(root)
        if text_of is not None:
            for path in sorted(root.glob("c*_lm.csv")):
                if only is None or path.name == only:
                    path.write_text(text_of(path.name))

    return apply


L = "{root}/c0_ED_lm.csv"
LANDMARKS = [
    Case("landmarks-ok", landmarks(), rc=0, expect=("ok: 4 cases",)),
    Case("landmarks-columns", landmarks(lambda n: "name,x,y\na,1,2\n", only="c0_ED_lm.csv"),
         (L + ": landmark columns ['name', 'x', 'y']; expected id,i,j (2D) or id,i,j,k (3D)",)),
    Case("landmarks-not-a-number", landmarks(lambda n: "id,i,j,k\np1,a,2,1\n", only="c0_ED_lm.csv"),
         (L + ":2: coordinate is not a number",)),
    Case("landmarks-nan", landmarks(lambda n: "id,i,j,k\np1,nan,2,1\n", only="c0_ED_lm.csv"), (L + ":2: non-finite coordinate",)),
    Case("landmarks-duplicate-id", landmarks(lambda n: "id,i,j,k\np1,1,2,1\np1,2,2,1\n", only="c0_ED_lm.csv"),
         (L + ":3: duplicate landmark id 'p1'",)),
    Case("landmarks-extra-field", landmarks(lambda n: "id,i,j,k\np1,1,2,1,9\n", only="c0_ED_lm.csv"),
         (L + ":2: extra field(s) ['9']; the header has 4",)),
    Case("landmarks-missing-field", landmarks(lambda n: "id,i,j,k\np1,1,2\n", only="c0_ED_lm.csv"),
         (L + ":2: missing field(s)",)),
    Case("landmarks-empty", landmarks(lambda n: "", only="c0_ED_lm.csv"), (L + ": landmark columns []",)),
    Case("landmarks-latin-1", both(landmarks(), lambda r: (r / "c0_ED_lm.csv").write_bytes(b"id,i,j,k\n\xe9,1,1,1\n")),
         (L + ": cannot read landmarks (UnicodeDecodeError",)),
    Case("landmarks-2d-for-3d", landmarks(lambda n: "id,i,j\np1,1,2\n"), (L + ": 2D landmarks for the 3D image " + F,)),
    Case("landmarks-dimensions-differ", landmarks(lambda n: "id,i,j\np1,1,2\n", only="c0_ED_lm.csv"),
         (L + ": 2D landmarks for the 3D image " + F,)),
    Case("landmarks-outside-grid", landmarks(lambda n: "id,i,j,k\np1,2,3,1\np2,40,4,2\n", only="c0_ES_lm.csv"),
         ("{root}/c0_ES_lm.csv: 1 point(s) outside the image {root}/c0_ES.nii.gz of shape (12, 10, 4)", "[40.0, 4.0, 2.0]")),
    Case("landmarks-negative-index", landmarks(lambda n: "id,i,j,k\np1,-3,3,1\np2,5,4,2\n", only="c0_ED_lm.csv"),
         (L + ": 1 point(s) outside the image", "[-3.0, 3.0, 1.0]")),
]  # fmt: skip


# -- ACDC layout --------------------------------------------------------------------------------
def cfg(patient: str, body: str | bytes | None) -> Callable[[Path], None]:
    """Rewrite (``None``: delete) ``Info.cfg`` of ``patient``."""

    def apply(root: Path) -> None:
        path = root / "training" / patient / "Info.cfg"
        if body is None:
            path.unlink()
        elif isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)

    return apply


def acdc_file(patient: str, pattern: str, how: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for path in sorted((root / "training" / patient).glob(pattern)):
            how(path)

    return apply


def info_with(**values: str) -> Callable[[Path], None]:
    """Info.cfg of patient001 with some of its lines replaced or added (``ED="…"``)."""

    def apply(root: Path) -> None:
        path = root / "training" / "patient001" / "Info.cfg"
        lines = [line for line in path.read_text().splitlines()
                 if line.split(":")[0].strip().lower() not in {k.lower() for k in values}]  # fmt: skip
        path.write_text("\n".join([*lines, *(f"{k}: {v}" for k, v in values.items())]) + "\n")

    return apply


def append_cfg(line: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "training" / "patient001" / "Info.cfg"
        path.write_text(path.read_text() + line + "\n")

    return apply


C = "{root}/training/patient001/Info.cfg"
ACDC = [
    Case("acdc-ok", ok, base="acdc", rc=0, expect=("ok: 4 cases",)),
    Case("acdc-info-missing", cfg("patient001", None), (C + ": missing Info.cfg",), base="acdc"),
    Case("acdc-info-empty", cfg("patient001", ""), (C + ": ED must be a frame number, got nothing",), base="acdc"),
    Case("acdc-info-binary", cfg("patient001", b"\xff\xfe\x00garbage"), (C + ": cannot read (UnicodeDecodeError",), base="acdc"),
    Case("acdc-info-folder", both(cfg("patient001", None), lambda r: (r / "training/patient001/Info.cfg").mkdir()),
         (C + ": is a folder; expected the Info.cfg text file",), base="acdc"),
    Case("acdc-ed-text", info_with(ED="one"), (C + ": ED must be a frame number, got 'one'",), base="acdc"),
    Case("acdc-ed-fraction", info_with(ED="1.5"), (C + ": ED must be a frame number, got '1.5'",), base="acdc"),
    Case("acdc-ed-negative", info_with(ED="-1"), (C + ": ED must be a frame number, got '-1'",), base="acdc"),
    Case("acdc-ed-equals-es", lambda r: info_with(ED=re.search(r"(?im)^\s*es\s*:\s*(\S+)", (r / "training/patient001/Info.cfg").read_text()).group(1))(r),
         (C + ": ED and ES are the same frame",), base="acdc"),
    Case("acdc-es-beyond-nbframe", info_with(NbFrame="2"), (C + ": ES frame", "is outside 1..NbFrame (2)"), base="acdc"),
    Case("acdc-ed-twice-different", append_cfg("ED: 12"), (C + ": ED is given twice with different values",), base="acdc"),
    Case("acdc-ed-twice-other-case", append_cfg("ed: 12"), (C + ": ed is given twice with different values",), base="acdc"),
    Case("acdc-ed-twice-same", lambda r: append_cfg(re.search(r"(?im)^\s*ed\s*:.*$", (r / "training/patient001/Info.cfg").read_text()).group(0).strip())(r),
         base="acdc", rc=0, expect=("ok: 4 cases",)),
    Case("acdc-no-group-stratified", both(key("cv.stratify", "group"), info_with(Group="")),
         (C + ": no Group",), base="acdc"),
    Case("acdc-frame-missing", acdc_file("patient002", "*_frame??.nii.gz", lambda p: p.unlink()),
         ("missing ED frame image",), base="acdc"),
    Case("acdc-gt-missing", acdc_file("patient002", "*_gt.nii.gz", lambda p: p.unlink()),
         ("missing ED ground-truth labels",), base="acdc"),
    Case("acdc-gt-missing-not-required", both(key("require_labels", False),
                                             acdc_file("patient002", "*_gt.nii.gz", lambda p: p.unlink())),
         base="acdc", rc=0, expect=("ok: 4 cases",)),
    Case("acdc-frame-4d", acdc_file("patient001", "*_frame01.nii.gz", lambda p: write_image(p, noise((5, 5, 3, 2)), AFFINE)),
         ("_frame01.nii.gz: expected a 2D or 3D image",), base="acdc"),
    Case("acdc-frame-truncated", acdc_file("patient001", "*_frame01.nii.gz", lambda p: p.write_bytes(p.read_bytes()[:300])),
         ("_frame01.nii.gz: cannot read image",), base="acdc"),
    Case("acdc-no-patients", lambda r: shutil.rmtree(r / "training"), ("no patientNNN folders",), base="acdc"),
]  # fmt: skip


# -- DCE layout ---------------------------------------------------------------------------------
def studies(body: str | bytes | None) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "studies.csv"
        path.unlink()
        if body is None:
            path.mkdir()
        else:
            path.write_bytes(body if isinstance(body, bytes) else body.encode())

    return apply


S = "{root}/studies.csv"
GOOD_STUDIES = "study,group\nstudy_1,A\nstudy_2,B\nstudy_3,A\nstudy_4,B\n"
DCE = [
    Case("dce-ok", ok, base="dce", rc=0, expect=("ok: 4 cases",)),
    Case("dce-one-phase", lambda r: [p.unlink() for p in (r / "study_2").glob("phase_0[1-9].nii.gz")],
         ("{root}/study_2: found 1 phase file(s)",), base="dce"),
    Case("dce-no-studies", lambda r: [shutil.rmtree(d) for d in r.glob("study_*")],
         ("{root}: no study folders",), base="dce"),
    Case("dce-studies-folder", studies(None), (S + ": is a folder; expected a CSV file with columns study, group",),
         base="dce"),
    Case("dce-studies-columns", studies("study,kind\nstudy_1,A\n"), (S + ": needs columns study (or case) and group",),
         base="dce"),
    Case("dce-studies-semicolons", studies(GOOD_STUDIES.replace(",", ";")), ("separated by ';'",), base="dce"),
    Case("dce-studies-duplicate", studies(GOOD_STUDIES + "study_1,B\n"), (S + ":6: duplicate study id 'study_1'",),
         base="dce"),
    Case("dce-studies-unknown-study", studies(GOOD_STUDIES + "study_9,B\n"), (S + ": lists studies without a folder: study_9",),
         base="dce"),
    Case("dce-studies-latin-1", studies(b"study,group\nstudy_1,\xe9\n"), (S + ": cannot read (UnicodeDecodeError",), base="dce"),
    Case("dce-studies-bom", studies("\ufeff" + GOOD_STUDIES), base="dce", rc=0, expect=("ok: 4 cases", "groups   A: 2, B: 2")),
    Case("dce-phase-other-shape", lambda r: write_image(r / "study_1" / "phase_04.nii.gz", noise((8, 8, 5)), AFFINE),
         ("fixed and moving images must share one grid", "shapes differ"), base="dce"),
    Case("dce-mask-other-grid", lambda r: write_image(r / "study_1" / "mask.nii.gz", np.ones((3, 3, 3), np.uint8), AFFINE),
         ("the mask must be on the fixed image grid",), base="dce"),
    Case("dce-labels-other-grid", lambda r: write_image(r / "study_1" / "phase_00_labels.nii.gz", np.ones((8, 8, 6), np.uint8), np.eye(4)),
         ("fixed labels must be on the fixed image grid",), base="dce"),
    Case("dce-phase-complex", lambda r: image("study_1/phase_04.nii.gz", np.ones((8, 8, 6), np.complex64), raw=True)(r),
         ("{root}/study_1/phase_04.nii.gz: complex-valued voxels",), base="dce"),
]  # fmt: skip

CASES = KEYS + YAML + IMAGES + CSV + LANDMARKS + ACDC + DCE


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 250 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_data_check(case: Case, templates, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("MIRBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    shutil.copytree(templates[case.base], root)
    case.breaks(root)
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        try:
            rc = main(["data", "check", "--dataset", str(_manifest(root))])
        except Exception as exc:  # noqa: BLE001 - a traceback is exactly what must not happen
            pytest.fail(f"bench data check raised {type(exc).__name__}: {exc}")
    captured = capsys.readouterr()
    err = captured.err + caplog.text
    output = captured.out + err
    assert rc == case.rc, output[-3000:]
    assert "Traceback" not in output
    if rc:
        assert err.startswith("error: ") or "\nerror: " in err, err
    for expected in case.expect:
        expected = expected.replace("{manifest}", f"manifest {_manifest(root)}")
        expected = expected.replace("{root}", str(root))
        assert expected in output, f"{expected!r} not in:\n{output[-3000:]}"
    for unexpected in case.absent:
        assert unexpected not in output
