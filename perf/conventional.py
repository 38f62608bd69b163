"""Conventional methods side by side on demo-dce test pairs: runtime and displacement error of
``elastix``, ``ants-syn`` and ``greedy`` (and ``identity`` as the no-registration baseline), all
single-threaded, measured in the same run on the same pairs.

Not a test: run it by hand (the demo is generated on first use)::

    OMP_NUM_THREADS=1 python perf/conventional.py [--pairs 2] [--preset quick] [--root DIR] \
        [--contrast different]

The time is ``RegistrationResult.runtime_s`` (the registration itself plus the dense field; no
file I/O); the error is the mean Euclidean distance to the demo's ground-truth field over the
whole fixed grid (``metrics.displacement_error``), in mm. Prints a Markdown table, one row per
method and pair, and the mean per method. Each method is configured as ``bench run`` configures it
(``Method.configure``) for the dataset's contrast (``--contrast``: demo-dce's ``different`` by
default, so ``greedy`` runs its multi-contrast setup).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Methods compared (registry names); each runs with ``preset`` and one thread.
METHODS = ("identity", "elastix", "ants-syn", "greedy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2, help="test pairs of demo-dce (default 2)")
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--root", default=None, help="demo-dce folder (default: the cache)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--contrast", choices=("same", "different"), default="different")
    args = parser.parse_args(argv)

    from benchmark.data.manifest import load_manifest
    from methods.base import RunContext
    from methods.registry import available_methods, get_method
    from metrics import displacement_error

    manifest = load_manifest("demo-dce", root=args.root)
    specs = [s for fold in manifest.folds() for s in fold.test][: args.pairs]
    known = available_methods()
    rows = []
    for name in args.methods.split(","):
        cls = known[name]
        ok, why = cls.availability()
        if not ok:
            print(f"{name}: skipped ({why})", file=sys.stderr)
            continue
        context = RunContext(preset=args.preset, threads=1, contrast=args.contrast)
        method = get_method(name, **cls.configure(context))
        for spec in specs:
            pair = spec.load()
            print(f"{name} on {pair.key} ...", file=sys.stderr, flush=True)
            result = method.register(pair)
            err = displacement_error(result.displacement, pair.true_displacement)
            rows.append((name, pair.key, result.runtime_s, err.mean))

    print(
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU: {platform.processor() or platform.machine()}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, method threads 1; "
        f"preset {args.preset}; contrast {args.contrast}; demo-dce test pairs: "
        f"{', '.join(s.key for s in specs)}.\n"
    )
    print("| method | pair | runtime (s) | displacement error (mm) |")
    print("| --- | --- | --- | --- |")
    for name, key, runtime, err in rows:
        print(f"| {name} | {key} | {runtime:.2f} | {err:.3f} |")
    print("\n| method | mean runtime (s) | mean displacement error (mm) |")
    print("| --- | --- | --- |")
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        print(
            f"| {name} | {np.mean([r[2] for r in mine]):.2f} | {np.mean([r[3] for r in mine]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
