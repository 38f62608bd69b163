"""The files that describe a run folder: ``run.json`` (command, versions, provenance, dataset,
methods and their settings, conventions, folds, seeds), ``folds.json``, ``pairs.csv`` (the test
pairs and their files) and the run's log file; and the check that a folder being resumed holds a
run of the same dataset and preset (``docs/conventions.md``, "Run folder").
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.core.atomic import atomic_path, write_text
from benchmark.core.errors import BenchError
from benchmark.core.layout import RunLayout
from benchmark.core.pairs import PAIRS_TABLE_COLUMNS
from benchmark.runner.scoring import METHOD_CONVENTIONS
from benchmark.runner.tasks import cpu_model
from methods.base import contrast_label
from metrics.catalog import METRIC_CONVENTIONS

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """Versions of Python, MIRBench and the libraries that change numbers."""
    out = {"python": platform.python_version(), "mirbench": __version__}
    for dist in (
        "torch", "numpy", "scipy", "itk-elastix", "antspyx", "picsl-greedy", "nibabel", "pandas",
    ):  # fmt: skip
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def provenance(device: str | None = None) -> dict[str, Any]:
    """Where the numbers come from: the project's git commit (and whether its tree had
    uncommitted changes), torch, CUDA and cuDNN versions, the GPU model, the host and its CPU.

    ``cpu_capability`` is the instruction set torch's CPU kernels dispatch to (``AVX2``,
    ``AVX512``...): trainings on the CPU give the same numbers to the last digit on one machine,
    not between CPUs whose kernels differ (``docs/conventions.md``, "Randomness and
    reproducibility")."""
    import torch

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    cuda = torch.cuda.is_available()
    return {
        "git_commit": commit or "not a git checkout",
        "git_dirty": None if status is None else bool(status),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


#: The manifest's fields whose change makes a run folder another run (``run.json`` "dataset");
#: its path, root and bytes may change (a comment edited, the data moved): results whose
#: inputs changed are recomputed by their keys.
DATASET_IDENTITY = ("name", "loader", "labels", "pairing", "training_pairing", "cv", "split",
                    "presets")


def read_run_json(layout: RunLayout) -> dict[str, Any] | None:
    """The ``run.json`` of a run folder; None when there is none, or (with a warning naming the
    file) when it is damaged: it is written again by the next run, and every task's record
    carries its own key, so nothing computed is trusted on its word."""
    if not layout.run_json.is_file():
        return None
    try:
        info = json.loads(layout.run_json.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s is damaged (%s); it is written again by this run", layout.run_json, exc)
        return None
    if not isinstance(info, dict):
        log.warning("%s is damaged (not a JSON object); it is written again", layout.run_json)
        return None
    return info


def check_same_dataset(layout: RunLayout, manifest, preset: str) -> None:
    """Refuse a run folder holding a run of another dataset or preset, naming what changed."""
    old = read_run_json(layout)
    if old is None:
        return
    before, now = old.get("dataset", {}), manifest.describe()
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in DATASET_IDENTITY
        if k in before and json.dumps(before.get(k), sort_keys=True, default=str)
        != json.dumps(now.get(k), sort_keys=True, default=str)
    ]
    if old.get("preset") != preset:
        changed.append(f"preset: {old.get('preset')!r} -> {preset!r}")
    if changed:
        raise BenchError(
            f"{layout.root} holds a run of another dataset or preset ({'; '.join(changed)}); "
            "use another --out"
        )


def method_entry(cls: type, params: dict[str, Any], contrast: str | None) -> dict[str, Any]:
    """A method's entry in ``run.json``: its class, description and settings, what it says of
    itself for the report's methods table (``summary``: metric, transform, key settings, who
    chose them; :meth:`methods.base.Method.summary`, null when it does not say) and its
    ``label`` on this dataset (e.g. "NCC on a multi-contrast dataset":
    :func:`methods.base.contrast_label`; null for none)."""
    summary = cls.summary(params)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "description": cls.description,
        "params": params,
        "summary": summary,
        "label": contrast_label(summary, contrast),
    }


def write_run_files(
    layout: RunLayout,
    manifest,
    *,
    methods: dict[str, type],
    params: dict[str, dict[str, Any]],
    folds: list,
    preset: str,
    seeds: list[int],
    jobs: int,
    scheduler: str | None,
    command: Sequence[str] | None,
    prune: bool = False,
) -> None:
    """Write ``run.json``, ``folds.json`` and ``pairs.csv`` of a run about to start.

    ``methods`` are the run's method classes by name and ``params`` their settings; ``folds``
    the folds run now. A folder that holds a run already must hold one of the same dataset and
    preset (:func:`check_same_dataset`); its first start time is kept, so are the entries of
    methods it ran that this run does not (unless ``prune``), and ``pairs.csv`` keeps the test
    pairs of the folds run before.
    """
    run_info = {
        "command": list(command) if command is not None else sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "provenance": provenance(),
        "dataset": manifest.describe(),
        "methods": {
            name: method_entry(cls, params[name], manifest.contrast)
            for name, cls in methods.items()
        },
        "conventions": {"metrics": METRIC_CONVENTIONS, "methods": METHOD_CONVENTIONS},
        "preset": preset,
        "folds": [f.index for f in folds],
        "seed": seeds[0],
        "seeds": list(seeds),
        "jobs": jobs,
        "scheduler": scheduler,
    }
    old = read_run_json(layout)
    if old is not None:
        check_same_dataset(layout, manifest, preset)
        run_info["started_first"] = old.get("started_first", old.get("started"))
        if not prune and isinstance(old.get("methods"), dict):
            others = {k: v for k, v in old["methods"].items() if k not in methods}
            run_info["methods"] = {**others, **run_info["methods"]}
    write_text(layout.run_json, json.dumps(run_info, indent=2, default=str))
    write_text(layout.folds_json, json.dumps(manifest.folds_table(), indent=2))
    # the test pairs of the folds run now or before: results.csv keeps every fold's rows
    listed = {f.index for f in folds} | _folds_listed_before(layout)
    rows = []
    for fold in (f for f in manifest.folds() if f.index in listed):
        for spec in fold.test:
            files = {
                **spec.files(),
                **{
                    role: getattr(spec, role)
                    for role in ("fixed_landmarks", "moving_landmarks")
                    if getattr(spec, role) is not None
                },
            }
            rows.append(
                {
                    "fold": fold.index,
                    "case": spec.case,
                    "pair": spec.pair,
                    **{
                        role: str(Path(files[role]).resolve()) if role in files else ""
                        for role in PAIRS_TABLE_COLUMNS[3:]
                    },
                }
            )
    with atomic_path(layout.pairs_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def _folds_listed_before(layout: RunLayout) -> set[int]:
    """The folds of the run folder's ``pairs.csv`` (none, with a warning, when it is damaged)."""
    if not layout.pairs_csv.is_file():
        return set()
    try:
        return set(pd.read_csv(layout.pairs_csv, usecols=["fold"])["fold"].astype(int))
    except (OSError, ValueError) as exc:
        log.warning("%s is damaged (%s); it is written again", layout.pairs_csv, exc)
        return set()


def log_to_file(path: Path) -> logging.Handler:
    """Add a handler writing INFO and above of every logger to ``path``; the caller removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
