"""``bench run``: parse the options and call :func:`benchmark.runner.run.run_benchmark`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import BenchError


def parse_seeds(value: str | None, seed: int) -> list[int]:
    """``--seeds 0,1,2`` (default: ``[--seed]``)."""
    if value is None:
        return [seed]
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BenchError(f"--seeds {value!r}: expected comma-separated integers like 0,1,2") from exc


def parse_folds(value: str | None) -> list[int] | None:
    if value is None or value.strip() in ("", "all"):
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BenchError(f"--folds {value!r}: expected comma-separated integers like 0,1") from exc


def format_summary(summary) -> str:
    """Mean ± SD per structure and metric (rows) and method (columns), as plain text."""
    import pandas as pd

    summary = summary[summary["n"] > 0].copy()
    summary["cell"] = [
        f"{m:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{m:.3f}"
        for m, sd in zip(summary["mean"], summary["sd"], strict=False)
    ]
    table = summary.pivot_table(
        index=["structure", "metric"], columns="method", values="cell", aggfunc="first", sort=False
    )
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        return table.to_string()


def print_training_warnings(out: Path) -> None:
    """Name, on stderr, every trained model of the run that is worse than no registration on
    its validation pairs (``validation.csv``)."""
    import pandas as pd

    from benchmark.core.layout import RunLayout

    layout = RunLayout(out)
    path = layout.validation_csv
    if not path.is_file():
        return
    table = pd.read_csv(path, keep_default_na=False)
    for row in table[table["worse_than_identity"] != ""].itertuples():
        seed = int(getattr(row, "seed", 0))  # older run folders: seed 0 only
        where = f"fold {row.fold}" + (f" seed {seed}" if seed else "")
        print(
            f"warning: {row.method} {where}: the trained model is worse than no "
            f"registration on its validation pairs ({row.worse_than_identity}); see "
            f"{layout.model_dir(row.method, row.fold, seed) / 'training.png'}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from benchmark.core.layout import RunLayout, default_run_folder
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.plan import format_plan
    from benchmark.runner.run import plan_benchmark, run_benchmark
    from benchmark.stats.comparisons import summarize_metrics
    from methods.registry import resolve_methods
    from methods.training.config import parse_overrides

    manifest = load_manifest(args.dataset, root=args.root)
    names = resolve_methods(args.methods)
    out = Path(args.out) if args.out else default_run_folder(manifest.name)
    seeds = parse_seeds(args.seeds, args.seed)
    common = dict(
        out=out, preset=args.preset, folds=parse_folds(args.folds), jobs=args.jobs, seeds=seeds,
        overrides=parse_overrides(args.set),
    )
    if args.dry_run:
        tasks, estimates = plan_benchmark(manifest, names, **common)
        print(format_plan(tasks, estimates))
        return 0
    results = run_benchmark(
        manifest, names, scheduler=args.scheduler, force=args.force, device=args.device,
        command=["bench", *sys.argv[1:]], **common,
    )
    layout = RunLayout(out)
    print(f"\nRun folder: {out}\nResults: {layout.results_csv} ({len(results)} rows)\n")
    if len(results):
        print(format_summary(summarize_metrics(results, methods=names)))
    print_training_warnings(out)
    failed = results.attrs.get("failed", [])
    if failed:
        print(f"\n{len(failed)} task(s) failed (their pairs' rows in results.csv carry the "
              "reason):", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome['id']}: {outcome['reason']}", file=sys.stderr)
        return 1
    return 0
