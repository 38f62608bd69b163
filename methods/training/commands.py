"""``bench train``: train one learning method on one fold of a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.errors import BenchError


def train(args: argparse.Namespace) -> int:
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.layout import RunLayout, default_run_folder
    from methods.base import fit_method
    from methods.registry import available_methods, get_method
    from methods.training.config import merge_settings, parse_overrides
    from methods.training.trainer import CHECKPOINT, MODEL, read_model_info

    known = available_methods()
    if args.method not in known:
        raise BenchError(f"unknown method {args.method!r}; known methods: {', '.join(known)}")
    if not known[args.method].learns:
        learners = [n for n, c in known.items() if c.learns]
        raise BenchError(
            f"method {args.method!r} does not learn; bench train takes one of: {', '.join(learners)}"
        )
    manifest = load_manifest(args.dataset, root=args.root)
    folds = {f.index: f for f in manifest.folds()}
    if args.fold not in folds:
        raise BenchError(f"--fold {args.fold}: the dataset has folds {sorted(folds)}")
    fold = folds[args.fold]
    settings = merge_settings(manifest.presets.get(args.preset, {}), parse_overrides(args.set))
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
