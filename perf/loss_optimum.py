"""Where the training loss has its optimum: a displacement field optimised directly on test pairs.

Run from the repository root (not a test)::

    python perf/loss_optimum.py --dataset demo-dce [--similarity nmi] [--weights 0.05 1 5]
        [--pairs 2] [--iterations 300] [--level 1] [--preset quick] [--markdown PATH]

A network trained on a loss can at best reach that loss's optimum. This script finds the optimum
without a network: for each of the first ``--pairs`` evaluated pairs of the dataset (ground-truth
displacement or labels needed), a displacement field is optimised directly with Adam
(``--iterations`` steps, learning rate 0.05 voxels) on exactly the training loss of
:func:`methods.training.loss.loss_terms` (same intensity normalisation, similarity, Parzen
window and bins, bending energy in voxel units), once per bending weight. The field is
parametrised as the U-Net predicts it: a dense field ``--level`` levels coarser in-plane (the
U-Net's ``unet_output_level``; the through-plane axis is coarsened only where the manifest's
``unet_factors`` downsample it), upsampled linearly to the image grid.

Printed per bending weight, averaged over the pairs: the mean displacement error in the
foreground in mm and the mean Dice over the labelled structures, both scored as ``bench run``
scores a pair (``benchmark.runner.scoring``), and the final similarity
and bending energy; the first rows are no registration and the ground-truth field itself (its
loss at each weight shows whether the truth is near the optimum at all). A weight whose optimum
lies far from the truth cannot be fixed by longer training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("loss_optimum")


def _scores(pair, disp_vox: np.ndarray, labels: dict[str, int]) -> tuple[float, float]:
    """(``disp_error_mm``, mean ``dice`` over the structures), scored as a run scores a pair."""
    from benchmark.runner.scoring import score_pair, warp_pair

    disp_mm = disp_vox * np.reshape(pair.spacing, (-1, *[1] * pair.ndim))
    warped, warped_labels = warp_pair(pair, disp_mm)
    rows = score_pair(
        pair, disp_mm, labels=labels, runtime_s=0.0, warped=warped, warped_labels=warped_labels
    )
    values = {
        metric: [r["value"] for r in rows if r["metric"] == metric]
        for metric in ("disp_error_mm", "dice")
    }
    error = values["disp_error_mm"][0] if values["disp_error_mm"] else float("nan")
    dsc = float(np.nanmean(values["dice"])) if values["dice"] else float("nan")
    return error, dsc


def _optimise(config, fixed, moving, *, level_factors, iterations: int, lr: float):
    """The directly optimised field, voxels, shape ``(ndim, *spatial)``."""
    import torch
    import torch.nn.functional as F

    from methods.training.loss import loss_terms

    shape = fixed.shape[2:]
    coarse = [max(1, s // f) for s, f in zip(shape, level_factors, strict=True)]
    mode = "bilinear" if len(shape) == 2 else "trilinear"

    class Field(torch.nn.Module):  # the "network": ignores its inputs, returns the field
        def __init__(self):
            super().__init__()
            self.coarse = torch.nn.Parameter(torch.zeros(1, len(shape), *coarse))

        def forward(self, _fixed, _moving):
            if tuple(coarse) == tuple(shape):
                return self.coarse
            return F.interpolate(self.coarse, size=shape, mode=mode, align_corners=True)

    field = Field()
    optimizer = torch.optim.Adam(field.parameters(), lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        total, _, _ = loss_terms(config, field, fixed, moving)
        total.backward()
        optimizer.step()
    with torch.no_grad():
        return field(fixed, moving)[0].numpy()


def _terms(config, disp_vox: np.ndarray, fixed, moving) -> tuple[float, float]:
    """Similarity and bending energy of the training loss at a given field (voxels)."""
    import torch

    from methods.training.loss import loss_terms

    field = torch.from_numpy(disp_vox.astype(np.float32))[None]

    class Given(torch.nn.Module):
        def forward(self, _fixed, _moving):
            return field

    with torch.no_grad():
        _, sim, bend = loss_terms(config, Given(), fixed, moving)
    return float(sim), float(bend)


def run(args: argparse.Namespace) -> list[str]:
    import dataclasses

    import torch

    from benchmark.data.manifest import load_manifest
    from methods.training.config import make_config
    from methods.training.inputs import normalized_images

    torch.set_num_threads(args.threads)
    manifest = load_manifest(args.dataset, root=args.root)
    config = make_config(
        "unet", args.similarity, preset=args.preset, manifest_presets=manifest.presets
    )
    level_factors = [f**args.level for f in config.unet_factors]
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for spec in manifest.pairs()[: args.pairs]:
        pair = spec.load()
        f, m = normalized_images(pair, config)
        fixed = torch.from_numpy(f)[None, None]
        moving = torch.from_numpy(m)[None, None]
        zero = np.zeros((pair.ndim, *pair.fixed.array.shape))
        rows.setdefault("no registration", []).append(
            (*_scores(pair, zero, manifest.labels), *_terms(config, zero, fixed, moving))
        )
        if pair.true_displacement is not None:
            truth = pair.true_displacement / np.reshape(pair.spacing, (-1, *[1] * pair.ndim))
            rows.setdefault("ground truth", []).append(
                (0.0, float("nan"), *_terms(config, truth, fixed, moving))
            )
        for weight in args.weights:
            cfg = dataclasses.replace(config, bending_weight=weight)
            disp = _optimise(
                cfg, fixed, moving, level_factors=level_factors,
                iterations=args.iterations, lr=args.lr,
            )  # fmt: skip
            error, dsc = _scores(pair, disp, manifest.labels)
            sim, bend = _terms(cfg, disp, fixed, moving)
            rows.setdefault(f"optimum, weight {weight:g}", []).append((error, dsc, sim, bend))
            log.info("%s weight %g: error %.2f mm, Dice %.3f", spec.key, weight, error, dsc)
    header = (
        f"{args.dataset}, {args.similarity} (bins {config.nmi_bins}, sigma {config.nmi_sigma:g}), "
        f"{args.pairs} pairs, field at level {args.level}, {args.iterations} Adam steps"
    )
    lines = [
        header,
        "",
        "| field | error in the foreground (mm) | Dice | similarity | bending energy (voxels) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in rows.items():
        mean = np.nanmean(np.array(values, dtype=np.float64), axis=0)
        lines.append(f"| {name} | {mean[0]:.2f} | {mean[1]:.3f} | {mean[2]:.4f} | {mean[3]:.2e} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo-dce", help="manifest name or path")
    parser.add_argument("--root", type=Path, help="data folder (default: the manifest's)")
    parser.add_argument("--similarity", choices=("nmi", "ncc"), default="nmi")
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.05, 1.0, 5.0])
    parser.add_argument("--pairs", type=int, default=2, help="first evaluated pairs used")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (voxels)")
    parser.add_argument("--level", type=int, default=1, help="field resolution level (0: full)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    for name in ("pairs", "iterations", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.level < 0 or min(args.weights) < 0 or args.lr <= 0:
        parser.error("--level and --weights must be >= 0 and --lr > 0")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    lines = run(args)
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
