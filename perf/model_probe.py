"""Does a trained network register, or has it learned something else? Two probes and the mean motion.

Run from the repository root (not a test)::

    python perf/model_probe.py --model runs/demo-dce/models/unet-nmi/fold0 \
        --dataset demo-dce [--pairs 4] [--shift 2]

For each of the first ``--pairs`` evaluated pairs of the dataset, the network of ``model.pt`` is
applied to whole images, normalised as in training, and these are printed, each as the mean over
the pair's foreground (where ``bench run`` scores ``disp_error_mm``:
:func:`metrics.displacement.foreground_mask`; the whole image when it has none), per array axis:

- ``truth (mm)`` and ``net (mm)``: the ground-truth displacement and the network's on the real
  pair (ground truth needed for the first);
- ``(f, f) (vox)``: the network's field for the fixed image against itself (a network that
  registers answers about 0; one that has learned each training pair's motion from the fixed
  anatomy answers that motion);
- ``shift response (vox)``: along each axis ``a``, the field's component ``a`` for the fixed image
  against a copy of it shifted by ``--shift`` voxels along ``a`` (whole voxels, exact), minus the
  ``(f, f)`` answer. A network that registers answers ``--shift``.

These are the measurements behind "demo-dce: what keeps U-Net-NMI from elastix's accuracy" in
perf/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def foreground(pair) -> np.ndarray:
    """The voxels of the displacement error, as a run scores it; every voxel when none is known."""
    from metrics.displacement import foreground_mask

    labels = None if pair.fixed_labels is None else pair.fixed_labels.array
    fg = foreground_mask(mask=pair.mask, fixed_labels=labels, spacing=pair.spacing)
    return np.ones(pair.fixed.array.shape, dtype=bool) if fg is None else fg


def _shifted(image: np.ndarray, axis: int, voxels: int) -> np.ndarray:
    """``image`` moved by ``voxels`` along ``axis`` (edge values repeated): ``out[x] = image[x -
    voxels]``, so the displacement fixed -> shifted is ``+voxels``."""
    index = np.clip(np.arange(image.shape[axis]) - voxels, 0, image.shape[axis] - 1)
    return np.take(image, index, axis=axis)


def probe(model_dir: Path, dataset: str, *, root: Path | None, pairs: int, shift: int) -> list[str]:
    import torch

    from benchmark.data.manifest import load_manifest
    from methods.training.inputs import normalized_images
    from methods.training.trainer import load_model

    model, config = load_model(model_dir / "model.pt", device="cpu")

    def field(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(
                torch.from_numpy(np.ascontiguousarray(fixed, dtype=np.float32))[None, None],
                torch.from_numpy(np.ascontiguousarray(moving, dtype=np.float32))[None, None],
            )
        return out[0].numpy()

    def fmt(values) -> str:
        return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"

    lines = [
        f"{model_dir} on {dataset}: means over the foreground, per array axis",
        "",
        "| pair | truth (mm) | net (mm) | (f, f) (vox) | shift response (vox) |",
        "| --- | --- | --- | --- | --- |",
    ]
    manifest = load_manifest(dataset, root=root)
    for spec in manifest.pairs()[:pairs]:
        pair = spec.load()
        fixed, moving = normalized_images(pair, config)
        fg = foreground(pair)
        spacing = np.reshape(pair.spacing, (-1, *[1] * pair.ndim))
        net = (field(fixed, moving) * spacing)[:, fg].mean(axis=1)
        truth = (
            pair.true_displacement[:, fg].mean(axis=1)
            if pair.true_displacement is not None
            else [float("nan")] * pair.ndim
        )
        same = field(fixed, fixed)[:, fg].mean(axis=1)
        response = [
            field(fixed, _shifted(fixed, axis, shift))[axis][fg].mean() - same[axis]
            for axis in range(pair.ndim)
        ]
        lines.append(f"| {spec.key} | {fmt(truth)} | {fmt(net)} | {fmt(same)} | {fmt(response)} |")
    return lines


def model_parser(description: str, *, pairs: int) -> argparse.ArgumentParser:
    """The arguments of the scripts that examine a trained model on a dataset's first pairs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, required=True, help="training folder (model.pt)")
    parser.add_argument("--dataset", required=True, help="manifest name or path")
    parser.add_argument("--root", type=Path, help="data folder (default: the manifest's)")
    parser.add_argument("--pairs", type=int, default=pairs, help="first evaluated pairs used")
    return parser


def parse_model_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments of :func:`model_parser`'s parser, ``--pairs`` and ``--model`` checked;
    the project's root put on ``sys.path``."""
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    if not (args.model / "model.pt").is_file():
        parser.error(f"--model {args.model}: no model.pt there (a finished training folder)")
    sys.path.insert(0, str(ROOT))
    return args


def main(argv: list[str] | None = None) -> int:
    parser = model_parser(__doc__.splitlines()[0], pairs=4)
    parser.add_argument("--shift", type=int, default=2, help="known shift in voxels")
    args = parse_model_args(parser, argv)
    if args.shift == 0:
        parser.error(f"--shift must not be 0, got {args.shift}")
    print("\n".join(probe(args.model, args.dataset, root=args.root, pairs=args.pairs,
                          shift=args.shift)))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
