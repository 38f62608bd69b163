"""``bench run`` and ``bench train``: parse the options and call
:func:`benchmark.runner.run.run_benchmark`, or train one method on one fold."""

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


def check_folder_option(option: str, value: str | None) -> None:
    """A folder option given as an empty string is an error (``Path("")`` would be the current
    folder)."""
    if value is not None and not value.strip():
        raise BenchError(f"{option} {value!r}: expected a folder")


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


def print_labels(layout) -> None:
    """Each method's label on this dataset recorded in ``run.json`` (e.g. "unet-ncc: NCC on a
    multi-contrast dataset"): a similarity that assumes one contrast, run as asked."""
    from benchmark.runner.runfiles import read_run_json

    methods = (read_run_json(layout) or {}).get("methods")
    labels = {
        name: entry["label"]
        for name, entry in (methods.items() if isinstance(methods, dict) else ())
        if isinstance(entry, dict) and entry.get("label")
    }
    for name, label in labels.items():
        print(f"label: {name}: {label} (its similarity assumes one contrast; run as asked)")


def print_claims(layout) -> None:
    """The verdict of each of the paper's claims that the run could test (``claims.csv``), and
    how many it could not."""
    import pandas as pd

    if not layout.claims_csv.is_file():
        return
    claims = pd.read_csv(layout.claims_csv, keep_default_na=False)
    tested = claims[claims["verdict"] != "not testable"]
    print(f"\nThe paper's claims ({layout.claims_csv}): {len(tested)} tested, "
          f"{len(claims) - len(tested)} not testable here")
    for row in tested.itertuples(index=False):
        print(f"  {row.verdict:<13} {row.statement}")


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
            f"{layout.model_dir(row.method, row.fold, seed)}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from benchmark.core.layout import RunLayout, default_run_folder
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.plan import format_plan
    from benchmark.runner.preflight import method_settings
    from benchmark.runner.run import RunOptions, plan_benchmark, run_benchmark
    from benchmark.stats.comparisons import summarize_metrics
    from methods.registry import parse_set, resolve_methods

    check_folder_option("--out", args.out)
    settings = parse_set(args.set)
    manifest = load_manifest(args.dataset, root=args.root, options=settings)
    names = resolve_methods(args.methods)
    out = Path(args.out) if args.out is not None else default_run_folder(manifest.name)
    options = RunOptions(
        manifest=manifest, methods=names, out=out, preset=args.preset,
        folds=parse_folds(args.folds), jobs=args.jobs, seeds=parse_seeds(args.seeds, args.seed),
        overrides=method_settings(manifest, settings), scheduler=args.scheduler, force=args.force,
        device=args.device, command=["bench", *sys.argv[1:]], prune=args.prune,
    )
    if args.dry_run:
        tasks, estimates = plan_benchmark(options)
        print(format_plan(tasks, estimates))
        return 0
    results = run_benchmark(options)
    layout = RunLayout(out)
    print(f"\nRun folder: {out}\nResults: {layout.results_csv} ({len(results)} rows)\n")
    if len(results):
        print(format_summary(summarize_metrics(results, methods=names)))
    print_labels(layout)
    print_claims(layout)
    print_training_warnings(out)
    failed = results.attrs.get("failed", [])
    if failed:
        print(f"\n{len(failed)} task(s) failed (their pairs' rows in results.csv carry the "
              "reason):", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome['id']}: {outcome['reason']}", file=sys.stderr)
        return 1
    return 0


def train(args: argparse.Namespace) -> int:
    """``bench train --method NAME --dataset D --fold K``: train one learning method on the
    training pairs of one fold (checked as ``bench run`` checks them), then print its
    validation beside no registration."""
    from benchmark.core.layout import RunLayout, default_run_folder
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.preflight import check_device, check_options, method_settings
    from methods.base import RunContext, fit_method
    from methods.registry import get_method, parse_set

    check_folder_option("--out", args.out)
    check_device(args.device)
    settings = parse_set(args.set)
    manifest = load_manifest(args.dataset, root=args.root, options=settings)
    overrides = method_settings(manifest, settings)
    (fold,), classes = check_options(
        manifest, [args.method], preset=args.preset, folds=args.fold, overrides=overrides,
        fold_option="--fold", learning=True,
    )
    cls = classes[args.method]
    context = RunContext(
        preset=args.preset, seed=args.seed, presets=manifest.presets, overrides=overrides,
        source=f"manifest {manifest.path}", contrast=manifest.contrast,
    )
    method = get_method(args.method, **cls.configure(context))
    workdir = (
        Path(args.out)
        if args.out is not None
        else RunLayout(default_run_folder(manifest.name)).model_dir(
            args.method, args.fold, args.seed
        )
    )
    if cls.resumable(workdir) and not args.resume:
        raise BenchError(
            f"{workdir} holds an unfinished training; add --resume to continue it, or remove it"
        )
    fit_method(
        method, fold.train, val_pairs=fold.val, workdir=workdir, seed=args.seed,
        device=args.device, progress=True,
    )
    print(f"model: {', '.join(str(p) for p in cls.artefact_files(workdir)) or workdir}")
    summary = cls.validation(workdir)
    if summary is not None:
        _print_validation(args.method, summary)
    return 0


def _print_validation(method: str, v) -> None:
    """One line of a trained model's validation (a :class:`methods.base.ValidationSummary`),
    and a warning on stderr when it is worse than no registration."""
    import math

    dice = "" if math.isnan(v.val_dice) else (
        f", Dice {v.val_dice:.3f} (no registration {v.identity_dice:.3f})"
    )
    print(
        f"validation (best at iteration {v.best_iteration}): similarity {v.val_similarity:.4f} "
        f"(no registration {v.identity_similarity:.4f}){dice}"
    )
    if v.worse_than_identity:
        print(
            f"warning: {method}: the trained model is worse than no registration on its "
            f"validation pairs ({v.worse_than_identity})",
            file=sys.stderr,
        )
