"""Data the demos do not cover: a brain-like head phantom, T1-like fixed -> T2-like or T1-like moving.

Run from the repository root (not a test)::

    python perf/other_anatomy.py --out /tmp/brain [--subjects 16]
    bench run --dataset /tmp/brain/brain-t1-t2.yaml --preset quick --folds 0 --jobs 2 \
        --methods identity,elastix,unet-nmi,unet-ncc,poolnet-nmi,poolnet-ncc

It writes two datasets in the layout of ``data_manifests/examples/own-data.yaml`` (an explicit
pair list, 2 folds, no training presets: the built-in ``quick`` preset with the patch size, U-Net
factors and B-spline grid derived from the images, as a user's own data get them):

- ``brain-t1-t2.yaml``: fixed T1-like, moving T2-like (white matter bright -> dark, CSF dark ->
  bright: not a monotonic intensity relation, so global NCC is the wrong assumption);
- ``brain-t1-t1.yaml``: the same anatomy and motion, both T1-like (one contrast: NCC suits).

Anatomy (analytic, mm, 2 mm isotropic voxels, 72 x 88 x 72): an ellipsoidal head with scalp,
skull, a CSF rim, grey and white matter split by a smooth random field biased towards white matter
in the centre, and two ventricles. Labels: 1 white matter, 2 grey matter, 3 CSF; mask: inside the
skull. Motion of the moving image: a rigid motion (translation 2 mm per axis, rotation up to 3
degrees about the head centre) plus Gaussian bumps of 1.5 mm (widths 15-25 mm); the ground truth
is its inverse on the fixed grid (``benchmark.data.demo.deform.invert_map``). A smooth bias field,
Rician noise and int16 rounding as in the demos. Subject ``s`` draws from
``numpy.random.default_rng([7, s])``: deterministic, generated in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Tissue intensities (relative) of the two contrasts.
CONTRASTS = {
    "t1": {"scalp": 0.75, "skull": 0.06, "csf": 0.18, "gm": 0.55, "wm": 0.85},
    "t2": {"scalp": 0.45, "skull": 0.05, "csf": 1.00, "gm": 0.60, "wm": 0.35},
}
SHAPE = (72, 88, 72)
SPACING = (2.0, 2.0, 2.0)


def _head(rng: np.random.Generator, extent: np.ndarray):
    """A random head: returns ``render(points, contrast) -> (image, labels, mask)``."""
    from benchmark.data.demo.phantom import FourierField, ellipsoid_distance, soft_inside

    centre = extent / 2 + rng.normal(0.0, 3.0, 3)
    axes = np.array([60.0, 76.0, 60.0]) * rng.uniform(0.92, 1.05, 3)
    matter = FourierField.random(rng, wavelength_mm=25.0, terms=16)
    ventricles = [centre + np.array([dx, rng.uniform(-4, 4), 5.0]) for dx in (-9.0, 9.0)]
    texture = FourierField.random(rng, wavelength_mm=10.0, terms=8)

    def render(points: np.ndarray, contrast: dict[str, float]):
        rel = points - centre.reshape(3, 1, 1, 1)
        d = ellipsoid_distance(sum((rel[i] / axes[i]) ** 2 for i in range(3)), axes.mean())
        head, inside_skull, brain = (soft_inside(d + offset, 1.0) for offset in (0.0, 5.0, 9.0))
        depth = 1.0 - np.sqrt(sum((rel[i] / (axes[i] - 9.0)) ** 2 for i in range(3)))
        wm = soft_inside(-(3.0 * depth - 0.6 + 0.5 * matter(points)), 0.15)
        vent = np.zeros(points.shape[1:])
        for c in ventricles:
            r = points - c.reshape(3, 1, 1, 1)
            q = r[0] ** 2 / 36.0 + r[1] ** 2 / 400.0 + r[2] ** 2 / 64.0
            vent = np.maximum(vent, soft_inside(ellipsoid_distance(q, 10.0), 0.8))
        rim = inside_skull - brain  # CSF between skull and brain
        tissue = (1 - vent) * (wm * contrast["wm"] + (1 - wm) * contrast["gm"])
        tissue += vent * contrast["csf"]
        shell = np.where(d > -2.5, contrast["scalp"], contrast["skull"])
        image = (head - inside_skull) * shell + rim * contrast["csf"] + brain * tissue
        image = image * (1.0 + 0.05 * texture(points))
        labels = np.zeros(points.shape[1:], np.uint8)
        in_brain = brain > 0.5
        labels[in_brain] = 2
        labels[in_brain & (wm > 0.5)] = 1
        labels[(in_brain & (vent > 0.5)) | (rim > 0.5)] = 3
        return image, labels, inside_skull > 0.5

    return centre, render


def write_subject(root: Path, subject: int) -> list[str]:
    """Write subject ``subject`` (1-based) of both datasets; returns their pairs-CSV rows."""
    from benchmark.core.images import write_displacement, write_image
    from benchmark.data.demo.deform import GaussianBumps, Rigid, compose_sum, invert_map, quantize
    from benchmark.data.demo.phantom import (
        FourierField,
        grid_points,
        rician,
        rotation_matrix,
        to_int16,
    )

    rng = np.random.default_rng([7, subject])
    points = grid_points(SHAPE, SPACING)
    extent = np.array(SHAPE) * np.array(SPACING)
    centre, render = _head(rng, extent)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    rigid = Rigid(rotation_matrix(rng.normal(size=3), angle), rng.normal(0.0, 2.0, 3), centre)
    bumps = GaussianBumps.random(rng, extent, bumps=6, amplitude_mm=1.5, sigma_mm=(15.0, 25.0))
    motion = compose_sum(rigid, bumps)
    bias = np.exp(0.15 * FourierField.random(rng, wavelength_mm=200.0, terms=6)(points))
    affine = np.diag([*SPACING, 1.0])
    fixed, fixed_labels, mask = render(points, CONTRASTS["t1"])
    moved = points + motion(points)
    truth = quantize(invert_map(motion, points, SPACING, tol_voxels=0.01))
    name = f"subj{subject:02d}"
    rows = []
    fixed_noisy = to_int16(rician(rng, fixed * bias * 1000.0, 15.0))
    for contrast in ("t2", "t1"):
        moving, moving_labels, _ = render(moved, CONTRASTS[contrast])
        folder = root / f"t1-{contrast}" / name
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / "fixed.nii.gz", fixed_noisy, affine)
        write_image(
            folder / "moving.nii.gz", to_int16(rician(rng, moving * bias * 1000.0, 15.0)), affine
        )
        write_image(folder / "fixed_labels.nii.gz", fixed_labels, affine)
        write_image(folder / "moving_labels.nii.gz", moving_labels, affine)
        write_image(folder / "mask.nii.gz", mask.astype(np.uint8), affine)
        write_displacement(folder / "displacement.nii.gz", truth, affine)
        files = [f"{name}/{f}.nii.gz" for f in ("fixed", "moving", "fixed_labels", "moving_labels")]
        group = "AB"[subject % 2]
        rows.append(
            f"{name},t1-{contrast},{','.join(files)},{name}/displacement.nii.gz,"
            f"{name}/mask.nii.gz,{group}"
        )
    return rows


MANIFEST = """\
# Generated by perf/other_anatomy.py: brain-like phantom, fixed T1-like, moving {moving}.
name: brain-t1-{contrast}
loader: explicit
contrast: {contrast_fact}
root: {root}
pairs_csv: t1-{contrast}/pairs.csv
labels:
  wm: 1
  gm: 2
  csf: 3
cv:
  folds: 2
  stratify: group
  seed: 0
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--subjects", type=int, default=16)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmark.core.atomic import write_text

    header = "case,pair,fixed,moving,fixed_labels,moving_labels,displacement,mask,group"
    rows: dict[str, list[str]] = {"t2": [header], "t1": [header]}
    for subject in range(1, args.subjects + 1):
        for contrast, row in zip(("t2", "t1"), write_subject(args.out, subject), strict=True):
            rows[contrast].append(row)
        print(f"subject {subject} of {args.subjects}", file=sys.stderr)
    for contrast, moving in (("t2", "T2-like"), ("t1", "T1-like")):
        root = (args.out / f"t1-{contrast}").resolve()
        write_text(root / "pairs.csv", "\n".join(rows[contrast]) + "\n")
        text = MANIFEST.format(moving=moving, contrast=contrast, root=root,
                               contrast_fact="different" if contrast == "t2" else "same")
        write_text(args.out / f"brain-t1-{contrast}.yaml", text)
        print(args.out / f"brain-t1-{contrast}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
