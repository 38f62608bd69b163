"""Reliability of the run engine and the tables it reads (issue 30, items 12-16 and 18): results
tables checked against the metric catalogue, options checked before any work, damaged run
folders, one run per folder, methods kept across runs, elastix's thread count in its key.

Each case runs ``bench`` as a user would and asserts the exit status, the message (file, line,
option, value) and that nothing was written where nothing may be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout
from benchmark.data.manifest import load_manifest
from benchmark.runner.lock import run_lock
from benchmark.runner.run import RunOptions, plan_benchmark, run_benchmark

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "iterations=3", "--set", "batch_size=1", "--set", "patch_size=32,32,4"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return root


def bench(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


# ------------------------------------------------------------------ item 12: results tables


def _results_copy(fake_run_dir: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(fake_run_dir, run)
    return run


def _edit_results(run: Path, change) -> pd.DataFrame:
    path = run / "results.csv"
    table = pd.read_csv(path, dtype={"case": str, "pair": str})
    table = change(table)
    table.to_csv(path, index=False)
    return table


def _first(table: pd.DataFrame, metric: str) -> int:
    return int(table.index[table["metric"] == metric][0])


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("dice below 0", lambda t: t.assign(value=t["value"].mask(t.index == _first(t, "dice"), -0.5)),
         "metric dice value -0.5 outside [0, 1]"),
        ("dice above 1", lambda t: t.assign(value=t["value"].mask(t.index == _first(t, "dice"), 1.7)),
         "metric dice value 1.7 outside [0, 1]"),
        ("hd in cm", lambda t: t.assign(unit=t["unit"].mask(t["metric"] == "hd", "cm")),
         "metric hd in unit 'cm'; expected 'mm'"),
        ("dice in %", lambda t: t.assign(unit=t["unit"].mask(t["metric"] == "dice", "%")),
         "metric dice in unit '%'; expected '1'"),
        ("every row twice", lambda t: pd.concat([t, t], ignore_index=True), "repeats an earlier row"),
        ("unknown metric", lambda t: t.assign(metric=t["metric"].replace("nmi", "nmii")),
         "unknown metric 'nmii'"),
    ],
)
@pytest.mark.parametrize("command", ["compare", "rank", "report"])
def test_a_bad_results_table_is_refused_naming_file_line_and_rule(
    fake_run_dir, tmp_path, capsys, name, change, expected, command
):
    run = _results_copy(fake_run_dir, tmp_path)
    _edit_results(run, change)
    argv = ["report", run] if command == "report" else ["stats", command, run]
    code, text = bench(capsys, *argv)
    assert code == 2, text
    assert str(run / "results.csv") in text and expected in text, text
    assert "line " in text


def test_a_good_table_still_passes_and_the_line_numbers_are_the_files(fake_run_dir, tmp_path):
    from benchmark.stats.results import read_results

    run = _results_copy(fake_run_dir, tmp_path)
    assert len(read_results(run))
    table = _edit_results(run, lambda t: t)
    row = _first(table, "dice")
    _edit_results(run, lambda t: t.assign(value=t["value"].mask(t.index == row, 3.0)))
    with pytest.raises(BenchError, match=rf"line {row + 2}: metric dice value 3.0"):
        read_results(run)


def test_rankings_of_methods_not_in_the_run_are_refused(fake_run_dir, tmp_path, capsys):
    run = _results_copy(fake_run_dir, tmp_path)
    rankings = tmp_path / "rankings.csv"
    rankings.write_text("case,method,rank\nc1,elastix,1\nc1,ghostnet,2\n")
    code, text = bench(capsys, "report", run, "--rankings", rankings)
    assert code == 2 and "ghostnet" in text and str(rankings) in text, text


# ----------------------------------------------------- items 13, 14: options before any work


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--methods", "unet-nmi", "--set", "patch_size=1,1,1"],
         "patch_size must be at least 3 voxels along every axis"),
        (["--methods", "identity", "--device", "banana"], "--device 'banana': not a device"),
        (["--methods", "identity", "--scheduler", "tcp://127.0.0.1:9"],
         "--scheduler tcp://127.0.0.1:9: no Dask scheduler answers there"),
        (["--methods", "identity", "--scheduler", "nonsense:xyz"], "--scheduler 'nonsense:xyz'"),
        (["--methods", "identity", "--set", "elastix.iterations=-1"], "elastix iterations"),
        (["--methods", "identity", "--set", "greedy.metric=cc"], "greedy metric must be one of"),
    ],
)
def test_bad_run_options_stop_before_the_run_folder_is_written(
    demo_root, tmp_path, capsys, extra, expected
):
    out = tmp_path / "run"
    code, text = bench(capsys, "run", "--dataset", "demo-acdc", "--root", demo_root, "--folds",
                       "0", "--out", out, *extra)
    assert code == 2 and expected in text, text
    assert not out.exists()


def test_cuda_where_there_is_none_is_an_error(demo_root, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    code, text = bench(capsys, "run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                       demo_root, "--out", out, "--device", "cuda")
    assert code == 2 and "CUDA is not available on this machine" in text and not out.exists()
    code, text = bench(capsys, "train", "--method", "unet-nmi", "--dataset", "demo-acdc",
                       "--root", demo_root, "--out", out, "--device", "cuda:0")
    assert code == 2 and "CUDA is not available" in text and not out.exists()


def test_an_empty_or_unwritable_out_is_refused(demo_root, tmp_path, capsys, monkeypatch):
    code, text = bench(capsys, "run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                       demo_root, "--out", "")
    assert code == 2 and "--out '': expected a folder" in text
    locked = tmp_path / "readonly"
    locked.mkdir()
    import tempfile

    real = tempfile.TemporaryFile

    def refuse(*args, dir=None, **kw):  # noqa: A002 (tempfile's keyword)
        if dir is not None and Path(dir) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)  # root ignores permission bits
    out = locked / "run"
    code, text = bench(capsys, "run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                       demo_root, "--out", out)
    assert code == 2 and f"cannot write in {locked} (Permission denied)" in text, text
    assert not out.exists()


def test_statistics_options_are_checked(fake_run_dir, capsys):
    code, text = bench(capsys, "stats", "rank", fake_run_dir, "--bootstrap", "-5")
    assert code == 2 and "n_boot must be an integer >= 0; got -5" in text, text
    code, text = bench(capsys, "stats", "rank", fake_run_dir, "--alpha", "2")
    assert code == 2 and "alpha must be a finite number > 0 and < 1; got 2.0" in text, text


def test_export_of_a_run_without_fields_is_an_error(fake_run_dir, tmp_path, capsys):
    run = _results_copy(fake_run_dir, tmp_path)
    for field in run.glob("pairs/**/displacement.nii.gz"):
        field.unlink()
    code, text = bench(capsys, "export-fields", run, "--out", tmp_path / "export")
    assert code == 2 and "holds a displacement field" in text, text


def test_a_full_disk_names_the_file_and_ends_without_a_traceback(fake_run_dir, tmp_path, capsys,
                                                                  monkeypatch):
    import errno

    run = _results_copy(fake_run_dir, tmp_path)
    real = os.replace

    def full(src, dst):
        if str(dst).endswith(".png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    code, text = bench(capsys, "report", run)
    assert code == 2 and "No space left on device" in text and ".png" in text, text


# ------------------------------------------------------------- item 15: damaged run folders


def _tiny_run(demo_root, out, capsys, *methods):
    code, text = bench(capsys, "run", "--methods", ",".join(methods), "--dataset", "demo-acdc",
                       "--root", demo_root, "--folds", "0", "--out", out, *QUICK)
    assert code == 0, text


def test_a_damaged_model_is_stale_and_trained_again(demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    _tiny_run(demo_root, out, capsys, "unet-nmi")
    model = RunLayout(out).model_dir("unet-nmi", 0) / "model.pt"
    before = pd.read_csv(out / "results.csv")
    model.write_bytes(model.read_bytes()[:1000])
    code, text = bench(capsys, "run", "--methods", "unet-nmi", "--dataset", "demo-acdc", "--root",
                       demo_root, "--folds", "0", "--out", out, "--dry-run", *QUICK)
    assert code == 0 and f"{model} is damaged" in text, text
    assert "to do  train unet-nmi fold 0 seed 0: outputs incomplete" in text, text
    _tiny_run(demo_root, out, capsys, "unet-nmi")
    assert RunLayout(out).model_dir("unet-nmi", 0).joinpath("model.pt").stat().st_size > 1000
    after = pd.read_csv(out / "results.csv")
    keep = before["metric"] != "runtime_s"
    pd.testing.assert_frame_equal(before[keep].reset_index(drop=True),
                                  after[after["metric"] != "runtime_s"].reset_index(drop=True))


def test_a_truncated_checkpoint_starts_the_training_over(tmp_path, demo_root, caplog):
    from methods.registry import get_method

    manifest = load_manifest("demo-acdc", root=demo_root)
    fold = manifest.folds()[0]
    settings = {"iterations": 3, "batch_size": 1, "patch_size": [32, 32, 4]}
    workdir = tmp_path / "model"
    workdir.mkdir()
    (workdir / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    method = get_method("unet-nmi", preset="quick", settings=settings)
    method.fit(fold.train, workdir=workdir, seed=0)
    assert (workdir / "model.pt").is_file()
    assert "checkpoint.pt is damaged" in caplog.text


@pytest.mark.parametrize("damage", ["run.json", "costs.csv", "pairs.csv"])
def test_a_damaged_run_file_is_named_and_written_again(demo_root, tmp_path, capsys, caplog,
                                                      damage):
    out = tmp_path / "run"
    _tiny_run(demo_root, out, capsys, "identity")
    (out / damage).write_text("{ not what it should be")
    code, text = bench(capsys, "run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                       demo_root, "--folds", "0", "--out", out, "--dry-run")
    assert code == 0, text
    _tiny_run(demo_root, out, capsys, "identity")
    assert f"{out / damage} is damaged" in caplog.text
    assert pd.read_csv(out / "results.csv")["method"].eq("identity").all()
    pd.read_csv(out / damage) if damage != "run.json" else (out / damage).read_text()


# ------------------------------------------------------------- item 16: one run per folder


def test_a_second_run_on_a_locked_folder_is_refused_naming_the_first(demo_root, tmp_path):
    manifest = load_manifest("demo-acdc", root=demo_root)
    out = tmp_path / "run"
    options = RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0],
                         progress=False)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from benchmark.core.layout import RunLayout\n"
         "from benchmark.runner.lock import run_lock\n"
         f"with run_lock(RunLayout({str(out)!r}), command=['bench', 'run', 'first']):\n"
         "    print('held', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchError, match=rf"in use by another bench run \(pid {holder.pid},"):
            run_benchmark(options)
        assert not (out / "results.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert len(run_benchmark(options))  # the lock goes with its process
    with run_lock(RunLayout(out)), pytest.raises(BenchError, match="bench run first|in use"):
        run_benchmark(options)


def test_fewer_methods_keep_the_others_rows_unless_pruned(demo_root, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    _tiny_run(demo_root, out, capsys, "identity", "unet-nmi")
    both = pd.read_csv(out / "results.csv")
    _tiny_run(demo_root, out, capsys, "identity")
    kept = pd.read_csv(out / "results.csv")
    assert set(kept["method"]) == {"identity", "unet-nmi"} and len(kept) == len(both)
    assert set(pd.read_csv(out / "validation.csv")["method"]) == {"unet-nmi"}
    code, text = bench(capsys, "run", "--methods", "identity", "--dataset", "demo-acdc", "--root",
                       demo_root, "--folds", "0", "--out", out, "--prune")
    assert code == 0 and "results.csv: dropped the rows of unet-nmi" in caplog.text, text
    assert set(pd.read_csv(out / "results.csv")["method"]) == {"identity"}
    assert pd.read_csv(out / "validation.csv").empty


# ---------------------------------------------------- item 18: elastix's threads in its key


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: --jobs 1 and 2 give 1 thread")
def test_elastix_reruns_with_another_thread_count_identity_does_not(demo_root, tmp_path):
    manifest = load_manifest("demo-acdc", root=demo_root)
    out = tmp_path / "run"
    common = dict(manifest=manifest, methods=["identity", "elastix"], out=out, folds=[0],
                  progress=False, overrides={"elastix.iterations": 2})
    run_benchmark(RunOptions(**common, jobs=1))
    tasks, _ = plan_benchmark(RunOptions(**common, jobs=2))
    todo = {t.method for t in tasks if t.state == "to do" and t.selected}
    assert todo == {"elastix"}
    reasons = {t.reason for t in tasks if t.method == "elastix" and t.state == "to do"}
    assert reasons == {"stale: method settings changed"}
