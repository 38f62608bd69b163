"""Scaling of ``bench run``'s executors: serial in-process against Dask workers.

1. The embedded demo (``demo-acdc``, ``--cases`` cases, fold 0, identity and a short unet-nmi
   training) run serially (``--jobs 1``) and on a ``LocalCluster`` of 2 workers, each into a
   fresh run folder; wall time of ``run_benchmark`` (cluster start-up included).
2. A synthetic workload of ``--trainings`` short trainings (a small 3D convolution network,
   ``--iterations`` Adam steps on random patches), serial and on 1, 2 and 4 workers, and
   ``--noops`` empty tasks to measure the scheduler's overhead per task.

Not a test: run it by hand, single-threaded workers::

    OMP_NUM_THREADS=1 python perf/run_scaling.py
    OMP_NUM_THREADS=1 python perf/run_scaling.py --trainings 8 --iterations 40 --workers 1,2,4

Speed-ups above the number of free cores are impossible: on a 2-core machine 4 workers share 2
cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# this folder's metrics.py would shadow the metrics package; the repository root comes first
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def short_training(index: int, iterations: int) -> float:
    """``iterations`` Adam steps of a small 3D CNN on random 32x32x8 patches; its own seconds."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    torch.manual_seed(index)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(2, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 3, 3, padding=1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(1, 2, 32, 32, 8)
    for _ in range(iterations):
        opt.zero_grad()
        loss = net(x).square().mean()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def noop(i: int) -> int:
    return i


def synthetic(n: int, iterations: int, workers: list[int], noops: int) -> list[dict]:
    from distributed import Client, LocalCluster

    rows = []
    start = time.perf_counter()
    own = [short_training(i, iterations) for i in range(n)]
    serial = time.perf_counter() - start
    rows.append({"executor": "serial", "workers": 1, "wall_s": serial, "task_s": sum(own)})
    for w in workers:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.gather(client.map(noop, range(w)))  # workers warm (imports done)
            client.submit(short_training, -1, 1).result()
            start = time.perf_counter()
            own = client.gather(client.map(short_training, range(n), iterations=iterations,
                                           pure=False))
            wall = time.perf_counter() - start
            start = time.perf_counter()
            client.gather(client.map(noop, range(noops), pure=False))
            per_noop = (time.perf_counter() - start) / noops
        rows.append({"executor": "dask", "workers": w, "wall_s": wall, "task_s": sum(own),
                     "overhead_ms_per_task": 1000 * per_noop})
    return rows


def demo(cases: int, iterations: int) -> list[dict]:
    from benchmark.data.manifest import load_manifest
    from benchmark.runner.run import RunOptions, run_benchmark

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from benchmark.cli import main

        root = Path(tmp) / "demo"
        main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", str(cases)])
        manifest = load_manifest("demo-acdc", root=root)
        settings = {"iterations": iterations, "batch_size": 1, "patch_size": [32, 32, 4]}
        for jobs in (1, 2):
            start = time.perf_counter()
            results = run_benchmark(RunOptions(manifest=manifest, methods=["identity", "unet-nmi"], out=Path(tmp) / f"run{jobs}", folds=[0],
                jobs=jobs, overrides=settings, progress=False,
            ))
            rows.append({"executor": "serial" if jobs == 1 else "dask", "workers": jobs,
                         "wall_s": time.perf_counter() - start, "rows": len(results)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--demo-iterations", type=int, default=20)
    parser.add_argument("--trainings", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--noops", type=int, default=200)
    args = parser.parse_args()
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n")
    print(f"Demo: demo-acdc {args.cases} cases, fold 0, identity + unet-nmi "
          f"({args.demo_iterations} iterations)\n")
    print("| executor | workers | wall (s) | results rows |\n| --- | --- | --- | --- |")
    for r in demo(args.cases, args.demo_iterations):
        print(f"| {r['executor']} | {r['workers']} | {r['wall_s']:.1f} | {r['rows']} |")
    workers = [int(w) for w in args.workers.split(",")]
    print(f"\nSynthetic: {args.trainings} trainings of {args.iterations} iterations; "
          f"overhead: {args.noops} empty tasks\n")
    print("| executor | workers | wall (s) | sum of task times (s) | speed-up | "
          "scheduler overhead per task (ms) | overhead / mean task |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = synthetic(args.trainings, args.iterations, workers, args.noops)
    serial = rows[0]["wall_s"]
    mean_task = rows[0]["task_s"] / args.trainings
    for r in rows:
        over = r.get("overhead_ms_per_task")
        print(f"| {r['executor']} | {r['workers']} | {r['wall_s']:.2f} | {r['task_s']:.2f} | "
              f"{serial / r['wall_s']:.2f} | {'' if over is None else f'{over:.2f}'} | "
              f"{'' if over is None else f'{over / 1000 / mean_task:.2%}'} |")


if __name__ == "__main__":
    main()
