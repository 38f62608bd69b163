"""The example plug-in (``examples/plugin``) the way an outside user takes it: pip-installs it (offline,
into a folder layered on the test environment), lists it with ``bench methods`` and runs it through
``bench run``; it also passes the method contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "plugin"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """``pip install --no-build-isolation --no-deps --no-index`` of a copy of the example (the
    build writes into its source folder) into a target folder; returns the environment that puts
    it on ``sys.path`` after the project under test."""
    pytest.importorskip("setuptools", reason="building the example plug-in needs setuptools")
    tmp = tmp_path_factory.mktemp("plugin")
    source = tmp / "source"
    shutil.copytree(PLUGIN, source)
    target = tmp / "site"
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
        "--no-index", "--target", str(target), str(source),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("mirbench_demons-*.dist-info/entry_points.txt"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(target), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env, target


def _bench(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_installed_plugin_is_listed_and_runs_through_bench_run(installed_plugin, tmp_path):
    env, _ = installed_plugin
    listing = _bench(env, "methods")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("demons "))
    assert row.split()[1:3] == ["yes", "no"] and "example plug-in" in row

    root = tmp_path / "demo"
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    out = tmp_path / "run"
    run = _bench(
        env, "run", "--methods", "identity,demons", "--dataset", "demo-acdc", "--root", str(root),
        "--out", str(out), "--folds", "0",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = pd.read_csv(out / "results.csv")
    demons = results[results["method"] == "demons"]
    assert len(demons) and (demons["status"] == "ok").all()
    # the plug-in registered something: its field is not zero and matches the images better
    nmi = results[results["metric"] == "nmi"].set_index(["method", "case", "pair"])["value"]
    assert (nmi["demons"] > nmi["identity"]).all()
    assert (demons.loc[demons["metric"] == "sdlogj", "value"] > 0).all()
    assert (out / "run.json").read_text().count("mirbench_demons.Demons") == 1


def test_plugin_passes_the_method_contract(installed_plugin, monkeypatch):
    _, target = installed_plugin
    monkeypatch.syspath_prepend(str(target))
    from test_method_contract import check_method_contract

    from methods.registry import available_methods, get_method

    assert available_methods()["demons"].__module__ == "mirbench_demons"
    stats = check_method_contract(get_method("demons"))
    assert stats["p90_error_vox_translation"] < 1.0
