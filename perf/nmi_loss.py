"""Benchmark of the NMI loss (not a test): fast truncated kernel vs dense reference vs MONAI.

Run from the repository root::

    OMP_NUM_THREADS=1 python perf/nmi_loss.py [--device cpu|cuda] [--threads 1] [--repeats 3]
        [--variants fast fast-mt dense monai] [--busy] [--bins 64] [--sigma 3e-3]

Times forward + backward (with respect to both images) and measures the peak memory of

- ``fast``: :func:`methods.losses.nmi_loss` (truncated Parzen kernel for narrow windows such as the
  paper's, node histogram for wide ones such as the quick preset's; custom backward); its
  histogram passes run with ``methods.losses.nmi.LOSS_THREADS`` (1) torch threads;
- ``fast-mt``: the same with ``LOSS_THREADS = --threads`` (the caller's thread count, as before the
  loss chose its own): shows what the single-threaded passes gain or lose;
- ``dense``: :func:`methods.losses.nmi.nmi_loss_dense` (full voxels x bins weight matrices);
- ``monai``: ``monai.losses.GlobalMutualInformationLoss(kernel_type="gaussian", num_bins=bins,
  sigma_ratio=sigma * (bins - 1))``. MONAI puts its bin centres at ``linspace(0, 1, bins)`` and
  uses ``sigma = sigma_ratio / (bins - 1)``, so this gives the same kernel width (``0.189`` for the
  paper's 64 bins and ``sigma = 3e-3``);

on the paper's batch 8x1x64^3 and on 1x1x128x128x16, with ``--bins`` (64) and ``--sigma`` (3e-3;
the quick preset: ``--bins 32 --sigma 0.02``). Inputs are
seeded uniform noise ``a`` and ``b = (1 - a)^2`` mixed with noise, in ``[0, 1)``.

Each (variant, shape) runs in its own subprocess. CPU peak memory is the growth of the process's
``ru_maxrss`` from just before the first loss call to the end (the inputs are allocated before);
CUDA peak memory is ``torch.cuda.max_memory_allocated`` minus the memory held before the call.
Times are the median of ``--repeats`` timed calls after one warm-up call (one timed call when a call
takes more than 20 s). A variant whose estimated memory exceeds ``--max-gb`` prints
``skipped (memory)``.

``--busy`` keeps one core busy with a spinning process (:func:`perf.busy.busy_core`) during
all measurements: the condition of a shared machine, reproducibly (use it with ``--threads 2``).
``fast`` runs first and again last (``fast (again)``), so that a change of the load shows.
The last column is the 1-minute load average before and after each variant: other jobs on the
machine show there.

Values: ``fast`` and ``dense`` compute the same estimator, so their losses ``-I/(H_A+H_B)`` must agree
(to ~1e-6). MONAI returns ``-I`` (not normalised) with other bin centres (``k / 63`` instead of
``(k + 0.5) / 64``) and smoothing constants, so what is comparable is the mutual information
``I(A, B)`` itself: the table prints our ``I`` and MONAI's, which agree only approximately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from busy import busy_core, cpu_name, load_average

CONFIGS = {"8x1x64^3": (8, 1, 64, 64, 64), "1x1x128x128x16": (1, 1, 128, 128, 16)}
VARIANTS = ("fast", "fast-mt", "dense", "monai")
#: The paper's settings (the defaults of ``--bins`` and ``--sigma``).
BINS = 64
SIGMA = 3e-3
log = logging.getLogger("perf.nmi_loss")


def _estimate_bytes(variant: str, shape: tuple[int, ...], bins: int) -> float:
    """Rough peak of the voxels x bins variants: about 8 float32 matrices of N*V*bins."""
    voxels = 1
    for s in shape:
        voxels *= s
    return 0.0 if variant.startswith("fast") else 8.0 * voxels * bins * 4


def _inputs(shape: tuple[int, ...], device: str, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=gen)
    b = ((1 - a) ** 2 * 0.8 + 0.2 * torch.rand(shape, generator=gen)).clamp(0, 1 - 2**-24)
    return a.to(device), b.to(device)


def _worker(
    variant: str,
    config: str,
    device: str,
    repeats: int,
    threads: int,
    seed: int,
    bins: int,
    sigma: float,
) -> dict:
    import torch

    from methods.losses import nmi_loss
    from methods.losses.nmi import entropy_terms, nmi_loss_dense, parzen_joint_histogram

    torch.set_num_threads(threads)
    if variant == "fast-mt":  # the loss's own passes with the caller's threads, not LOSS_THREADS
        import methods.losses.nmi

        methods.losses.nmi.LOSS_THREADS = threads
    shape = CONFIGS[config]
    a0, b0 = _inputs(shape, device, seed)
    if variant == "monai":
        from monai.losses import GlobalMutualInformationLoss

        monai_loss = GlobalMutualInformationLoss(
            kernel_type="gaussian", num_bins=bins, sigma_ratio=sigma * (bins - 1), reduction="mean"
        ).to(device)
        fn = monai_loss
    elif variant == "dense":
        fn = lambda x, y: nmi_loss_dense(x, y, bins=bins, sigma=sigma)  # noqa: E731
    else:
        fn = lambda x, y: nmi_loss(x, y, bins=bins, sigma=sigma)  # noqa: E731

    def call() -> float:
        a = a0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn(a, b)
        value.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        call.value = float(value.detach())  # type: ignore[attr-defined]
        return elapsed

    if device == "cuda":
        torch.cuda.synchronize()
        base_mem = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    times = [call()]
    if times[0] < 20.0:
        times = [call() for _ in range(repeats)]
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base_mem
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024
    result = {"time_s": statistics.median(times), "peak_bytes": peak, "value": call.value}  # type: ignore[attr-defined]
    with torch.no_grad():
        if variant == "monai":
            result["mi"] = -call.value  # type: ignore[attr-defined]
        elif variant.startswith("fast"):
            h_a, h_b, h_ab = entropy_terms(
                parzen_joint_histogram(a0[:, :1], b0[:, :1], bins=bins, sigma=sigma)
            )
            result["mi"] = float((h_a + h_b - h_ab).mean())
    return result


def _run_subprocess(args: argparse.Namespace, variant: str, config: str) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", variant, "--config", config, "--device", args.device,
        "--repeats", str(args.repeats), "--threads", str(args.threads), "--seed", str(args.seed),
        "--bins", str(args.bins), "--sigma", repr(args.sigma),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    if proc.returncode != 0:
        log.error("%s %s failed:\n%s", variant, config, proc.stderr[-2000:])
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bins", type=int, default=BINS, help=f"histogram bins (default {BINS})")
    parser.add_argument(
        "--sigma", type=float, default=SIGMA, help=f"Parzen window sigma (default {SIGMA})"
    )
    parser.add_argument(
        "--max-gb", type=float, default=8.0, help="skip variants estimated above this"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="implementations to run (default: all; fast always runs, as the reference)",
    )
    parser.add_argument(
        "--busy", action="store_true", help="keep one core busy with a spinning process meanwhile"
    )
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    if args.worker:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        result = _worker(
            args.worker,
            args.config,
            args.device,
            args.repeats,
            args.threads,
            args.seed,
            args.bins,
            args.sigma,
        )
        print(json.dumps(result))
        return 0

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        log.error("--device cuda: CUDA is not available")
        return 2
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    print(
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; device: {args.device} ({device_name}); "
        f"torch {torch.__version__}, threads {args.threads}"
        f"{' (busy: one core held by a spinning process)' if args.busy else ''}; bins {args.bins}, sigma {args.sigma}; "
        f"median of {args.repeats} after one warm-up; seed {args.seed}.\n"
    )
    print(
        "| shape | implementation | fwd+bwd (s) | time / fast | peak memory (MB) | memory / fast | loss | I(A,B) (nats) | load before / after |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with busy_core(args.busy):
        _table(args)
    return 0


def _table(args: argparse.Namespace) -> None:
    """Run every (shape, variant) in a subprocess and print its table row.

    ``fast`` runs first and again last (``fast (again)``): how much the two differ shows how much
    the machine's load changed meanwhile.
    """
    for config in CONFIGS:
        results = {}
        others = [v for v in VARIANTS[1:] if v in args.variants]
        for label, variant in [
            ("fast", "fast"),
            *((v, v) for v in others),
            ("fast (again)", "fast"),
        ]:
            if _estimate_bytes(variant, CONFIGS[config], args.bins) > args.max_gb * 2**30:
                results[label] = {"skipped": True}
                print(f"| {config} | {label} | skipped (memory) | | | | | | |")
                continue
            log.info("running %s on %s", label, config)
            load = load_average()
            res = _run_subprocess(args, variant, config)
            load += f" / {load_average()}"
            results[label] = res
            if "error" in res:
                print(f"| {config} | {label} | failed: {res['error']} | | | | | | {load} |")
                continue
            fast = results["fast"]
            t_ratio = res["time_s"] / fast["time_s"]
            m_ratio = res["peak_bytes"] / max(fast["peak_bytes"], 1)
            loss_txt = f"{res['value']:.6f}" + (" (= -I)" if variant == "monai" else "")
            if variant == "dense":
                loss_txt += f" (diff {res['value'] - fast['value']:+.1e})"
                mi_txt = ""
            else:
                mi_txt = f"{res['mi']:.4f}"
                if variant == "monai":
                    mi_txt += f" (rel. diff {(res['mi'] - fast['mi']) / fast['mi']:+.2%})"
            print(
                f"| {config} | {label} | {res['time_s']:.3f} | {t_ratio:.1f} | "
                f"{res['peak_bytes'] / 2**20:.0f} | {m_ratio:.1f} | {loss_txt} | {mi_txt} | {load} |"
            )


if __name__ == "__main__":
    sys.exit(main())
