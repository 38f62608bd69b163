"""Handlers of ``bench data check`` and ``bench data demo`` (named in :mod:`benchmark.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from benchmark.core.errors import BenchError, ValidationError

log = logging.getLogger(__name__)


def check(args: argparse.Namespace) -> int:
    """``bench data check --dataset NAME_OR_PATH [--root DIR] [--set KEY=VALUE] [--json]``.

    Validates every file of the dataset and the manifest's training presets (and the training
    settings of ``--set``; a key the dataset takes itself, like a Learn2Reg task's ``split``,
    chooses what is checked), prints a summary
    (text, or JSON with ``--json``) on stdout and every warning (``warning: ...``) on stderr. When
    there are problems they are all raised as one :class:`ValidationError`, which the CLI prints
    on stderr with exit status 2. Returns 0 for a valid dataset.
    """
    from benchmark.data.manifest import load_manifest
    from benchmark.data.validate import validate
    from benchmark.runner.preflight import method_settings
    from methods.base import RunContext
    from methods.registry import parse_set, setting_problems

    settings = parse_set(getattr(args, "set", None) or [])
    manifest = load_manifest(args.dataset, root=args.root, options=settings)
    report = validate(manifest, raise_on_problems=False)
    # the manifest's presets, checked by the methods that own them, as bench run checks them
    report.problems += setting_problems(
        RunContext(
            presets=manifest.presets, overrides=method_settings(manifest, settings),
            source=f"manifest {manifest.path}",
        )
    )
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.problems:
        raise ValidationError(f"dataset {manifest.name} ({manifest.root})", report.problems)
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    print(
        f"ok: {len(report.cases)} cases, {len(report.pairs)} pairs, no problems{warned}",
        file=sys.stderr,
    )
    return 0


def demo(args: argparse.Namespace) -> int:
    """``bench data demo NAME --out DIR [--cases N] [--seed S]``: generate a demo dataset.

    ``NAME`` is a demo generator (``demo-acdc``, ``demo-dce``). Without ``--cases`` the case
    count of the shipped manifest of the same name is used, so that
    ``bench data check --dataset NAME --root DIR`` sees the same data as the automatic cache.
    Prints the data folder to use as ``--root``.
    """
    from benchmark.data.demo import generate
    from benchmark.data.parse import demo_spec

    cases = args.cases
    if cases is not None and cases < 1:
        raise BenchError(f"--cases must be >= 1, got {cases}")
    if cases is None:
        spec = demo_spec(args.name)
        if spec is not None and spec.generator == args.name:
            cases = spec.cases
    root = Path(generate(args.name, Path(args.out), cases=cases, seed=args.seed))
    print(root)
    return 0
