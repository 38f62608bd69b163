"""Per-pair registration time and peak memory: elastix (paper map and quick map) against network
inference, on synthetic volumes of the demo-ACDC size and of 128x128x64 voxels.

Every (variant, volume) runs in its own subprocess, so that its peak resident memory
(``ru_maxrss``) is its own and ITK/torch start-up is not counted in the time: the time is
``RegistrationResult.runtime_s`` (the registration itself, no I/O or model loading). Prints a table
of times, ratios to elastix's paper map, and peak memory. Not a test: run it by hand::

    python perf/inference.py                       # all variants, both volumes
    python perf/inference.py --variants elastix-quick --volumes demo-acdc --threads 2

Network inference (U-Net, PoolNet) is timed through the same method interface: a variant is any
registered method name plus settings (see :data:`VARIANTS`); a learning method gets an untrained
network of its configuration (inference time does not depend on the weights) and is skipped with
the reason when that fails.
The issue's target: network inference at least 50x faster than elastix's paper map on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Synthetic volumes: name -> (shape, spacing in mm).
VOLUMES: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "demo-acdc": ((128, 128, 10), (1.5, 1.5, 8.0)),
    "128x128x64": ((128, 128, 64), (1.0, 1.0, 1.0)),
}

#: Variants: name -> (registry method name, settings). ``threads`` is added for elastix.
VARIANTS: dict[str, tuple[str, dict]] = {
    "elastix-paper": ("elastix", {"preset": "paper"}),
    "elastix-quick": ("elastix", {"preset": "quick"}),
    # Network inference: the learning methods registered by methods.learned, each given an
    # untrained network of its configuration by _prepare() below.
    "unet-nmi": ("unet-nmi", {}),
    "poolnet-nmi": ("poolnet-nmi", {}),
}

REFERENCE = "elastix-paper"


def synthetic_pair(shape, spacing, *, seed: int = 0):
    """A smooth synthetic pair: Gaussian blobs, moving = fixed under a smooth in-plane field."""
    from scipy import ndimage

    from benchmark.core.images import Image
    from benchmark.core.pairs import RegistrationPair

    rng = np.random.default_rng(seed)
    n_blobs = max(20, int(np.prod(shape) / 4000))
    base = np.zeros(shape, dtype=np.float32)
    idx = tuple(rng.integers(0, s, n_blobs) for s in shape)
    base[idx] = rng.uniform(0.5, 1.0, n_blobs)
    sigma_mm = 4.0
    base = ndimage.gaussian_filter(base, [max(sigma_mm / s, 0.7) for s in spacing])
    base = 100.0 * base / base.max()
    grid = np.indices(shape, dtype=np.float64)
    u = np.zeros_like(grid)
    u[0] = 2.0 * np.sin(2 * np.pi * grid[1] / shape[1])
    u[1] = 1.5 * np.cos(2 * np.pi * grid[0] / shape[0])
    moving = ndimage.map_coordinates(base, grid - u, order=1, mode="nearest").astype(np.float32)
    aff = np.diag([*spacing, 1.0])
    return RegistrationPair(
        Image(base.astype(np.float32), aff), Image(moving, aff), case="bench", pair=f"{shape}"
    )


def _prepare(method, threads: int) -> None:
    """Hook for learning methods: make ``method`` ready to register without training.

    Inference time does not depend on the values of the weights, so an untrained network of the
    method's configuration (``methods.training.trainer.build_model``, CPU, eval mode) is given to
    it. Nothing to do for methods that do not learn.
    """
    if not getattr(method, "learns", False):
        return
    import torch

    from methods.training.trainer import build_model

    torch.set_num_threads(threads)
    if getattr(method, "model_path", None) is None:
        method._model = build_model(method.config, seed=0).eval()  # adapter's model slot


def worker(variant: str, volume: str, threads: int, seed: int) -> dict:
    """Run one registration in this process; return its time and this process's peak memory."""
    from methods.registry import available_methods, get_method

    method_name, settings = VARIANTS[variant]
    if method_name not in available_methods():
        return {"status": f"skipped: method {method_name!r} is not registered"}
    cls = available_methods()[method_name]
    ok, reason = cls.availability()
    if not ok:
        return {"status": f"skipped: {reason}"}
    if method_name == "elastix":
        settings = {**settings, "threads": threads}
    shape, spacing = VOLUMES[volume]
    pair = synthetic_pair(shape, spacing, seed=seed)
    method = get_method(method_name, **settings)
    try:
        _prepare(method, threads)
        if method.learns:  # one untimed pass: first-call allocations belong to model loading
            method.register(pair)
        result = method.register(pair)
    except Exception as exc:  # report and go on with the other variants
        return {"status": f"skipped: {type(exc).__name__}: {exc}"}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return {"status": "ok", "runtime_s": result.runtime_s, "peak_mib": peak_mib}


def _run_worker(variant: str, volume: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--volumes",
        volume,
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": f"failed (exit {proc.returncode}): {tail[0]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--volumes", default=",".join(VOLUMES), help="comma-separated")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant (median kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    volumes = [v.strip() for v in args.volumes.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    for v in volumes:
        if v not in VOLUMES:
            parser.error(f"unknown volume {v!r}; known: {', '.join(VOLUMES)}")

    if args.worker is not None:
        print(json.dumps(worker(args.worker, volumes[0], args.threads, args.seed)))
        return 0

    print(f"threads: {args.threads}, repeats: {args.repeats}, seed: {args.seed}")
    header = f"{'volume':<12} {'variant':<15} {'time/pair s':>12} {'x paper map':>12} {'peak MiB':>9}  status"
    print(header)
    print("-" * len(header))
    for volume in volumes:
        rows = {}
        for variant in variants:
            runs = [_run_worker(variant, volume, args) for _ in range(max(1, args.repeats))]
            ok = [r for r in runs if r["status"] == "ok"]
            if ok:
                rows[variant] = {
                    "status": "ok",
                    "runtime_s": float(np.median([r["runtime_s"] for r in ok])),
                    "peak_mib": max(r["peak_mib"] for r in ok),
                }
            else:
                rows[variant] = runs[-1]
        ref = rows.get(REFERENCE, {}).get("runtime_s")
        for variant, r in rows.items():
            if r["status"] != "ok":
                print(f"{volume:<12} {variant:<15} {'-':>12} {'-':>12} {'-':>9}  {r['status']}")
                continue
            ratio = f"{ref / r['runtime_s']:.1f}x" if ref and r["runtime_s"] > 0 else "-"
            print(
                f"{volume:<12} {variant:<15} {r['runtime_s']:>12.2f} {ratio:>12} "
                f"{r['peak_mib']:>9.0f}  ok"
            )
    print("ratio: elastix paper-map time / variant time (target for networks: >= 50x on the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
