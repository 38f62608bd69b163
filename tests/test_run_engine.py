"""The run engine: plan and dry run, content keys, faults, Dask executors, seeds and cost records
(``bench run`` on a tiny demo; identity and a few training iterations keep it fast)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import psutil
import pytest

from benchmark.cli import main
from benchmark.core.layout import RunLayout
from benchmark.data.manifest import load_manifest
from benchmark.runner.run import RunOptions, plan_benchmark, run_benchmark
from methods.base import Method
from methods.identity import Identity
from methods.registry import available_methods

QUICK = {"iterations": 3, "batch_size": 1, "patch_size": [32, 32, 4]}
QUICK_ARGS = ["--set", "iterations=3", "--set", "batch_size=1", "--set", "patch_size=32,32,4"]
KEY = ["method", "fold", "seed", "case", "pair", "structure", "metric"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-acdc")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return root


@pytest.fixture
def manifest(demo_root):
    return load_manifest("demo-acdc", root=demo_root)


def todo_ids(manifest, methods, out, **kw):
    tasks, _ = plan_benchmark(RunOptions(manifest=manifest, methods=methods, out=out, **kw))
    return {t.id for t in tasks if t.state == "to do"}, tasks


def values(results: pd.DataFrame) -> pd.DataFrame:
    """Rows without the timing metric (the only values that differ between runs)."""
    return results[results["metric"] != "runtime_s"].sort_values(KEY).reset_index(drop=True)


def test_dry_run_lists_exactly_the_tasks_left_and_those_made_stale(manifest, tmp_path):
    out = tmp_path / "run"
    methods = ["identity", "unet-nmi"]
    todo, tasks = todo_ids(manifest, methods, out, folds=[0], overrides=QUICK)
    fold0 = [t for t in tasks if t.fold == 0]
    assert todo == {t.id for t in fold0} and sum(t.kind == "train" for t in fold0) == 1
    assert all(t.state == "not selected" for t in tasks if t.fold != 0)
    # a partial run: identity only
    run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], overrides=QUICK, progress=False))
    todo, _ = todo_ids(manifest, methods, out, folds=[0], overrides=QUICK)
    assert todo == {t.id for t in fold0 if t.method == "unet-nmi"}
    run_benchmark(RunOptions(manifest=manifest, methods=methods, out=out, folds=[0], overrides=QUICK, progress=False))
    assert todo_ids(manifest, methods, out, folds=[0], overrides=QUICK)[0] == set()
    # one input file changes: exactly the registrations that read it
    test_pair = next(t.spec for t in fold0 if t.spec is not None)
    path = Path(test_pair.moving)
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data.flat[0] += 1
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    todo, tasks = todo_ids(manifest, methods, out, folds=[0], overrides=QUICK)
    readers = {
        t.id for t in tasks if t.fold == 0 and t.spec is not None
        and path.resolve() in {Path(p).resolve() for p in t.spec.files().values()}
    }
    assert todo == readers and len(readers) >= 2
    assert all("moving file" in t.reason or "fixed file" in t.reason
               for t in tasks if t.id in todo)
    run_benchmark(RunOptions(manifest=manifest, methods=methods, out=out, folds=[0], overrides=QUICK, progress=False))
    assert todo_ids(manifest, methods, out, folds=[0], overrides=QUICK)[0] == set()
    # another seed: the training and the learned registrations; identity takes no seed
    todo, tasks = todo_ids(manifest, methods, out, folds=[0], overrides=QUICK, seeds=[1])
    assert todo == {t.id for t in tasks if t.fold == 0 and t.method == "unet-nmi"}
    assert all(t.seed == 1 for t in tasks if t.method == "unet-nmi")
    # how the trained model registers (instance_steps): its registrations again, not its training
    tuned = {**QUICK, "instance_steps": 2}
    todo, tasks = todo_ids(manifest, methods, out, folds=[0], overrides=tuned)
    assert todo == {t.id for t in fold0 if t.method == "unet-nmi" and t.kind == "register"}
    assert all("method" in t.reason for t in tasks if t.id in todo)


def test_dry_run_cli_names_the_reasons_and_estimates(demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", "--methods", "identity", "--dataset", "demo-acdc", "--root", str(demo_root),
            "--out", str(out), "--folds", "0"]
    assert main([*base, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "to do  register identity fold 0 seed 0" in text and "not run yet" in text
    assert "no estimate" in text and not out.exists()  # a dry run writes nothing
    assert main(base) == 0
    costs = pd.read_csv(out / "costs.csv")
    assert set(costs["kind"]) == {"register"} and (costs["wall_s"] > 0).all()
    assert (costs["cpu_s"] >= 0).all() and (costs["peak_rss_mb"] > 10).all()
    assert costs["device"].str.startswith("cpu").all()
    shutil.rmtree(out / "pairs" / "identity" / "fold0" / costs["case"][0])
    capsys.readouterr()
    assert main([*base, "--dry-run"]) == 0
    text = capsys.readouterr().out
    n = (costs["case"] == costs["case"][0]).sum()
    assert f"{n} task(s) to do" in text and text.count("(~") == n  # estimated from costs.csv


def test_other_folds_stay_and_a_manifest_comment_does_not_lock(manifest, demo_root, tmp_path):
    out = tmp_path / "run"
    full = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, progress=False))
    assert set(full["fold"]) == {f.index for f in manifest.folds()}
    stamp = {p: p.stat().st_mtime_ns for p in RunLayout(out).all_result_jsons()}
    again = run_benchmark(RunOptions(manifest=manifest, methods=["identity"], out=out, folds=[0], progress=False))
    pd.testing.assert_frame_equal(values(full), values(again))
    assert {p: p.stat().st_mtime_ns for p in RunLayout(out).all_result_jsons()} == stamp
    assert set(pd.read_csv(out / "pairs.csv")["fold"]) == set(full["fold"])
    # the same manifest with a comment edited: same pairs and settings, the folder is usable
    edited = tmp_path / "demo-acdc.yaml"
    edited.write_text(Path(manifest.path).read_text() + "\n# a comment\n")
    m2 = load_manifest(str(edited), root=demo_root)
    assert m2.sha256 != manifest.sha256
    assert todo_ids(m2, ["identity"], out)[0] == set()
    run_benchmark(RunOptions(manifest=m2, methods=["identity"], out=out, folds=[0], progress=False))
    # a real change is refused, naming what changed
    changed = tmp_path / "other.yaml"
    changed.write_text(Path(manifest.path).read_text().replace("stratify: group", "stratify: null"))
    from benchmark.core.errors import BenchError

    with pytest.raises(BenchError, match="cv: .*stratify.* -> "):
        run_benchmark(RunOptions(manifest=load_manifest(str(changed), root=demo_root), methods=["identity"], out=out,
                      folds=[0], progress=False))


class FailsOnOnePair(Method):
    """Identity, except a crash (not a method failure) on one pair."""

    name = "test-fails-on-one"
    description = "crashes on patient003/ED-ES (test double)"
    learns = False

    def register(self, pair):
        if pair.key == "patient003/ED-ES":
            raise RuntimeError("corrupt input (test)")
        return Identity().register(pair)


def test_a_failing_pair_keeps_every_other_result(demo_root, tmp_path, monkeypatch, capsys):
    from methods import registry

    available_methods()
    monkeypatch.setitem(registry._REGISTERED, FailsOnOnePair.name, FailsOnOnePair)
    out = tmp_path / "run"
    rc = main(["run", "--methods", "test-fails-on-one,identity", "--dataset", "demo-acdc",
               "--root", str(demo_root), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 task(s) failed" in err and "patient003/ED-ES: RuntimeError: corrupt input" in err
    results = pd.read_csv(out / "results.csv")
    bad = (results["method"] == FailsOnOnePair.name) & (results["case"] == "patient003") & (
        results["pair"] == "ED-ES")
    assert bad.sum() > 0 and results.loc[bad, "value"].isna().all()
    assert results.loc[bad, "status"].str.startswith("failed: RuntimeError: corrupt input").all()
    assert (results.loc[~bad, "status"] == "ok").all()
    n_pairs = sum(len(f.test) for f in load_manifest("demo-acdc", root=demo_root).folds())
    per_method = results.groupby("method")[["case", "pair"]].apply(lambda d: len(d.drop_duplicates()))
    assert per_method.to_dict() == {"identity": n_pairs, FailsOnOnePair.name: n_pairs}
    # the failure is not cached: the next run tries that pair again, and only it
    todo, _ = todo_ids(load_manifest("demo-acdc", root=demo_root), [FailsOnOnePair.name], out)
    fold = next(f.index for f in load_manifest("demo-acdc", root=demo_root).folds()
                if "patient003/ED-ES" in {s.key for s in f.test})
    assert todo == {f"register {FailsOnOnePair.name} fold {fold} seed 0 patient003/ED-ES"}


def test_two_dask_workers_give_the_serial_rows_and_seeds_column(manifest, tmp_path):
    kw = dict(folds=[0], overrides=QUICK, progress=False, seeds=[0, 1])
    serial = run_benchmark(RunOptions(manifest=manifest, methods=["identity", "unet-nmi"], out=tmp_path / "a", **kw))
    dask = run_benchmark(RunOptions(manifest=manifest, methods=["identity", "unet-nmi"], out=tmp_path / "b", jobs=2, **kw))
    assert list(serial.columns[:10]) == [
        "method", "fold", "case", "pair", "structure", "metric", "value", "unit", "status", "seed"]
    assert set(serial.loc[serial["method"] == "unet-nmi", "seed"]) == {0, 1}
    assert set(serial.loc[serial["method"] == "identity", "seed"]) == {0}
    a, b = values(serial), values(dask)
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    # CPU training is deterministic for a seed: equal up to float32 summation order
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-4, atol=1e-4)
    costs = pd.read_csv(tmp_path / "b" / "costs.csv")
    train = costs[costs["kind"] == "train"]
    assert len(train) == 2 and (train["iterations"] == 3).all() and (train["iterations_per_s"] > 0).all()
    assert len(set(costs["host"])) == 1
    from reports.tables import cost_summary

    per_method = cost_summary(costs).set_index("method")
    n = len(manifest.folds()[0].test)
    assert per_method.loc["unet-nmi", "trainings"] == 2
    assert per_method.loc["unet-nmi", "registrations"] == 2 * n
    assert per_method.loc["identity", "registrations"] == n
    assert per_method.loc["unet-nmi", "train_s"] > per_method.loc["unet-nmi", "reg_s_mean"]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["seeds"] == [0, 1] and "git_commit" in run["provenance"]
    assert run["provenance"]["torch"] and "cuda" in run["provenance"]
    import torch

    # the CPU's kernels decide the trainings' last digits: recorded beside the versions
    assert run["provenance"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert run["provenance"]["cpu"] and run["provenance"]["cpu"] != "unknown"
    if not torch.cuda.is_available():  # each task's record names the CPU too
        cpu = f"cpu ({run['provenance']['cpu']}, {os.cpu_count()} cores)"
        assert (costs["device"] == cpu).all(), costs["device"].unique()
    validation = pd.read_csv(tmp_path / "b" / "validation.csv")
    models = validation[["method", "fold", "seed"]].sort_values("seed")
    assert models.values.tolist() == [["unet-nmi", 0, 0], ["unet-nmi", 0, 1]]  # every seed


def _bench_run(demo_root, out, *extra):
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--dataset", "demo-acdc", "--root",
           str(demo_root), "--out", str(out), "--folds", "0", *extra]
    return cmd, subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _workers(proc: psutil.Process) -> list[psutil.Process]:
    """Dask worker processes below ``proc`` (spawned Python processes)."""
    return [c for c in proc.children(recursive=True) if "spawn" in " ".join(c.cmdline())]


def test_kill_9_of_bench_run_leaves_no_worker(demo_root, tmp_path):
    _, proc = _bench_run(demo_root, tmp_path / "run", "--methods", "unet-nmi", "--jobs", "2",
                         "--set", "iterations=500", "--set", "batch_size=1",
                         "--set", "patch_size=32,32,4")
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    workers: list[psutil.Process] = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = _workers(parent)
    assert len(workers) >= 2, "the LocalCluster's workers did not start"
    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers left alive: {[p.pid for p in alive]}"


def test_a_worker_killed_mid_training_reruns_its_task(demo_root, tmp_path):
    out = tmp_path / "run"
    cmd, proc = _bench_run(demo_root, out, "--methods", "identity,unet-nmi", "--jobs", "2",
                           "--set", "iterations=40", "--set", "batch_size=1",
                           "--set", "patch_size=32,32,4", "--set", "checkpoint_every=5")
    parent = psutil.Process(proc.pid)
    model = RunLayout(out).model_dir("unet-nmi", 0)
    deadline = time.time() + 180
    while time.time() < deadline and not (model / "checkpoint.pt").is_file():
        time.sleep(0.2)
    assert (model / "checkpoint.pt").is_file(), "the training did not start"
    # the worker that trains is the one using most CPU
    workers = _workers(parent)
    for w in workers:
        w.cpu_percent(None)
    time.sleep(1.0)
    busy = max(workers, key=lambda w: w.cpu_percent(None))
    busy.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    results = pd.read_csv(out / "results.csv")
    assert not results.duplicated(KEY).any()
    per_method = results.groupby("method")[["case", "pair"]].apply(lambda d: len(d.drop_duplicates()))
    n = len(load_manifest("demo-acdc", root=demo_root).folds()[0].test)
    assert per_method.to_dict() == {"identity": n, "unet-nmi": n}
    assert (results["status"] == "ok").all()
    trained_by = json.loads(RunLayout(out).model_task("unet-nmi", 0).read_text())["cost"]["pid"]
    assert trained_by != busy.pid  # the training ran again on another worker process


@pytest.mark.gpu
def test_a_cuda_training_records_its_device_and_memory(manifest, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    out = tmp_path / "run"
    run_benchmark(RunOptions(manifest=manifest, methods=["unet-nmi"], out=out, folds=[0], overrides=QUICK, device="cuda",
                  progress=False))
    costs = pd.read_csv(out / "costs.csv")
    train = costs[costs["kind"] == "train"].iloc[0]
    assert train["device"].startswith("cuda:0 (") and torch.cuda.get_device_name(0) in train["device"]
    assert train["peak_gpu_mb"] > 0 and train["iterations_per_s"] > 0
    reg = costs[costs["kind"] == "register"]
    assert (reg["peak_gpu_mb"] > 0).all() and reg["device"].str.startswith("cuda").all()
    prov = json.loads((out / "run.json").read_text())["provenance"]
    assert prov["gpu"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    assert prov["cuda"] == torch.version.cuda and prov["cudnn"] == torch.backends.cudnn.version()


def test_local_workers_keep_glibc_malloc_defaults():
    """Dask's MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold, which doubled the
    kernel time of torch trainings in its workers; the local cluster starts them without it and
    with the rest of Dask's worker environment (one OpenMP thread)."""
    from distributed import Client

    from benchmark.runner.executor import local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        environ = client.run(lambda: dict(os.environ))
    (worker_env,) = environ.values()
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_env
    assert worker_env["OMP_NUM_THREADS"] == "1"
