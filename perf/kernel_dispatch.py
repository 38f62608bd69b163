"""Do the learned methods' numbers depend on which CPU kernels torch dispatches to? (not a test)

Run from the repository root::

    python perf/kernel_dispatch.py [--steps 20]

Trains PoolNet-NMI and U-Net-NMI for ``--steps`` steps with demo-acdc's quick configuration
(:func:`methods.training.config.make_config` with the manifest's presets; seeded uniform-noise
volumes, so no data is needed) once per setting below, each in its own process, one torch thread,
and prints per setting and network the sum of the absolute weights (float64, 17 digits) and the
last loss. The settings change only which kernels run, on this machine:

- ``as installed``: what torch picks for this CPU;
- ``ATEN_CPU_CAPABILITY=default``: ATen's non-vectorised kernels (elementwise, pooling, ...);
- ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN's convolutions limited to SSE4.1;
- ``MKL_CBWR=COMPATIBLE``: MKL's matrix products in its conditional-numerical-reproducibility
  branch (the native convolutions' GEMMs).

The first setting runs twice: the same numbers there show the training itself is deterministic,
so any other difference comes from the kernels alone. Another CPU (another instruction set or
vendor) makes such choices by itself: this is why runs on different machines differ in the learned
methods' numbers (``docs/conventions.md``, "Randomness and reproducibility").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

SETTINGS = (
    ("as installed", {}),
    ("as installed (again)", {}),
    ("ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}),
    ("ONEDNN_MAX_CPU_ISA=SSE41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}),
)
METHODS = ("poolnet-nmi", "unet-nmi")


def train(steps: int) -> None:
    """Worker: print ``method capability weight_sum last_loss`` per network."""
    import numpy as np
    import torch

    from benchmark.data.manifest import load_manifest
    from methods.training.config import make_config, merge_settings
    from methods.training.loss import loss_terms
    from methods.training.patches import PatchSampler
    from methods.training.trainer import build_model

    torch.set_num_threads(1)
    presets = load_manifest("demo-acdc", generate=False).presets["quick"]
    for method in METHODS:
        network, similarity = method.split("-")
        config = make_config(network, similarity, preset="quick", overrides=merge_settings(presets, {}))
        model = build_model(config, seed=0)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=config.betas)
        rng = np.random.default_rng(0)
        shape = tuple(p + 30 for p in config.patch_size)
        volumes = [
            tuple(rng.random(shape, dtype=np.float32) * 0.99 for _ in range(2)) for _ in range(3)
        ]
        sampler = PatchSampler(volumes, config.patch_size, rng=rng)
        for _ in range(steps):
            fixed, moving = (torch.from_numpy(x) for x in sampler.sample(config.batch_size))
            optimizer.zero_grad(set_to_none=True)
            loss = loss_terms(config, model, fixed, moving)[0]
            loss.backward()
            optimizer.step()
        weights = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        capability = torch.backends.cpu.get_cpu_capability()
        print(method, capability, f"{weights.abs().sum().item():.17g}", f"{loss.item():.9g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        train(args.steps)
        return
    print("| setting | network | torch CPU capability | sum of abs. weights | last loss |")
    print("| --- | --- | --- | --- | --- |")
    for name, extra in SETTINGS:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", "--steps", str(args.steps)],
            env={**os.environ, **extra}, capture_output=True, text=True, check=True,
        )
        for line in done.stdout.split("\n"):
            if line.strip():
                method, capability, weights, loss = line.split()
                print(f"| {name} | {method} | {capability} | {weights} | {loss} |", flush=True)


if __name__ == "__main__":
    main()
