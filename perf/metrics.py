"""Benchmark of the metrics (not a test): Hausdorff vs MONAI and medpy, folding vs np.linalg.det.

Run from the repository root, single-threaded for comparable numbers::

    OMP_NUM_THREADS=1 python perf/metrics.py [--repeats 5] [--seed 0]

Prints a Markdown table (date, CPU, times as best of ``--repeats``, ratios, value agreement):

- Hausdorff distance (max and 95th percentile) of two perturbed ellipsoids on a 128x128x64 grid
  with anisotropic spacing: :func:`metrics.hausdorff_distance` (one call gives both numbers)
  against MONAI's ``compute_hausdorff_distance`` (one call per number; same "max-directed"
  convention) and medpy's ``hd``/``hd95`` (one call per number; "pooled" convention), when medpy
  is installed.
- Folding of a smooth random 128x128x64 field: :func:`metrics.folding_percentage` against
  ``np.gradient`` + ``np.linalg.det`` per voxel.

Targets (issue 5): Hausdorff no slower than MONAI with equal values under the same convention;
folding in at most 1/10 of the ``np.linalg.det`` route.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

SHAPE = (128, 128, 64)
SPACING = (1.25, 1.25, 2.5)
AMPLITUDE_MM = 10.0

log = logging.getLogger("perf.metrics")


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Smallest wall time of ``repeats`` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def perturbed_ellipsoid(
    rng: np.random.Generator, centre: tuple[float, ...], radii_mm: tuple[float, ...]
) -> np.ndarray:
    """Ellipsoid (in mm) whose radius is modulated by a smooth random field of +-15 %."""
    grid = np.indices(SHAPE, dtype=np.float64) * np.asarray(SPACING).reshape(3, 1, 1, 1)
    c = np.asarray(centre).reshape(3, 1, 1, 1) * np.asarray(SPACING).reshape(3, 1, 1, 1)
    r = np.asarray(radii_mm).reshape(3, 1, 1, 1)
    rho = np.sqrt((((grid - c) / r) ** 2).sum(axis=0))
    noise = ndimage.gaussian_filter(rng.normal(size=SHAPE), sigma=6.0)
    noise *= 0.15 / np.abs(noise).max()
    return rho <= 1.0 + noise


def smooth_field(rng: np.random.Generator, amplitude_mm: float) -> np.ndarray:
    """Smooth random displacement (3, *SHAPE) in mm, strong enough to fold in places."""
    u = ndimage.gaussian_filter(rng.normal(size=(3, *SHAPE)), sigma=(0, 3.0, 3.0, 1.5))
    u *= amplitude_mm / np.abs(u).max()
    return u.astype(np.float32)


def det_linalg(disp: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Reference route: np.gradient per component, then np.linalg.det per voxel."""
    grad = np.stack([np.stack(np.gradient(disp[c].astype(np.float64), *spacing)) for c in range(3)])
    jac = np.moveaxis(grad, (0, 1), (-2, -1)) + np.eye(3)
    return np.linalg.det(jac)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per entry (best kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic masks/field")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # This script is named like the package it measures: run as ``python perf/metrics.py``,
    # its own folder comes first on sys.path and ``import metrics`` would import this file.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]

    import torch
    from monai.metrics import compute_hausdorff_distance

    from metrics import folding_percentage, hausdorff_distance

    rng = np.random.default_rng(args.seed)
    a = perturbed_ellipsoid(rng, (64, 64, 32), (45.0, 35.0, 50.0))
    b = perturbed_ellipsoid(rng, (61, 67, 33), (42.0, 40.0, 45.0))
    ta, tb = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]

    def monai(percentile: float | None) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = compute_hausdorff_distance(
                tb, ta, include_background=True, spacing=list(SPACING), percentile=percentile
            )
        return float(out[0, 0])

    r = args.repeats
    t_ours, ours = best_time(lambda: hausdorff_distance(a, b, spacing=SPACING), r)
    t_m_max, m_max = best_time(lambda: monai(None), r)
    t_m_95, m_95 = best_time(lambda: monai(95), r)
    t_pool, pooled = best_time(
        lambda: hausdorff_distance(a, b, spacing=SPACING, percentile_mode="pooled"), r
    )
    hd, hd95 = ours.hd.value, ours.hd_percentile.value
    lines = [
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: {cpu_name()}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads "
        f"{torch.get_num_threads()}; masks {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}, spacing {SPACING} mm, "
        f"{int(a.sum())} and {int(b.sum())} voxels; best of {r} runs; seed {args.seed}.",
        "",
        "| task | implementation | time (ms) | ratio (ours / other) | values | agreement |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Hausdorff max + 95th (max-directed) | `metrics.hausdorff_distance` (1 call) | "
        f"{1e3 * t_ours:.1f} | | hd {hd:.4f}, hd95 {hd95:.4f} mm | |",
        f"| | MONAI `compute_hausdorff_distance` (2 calls) | {1e3 * (t_m_max + t_m_95):.1f} "
        f"(max {1e3 * t_m_max:.1f} + p95 {1e3 * t_m_95:.1f}) | {t_ours / (t_m_max + t_m_95):.2f} | "
        f"hd {m_max:.4f}, hd95 {m_95:.4f} mm | max abs diff "
        f"{max(abs(hd - m_max), abs(hd95 - m_95)):.1e} mm (MONAI is float32) |",
    ]
    try:
        from medpy.metric import binary as medpy_binary
    except ImportError:
        log.warning("medpy is not installed: medpy comparison skipped")
        lines.append("| | medpy | not installed, skipped | | | |")
    else:
        t_p_max, p_max = best_time(lambda: medpy_binary.hd(b, a, voxelspacing=SPACING), r)
        t_p_95, p_95 = best_time(lambda: medpy_binary.hd95(b, a, voxelspacing=SPACING), r)
        lines += [
            f'| Hausdorff max + 95th (pooled) | `metrics.hausdorff_distance(percentile_mode="pooled")` | '
            f"{1e3 * t_pool:.1f} | | hd {pooled.hd.value:.4f}, hd95 {pooled.hd_percentile.value:.4f} mm | |",
            f"| | medpy `hd` + `hd95` (2 calls) | {1e3 * (t_p_max + t_p_95):.1f} | "
            f"{t_pool / (t_p_max + t_p_95):.2f} | hd {p_max:.4f}, hd95 {p_95:.4f} mm | max abs diff "
            f"{max(abs(pooled.hd.value - p_max), abs(pooled.hd_percentile.value - p_95)):.1e} mm |",
        ]

    disp = smooth_field(rng, amplitude_mm=AMPLITUDE_MM)
    t_fold, fold = best_time(lambda: folding_percentage(disp, spacing=SPACING), r)
    t_ref, det_ref = best_time(lambda: det_linalg(disp, SPACING), r)
    from metrics.jacobian import jacobian_determinant

    det_ours = jacobian_determinant(disp, spacing=SPACING)
    count_ref = int(np.count_nonzero(det_ref <= 0))
    lines += [
        f"| folding {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} field | `metrics.folding_percentage` | "
        f"{1e3 * t_fold:.1f} | | {fold.percent:.4f} % ({fold.count} voxels) | |",
        f"| | `np.gradient` + `np.linalg.det` | {1e3 * t_ref:.1f} | {t_fold / t_ref:.3f} "
        f"(1/{t_ref / t_fold:.1f}) | {100.0 * count_ref / det_ref.size:.4f} % ({count_ref} voxels) | "
        f"counts {'equal' if count_ref == fold.count else 'DIFFER'}, max abs det diff "
        f"{np.abs(det_ours - det_ref).max():.1e} |",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
