"""``bench train``: train one learning method on one fold of a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import BenchError


def train(args: argparse.Namespace) -> int:
    from benchmark.core.layout import RunLayout, default_run_folder
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.preflight import check_options
    from methods.base import fit_method
    from methods.registry import get_method
    from methods.training.config import merge_settings, parse_overrides
    from methods.training.trainer import CHECKPOINT, MODEL, read_model_info

    manifest = load_manifest(args.dataset, root=args.root)
    overrides = parse_overrides(args.set)
    (fold,), _ = check_options(
        manifest,
        [args.method],
        preset=args.preset,
        folds=args.fold,
        overrides=overrides,
        fold_option="--fold",
        learning=True,
    )
    settings = merge_settings(manifest.presets.get(args.preset, {}), overrides)
    method = get_method(args.method, preset=args.preset, settings=settings)
    workdir = (
        Path(args.out)
        if args.out
        else RunLayout(default_run_folder(manifest.name)).model_dir(
            args.method, args.fold, args.seed
        )
    )
    if (
        (workdir / CHECKPOINT).is_file()
        and not args.resume
        and not (workdir / MODEL).is_file()
    ):
        raise BenchError(
            f"{workdir} holds an unfinished training; add --resume to continue it, or remove it"
        )
    fit_method(
        method, fold.train, val_pairs=fold.val, workdir=workdir, seed=args.seed,
        device=args.device, progress=True,
    )
    print(f"model: {method.model_path}")
    info = read_model_info(workdir) or {}
    validation = info.get("validation")
    if validation:
        best, identity = validation["best"], validation["identity"]
        print(
            f"validation ({len(validation['pairs'])} pairs, best at iteration "
            f"{validation['best_iteration']}): similarity {best['similarity']:.4f} "
            f"(no registration {identity['similarity']:.4f})"
            + (
                f", Dice {best['dice']:.3f} (no registration {identity['dice']:.3f})"
                if best.get("dice") is not None
                else ""
            )
        )
        if validation["worse_than_identity"]:
            print(
                f"warning: {args.method}: the trained model is worse than no registration on "
                f"its validation pairs ({validation['worse_than_identity']})",
                file=sys.stderr,
            )
    return 0
