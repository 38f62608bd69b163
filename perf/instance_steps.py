"""What instance-specific optimisation does, and what the training adds to it: error per step count.

Run from the repository root (not a test)::

    python perf/instance_steps.py --model runs/demo-dce/models/poolnet-nmi/fold0 \
        --dataset demo-dce [--pairs 3] [--steps 10 20 40 80]

For each of the first ``--pairs`` evaluated pairs (ground truth needed), the network of
``model.pt`` is fine-tuned on the pair for each number of ``--steps``
(:func:`methods.training.instance.fine_tune`, as ``--set instance_steps=N`` registers), once
starting from the trained weights and once from an untrained network of the same configuration
(seed 0). Printed: the displacement error against the ground truth (mm, mean over the foreground,
as ``bench run`` scores ``disp_error_mm``) per pair and its mean. Each step count is a fine-tuning
of its own from the same start; on the CPU it equals a longer fine-tuning stopped there.

These are the measurements behind "demo-dce with instance-specific optimisation" in
perf/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from model_probe import foreground, model_parser, parse_model_args


def errors(model_dir: Path, dataset: str, *, root: Path | None, pairs: int, steps: list[int]):
    """``{(start, steps): [error per pair]}`` with start ``"trained"`` or ``"untrained"``."""
    import torch

    from benchmark.core.errors import BenchError
    from benchmark.data.manifest import load_manifest
    from methods.training.inputs import pair_inputs
    from methods.training.instance import fine_tune
    from methods.training.trainer import build_model, load_model

    trained, config = load_model(model_dir / "model.pt", device="cpu")
    starts = {"trained": trained, "untrained": build_model(config, seed=0).eval()}
    out: dict[tuple[str, int], list[float]] = {}
    for spec in load_manifest(dataset, root=root).pairs()[:pairs]:
        pair = spec.load()
        if pair.true_displacement is None:
            raise BenchError(f"{spec.key}: no ground-truth displacement; this needs a phantom")
        fixed, moving, mask = pair_inputs(pair, config, "cpu")
        fg = foreground(pair)
        spacing = np.reshape(pair.spacing, (-1, *[1] * pair.ndim))
        for name, start in starts.items():
            for n in steps:
                tuned, _ = fine_tune(start, fixed, moving, config=config, steps=n, mask=mask)
                with torch.no_grad():
                    u = tuned(fixed, moving)[0].numpy() * spacing
                error = np.sqrt(((u - pair.true_displacement) ** 2).sum(axis=0))[fg].mean()
                out.setdefault((name, n), []).append(float(error))
                print(f"{spec.key} {name} {n} steps: {error:.3f} mm", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = model_parser(__doc__.splitlines()[0], pairs=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40, 80])
    args = parse_model_args(parser, argv)
    if min(args.steps) < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    table = errors(args.model, args.dataset, root=args.root, pairs=args.pairs, steps=args.steps)
    print(f"{args.model} on {args.dataset}: error in the foreground (mm) after fine-tuning")
    print()
    print("| start | steps | mean | per pair |")
    print("| --- | --- | --- | --- |")
    for (start, n), values in table.items():
        per_pair = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {start} | {n} | {np.mean(values):.3f} | {per_pair} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
