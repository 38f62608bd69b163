"""Time of one training iteration of U-Net-NMI, split into its parts, against MONAI's MI loss.

Run from the repository root (not a test)::

    python perf/training_step.py [--datasets demo-dce demo-acdc] [--presets quick paper]
        [--threads 2] [--repeats 3] [--paper-repeats 1] [--busy] [--markdown PATH]

For every dataset manifest and preset, the training configuration is the one ``bench train`` uses
(:func:`methods.training.config.make_config` with the manifest's ``presets`` section: patch size,
batch size, U-Net factors and widths, NMI bins and sigma). Two training loops of that
configuration run side by side in one subprocess per (dataset, preset), each with its own network
(same initial weights), Adam and patch sampler:

- ``nmi``: the trainer's step as it is: :class:`methods.training.patches.PatchSampler` draws the
  batch, :func:`methods.training.loss.loss_terms` computes the loss (network from
  :func:`~methods.training.trainer.build_model`, linear :func:`methods.transforms.warp`,
  :func:`methods.losses.nmi_loss`, :func:`methods.losses.bending_energy`), then backward and Adam;
- ``monai``: the same loop with ``monai.losses.GlobalMutualInformationLoss(kernel_type="gaussian",
  num_bins=bins, sigma_ratio=sigma * (bins - 1))`` in the place of ``nmi_loss`` (MONAI's bin
  centres are ``linspace(0, 1, bins)`` and its ``sigma = sigma_ratio / (bins - 1)``, so the kernel
  width is the same; ``perf/nmi_loss.py`` matches it the same way). It is put in place by
  replacing ``methods.losses.nmi_loss`` while ``loss_terms`` runs; the worker checks that
  ``loss_terms`` really called it.

Timing. Each loop first takes one warm-up step, checked on its batch against ``loss_terms`` (the
split below computes the same loss, so it cannot drift away from the trainer unnoticed). Then each
repeat times, for both loops in turn (the order alternates, so that both see the same machine
load: ratios stay meaningful on a shared machine), one whole step through ``loss_terms`` (the
``step`` column) and one step split into its parts, with the same operations as ``loss_terms``:
sampling (``PatchSampler.sample`` + ``torch.from_numpy``), network forward, warp, similarity
forward, bending energy, similarity backward (the loss's own backward, down to the warped image),
network backward (through warp, bending energy and the network), optimiser (``zero_grad`` + Adam).
The split step runs the backward in two calls (``sim.backward()`` on a detached copy of the warped
image, then the rest with that gradient): the same chain rule, so the same gradients. Times are
medians over the repeats; the paper settings take ``--paper-repeats`` (default 1: a MONAI step at
these sizes takes tens of seconds on a CPU). Peak memory is the growth of ``ru_maxrss`` from just
before the warm-up steps: ``nmi`` warms up first, MONAI's peak (the larger) is the high-water mark
after its own warm-up. The training volumes are seeded synthetic pairs (smooth noise; the moving
image a non-linear intensity map of the fixed one), 1.5x the patch per axis, percentile-normalised
as the trainer does (the time does not depend on the content).

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
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from busy import busy_core, cpu_name, load_average

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
log = logging.getLogger("perf.training_step")


def _volumes(patch_size: tuple[int, ...], percentiles: tuple[float, float], seed: int):
    """Seeded smooth synthetic (fixed, moving) pairs, 1.5x the patch per axis, normalised."""
    import numpy as np
    from scipy import ndimage

    from benchmark.core.normalize import percentile_normalize

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


class _Loop:
    """One training loop (model, Adam, patch sampler) with ``similarity`` as its NMI loss."""

    def __init__(self, config, variant: str, seed: int) -> None:
        import numpy as np
        import torch

        import methods.losses
        from methods.training.patches import PatchSampler
        from methods.training.trainer import build_model

        self.config, self.variant = config, variant
        torch.manual_seed(seed)
        self.model = build_model(config, seed=seed)
        self.model.train()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.learning_rate, betas=config.betas
        )
        self.sampler = PatchSampler(
            _volumes(config.patch_size, config.percentiles, seed),
            config.patch_size,
            rng=np.random.default_rng(seed),
        )
        self.original = methods.losses.nmi_loss
        self.calls = 0
        if variant == "monai":
            from monai.losses import GlobalMutualInformationLoss

            self.monai_loss = GlobalMutualInformationLoss(
                kernel_type="gaussian",
                num_bins=config.nmi_bins,
                sigma_ratio=config.nmi_sigma * (config.nmi_bins - 1),
            )

    def similarity(self, a, b, *, bins, sigma, **kw):
        """The variant's loss with ``nmi_loss``'s signature (MONAI: its own bins and sigma)."""
        self.calls += 1
        if self.variant == "monai":
            return self.monai_loss(a, b)
        return self.original(a, b, bins=bins, sigma=sigma, **kw)

    def batch(self):
        import torch

        fixed_np, moving_np = self.sampler.sample(self.config.batch_size)
        return torch.from_numpy(fixed_np), torch.from_numpy(moving_np)

    def trainer_loss(self, fixed, moving):
        """``loss_terms`` with :meth:`similarity` in the place of ``methods.losses.nmi_loss``."""
        import methods.losses
        from methods.training.loss import loss_terms

        before = self.calls
        methods.losses.nmi_loss = self.similarity  # loss_terms imports it when called
        try:
            total = loss_terms(self.config, self.model, fixed, moving)[0]
        finally:
            methods.losses.nmi_loss = self.original
        if self.calls != before + 1:
            raise RuntimeError(
                "loss_terms did not call the replaced methods.losses.nmi_loss: the benchmark "
                "no longer measures the trainer's loop; update perf/training_step.py"
            )
        return total

    def whole_step(self) -> float:
        """Wall time of one trainer step: sampling, ``loss_terms``, backward, Adam."""
        start = time.perf_counter()
        fixed, moving = self.batch()
        self.optimizer.zero_grad(set_to_none=True)
        self.trainer_loss(fixed, moving).backward()
        self.optimizer.step()
        return time.perf_counter() - start

    def split_step(self, fixed=None, moving=None) -> tuple[dict[str, float], float]:
        """Wall time of each part of one step (see the module docstring), and the loss."""
        import torch

        from methods.losses import bending_energy
        from methods.transforms import warp

        config, watch = self.config, _Stopwatch()
        if fixed is None:
            fixed, moving = self.batch()
        watch.lap("sampling")
        disp = self.model(fixed, moving)
        watch.lap("forward")
        warped = warp(moving, disp, mode="linear", padding="border")
        watch.lap("warp")
        warped_leaf = warped.detach().requires_grad_(True)
        sim = self.similarity(warped_leaf, fixed, bins=config.nmi_bins, sigma=config.nmi_sigma)
        watch.lap("similarity")
        bend = config.bending_weight * bending_energy(disp)
        watch.lap("bending")
        sim.backward()
        watch.lap("similarity backward")
        torch.autograd.backward([warped, bend], [warped_leaf.grad, torch.ones_like(bend)])
        watch.lap("network backward")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        watch.lap("optimiser")
        return watch.parts, float(sim.detach() + bend.detach())

    def warm_up(self) -> None:
        """One split step, checked against ``loss_terms`` on the same batch and weights."""
        import numpy as np
        import torch

        fixed, moving = self.batch()
        with torch.no_grad():
            reference = float(self.trainer_loss(fixed, moving))
        _, total = self.split_step(fixed, moving)
        if not np.isclose(total, reference, rtol=1e-4, atol=1e-6):
            raise RuntimeError(
                f"{self.variant}: the split step's loss {total:.7g} differs from loss_terms's "
                f"{reference:.7g}: update the split in perf/training_step.py to match "
                "methods.training.trainer"
            )


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _worker(dataset: str, preset: str, repeats: int, threads: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    config = _config(dataset, preset)
    loops = {v: _Loop(config, v, seed) for v in VARIANTS}
    # Peak memory: nmi warms up first; MONAI's (larger) peak is the high-water mark after its own.
    base = _rss_bytes()
    peaks = {}
    for variant in VARIANTS:
        loops[variant].warm_up()
        peaks[variant] = _rss_bytes() - base
    steps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    parts: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for r in range(repeats):  # interleaved, alternating order: both see the same machine load
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            steps[variant].append(loops[variant].whole_step())
            parts[variant].append(loops[variant].split_step()[0])
    return {
        "config": {
            "batch_size": config.batch_size,
            "patch_size": list(config.patch_size),
            "nmi_sigma": config.nmi_sigma,
            "nmi_bins": config.nmi_bins,
        },
        **{
            v: {
                "step_s": statistics.median(steps[v]),
                "parts_s": {p: statistics.median(d[p] for d in parts[v]) for p in PARTS},
                "peak_bytes": peaks[v],
            }
            for v in VARIANTS
        },
    }


def _run(args: argparse.Namespace, dataset: str, preset: str) -> dict:
    repeats = args.paper_repeats if preset == "paper" else args.repeats
    cmd = [
        sys.executable, __file__, "--worker", "--datasets", dataset, "--presets", preset,
        "--repeats", str(repeats), "--threads", str(args.threads), "--seed", str(args.seed),
    ]  # fmt: skip
    log.info("running %s %s (%d repeats)", dataset, preset, repeats)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        log.error("%s %s failed:\n%s", dataset, preset, proc.stderr[-3000:])
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
            load = load_average()
            result = _run(args, dataset, preset)
            load += f" / {load_average()}"
            if "error" in result:
                summary.append(
                    f"| {dataset} | {preset} | | | | failed: {result['error']} | | | | | {load} |"
                )
                continue
            cfg = result["config"]
            shape = "x".join(str(s) for s in cfg["patch_size"])
            for variant in VARIANTS:
                res = result[variant]
                ratio = res["step_s"] / result["nmi"]["step_s"]
                total = sum(res["parts_s"].values())
                summary.append(
                    f"| {dataset} | {preset} | {cfg['batch_size']} x {shape} | {cfg['nmi_sigma']:g} "
                    f"| {variant} | {res['step_s']:.3f} | {ratio:.2f} | {_similarity_s(res):.3f} "
                    f"| {_similarity_s(res) / total:.1%} | {res['peak_bytes'] / 2**20:.0f} "
                    f"| {load} |"
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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    for name in ("threads", "repeats", "paper_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    if args.worker:
        result = _worker(args.datasets[0], args.presets[0], args.repeats, args.threads, args.seed)
        print(json.dumps(result))
        return 0

    import torch

    for dataset in args.datasets:  # fail early on an unknown manifest, with its message
        _config(dataset, args.presets[0])
    header = (
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: {cpu_name()}; "
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
        from benchmark.core.atomic import write_text

        write_text(args.markdown, header + "\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
