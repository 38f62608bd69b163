"""``bench train``: train one learning method on one fold of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.errors import BenchError


def train(args: argparse.Namespace) -> int:
    from benchmark.data.manifest import load_manifest
    from methods.registry import available_methods, get_method
    from methods.training.config import merge_settings, parse_overrides
    from methods.training.trainer import CHECKPOINT

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
        else Path("runs") / manifest.name / "models" / args.method / f"fold{args.fold}"
    )
    if (
        (workdir / CHECKPOINT).is_file()
        and not args.resume
        and not (workdir / "model.pt").is_file()
    ):
        raise BenchError(
            f"{workdir} holds an unfinished training; add --resume to continue it, or remove it"
        )
    method.fit(fold.train, workdir=workdir, seed=args.seed, device=args.device, progress=True)
    print(f"model: {method.model_path}")
    return 0
