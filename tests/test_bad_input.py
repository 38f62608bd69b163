"""Bad input, table-driven: every fault a new user meets gets a clear ``error:`` (exit 2) that names
the file or option and the value, never a traceback; warnings say what the harness does; and after
fixing the input a re-run gives the results of a run that never saw the fault.

Each :class:`Case` builds a tiny explicit dataset (4 cases of 12x10x4 voxels), breaks one thing,
runs one ``bench`` command in-process and checks the exit code and the message. Cases with a
``fix`` then repair the input, run again into the same run folder and compare ``results.csv``
with a clean run (identity method only, so everything stays fast).
"""

from __future__ import annotations

import gzip
import io
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.ndimage import gaussian_filter

from benchmark.cli import main
from benchmark.core.images import write_image

LABELS = {"a": 1, "b": 2}
SHAPE = (12, 10, 4)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
N_CASES = 4


# ------------------------------------------------------------------------------ the dataset
@dataclass
class Dataset:
    """A tiny explicit dataset: ``root/tiny.yaml`` lists ``cK/ED-ES`` pairs of ``root/cK_*``."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "tiny.yaml"

    def file(self, case: int, role: str) -> Path:
        return self.root / f"c{case}_{role}.nii.gz"

    def raw(self) -> dict:
        return yaml.safe_load(self.manifest.read_text())

    def write_manifest(self, raw: dict) -> None:
        self.manifest.write_text(yaml.safe_dump(raw, sort_keys=False))

    def edit(self, **changes) -> None:
        self.write_manifest({**self.raw(), **changes})

    def pairs(self) -> list[dict]:
        return self.raw()["pairs"]


def make_dataset(root: Path) -> Dataset:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    pairs = []
    for c in range(N_CASES):
        base = gaussian_filter(rng.random(SHAPE), (2, 2, 0.5)) * 400.0
        fixed = (base + 10 * rng.random(SHAPE)).astype(np.float32)
        moving = (np.roll(base, 1, axis=0) + 10 * rng.random(SHAPE)).astype(np.float32)
        for role, image in (("ED", fixed), ("ES", moving)):
            write_image(root / f"c{c}_{role}.nii.gz", image, AFFINE)
            t1, t2 = np.percentile(image, [50, 80])
            labels = ((image > t1).astype(np.uint8) + (image > t2)).astype(np.uint8)
            write_image(root / f"c{c}_{role}_gt.nii.gz", labels, AFFINE)
        pairs.append(
            {"case": f"c{c}", "pair": "ED-ES", "fixed": f"c{c}_ED.nii.gz",
             "moving": f"c{c}_ES.nii.gz", "fixed_labels": f"c{c}_ED_gt.nii.gz",
             "moving_labels": f"c{c}_ES_gt.nii.gz"}
        )  # fmt: skip
    ds = Dataset(root)
    ds.write_manifest(
        {"name": "tiny", "loader": "explicit", "contrast": "same", "root": ".",
         "labels": dict(LABELS), "cv": {"folds": 2, "stratify": None}, "pairs": pairs}
    )  # fmt: skip
    return ds


def write_raw_nifti(path: Path, array: np.ndarray, **fields) -> None:
    """A ``.nii.gz`` whose header fields are exactly ``fields`` on a plain header: no affine is
    derived and nibabel's fixes on save (zero or negative pixdim) are undone in the bytes."""
    header = nib.Nifti1Header()
    header.set_data_dtype(array.dtype)
    header.set_data_shape(array.shape)
    nib.save(nib.Nifti1Image(array, None, header=header), str(path))
    data = gzip.decompress(Path(path).read_bytes())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(data), check=False)
    for key, value in fields.items():
        if key == "pixdim":
            header["pixdim"][1 : 1 + len(value)] = value
        elif key == "qfac":
            header["pixdim"][0] = value
        elif key == "sform":
            for row, name in zip(
                np.asarray(value)[:3], ("srow_x", "srow_y", "srow_z"), strict=True
            ):
                header[name] = row
        else:
            header[key] = value
    block = header.binaryblock
    Path(path).write_bytes(gzip.compress(block + data[len(block) :]))


def set_voxel(path: Path, index, value) -> None:
    img = nib.load(str(path))
    array = np.asanyarray(img.dataobj).astype(np.float32)
    array[index] = value
    write_image(path, array, img.affine)


def set_affine(path: Path, **fields) -> None:
    write_raw_nifti(path, np.asarray(nib.load(str(path)).dataobj), **fields)


# ------------------------------------------------------------------------------ running bench
@dataclass
class Outcome:
    rc: int
    out: str
    err: str


def bench(argv: list[str], capsys, caplog) -> Outcome:
    """``bench ARGV`` in-process: exit code, stdout, stderr plus log records."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            rc = int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - a traceback is exactly what must not happen
            pytest.fail(f"bench {' '.join(map(str, argv))} raised {type(exc).__name__}: {exc}")
    captured = capsys.readouterr()
    return Outcome(rc, captured.out, captured.err + caplog.text)


def run_args(ds: Dataset, out: Path, *extra) -> list:
    return ["run", "--methods", "identity", "--dataset", ds.manifest, "--out", out, *extra]


def check_args(ds: Dataset, *extra) -> list:
    return ["data", "check", "--dataset", ds.manifest, *extra]


def comparable(run_dir: Path) -> pd.DataFrame:
    """``results.csv`` without the timing rows (the only ones that differ between runs)."""
    table = pd.read_csv(run_dir / "results.csv", dtype={"case": str, "pair": str})
    return table[table["metric"] != "runtime_s"].reset_index(drop=True)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clean_results(tmp_path_factory) -> pd.DataFrame:
    """The results of a run on the unbroken dataset."""
    base = tmp_path_factory.mktemp("clean")
    ds = make_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIRBENCH_CACHE", str(base / "cache"))
        assert main([str(a) for a in run_args(ds, base / "run")]) == 0
    return comparable(base / "run")


# ------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    """One bad input.

    ``command(ds, tmp)`` gives the argv, ``breaks(ds, tmp)`` damages the input first. The run must
    exit with ``rc`` and its stderr (stdout too when ``rc == 0``) contain every string of
    ``expect`` (which may use ``{root}`` and ``{tmp}``) and none of ``absent``; ``then(ds, tmp,
    outcome)`` checks more. ``fix(ds, tmp)`` repairs the input; the same command then must
    succeed (and, for a ``bench run``, give the clean results).
    """

    id: str
    command: Callable[[Dataset, Path], list]
    breaks: Callable[[Dataset, Path], None] | None = None
    rc: int = 2
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    fix: Callable[[Dataset, Path], None] | None = None
    then: Callable[[Dataset, Path, Outcome], None] | None = None


def check(ds, tmp):
    return check_args(ds)


def run(ds, tmp):
    return run_args(ds, tmp / "run")


def pairs_edit(index: int, **changes):
    def apply(ds: Dataset, tmp: Path) -> None:
        pairs = ds.pairs()
        pairs[index] = {**pairs[index], **changes}
        ds.edit(pairs=pairs)

    return apply


def restore(case: int, role: str):
    """Fix: rewrite the damaged file from a fresh copy of the dataset."""

    def apply(ds: Dataset, tmp: Path) -> None:
        fresh = make_dataset(tmp / "fresh")
        shutil.copy(fresh.file(case, role), ds.file(case, role))

    return apply


def restore_manifest(ds: Dataset, tmp: Path) -> None:
    fresh = make_dataset(tmp / "fresh")
    shutil.copy(fresh.manifest, ds.manifest)


def fill(text: str, ds: Dataset, tmp: Path) -> str:
    return text.replace("{root}", str(ds.root)).replace("{tmp}", str(tmp))


def write(path: str, text: str | bytes):
    def apply(ds: Dataset, tmp: Path) -> None:
        target = Path(fill(path, ds, tmp))
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(fill(text, ds, tmp), encoding="utf-8")

    return apply


def both(*steps):
    def apply(ds, tmp):
        for step in steps:
            step(ds, tmp)

    return apply


def nan_voxel(case, role, value):
    return lambda ds, tmp: set_voxel(ds.file(case, role), (3, 4, 1), value)


def pairs_csv(text: str, *, bom: bool = False):
    """Replace the inline pairs by ``root/pairs.csv`` holding ``text`` (``{rows}``: the pairs)."""

    def apply(ds: Dataset, tmp: Path) -> None:
        raw = ds.raw()
        header = "case,pair,fixed,moving,fixed_labels,moving_labels"
        rows = "\n".join(",".join(p[c] for c in header.split(",")) for p in raw.pop("pairs"))
        body = text.format(header=header, rows=rows)
        (ds.root / "pairs.csv").write_bytes(("\ufeff" if bom else "").encode() + body.encode())
        ds.write_manifest({**raw, "pairs_csv": "pairs.csv"})

    return apply


def no_run_json(ds, tmp, outcome):
    assert not (tmp / "run" / "run.json").exists()


def rankings(text: str):
    return write("{tmp}/rankings.csv", text)


def ranking_cmd(ds, tmp):
    return ["stats", "ranking", tmp / "rankings.csv"]


def results_csv(text: str):
    return write("{tmp}/run/results.csv", text)


RESULTS_HEADER = "method,fold,case,pair,structure,metric,value,unit,status\n"
ROW = "identity,0,c0,ED-ES,image,nmi,0.5,1,ok\n"
GOOD_RANKINGS = "case,method,rank\nc1,A,1\nc1,B,2\nc2,A,2\nc2,B,1\nc3,A,1\nc3,B,2\n"


def one_case_warnings(ds, tmp, outcome):
    assert "only 1 case" in outcome.err and "Friedman" in outcome.err
    assert "only 1 ranking" in outcome.err and "chi-square" in outcome.err
    assert "P = n/a" in outcome.out


def warned_once(text):
    def then(ds, tmp, outcome):
        assert outcome.err.count(text) == 1, outcome.err

    return then


def append_text(text: str):
    """Append ``text`` to the manifest file as written (YAML that safe_dump would not write)."""

    def apply(ds: Dataset, tmp: Path) -> None:
        ds.manifest.write_text(ds.manifest.read_text() + text)

    return apply


def key_lines(key: str):
    """Then: the message names both lines where the top-level ``key`` is written."""

    def then(ds: Dataset, tmp: Path, outcome: Outcome) -> None:
        lines = [n for n, line in enumerate(ds.manifest.read_text().splitlines(), 1)
                 if line.startswith(f"{key}:")]  # fmt: skip
        assert len(lines) == 2
        assert f"key {key} appears twice (lines {lines[0]} and {lines[1]})" in outcome.err

    return then


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``description:`` holding ``width ** levels`` copies of one string through aliases."""
    rows = ['  a0: &a0 "lol"'] + [
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)
    ]
    return "description:\n" + "\n".join(rows) + "\n"


def every_file(case: int, change: Callable[[np.ndarray, np.ndarray], tuple]):
    """Rewrite all four files of ``case`` with ``change(array, affine) -> (array, affine)``."""

    def apply(ds: Dataset, tmp: Path) -> None:
        for role in ("ED", "ES", "ED_gt", "ES_gt"):
            img = nib.load(ds.file(case, role))
            write_image(ds.file(case, role), *change(np.asarray(img.dataobj), img.affine))

    return apply


def restore_case(case: int):
    return both(*(restore(case, role) for role in ("ED", "ES", "ED_gt", "ES_gt")))


def one_voxel(array, affine):
    return array[:1, :1, :1], affine


def spacing_of(*spacing):
    return lambda array, affine: (array, np.diag([*spacing, 1.0]))


def complex_image(ds: Dataset, tmp: Path) -> None:
    array = np.asarray(nib.load(ds.file(0, "ED")).dataobj)
    write_image(ds.file(0, "ED"), (array + 1j * array).astype(np.complex64), AFFINE)


def pairs_csv_folder(ds: Dataset, tmp: Path) -> None:
    raw = ds.raw()
    raw.pop("pairs")
    (ds.root / "pairs.csv").mkdir()
    ds.write_manifest({**raw, "pairs_csv": "pairs.csv"})


MANIFEST = [
    Case("unknown-dataset", lambda ds, tmp: ["data", "check", "--dataset", "nope"],
         expect=("unknown dataset 'nope'", "known manifests")),
    Case("manifest-missing", lambda ds, tmp: ["data", "check", "--dataset", tmp / "no.yaml"],
         expect=("manifest file {tmp}/no.yaml not found",)),
    Case("manifest-not-yaml", check, write("{root}/tiny.yaml", "labels: [a: 1\n"),
         expect=("tiny.yaml", "not valid YAML"), fix=restore_manifest),
    Case("manifest-not-mapping", check, write("{root}/tiny.yaml", "- a\n- b\n"),
         expect=("tiny.yaml", "expected a YAML mapping", "list"), fix=restore_manifest),
    Case("loader-unknown", check, lambda ds, tmp: ds.edit(loader="nifti"),
         expect=("loader must be one of", "'nifti'"), fix=restore_manifest),
    Case("unknown-key", check, lambda ds, tmp: ds.edit(lables={"a": 1}),
         expect=("unknown key(s) ['lables']",), fix=restore_manifest),
    Case("labels-empty", check, lambda ds, tmp: ds.edit(labels={}),
         expect=("labels must be a non-empty mapping", "{}"), fix=restore_manifest),
    Case("label-zero", check, lambda ds, tmp: ds.edit(labels={"a": 0, "b": 2}),
         expect=("labels.a must be >= 1, got 0",), fix=restore_manifest),
    Case("label-text", check, lambda ds, tmp: ds.edit(labels={"a": "one", "b": 2}),
         expect=("labels.a must be an integer, got 'one'",), fix=restore_manifest),
    Case("label-twice", check, lambda ds, tmp: ds.edit(labels={"a": 1, "b": 1}),
         expect=("label value 1 is used twice",), fix=restore_manifest),
    Case("cv-one-fold", check, lambda ds, tmp: ds.edit(cv={"folds": 1}),
         expect=("cv.folds must be >= 2, got 1",), fix=restore_manifest),
    Case("cv-unknown-key", check, lambda ds, tmp: ds.edit(cv={"fold": 2}),
         expect=("unknown key(s) ['fold'] in cv",), fix=restore_manifest),
    Case("cv-and-split", check, lambda ds, tmp: ds.edit(split={"train": 2, "test": 2}),
         expect=("either cv", "or split"), fix=restore_manifest),
    Case("split-no-test", check,
         lambda ds, tmp: ds.write_manifest({**{k: v for k, v in ds.raw().items() if k != "cv"},
                                            "split": {"train": 2, "test": 0}}),
         expect=("split needs train > 0 and test > 0", "'test': 0"), fix=restore_manifest),
    Case("name-with-slash", check, lambda ds, tmp: ds.edit(name="a/b"),
         expect=("name must be a non-empty string without '/'", "'a/b'"), fix=restore_manifest),
    Case("presets-not-mapping", check, lambda ds, tmp: ds.edit(presets=["quick"]),
         expect=("presets must map preset names to mappings", "['quick']"), fix=restore_manifest),
    Case("pairs-and-pairs-csv", check, lambda ds, tmp: ds.edit(pairs_csv="pairs.csv"),
         expect=("exactly one of pairs", "pairs_csv"), fix=restore_manifest),
    Case("root-missing", check, lambda ds, tmp: ds.edit(root="nowhere"),
         expect=("data folder {root}/nowhere", "does not exist"), fix=restore_manifest),
    Case("no-root",
         lambda ds, tmp: ["data", "check", "--dataset", ds.manifest],
         lambda ds, tmp: ds.write_manifest({k: v for k, v in ds.raw().items() if k != "root"}),
         expect=("dataset tiny: no data folder given", "--root"), fix=restore_manifest),
    Case("stratify-field-missing", check,
         lambda ds, tmp: ds.edit(cv={"folds": 2, "stratify": "site"}),
         expect=("cv.stratify names the field 'site'", "which no pair has", "tiny.yaml"),
         fix=restore_manifest),
    Case("stratify-by-a-column", check,
         lambda ds, tmp: ds.edit(cv={"folds": 2, "stratify": "site"},
                                 pairs=[{**p, "site": "AB"[i % 2]} for i, p in enumerate(ds.pairs())]),
         rc=0, expect=("groups   A: 2, B: 2",)),
    Case("stratify-field-missing-run", run,
         lambda ds, tmp: ds.edit(cv={"folds": 2, "stratify": "site"}),
         expect=("cv.stratify names the field 'site'",), fix=restore_manifest, then=no_run_json),
    Case("zero-pairs", check, pairs_csv("{header}\n"),
         expect=("no pairs found under {root}",), absent=("ok: 0 cases",)),
    Case("pairs-csv-missing-column", check, pairs_csv("case,pair,fixed\nc0,p,x.nii.gz\n"),
         expect=("pairs.csv: missing column(s) moving",)),
    Case("pairs-csv-extra-field", check, pairs_csv("{header}\n{rows}\nc9,ED-ES,a,b,c,d,e\n"),
         expect=("pairs.csv: line 6", "extra field(s) ['e']")),
    Case("pairs-csv-bom", check, pairs_csv("{header}\n{rows}\n", bom=True), rc=0,
         expect=("ok: 4 cases, 4 pairs",)),
    Case("pairs-missing-value", check, pairs_edit(1, moving=""),
         expect=("pairs[1]: missing value(s) for moving",), fix=restore_manifest),
    Case("image-not-found", check, pairs_edit(2, moving="gone.nii.gz"),
         expect=("pairs[2]: file(s) not found: moving {root}/gone.nii.gz",), fix=restore_manifest),
    Case("image-is-a-folder", check,
         both(write("{root}/folder.nii.gz/x", "x"), pairs_edit(0, fixed="folder.nii.gz")),
         expect=("{root}/folder.nii.gz: is a folder; expected an image file",),
         absent=("not found",), fix=restore_manifest),
    Case("duplicate-pair-id", check, pairs_edit(1, case="c0"),
         expect=("c0/ED-ES: duplicate pair id",), fix=restore_manifest),
    Case("unsafe-case-id", check, pairs_edit(1, case="c 1"),
         expect=("case id 'c 1' is not file-system safe",), fix=restore_manifest),
    Case("preset-iterations-text", run,
         lambda ds, tmp: ds.edit(presets={"quick": {"iterations": "five"}}),
         expect=("tiny.yaml: presets.quick.iterations='five'", "iterations must be an integer >= 1"),
         fix=restore_manifest, then=no_run_json),
    Case("preset-iterations-text-check", check,
         lambda ds, tmp: ds.edit(presets={"quick": {"iterations": "five", "batch_size": 0}}),
         expect=("presets.quick.iterations='five'", "presets.quick.batch_size=0"),
         fix=restore_manifest),
    # issue 30, 1: a repeated key is an error naming the file, the key and both lines
    Case("duplicate-key-top-level", check, append_text("labels: {a: 2, b: 1}\n"),
         expect=("tiny.yaml", "key labels appears twice"), then=key_lines("labels"),
         fix=restore_manifest),
    Case("duplicate-key-nested", check,
         write("{root}/tiny.yaml", "loader: explicit\nlabels:\n  a: 1\n  b: 2\n  a: 3\n"),
         expect=("tiny.yaml", "key labels.a appears twice (lines 3 and 5)"),
         fix=restore_manifest),
    # issue 30, 2: aliases are refused before anything expands them (9 ** 9 strings otherwise)
    Case("alias-bomb", check, append_text(alias_bomb()),
         expect=("tiny.yaml", "anchors and aliases (&name, *name) are not allowed"),
         fix=restore_manifest),
    Case("yaml-boolean-key", check,
         lambda ds, tmp: ds.manifest.write_text(ds.manifest.read_text().replace("  a: 1", "  no: 1")),
         expect=("tiny.yaml", "key no in labels is read as true/false", "quote it"),
         fix=restore_manifest),
    # issue 30, 17: seeds, folders
    Case("cv-seed-negative", check, lambda ds, tmp: ds.edit(cv={"folds": 2, "seed": -1}),
         expect=("tiny.yaml", "cv.seed must be an integer in 0..4294967295, got -1"),
         fix=restore_manifest),
    Case("cv-seed-negative-run", run, lambda ds, tmp: ds.edit(cv={"folds": 2, "seed": -1}),
         expect=("cv.seed must be an integer in 0..4294967295",), fix=restore_manifest,
         then=no_run_json),
    Case("manifest-is-a-folder", lambda ds, tmp: ["data", "check", "--dataset", ds.root],
         expect=("manifest {root}: is a folder (it holds tiny.yaml); expected a manifest file",),
         absent=("not found",)),
    Case("pairs-csv-is-a-folder", check, pairs_csv_folder,
         expect=("{root}/pairs.csv (pairs_csv of {root}/tiny.yaml): is a folder; expected a CSV",),
         absent=("not found", "IsADirectoryError")),
    Case("preset-unknown-setting", run,
         lambda ds, tmp: ds.edit(presets={"paper": {"iteratons": 5}}),
         expect=("presets.paper.iteratons=5", "unknown training setting"),
         fix=restore_manifest, then=no_run_json),
]  # fmt: skip

NIFTI = [
    Case("truncated-gzip", check,
         lambda ds, tmp: ds.file(1, "ED").write_bytes(ds.file(1, "ED").read_bytes()[:200]),
         expect=("{root}/c1_ED.nii.gz: cannot read image",), fix=restore(1, "ED")),
    Case("not-an-image", run, write("{root}/c2_ES.nii.gz", b"hello, not a NIfTI file"),
         expect=("{root}/c2_ES.nii.gz: cannot read image",), fix=restore(2, "ES"),
         then=no_run_json),
    Case("unsupported-suffix", check,
         both(write("{root}/c0.png", b"png"), pairs_edit(0, fixed="c0.png")),
         expect=("{root}/c0.png: unsupported image suffix '.png'",), fix=restore_manifest),
    Case("nan-voxel-check", check, nan_voxel(0, "ED", np.nan),
         expect=("{root}/c0_ED.nii.gz: 1 NaN or infinite voxel(s) (first at index (3, 4, 1))",),
         fix=restore(0, "ED")),
    Case("nan-voxel-run", run, nan_voxel(0, "ED", np.nan),
         expect=("{root}/c0_ED.nii.gz: 1 NaN or infinite voxel(s)", "bench data check"),
         fix=restore(0, "ED"), then=no_run_json),
    Case("inf-voxel-run", run, nan_voxel(3, "ES", np.inf),
         expect=("{root}/c3_ES.nii.gz: 1 NaN or infinite voxel(s)",), fix=restore(3, "ES"),
         then=no_run_json),
    Case("label-fraction-check", check, nan_voxel(1, "ES_gt", 1.5),
         expect=("{root}/c1_ES_gt.nii.gz: label map has non-integer values",),
         fix=restore(1, "ES_gt")),
    Case("label-fraction-run", run, nan_voxel(1, "ES_gt", 1.5),
         expect=("{root}/c1_ES_gt.nii.gz: label map has non-integer values",),
         fix=restore(1, "ES_gt"), then=no_run_json),
    Case("label-undeclared-check", check, nan_voxel(2, "ED_gt", 7),
         expect=("{root}/c2_ED_gt.nii.gz: label value(s) [7] not declared", "a=1, b=2"),
         fix=restore(2, "ED_gt")),
    Case("label-undeclared-run", run, nan_voxel(2, "ED_gt", 7),
         expect=("{root}/c2_ED_gt.nii.gz: label value(s) [7] not declared",),
         fix=restore(2, "ED_gt"), then=no_run_json),
    Case("zero-pixdim-check", check,
         lambda ds, tmp: set_affine(ds.file(0, "ES"), pixdim=[0.0, 1.5, 3.0]),
         expect=("{root}/c0_ES.nii.gz: pixdim[1:4] = [0.0, 1.5, 3.0]", "no qform or sform",
                 "1 mm"),
         absent=("ok:",), fix=restore(0, "ES")),
    Case("zero-pixdim-run", run,
         lambda ds, tmp: set_affine(ds.file(0, "ES"), pixdim=[0.0, 1.5, 3.0]),
         expect=("{root}/c0_ES.nii.gz: pixdim[1:4] = [0.0, 1.5, 3.0]",), fix=restore(0, "ES"),
         then=no_run_json),
    Case("zero-pixdim-qform", check,
         lambda ds, tmp: set_affine(ds.file(0, "ES"), pixdim=[1.5, 0.0, 3.0], qform_code=1),
         expect=("{root}/c0_ES.nii.gz: pixdim[1:4] = [1.5, 0.0, 3.0]", "its qform"),
         fix=restore(0, "ES")),
    Case("zero-column-affine-check", check,
         lambda ds, tmp: set_affine(ds.file(1, "ED"), sform=np.diag([1.5, 0.0, 3.0, 1.0]),
                                    sform_code=1),
         expect=("{root}/c1_ED.nii.gz: zero voxel spacing along axis j",), fix=restore(1, "ED")),
    Case("zero-column-affine-run", run,
         lambda ds, tmp: set_affine(ds.file(1, "ED"), sform=np.diag([1.5, 0.0, 3.0, 1.0]),
                                    sform_code=1),
         expect=("{root}/c1_ED.nii.gz: zero voxel spacing along axis j",), fix=restore(1, "ED"),
         then=no_run_json),
    Case("singular-affine", run,
         lambda ds, tmp: set_affine(ds.file(2, "ES"), sform=[[1.5, 1.5, 0, 0], [0, 0, 0, 0],
                                                             [0, 0, 3.0, 0]], sform_code=1),
         expect=("{root}/c2_ES.nii.gz: singular affine",), fix=restore(2, "ES"),
         then=no_run_json),
    Case("grid-shape-mismatch", run,
         lambda ds, tmp: write_image(ds.file(1, "ES"), np.zeros((12, 10, 5), np.float32), AFFINE),
         expect=("{root}/c1_ES.nii.gz", "shapes differ, (12, 10, 4) vs (12, 10, 5)"),
         fix=restore(1, "ES")),
    Case("grid-affine-mismatch", check,
         lambda ds, tmp: write_image(ds.file(1, "ES"), nib.load(ds.file(1, "ES")).get_fdata(),
                                     np.diag([1.5, 1.5, 3.5, 1.0])),
         expect=("{root}/c1_ES.nii.gz", "affines differ by up to 0.5 mm"), fix=restore(1, "ES")),
    Case("labels-wrong-shape", check,
         lambda ds, tmp: write_image(ds.file(3, "ED_gt"), np.zeros((4, 4, 4), np.uint8), AFFINE),
         expect=("{root}/c3_ED_gt.nii.gz", "fixed labels must be on the fixed image grid"),
         fix=restore(3, "ED_gt")),
    Case("four-d-image", check,
         lambda ds, tmp: write_image(ds.file(0, "ED"), np.zeros((*SHAPE, 2), np.float32), AFFINE),
         expect=("{root}/c0_ED.nii.gz: expected a 2D or 3D image, got shape (12, 10, 4, 2)",),
         fix=restore(0, "ED")),
    Case("outlier-voxel-warns", check, nan_voxel(0, "ES", 1e30), rc=0,
         expect=("warning: {root}/c0_ES.nii.gz: 1 voxel(s) with outlier intensities", "1e+30",
                 "clips them"),
         fix=restore(0, "ES")),
    Case("negative-pixdim-once", run,
         both(*(lambda ds, tmp, r=r: set_affine(ds.file(0, r), pixdim=[-1.5, 1.5, 3.0])
                for r in ("ED", "ES", "ED_gt", "ES_gt"))),
         rc=0, expect=("{root}/c0_ES.nii.gz: pixdim[1,2,3] should be positive",),
         then=warned_once("c0_ES.nii.gz: pixdim[1,2,3] should be positive")),
    # issue 30, 17: images too small to register, complex voxels, implausible spacings
    Case("image-1x1x1-check", check, every_file(1, one_voxel),
         expect=("{root}/c1_ED.nii.gz: image of shape (1, 1, 1) is too small to register",
                 "at least 4 voxels along at least 2 axes"),
         absent=("ok:",), fix=restore_case(1)),
    Case("image-1x1x1-run", run, every_file(1, one_voxel),
         expect=("{root}/c1_ES.nii.gz: image of shape (1, 1, 1) is too small to register",),
         fix=restore_case(1), then=no_run_json),
    Case("image-complex-check", check, complex_image,
         expect=("{root}/c0_ED.nii.gz: complex-valued voxels (dtype complex64)",),
         fix=restore(0, "ED")),
    Case("image-complex-run", run, complex_image,
         expect=("{root}/c0_ED.nii.gz: complex-valued voxels (dtype complex64)",),
         fix=restore(0, "ED"), then=no_run_json),
    Case("spacing-1.5e6-refused", check, every_file(2, spacing_of(1.5e6, 1.5e6, 3e6)),
         expect=("{root}/c2_ED.nii.gz: voxel spacing i 1.5e+06, j 1.5e+06, k 3e+06 mm is outside",),
         fix=restore_case(2)),
    Case("spacing-1.5e6-run", run, every_file(2, spacing_of(1.5e6, 1.5e6, 3e6)),
         expect=("{root}/c2_ES.nii.gz: voxel spacing",), fix=restore_case(2), then=no_run_json),
    Case("spacing-implausible-warns", check, every_file(3, spacing_of(1.5, 1.5, 60.0)), rc=0,
         expect=("warning: {root}/c3_ED.nii.gz: voxel spacing k 60 mm is outside 0.01..30 mm",
                 "implausible")),
    Case("sheared-affine-explained", check,
         both(*(lambda ds, tmp, r=r: set_affine(ds.file(1, r), sform=[[1.5, 0.5, 0, 0],
                                                                     [0, 1.5, 0, 0],
                                                                     [0, 0, 3, 0]], sform_code=1)
                for r in ("ED", "ES", "ED_gt", "ES_gt"))),
         rc=0, expect=("{root}/c1_ED.nii.gz: sheared affine", "scores are unaffected",
                       "coerced to orthogonal"), fix=None),
]  # fmt: skip

CLI = [
    Case("jobs-zero", lambda ds, tmp: run_args(ds, tmp / "run", "--jobs", "0"),
         expect=("--jobs must be a positive integer", "got 0"), then=no_run_json),
    Case("jobs-negative", lambda ds, tmp: run_args(ds, tmp / "run", "--jobs", "-3"),
         expect=("--jobs must be a positive integer", "got -3"), then=no_run_json),
    Case("jobs-text", lambda ds, tmp: run_args(ds, tmp / "run", "--jobs", "many"),
         expect=("--jobs", "invalid int value: 'many'")),
    Case("out-is-a-file", run, write("{tmp}/run", "I am a file"),
         expect=("--out {tmp}/run: is a file",),
         fix=lambda ds, tmp: (tmp / "run").unlink()),
    Case("out-below-a-file", lambda ds, tmp: run_args(ds, tmp / "f" / "run"), write("{tmp}/f", "x"),
         expect=("--out {tmp}/f/run: {tmp}/f is a file",), fix=lambda ds, tmp: (tmp / "f").unlink()),
    Case("set-not-a-number", lambda ds, tmp: run_args(ds, tmp / "run", "--set", "iterations=abc"),
         expect=("--set iterations='abc'", "iterations must be an integer >= 1"), then=no_run_json),
    Case("set-fraction", lambda ds, tmp: run_args(ds, tmp / "run", "--set", "iterations=5.5"),
         expect=("--set iterations=5.5",)),
    Case("set-bad-patch", lambda ds, tmp: run_args(ds, tmp / "run", "--set", "patch_size=0,8,4"),
         expect=("--set patch_size=[0, 8, 4]", "patch_size must be 2 or 3 positive integers")),
    Case("set-no-equals", lambda ds, tmp: run_args(ds, tmp / "run", "--set", "iterations"),
         expect=("--set 'iterations': expected KEY=VALUE",)),
    Case("set-unknown-key", lambda ds, tmp: run_args(ds, tmp / "run", "--set", "iters=5"),
         expect=("--set iters=5: unknown setting 'iters'", "known settings")),
    Case("methods-unknown", lambda ds, tmp: ["run", "--methods", "nope", "--dataset", ds.manifest],
         expect=("unknown method 'nope'", "identity")),
    Case("methods-empty", lambda ds, tmp: ["run", "--methods", ",", "--dataset", ds.manifest],
         expect=("--methods ',' names no method",)),
    Case("folds-unknown", lambda ds, tmp: run_args(ds, tmp / "run", "--folds", "7"),
         expect=("--folds [7]: the dataset has folds [0, 1]",), then=no_run_json),
    Case("folds-text", lambda ds, tmp: run_args(ds, tmp / "run", "--folds", "a,b"),
         expect=("--folds 'a,b': expected comma-separated integers",)),
    Case("preset-unknown", lambda ds, tmp: run_args(ds, tmp / "run", "--preset", "slow"),
         expect=("--preset", "invalid choice: 'slow'")),
    Case("out-of-another-preset", lambda ds, tmp: run_args(ds, tmp / "run", "--preset", "paper"),
         lambda ds, tmp: main([str(a) for a in run_args(ds, tmp / "run")]),
         expect=("{tmp}/run holds a run of another dataset or preset", "preset: 'quick' -> 'paper'")),
    Case("demo-zero-cases",
         lambda ds, tmp: ["data", "demo", "demo-acdc", "--out", tmp / "d", "--cases", "0"],
         expect=("--cases must be >= 1, got 0",)),
    Case("no-subcommand", lambda ds, tmp: ["data", "check"],
         expect=("the following arguments are required: --dataset",)),
]  # fmt: skip

STATS = [
    Case("ranking-missing-file", ranking_cmd, expect=("{tmp}/rankings.csv: rankings file not found",)),
    Case("ranking-missing-column", ranking_cmd, rankings("case,method\nc1,A\n"),
         expect=("missing column(s) rank", "found case, method")),
    Case("ranking-empty", ranking_cmd, rankings("case,method,rank\n"),
         expect=("no rankings (the table is empty)",)),
    Case("ranking-tie", ranking_cmd, rankings("case,method,rank\nc1,A,1\nc1,B,1\n"),
         expect=("case 'c1': tie, rank 1 given to 'A', 'B'",)),
    Case("ranking-fraction", ranking_cmd,
         rankings("case,method,rank\nc1,A,1\nc1,B,2\nc2,A,1.5\nc2,B,2\n"),
         expect=("line 4 (case 'c2'): rank '1.5' is not an integer", "method 'A'"),
         absent=("not ranked",), fix=rankings(GOOD_RANKINGS)),
    Case("ranking-extra-field", ranking_cmd,
         rankings("case,method,rank\nc1,A,1\nc1,B,2,oops\n"),
         expect=("{tmp}/rankings.csv: line 3 has 4 field(s), the header has 3", "extra"),
         fix=rankings(GOOD_RANKINGS)),
    Case("ranking-one-method", ranking_cmd, rankings("case,method,rank\nc1,A,1\n"),
         expect=("only 1 method(s) ranked (A)",)),
    Case("ranking-one-case", ranking_cmd, rankings("case,method,rank\nc1,A,1\nc1,B,2\nc1,C,3\n"),
         rc=0, then=one_case_warnings),
    Case("ranking-bom", ranking_cmd, write("{tmp}/rankings.csv", "\ufeff" + GOOD_RANKINGS),
         rc=0, expect=("Rankings: 3 cases, 2 methods",)),
    Case("compare-missing", lambda ds, tmp: ["stats", "compare", tmp / "nothing"],
         expect=("{tmp}/nothing: results table not found",)),
    Case("results-missing-column", lambda ds, tmp: ["stats", "compare", tmp / "run"],
         results_csv("method,fold,case\nidentity,0,c0\n"),
         expect=("{tmp}/run/results.csv: missing column(s) pair",)),
    Case("results-truncated-line", lambda ds, tmp: ["stats", "compare", tmp / "run"],
         results_csv(RESULTS_HEADER + ROW + "identity,0,c1,ED-ES,image,nm\n"),
         expect=("{tmp}/run/results.csv: line 3 has 6 field(s), the header has 9", "truncated"),
         fix=results_csv(RESULTS_HEADER + ROW)),
    Case("results-extra-field", lambda ds, tmp: ["stats", "compare", tmp / "run"],
         results_csv(RESULTS_HEADER + ROW.strip() + ",x\n"),
         expect=("{tmp}/run/results.csv: line 2 has 10 field(s)",),
         fix=results_csv(RESULTS_HEADER + ROW)),
    Case("results-value-text", lambda ds, tmp: ["stats", "compare", tmp / "run"],
         results_csv(RESULTS_HEADER + ROW.replace("0.5", "high")),
         expect=("column 'value' must be numeric", "high"), fix=results_csv(RESULTS_HEADER + ROW)),
    Case("report-header-only", lambda ds, tmp: ["report", tmp / "run"], results_csv(RESULTS_HEADER),
         expect=("{tmp}/run: results.csv has a header but no rows", "nothing to report")),
    Case("report-missing-folder", lambda ds, tmp: ["report", tmp / "nothing"],
         expect=("{tmp}/nothing: run folder not found",)),
]  # fmt: skip

CASES = MANIFEST + NIFTI + CLI + STATS


def test_enough_cases():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, caplog, clean_results):
    ds = make_dataset(tmp_path / "data")
    if case.breaks is not None:
        case.breaks(ds, tmp_path)
        capsys.readouterr()
    argv = case.command(ds, tmp_path)
    outcome = bench(argv, capsys, caplog)
    text = outcome.err if case.rc else outcome.out + outcome.err
    assert outcome.rc == case.rc, text
    assert "Traceback" not in outcome.out + outcome.err
    if case.rc == 2 and not any("invalid" in e or "required" in e for e in case.expect):
        assert outcome.err.startswith("error: ") or "\nerror: " in outcome.err, outcome.err
    for expected in case.expect:
        expected = fill(expected, ds, tmp_path)
        assert expected in text, f"{expected!r} not in:\n{text}"
    for unexpected in case.absent:
        assert unexpected not in text, text
    if case.then is not None:
        case.then(ds, tmp_path, outcome)
    if case.fix is None:
        return
    case.fix(ds, tmp_path)
    fixed = bench(argv, capsys, caplog)
    assert fixed.rc == 0, fixed.err
    assert "Traceback" not in fixed.out + fixed.err
    if argv[0] == "run":
        pd.testing.assert_frame_equal(
            comparable(Path(argv[argv.index("--out") + 1])), clean_results
        )


# ------------------------------------------------------------------------------ beyond the table
def test_rerun_reads_no_file_again(tmp_path, capsys, caplog, monkeypatch):
    """The checks of ``bench run`` are cached by content: a re-run (even into a new folder, even
    with the files renamed) does not read the images again; a changed file is read again."""
    import benchmark.data.validate as validate

    ds = make_dataset(tmp_path / "data")
    assert bench(run_args(ds, tmp_path / "a"), capsys, caplog).rc == 0
    calls = []
    original = validate._inspect
    monkeypatch.setattr(validate, "_inspect", lambda p, k: calls.append(p) or original(p, k))
    assert bench(run_args(ds, tmp_path / "b"), capsys, caplog).rc == 0
    assert calls == []
    set_voxel(ds.file(0, "ED"), (0, 0, 0), np.nan)
    outcome = bench(run_args(ds, tmp_path / "c"), capsys, caplog)
    assert outcome.rc == 2 and calls == [ds.file(0, "ED")]
    assert f"{ds.file(0, 'ED')}: 1 NaN or infinite voxel(s)" in outcome.err


def test_outlier_voxel_is_clipped_by_the_harness(tmp_path, capsys, caplog, clean_results):
    """One voxel of 1e30 is reported as a warning and clipped: the identity's warped image and
    its NMI stay close to those of the clean data instead of being spread by the B-spline."""
    ds = make_dataset(tmp_path / "data")
    set_voxel(ds.file(0, "ES"), (5, 5, 2), 1e30)
    outcome = bench(run_args(ds, tmp_path / "run"), capsys, caplog)
    assert (
        outcome.rc == 0 and "outlier intensities" in outcome.err and "c0_ES.nii.gz" in outcome.err
    )
    results = comparable(tmp_path / "run")
    fold = int(results.loc[results["case"] == "c0", "fold"].iloc[0])
    pair_dir = tmp_path / "run" / "pairs" / "identity" / f"fold{fold}" / "c0" / "ED-ES"
    warped = np.asarray(nib.load(pair_dir / "warped.nii.gz").dataobj)
    clean_moving = np.asarray(nib.load(make_dataset(tmp_path / "fresh").file(0, "ES")).dataobj)
    assert warped.max() < 20 * clean_moving.max()  # clipped to p99 + 10 (p99 - p1)
    np.testing.assert_allclose(np.delete(warped.ravel(), np.ravel_multi_index((5, 5, 2), SHAPE)),
                               np.delete(clean_moving.ravel(), np.ravel_multi_index((5, 5, 2), SHAPE)),
                               rtol=1e-4, atol=1e-2)  # fmt: skip
    nmi = results[(results["metric"] == "nmi") & (results["case"] == "c0")]["value"].item()
    clean = clean_results[(clean_results["metric"] == "nmi") & (clean_results["case"] == "c0")]
    assert abs(nmi - clean["value"].item()) < 0.02


def test_labels_are_never_rounded_when_loaded(tmp_path):
    from benchmark.core.errors import BenchError
    from benchmark.core.pairs import read_labels

    path = tmp_path / "lab.nii.gz"
    write_image(path, np.full((3, 3, 2), 1.5, np.float32), AFFINE)
    with pytest.raises(BenchError, match="lab.nii.gz: label map has non-integer values"):
        read_labels(path)
    write_image(path, np.full((3, 3, 2), 40000, np.int32), AFFINE)
    with pytest.raises(BenchError, match="do not fit int16"):
        read_labels(path)
    write_image(path, np.full((3, 3, 2), 2.0, np.float32), AFFINE)
    assert read_labels(path).array.dtype == np.int16 and (read_labels(path).array == 2).all()


@pytest.mark.parametrize("name", ["acdc", "dce", "demo-acdc", "demo-dce"])
def test_shipped_manifest_presets_pass_the_settings_check(name):
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.preflight import check_settings

    manifest = load_manifest(name, root=Path(__file__).parent, generate=False)
    for preset in ("quick", "paper"):
        check_settings(manifest, preset, None)
    check_settings(manifest, "quick", {"iterations": 4, "batch_size": 1, "patch_size": [32, 32, 4]})


def test_settings_combination_names_the_settings(tmp_path):
    from benchmark.core.errors import ValidationError
    from benchmark.runner.preflight import check_settings

    ds = make_dataset(tmp_path / "data")
    from benchmark.data.manifest import load_manifest

    manifest = load_manifest(ds.manifest)
    with pytest.raises(ValidationError) as err:  # 2 axes of patch size, 3 of the U-Net factors
        check_settings(manifest, "quick", {"patch_size": [32, 32], "unet_factors": [2, 2, 1]})
    message = str(err.value)
    assert "--set patch_size=[32, 32], unet_factors=[2, 2, 1]" in message


# ------------------------------------------------------------------------------ NIfTI reader
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ODD = st.sampled_from([0.0, 1.0, -1.0, 1.5, -2.5, 1e-30, 1e30, float("nan"), float("inf")])


def _numbers(n: int):
    """``n`` numbers: plausible ones (about half of the examples) or any of ``_ODD``."""
    return st.one_of(
        st.lists(st.floats(-3.0, 3.0).filter(lambda v: abs(v) > 0.05), min_size=n, max_size=n),
        st.lists(_ODD, min_size=n, max_size=n),
    )


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=3),
    pixdim=_numbers(4),
    qform_code=st.sampled_from([0, 1]),
    sform_code=st.sampled_from([0, 1, 2]),
    sform=_numbers(12),
    quatern=st.lists(st.floats(-1, 1), min_size=3, max_size=3),
)
def test_nifti_reader_over_random_headers(
    tmp_path, shape, pixdim, qform_code, sform_code, sform, quatern
):
    """Any header: either a consistent image (finite affine, positive spacing = the affine's
    column norms, the sform when one is set) or the project's error; never anything else."""
    from benchmark.core.errors import BenchError
    from benchmark.core.images import read_image

    path = tmp_path / "random.nii.gz"
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    write_raw_nifti(
        path, array, pixdim=pixdim[1:], qfac=pixdim[0], qform_code=qform_code,
        sform_code=sform_code, sform=np.reshape(sform, (3, 4)), quatern_b=quatern[0],
        quatern_c=quatern[1], quatern_d=quatern[2],
    )  # fmt: skip
    try:
        image = read_image(path)
    except BenchError as exc:
        assert str(path) in str(exc)
        return
    ndim = len(shape)
    assert image.shape == tuple(shape) and np.isfinite(image.affine).all()
    spacing = np.asarray(image.spacing)
    assert spacing.shape == (ndim,) and np.all(spacing > 0) and np.isfinite(spacing).all()
    np.testing.assert_allclose(spacing, np.linalg.norm(image.affine[:3, :ndim], axis=0))
    if sform_code:
        expected = np.asarray(sform, dtype=np.float32).astype(np.float64).reshape(3, 4)
        np.testing.assert_allclose(image.affine[:3], expected, rtol=1e-6)
    elif not qform_code:  # nibabel's base affine from pixdim, refused when a pixdim is 0
        np.testing.assert_allclose(spacing, np.abs(np.asarray(pixdim[1 : ndim + 1])), rtol=1e-6)
    np.testing.assert_array_equal(image.array, array)


def test_outlier_bounds_match_the_clipping_for_integer_images():
    """Integer files are clipped (after the float32 cast on load) exactly when validation warns."""
    from benchmark.core.normalize import clip_outliers, outlier_bounds

    rng = np.random.default_rng(3)
    ints = rng.integers(0, 1000, (10, 10, 4)).astype(np.int32)
    assert outlier_bounds(ints) is None and clip_outliers(ints.astype(np.float32)).max() < 1000
    ints[0, 0, 0] = 2_000_000_000
    low, high = outlier_bounds(ints)
    p1, p99 = np.percentile(ints, [1, 99])
    assert (low, high) == pytest.approx((p1 - 10 * (p99 - p1), p99 + 10 * (p99 - p1)))
    clipped = clip_outliers(ints.astype(np.float32))
    assert (
        clipped[0, 0, 0] == pytest.approx(high) and (clipped.ravel()[1:] == ints.ravel()[1:]).all()
    )


def test_interrupted_run_resumes_to_the_clean_results(
    tmp_path, capsys, caplog, monkeypatch, clean_results
):
    """Ctrl-C during a run: exit 130 with ``interrupted``, no traceback; the re-run completes the
    folder and gives the results of an uninterrupted run."""
    from methods.identity import Identity

    ds = make_dataset(tmp_path / "data")
    original, calls = Identity.register, []

    def register(self, pair):
        calls.append(pair.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, pair)

    monkeypatch.setattr(Identity, "register", register)
    outcome = bench(run_args(ds, tmp_path / "run"), capsys, caplog)
    assert outcome.rc == 130 and "interrupted" in outcome.err and "Traceback" not in outcome.err
    monkeypatch.setattr(Identity, "register", original)
    assert bench(run_args(ds, tmp_path / "run"), capsys, caplog).rc == 0
    pd.testing.assert_frame_equal(comparable(tmp_path / "run"), clean_results)
