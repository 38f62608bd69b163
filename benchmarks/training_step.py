"""Time of one training iteration of U-Net-NMI, split into its parts, against MONAI's MI loss.

Run from the repository root (not a test)::

    python benchmarks/training_step.py [--datasets demo-dce demo-acdc] [--presets quick paper]
        [--threads 2] [--repeats 3] [--paper-repeats 1] [--busy] [--markdown PATH]

For every dataset manifest and preset, the training configuration is the one ``bench train`` uses
(:func:`methods.training.config.make_config` with the manifest's ``presets`` section: patch size,
batch size, U-Net factors and widths, NMI bins and sigma). Two variants of the same loop run, each
in its own subprocess (its own peak memory):

- ``nmi``: the trainer's step as it is: :class:`methods.training.patches.PatchSampler` draws the
  batch, :func:`methods.training.trainer.loss_terms` computes the loss (network from
  :func:`~methods.training.trainer.build_model`, linear :func:`methods.transforms.warp`,
  :func:`methods.losses.nmi_loss`, :func:`methods.losses.bending_energy`), then backward and Adam;
- ``monai``: the same loop with ``monai.losses.GlobalMutualInformationLoss(kernel_type="gaussian",
  num_bins=bins, sigma_ratio=sigma * (bins - 1))`` in the place of ``nmi_loss`` (MONAI's bin
  centres are ``linspace(0, 1, bins)`` and its ``sigma = sigma_ratio / (bins - 1)``, so the kernel
  width is the same; ``benchmarks/nmi_loss.py`` matches it the same way). It is put in place by
  replacing ``methods.losses.nmi_loss`` while ``loss_terms`` runs; the worker checks that
  ``loss_terms`` really called it.

Timing. After one warm-up step, each repeat times one whole step through ``loss_terms`` (the
``step`` column) and one step split into its parts, with the same operations as ``loss_terms``:
sampling (``PatchSampler.sample`` + ``torch.from_numpy``), network forward, warp, similarity
forward, bending energy, similarity backward (the loss's own backward, down to the warped image),
network backward (through warp, bending energy and the network), optimiser (``zero_grad`` + Adam).
The split step runs the backward in two calls (``sim.backward()`` on a detached copy of the warped
image, then the rest with that gradient): the same chain rule, so the same gradients. Before
timing, the worker checks on one batch that the split loss equals ``loss_terms``'s (``nmi``), so
the split cannot drift away from the trainer unnoticed. Times are medians over the repeats; the
paper settings take ``--paper-repeats`` (default 1: a MONAI step at these sizes takes tens of
seconds on a CPU). Peak memory is the growth of ``ru_maxrss`` from just before the first step
(model, optimiser and volumes already allocated). The training volumes are seeded synthetic pairs
(smooth blobs; the moving image a non-linear intensity map of the fixed one), 1.5x the patch per
axis, percentile-normalised as the trainer does (the time does not depend on the content).

Targets (issue 10): at the paper settings the ``nmi`` step at least 3x faster than the ``monai``
step, and the similarity loss (forward + backward) at most 10 % of the ``nmi`` step.
``--busy`` keeps one core busy with a spinning process during all measurements; the last column of
the summary is the 1-minute load average before and after each variant (other jobs show there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from busy import busy_core, load_average

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("nmi", "monai")
PARTS = (
    "sampling",
    "forward",
    "warp",
    "similarity",
    "bending",
    "similarity backward",
    "network backward",
    "optimiser",
)
#: Pairs of synthetic training volumes the sampler draws from.
N_VOLUMES = 4
log = logging.getLogger("benchmarks.training_step")


def _volumes(patch_size: tuple[int, ...], percentiles: tuple[float, float], seed: int):
    """Seeded smooth synthetic (fixed, moving) pairs, 1.5x the patch per axis, normalised."""
    import numpy as np
    from scipy import ndimage

    from benchmark.normalize import percentile_normalize

    rng = np.random.default_rng(seed)
    shape = tuple(p + (p + 1) // 2 for p in patch_size)
    pairs = []
    for _ in range(N_VOLUMES):
        fixed = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
        moving = (fixed - fixed.min()) ** 2 + 0.1 * ndimage.gaussian_filter(
            rng.normal(size=shape), 1.0
        )
        lo, hi = percentiles
        pairs.append(
            tuple(
                percentile_normalize(x.astype(np.float32), lower=lo, upper=hi)
                for x in (fixed, moving)
            )
        )
    return pairs


def _config(dataset: str, preset: str):
    from benchmark.data.manifest import load_manifest
    from methods.training.config import make_config

    manifest = load_manifest(dataset, generate=False)
    return make_config("unet", "nmi", preset=preset, manifest_presets=manifest.presets)


class _Stopwatch:
    """Accumulates wall time per part; ``lap(name)`` closes the part that just ran."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + now - self.last
        self.last = now


def _worker(dataset: str, preset: str, variant: str, repeats: int, threads: int, seed: int) -> dict:
    import numpy as np
    import torch

    import methods.losses
    from methods.losses import bending_energy
    from methods.training.patches import PatchSampler
    from methods.training.trainer import build_model, loss_terms
    from methods.transforms import warp

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = _config(dataset, preset)
    model = build_model(config, seed=seed)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=config.betas)
    sampler = PatchSampler(
        _volumes(config.patch_size, config.percentiles, seed),
        config.patch_size,
        rng=np.random.default_rng(seed),
    )

    original = methods.losses.nmi_loss
    calls = {"similarity": 0}
    if variant == "monai":
        from monai.losses import GlobalMutualInformationLoss

        monai_loss = GlobalMutualInformationLoss(
            kernel_type="gaussian",
            num_bins=config.nmi_bins,
            sigma_ratio=config.nmi_sigma * (config.nmi_bins - 1),
        )

        def similarity(a, b, *, bins, sigma, **_):
            calls["similarity"] += 1
            return monai_loss(a, b)
    else:

        def similarity(a, b, *, bins, sigma, **kw):
            calls["similarity"] += 1
            return original(a, b, bins=bins, sigma=sigma, **kw)

    def batch():
        fixed_np, moving_np = sampler.sample(config.batch_size)
        return torch.from_numpy(fixed_np), torch.from_numpy(moving_np)

    def trainer_loss(fixed, moving):
        """``loss_terms`` with ``similarity`` in the place of ``methods.losses.nmi_loss``."""
        before = calls["similarity"]
        methods.losses.nmi_loss = similarity  # loss_terms imports it when called
        try:
            total = loss_terms(config, model, fixed, moving)[0]
        finally:
            methods.losses.nmi_loss = original
        if calls["similarity"] != before + 1:
            raise RuntimeError(
                "loss_terms did not call the replaced methods.losses.nmi_loss: the benchmark "
                "no longer measures the trainer's loop; update benchmarks/training_step.py"
            )
        return total

    def whole_step() -> float:
        start = time.perf_counter()
        fixed, moving = batch()
        optimizer.zero_grad(set_to_none=True)
        total = trainer_loss(fixed, moving)
        total.backward()
        optimizer.step()
        return time.perf_counter() - start

    def split_step(fixed=None, moving=None) -> tuple[dict[str, float], float]:
        watch = _Stopwatch()
        if fixed is None:
            fixed, moving = batch()
        watch.lap("sampling")
        disp = model(fixed, moving)
        watch.lap("forward")
        warped = warp(moving, disp, mode="linear", padding="border")
        watch.lap("warp")
        warped_leaf = warped.detach().requires_grad_(True)
        sim = similarity(warped_leaf, fixed, bins=config.nmi_bins, sigma=config.nmi_sigma)
        watch.lap("similarity")
        bend = config.bending_weight * bending_energy(disp)
        watch.lap("bending")
        sim.backward()
        watch.lap("similarity backward")
        torch.autograd.backward([warped, bend], [warped_leaf.grad, torch.ones_like(bend)])
        watch.lap("network backward")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        watch.lap("optimiser")
        return watch.parts, float(sim.detach() + bend.detach())

    # The split step computes what loss_terms computes (checked on one batch, weights unchanged).
    fixed, moving = batch()
    with torch.no_grad():
        reference = float(trainer_loss(fixed, moving))
    optimizer.zero_grad(set_to_none=True)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _, split_total = split_step(fixed, moving)  # also the warm-up
    if not np.isclose(split_total, reference, rtol=1e-4, atol=1e-6):
        raise RuntimeError(
            f"the split step's loss {split_total:.7g} differs from loss_terms's {reference:.7g}: "
            "update the split in benchmarks/training_step.py to match methods.training.trainer"
        )
    steps, parts = [], []
    for _ in range(repeats):
        steps.append(whole_step())
        parts.append(split_step()[0])
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024
    return {
        "step_s": statistics.median(steps),
        "parts_s": {p: statistics.median(d[p] for d in parts) for p in PARTS},
        "peak_bytes": peak,
        "loss": split_total,
        "config": {
            "batch_size": config.batch_size,
            "patch_size": list(config.patch_size),
            "nmi_sigma": config.nmi_sigma,
            "nmi_bins": config.nmi_bins,
        },
    }


def _cpu_name() -> str:
    """CPU model from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def _run(args: argparse.Namespace, dataset: str, preset: str, variant: str) -> dict:
    repeats = args.paper_repeats if preset == "paper" else args.repeats
    cmd = [
        sys.executable, __file__, "--worker", variant, "--datasets", dataset, "--presets", preset,
        "--repeats", str(repeats), "--threads", str(args.threads), "--seed", str(args.seed),
    ]  # fmt: skip
    log.info("running %s %s %s (%d repeats)", dataset, preset, variant, repeats)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        log.error("%s %s %s failed:\n%s", dataset, preset, variant, proc.stderr[-3000:])
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _similarity_s(res: dict) -> float:
    return res["parts_s"]["similarity"] + res["parts_s"]["similarity backward"]


def _tables(args: argparse.Namespace) -> list[str]:
    summary = [
        "| dataset | preset | batch x patch | sigma | variant | step (s) | step / nmi step | "
        "similarity fwd+bwd (s) | similarity share | peak memory (MB) | load before / after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    split = [
        "| dataset | preset | variant | "
        + " | ".join(f"{p} (ms)" for p in PARTS)
        + " | sum of parts (s) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in PARTS) + " | --- |",
    ]
    for dataset in args.datasets:
        for preset in args.presets:
            results, loads = {}, {}
            for variant in VARIANTS:
                load = load_average()
                results[variant] = _run(args, dataset, preset, variant)
                loads[variant] = f"{load} / {load_average()}"
            base = results["nmi"]
            for variant, res in results.items():
                if "error" in res:
                    summary.append(
                        f"| {dataset} | {preset} | | | {variant} | failed: {res['error']} "
                        f"| | | | | {loads[variant]} |"
                    )
                    continue
                cfg = res["config"]
                shape = "x".join(str(s) for s in cfg["patch_size"])
                ratio = res["step_s"] / base["step_s"] if "error" not in base else float("nan")
                total = sum(res["parts_s"].values())
                summary.append(
                    f"| {dataset} | {preset} | {cfg['batch_size']} x {shape} | {cfg['nmi_sigma']:g} "
                    f"| {variant} | {res['step_s']:.3f} | {ratio:.2f} | {_similarity_s(res):.3f} "
                    f"| {_similarity_s(res) / total:.1%} | {res['peak_bytes'] / 2**20:.0f} "
                    f"| {loads[variant]} |"
                )
                split.append(
                    f"| {dataset} | {preset} | {variant} | "
                    + " | ".join(
                        f"{1000 * res['parts_s'][p]:.0f} ({res['parts_s'][p] / total:.0%})"
                        for p in PARTS
                    )
                    + f" | {total:.3f} |"
                )
    return [*summary, "", *split]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["demo-dce", "demo-acdc"])
    parser.add_argument(
        "--presets", nargs="+", choices=("quick", "paper"), default=["quick", "paper"]
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps at quick settings")
    parser.add_argument(
        "--paper-repeats", type=int, default=1, help="timed steps at paper settings"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--busy", action="store_true", help="keep one core busy with a spinning process meanwhile"
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    for name in ("threads", "repeats", "paper_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    if args.worker:
        result = _worker(
            args.datasets[0], args.presets[0], args.worker, args.repeats, args.threads, args.seed
        )
        print(json.dumps(result))
        return 0

    import torch

    for dataset in args.datasets:  # fail early on an unknown manifest, with its message
        _config(dataset, args.presets[0])
    header = (
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: {_cpu_name()}; "
        f"torch {torch.__version__}, threads {args.threads}"
        f"{' (busy: one core held by a spinning process)' if args.busy else ''}; U-Net-NMI; "
        f"median of {args.repeats} (quick) / {args.paper_repeats} (paper) steps after one "
        f"warm-up step; seed {args.seed}."
    )
    print(header + "\n")
    with busy_core(args.busy):
        lines = _tables(args)
    print("\n".join(lines))
    if args.markdown:
        from benchmark.atomic import write_text

        write_text(args.markdown, header + "\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
