"""``bench run``: parse the options and call :func:`benchmark.runner.run.run_benchmark`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.errors import BenchError


def parse_folds(value: str | None) -> list[int] | None:
    if value is None or value.strip() in ("", "all"):
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BenchError(f"--folds {value!r}: expected comma-separated integers like 0,1") from exc


def run(args: argparse.Namespace) -> int:
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.run import run_benchmark, summary_table
    from methods.registry import resolve_methods
    from methods.training.config import parse_overrides

    manifest = load_manifest(args.dataset, root=args.root)
    names = resolve_methods(args.methods)
    out = Path(args.out) if args.out else Path("runs") / manifest.name
    results = run_benchmark(
        manifest,
        names,
        out=out,
        preset=args.preset,
        folds=parse_folds(args.folds),
        jobs=args.jobs,
        force=args.force,
        device=args.device,
        seed=args.seed,
        overrides=parse_overrides(args.set),
        command=["bench", *sys.argv[1:]],
    )
    table = summary_table(results)
    with_values = table[table["n"] > 0]
    print(f"\nRun folder: {out}\nResults: {out / 'results.csv'} ({len(results)} rows)\n")
    import pandas as pd

    with pd.option_context("display.max_rows", 500, "display.width", 120):
        print(
            with_values.pivot_table(
                index=["structure", "metric"], columns="method", values="mean", sort=False
            ).round(4).to_string()
        )
    failed = results[results["status"].str.startswith("failed")]
    if len(failed):
        print(f"\n{failed[['method', 'case', 'pair']].drop_duplicates().shape[0]} registration(s) failed; see status in results.csv", file=sys.stderr)
    return 0
