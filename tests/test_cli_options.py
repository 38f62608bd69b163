"""Every command-line option's range, table-driven (issue 30's adversarial pass over the CLI): a
bad value of each option of ``bench data demo``, ``train``, ``run``, ``export-fields``,
``stats``, ``report`` and ``reader-study create/serve/add-reader`` ends in a clear ``error:``
(exit 2) naming the option and the value, never a traceback, and writes nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmark.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: tuple[str, ...]  # substrings of stderr
    rc: int = 2


RUN = ("run", "--methods", "identity", "--dataset", "demo-acdc", "--root", "{demo}", "--out",
       "{out}")
TRAIN = ("train", "--method", "unet-nmi", "--dataset", "demo-acdc", "--root", "{demo}", "--out",
         "{out}")

CASES = [
    # bench data demo
    Case("demo-cases-0", ("data", "demo", "demo-acdc", "--out", "{out}", "--cases", "0"),
         ("--cases must be >= 1", "got 0")),
    Case("demo-cases-text", ("data", "demo", "demo-acdc", "--out", "{out}", "--cases", "x"),
         ("--cases", "invalid int value")),
    Case("demo-seed-negative", ("data", "demo", "demo-acdc", "--out", "{out}", "--seed", "-1"),
         ("--seed", "-1")),
    Case("demo-unknown", ("data", "demo", "demo-brain", "--out", "{out}"), ("demo-brain",)),
    # bench run
    Case("run-jobs-0", (*RUN, "--jobs", "0"), ("--jobs must be a positive integer", "got 0")),
    Case("run-jobs-text", (*RUN, "--jobs", "two"), ("--jobs", "invalid int value")),
    Case("run-folds-text", (*RUN, "--folds", "a,b"), ("--folds 'a,b'",)),
    Case("run-folds-missing", (*RUN, "--folds", "7"), ("--folds [7]", "the dataset has folds")),
    Case("run-seeds-negative", (*RUN, "--seeds", "0,-1"), ("--seeds", "integers >= 0")),
    Case("run-seeds-repeated", (*RUN, "--seeds", "1,1"), ("--seeds", "distinct")),
    Case("run-seeds-text", (*RUN, "--seeds", "x"), ("--seeds 'x'",)),
    Case("run-seed-negative", (*RUN, "--seed", "-4"), ("--seeds [-4]",)),
    Case("run-preset", (*RUN, "--preset", "fast"), ("--preset", "invalid choice: 'fast'")),
    Case("run-methods-empty", ("run", "--methods", ",", "--dataset", "demo-acdc", "--root",
                               "{demo}", "--out", "{out}"), ("names no method",)),
    Case("run-methods-unknown", ("run", "--methods", "identity,nope", "--dataset", "demo-acdc",
                                 "--root", "{demo}", "--out", "{out}"),
         ("unknown method 'nope'", "known methods: identity")),
    Case("run-fields-not-a-folder", ("run", "--methods", "fields:x={out}/nowhere", "--dataset",
                                     "demo-acdc", "--root", "{demo}", "--out", "{out}"),
         ("fields:x=", "is not a folder")),
    Case("run-set-no-equals", (*RUN, "--set", "iterations"), ("--set 'iterations'", "KEY=VALUE")),
    Case("run-set-unknown", (*RUN, "--set", "iters=5"), ("unknown setting 'iters'",)),
    Case("run-set-bad-value", (*RUN, "--set", "iterations=-5"), ("iterations must be",)),
    Case("run-set-bool-count", (*RUN, "--set", "batch_size=true"), ("batch_size must be",)),
    Case("run-set-nan-lr", (*RUN, "--set", "learning_rate=NaN"), ("learning_rate must be",)),
    Case("run-set-elastix", (*RUN, "--set", "elastix.use_mask=maybe"), ("elastix use_mask",)),
    Case("run-device", (*RUN, "--device", "tpu"), ("--device 'tpu'",)),
    Case("run-device-index", (*RUN, "--device", "cuda:x"), ("--device 'cuda:x'",)),
    Case("run-out-empty", ("run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                           "{demo}", "--out", ""), ("--out '': expected a folder",)),
    Case("run-out-file", ("run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                          "{demo}", "--out", "{file}"), ("is a file; expected a run folder",)),
    Case("run-scheduler", (*RUN, "--scheduler", "tcp://127.0.0.1:9"), ("no Dask scheduler",)),
    Case("run-dataset-missing", ("run", "--methods", "identity", "--dataset", "{out}/no.yaml",
                                 "--out", "{out}"), ("no.yaml",)),
    # bench train
    Case("train-fold", (*TRAIN, "--fold", "9"), ("--fold 9", "the dataset has folds")),
    Case("train-not-learning", ("train", "--method", "identity", "--dataset", "demo-acdc",
                                "--root", "{demo}"), ("does not learn",)),
    Case("train-device", (*TRAIN, "--device", "banana"), ("--device 'banana'",)),
    Case("train-out-empty", ("train", "--method", "unet-nmi", "--dataset", "demo-acdc", "--root",
                             "{demo}", "--out", ""), ("--out '': expected a folder",)),
    Case("train-set", (*TRAIN, "--set", "patch_size=2,2,2"), ("patch_size must be at least 3",)),
    # bench export-fields
    Case("export-format", ("export-fields", "{run}", "--format", "zip"), ("--format", "invalid choice: 'zip'")),
    Case("export-dtype", ("export-fields", "{run}", "--dtype", "int8"), ("--dtype", "invalid choice: 'int8'")),
    Case("export-methods", ("export-fields", "{run}", "--methods", "ghost"), ("not in the run",)),
    Case("export-not-a-run", ("export-fields", "{out}"), ("not a run folder",)),
    # bench stats
    Case("rank-bootstrap", ("stats", "rank", "{run}", "--bootstrap", "-5"), ("n_boot must be",)),
    Case("rank-alpha-high", ("stats", "rank", "{run}", "--alpha", "2"), ("alpha must be",)),
    Case("rank-alpha-zero", ("stats", "rank", "{run}", "--alpha", "0"), ("alpha must be",)),
    Case("rank-alpha-nan", ("stats", "rank", "{run}", "--alpha", "nan"), ("alpha must be",)),
    Case("rank-posthoc", ("stats", "rank", "{run}", "--posthoc", "tukey"), ("posthoc",)),
    Case("compare-missing", ("stats", "compare", "{out}/none"), ("results table not found",)),
    Case("ranking-missing", ("stats", "ranking", "{out}/r.csv"), ("rankings file not found",)),
    Case("l2r-masked", ("stats", "l2r", "{run}", "--masked", "sometimes"), ("--masked",)),
    # bench report
    Case("report-cases", ("report", "{run}", "--cases", "-1"), ("--cases", "-1")),
    Case("report-rankings-missing", ("report", "{run}", "--rankings", "{out}/r.csv"),
         ("rankings file not found",)),
    Case("report-not-a-run", ("report", "{out}"), ("{out}",)),
    # bench reader-study
    Case("study-cases", ("reader-study", "create", "{run}", "--methods", "elastix,unet-nmi",
                         "--cases", "0", "--out", "{out}/study"), ("--cases", "0")),
    Case("study-methods", ("reader-study", "create", "{run}", "--methods", "elastix,ghost",
                           "--cases", "2", "--out", "{out}/study"), ("ghost",)),
    Case("serve-port", ("reader-study", "serve", "{out}", "--port", "70000"), ("--port", "70000")),
    Case("serve-threads", ("reader-study", "serve", "{out}", "--threads", "0"), ("--threads",)),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return root


def fill(arg: str, paths: dict[str, Path]) -> str:
    for key, value in paths.items():
        arg = arg.replace("{" + key + "}", str(value))
    return arg


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_option_is_a_clear_error_and_writes_nothing(case, demo, fake_run_dir, tmp_path,
                                                          capsys):
    run = tmp_path / "run"
    shutil.copytree(fake_run_dir, run)
    out = tmp_path / "out"
    out.mkdir()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    paths = {"demo": demo, "out": out, "run": run, "file": afile}
    argv = [fill(a, paths) for a in case.argv]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (a wrong type): exit 2 with usage
        code = exc.code
    err = capsys.readouterr().err
    assert code == case.rc, err
    assert "Traceback" not in err
    for expected in case.expect:
        assert fill(expected, paths) in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "the command wrote files before failing"
