"""``bench run`` end to end on a small demo: the run folder, resuming, failures and parallel jobs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data.manifest import load_manifest
from benchmark.runner.run import RunOptions, run_benchmark
from methods.base import Method, RegistrationFailed
from methods.registry import available_methods
from metrics.catalog import RESULT_COLUMNS

QUICK = ["--set", "iterations=4", "--set", "batch_size=1", "--set", "patch_size=32,32,4"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-acdc")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return root


def read_results(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv")


def test_run_writes_the_tidy_table_and_run_folder(demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--methods",
            "identity,unet-nmi",
            "--dataset",
            "demo-acdc",
            "--root",
            str(demo_root),
            "--out",
            str(out),
            "--folds",
            "0",
            *QUICK,
        ]
    )
    assert rc == 0
    results = read_results(out)
    assert tuple(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert set(results["method"]) == {"identity", "unet-nmi"}
    assert set(results["fold"]) == {0}
    folds = json.loads((out / "folds.json").read_text())
    test_keys = set(folds["0"]["test"])
    assert {f"{c}/{p}" for c, p in zip(results["case"], results["pair"], strict=False)} == test_keys
    # one row per method, pair, structure and metric
    assert not results.duplicated(["method", "fold", "case", "pair", "structure", "metric"]).any()
    for structure in ("RV", "LVm", "LVb"):
        for metric in ("dice", "hd", "hd95"):
            assert (
                (results["structure"] == structure) & (results["metric"] == metric)
            ).sum() == 2 * len(test_keys)
    image_metrics = set(results.loc[results["structure"] == "image", "metric"])
    assert image_metrics == {
        "nmi_before", "nmi", "folding_pct", "folding_fwd_pct", "sdlogj", "disp_error_mm",
        "disp_error_grid_mm", "tre_mm", "runtime_s",
    }
    identity = results[results["method"] == "identity"]
    assert (identity.loc[identity["metric"] == "folding_pct", "value"] == 0).all()
    nmi_before = identity[identity["metric"] == "nmi_before"]["value"].to_numpy()
    nmi_after = identity[identity["metric"] == "nmi"]["value"].to_numpy()
    np.testing.assert_allclose(nmi_before, nmi_after, atol=1e-3)  # the zero field changes nothing
    assert (results["status"] == "ok").all()
    # per-pair outputs and the run description
    key = sorted(test_keys)[0]
    folder = out / "pairs" / "unet-nmi" / "fold0" / key
    for name in ("displacement.nii.gz", "warped.nii.gz", "warped_labels.nii.gz", "result.json"):
        assert (folder / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["name"] == "demo-acdc" and run["dataset"]["sha256"]
    assert run["methods"]["unet-nmi"]["params"]["settings"]["iterations"] == 4
    assert run["folds"] == [0] and "torch" in run["versions"]
    assert (out / "models" / "unet-nmi" / "fold0" / "model.pt").is_file()
    assert (out / "results.parquet").is_file()
    pairs = pd.read_csv(out / "pairs.csv")
    assert set(pairs["case"] + "/" + pairs["pair"]) == test_keys
    assert "Results:" in capsys.readouterr().out


def test_rerun_reuses_results_and_force_recomputes(demo_root, tmp_path):
    manifest = load_manifest("demo-acdc", root=demo_root)
    out = tmp_path / "run"
    first = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], progress=False))
    marker = next((out / "pairs" / "identity" / "fold0").glob("*/*/result.json"))
    mtime = marker.stat().st_mtime_ns
    second = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], progress=False))
    assert marker.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(first.drop(columns="value"), second.drop(columns="value"))
    # a pair folder without its completion marker is recomputed
    marker.unlink()
    third = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], progress=False))
    assert marker.is_file() and len(third) == len(first)
    run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], force=True, progress=False))
    assert marker.stat().st_mtime_ns != mtime


class AlwaysFails(Method):
    name = "test-always-fails"
    description = "fails on every pair (test double)"
    learns = False

    def register(self, pair):
        raise RegistrationFailed("no convergence", log="iteration 1: diverged")


def test_a_failing_method_is_recorded_and_the_run_goes_on(demo_root, tmp_path, monkeypatch):
    from methods import registry

    available_methods()  # built-ins first, then the test double for this test only
    monkeypatch.setitem(registry._REGISTERED, AlwaysFails.name, AlwaysFails)
    manifest = load_manifest("demo-acdc", root=demo_root)
    out = tmp_path / "run"
    results = run_benchmark(RunOptions(manifest=manifest, methods=["test-always-fails", "identity"], out=out, folds=[0], progress=False
    ))
    failed = results[results["method"] == "test-always-fails"]
    assert len(failed) and failed["value"].isna().all()
    assert failed["status"].str.startswith("failed: no convergence").all()
    assert (results.loc[results["method"] == "identity", "status"] == "ok").all()
    logs = list((out / "pairs" / "test-always-fails").rglob("method.log"))
    assert logs and logs[0].read_text() == "iteration 1: diverged"


def test_unknown_method_and_fold_are_clear_errors(demo_root, tmp_path, capsys):
    base = ["run", "--dataset", "demo-acdc", "--root", str(demo_root), "--out", str(tmp_path / "r")]
    assert main([*base, "--methods", "identity,nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main([*base, "--methods", "identity", "--folds", "7"]) == 2
    assert "--folds [7]" in capsys.readouterr().err


def test_parallel_jobs_give_the_same_rows(demo_root, tmp_path):
    manifest = load_manifest("demo-acdc", root=demo_root)
    serial = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=tmp_path / "a", folds=[0], progress=False))
    parallel = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=tmp_path / "b", folds=[0], jobs=2, progress=False
    ))
    cols = ["method", "fold", "case", "pair", "structure", "metric", "unit", "status"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])
    ok = serial["metric"] != "runtime_s"
    np.testing.assert_allclose(serial.loc[ok, "value"], parallel.loc[ok, "value"])


def test_killed_run_resumes_without_lost_or_duplicated_rows(demo_root, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "benchmark.cli",
        "run",
        "--methods",
        "identity,elastix",
        "--dataset",
        "demo-acdc",
        "--root",
        str(demo_root),
        "--out",
        str(out),
        "--folds",
        "0",
        "--set",
        "iterations=4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    n = len(load_manifest("demo-acdc", root=demo_root).folds()[0].test)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # kill it once identity is done and elastix is under way
    while time.time() < deadline:
        if len(list((out / "pairs" / "identity").rglob("result.json"))) == n:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.rglob("result.json")))
    assert n <= done_before < 2 * n, "the kill should land part-way through the run"
    assert main(cmd[3:]) == 0
    results = read_results(out)
    assert not results.duplicated(["method", "fold", "case", "pair", "structure", "metric"]).any()
    per_method = results.groupby("method")[["case", "pair"]].apply(
        lambda d: len(d.drop_duplicates())
    )
    assert per_method.to_dict() == {"elastix": n, "identity": n}
    assert (results["status"] == "ok").all()
