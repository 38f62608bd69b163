"""Scoring one Learn2Reg pair: MIRBench (``score_pair`` plus the Learn2Reg-convention numbers of
``metrics.learn2reg``) against Learn2Reg's own evaluation, in one run, on an OASIS-sized
look-alike (160 x 224 x 192, 35 labels; ``tests/l2r_lookalike.py``; nothing is downloaded).

    OMP_NUM_THREADS=1 python perf/l2r_scoring.py --l2r L2R_CHECKOUT/evaluation [--pairs 2]

``--l2r`` is the ``evaluation`` folder of a checkout of github.com/MDL-UzL/L2R (``evaluation.py``,
``utils.py``, ``surface-distance/``); it is imported in a subprocess, never copied into this
project. Two shims let its code run on the installed NumPy: a stub ``evalutils.exceptions``
(its only use there is the ``ValidationError`` class) and the aliases ``np.NAN`` / ``np.Inf``
that NumPy 2 removed. Each pair's field is a smooth random displacement (SD about 1.5 voxels).

Per pair: ``mirbench`` = reading the pair (images, labels) and the field, ``warp_pair`` +
``score_pair`` (every MIRBench metric) + ``l2r_pair_scores`` (Learn2Reg's DSC, HD95, SDlogJ,
num_foldings); ``l2r`` = ``evaluate_L2R`` on the exported ``disp_*`` file (reading included),
timed inside its process after the imports. The agreement column compares every per-label DSC
and HD95 and the SDlogJ of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SHAPE = (160, 224, 192)
N_LABELS = 35

_L2R_RUNNER = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
np.NAN, np.Inf = np.nan, np.inf  # removed in NumPy 2
shim, source, inp, data, out, config = sys.argv[1:7]
sys.path[:0] = [shim, source, source + "/surface-distance"]
from evaluation import evaluate_L2R
start = time.perf_counter()
evaluate_L2R(inp, data, out, config)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _field(shape, seed: int) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return np.stack(
        [ndimage.gaussian_filter(rng.normal(0, 1, shape), 6) * 60 for _ in range(3)]
    ).astype(np.float32)


def _ours(spec, disp_file: Path, labels: dict[str, int]) -> tuple[float, float, object]:
    """(seconds with reading, seconds of scoring alone, L2R-convention scores)."""
    from benchmark.core.images import read_displacement
    from benchmark.core.learn2reg import to_l2r
    from benchmark.runner.scoring import score_pair, warp_pair
    from metrics.learn2reg import l2r_pair_scores

    start = time.perf_counter()
    pair = spec.load()
    disp, _ = read_displacement(disp_file)
    loaded = time.perf_counter()
    warped, warped_labels = warp_pair(pair, disp)
    score_pair(pair, disp, labels=labels, runtime_s=1.0, warped=warped,
               warped_labels=warped_labels)
    scores = l2r_pair_scores(
        to_l2r(disp, pair.spacing), labels=labels,
        fixed_labels=pair.fixed_labels.array, moving_labels=pair.moving_labels.array,
    )
    end = time.perf_counter()
    return end - start, end - loaded, scores


def _theirs(l2r: Path, work: Path, data: Path, pair: dict, disp, affine) -> tuple[float, dict]:
    from benchmark.core.learn2reg import l2r_name, write_l2r_field

    shim = work / "shim" / "evalutils"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text("")
    (shim / "exceptions.py").write_text("class ValidationError(Exception):\n    pass\n")
    inp = work / "input"
    inp.mkdir(exist_ok=True)
    for old in inp.iterdir():
        old.unlink()
    write_l2r_field(inp / f"{l2r_name(pair['fixed'], pair['moving'], 'c')}.nii.gz", disp, affine)
    labels = list(range(1, N_LABELS + 1))
    config = {
        "task_name": "OASIS",
        "evaluation_methods": [
            {"name": "LogJacDetStd", "metric": "sdlogj"},
            {"name": "DSC", "metric": "dice", "labels": labels},
            {"name": "HD95", "metric": "hd95", "labels": labels},
        ],
        "expected_shape": [*SHAPE, 3],
        "eval_pairs": [pair],
        "masked_evaluation": False,
    }
    (work / "config.json").write_text(json.dumps(config))
    out = work / "out.json"
    done = subprocess.run(
        [sys.executable, "-c", _L2R_RUNNER, str(work / "shim"), str(l2r), str(inp), str(data),
         str(out), str(work / "config.json")],
        capture_output=True, text=True, check=True,
    )
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return seconds, next(iter(json.loads(out.read_text())["cases"].values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--l2r", required=True, type=Path, help="L2R checkout's evaluation/")
    parser.add_argument("--pairs", type=int, default=2, help="pairs (at most 4)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()
    if not (args.l2r / "evaluation.py").is_file():
        parser.error(f"--l2r {args.l2r}: no evaluation.py there")
    if not 1 <= args.pairs <= 4:
        parser.error("--pairs must be 1..4")
    from l2r_lookalike import make_oasis

    from benchmark.core.images import write_displacement
    from benchmark.core.pairs import PairSpec

    work = args.work or Path(tempfile.mkdtemp(prefix="l2r-scoring-"))
    data = work / "OASIS"
    task = data / "OASIS_dataset.json"
    if not task.is_file():
        make_oasis(data, shape=SHAPE, n_labels=N_LABELS, n_train=0, n_val=args.pairs + 1,
                   n_test=0, masks=False)
    pairs = json.loads(task.read_text())["registration_val"][: args.pairs]
    labels = {f"label{v}": v for v in range(1, N_LABELS + 1)}
    rows = []
    for k, pair in enumerate(pairs):
        spec = PairSpec("OASIS", str(k), "p", data / pair["fixed"], data / pair["moving"],
                        data / pair["fixed"].replace("images", "labels"),
                        data / pair["moving"].replace("images", "labels"))
        fixed = spec.load().fixed
        disp = _field(fixed.shape, k)
        disp_file = work / f"field{k}.nii.gz"
        write_displacement(disp_file, disp, fixed.affine)
        total, scoring, ours = _ours(spec, disp_file, labels)
        seconds, theirs = _theirs(args.l2r, work, data, pair, disp, fixed.affine)
        diff = max(
            np.nanmax(np.abs(np.array(theirs["DSC"]["detailed"]) - np.array(ours.dice))),
            np.nanmax(np.abs(np.array(theirs["HD95"]["detailed"]) - np.array(ours.hd95))),
            abs(theirs["LogJacDetStd"]["mean"] - ours.sdlogj),
        )
        rows.append((k, total, scoring, seconds, diff, ours))
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU: "
          f"{platform.processor() or platform.machine()}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; OASIS-sized look-alike {SHAPE}, "
          f"{N_LABELS} labels; {len(rows)} pair(s); one run each.\n")
    print("| pair | MIRBench: read + warp + score_pair + L2R numbers (s) | of which scoring (s) | "
          "Learn2Reg evaluate_L2R (s) | ratio (ours / theirs) | DSC / HD95 / SDlogJ | "
          "max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k, total, scoring, seconds, diff, ours in rows:
        print(f"| {k} | {total:.2f} | {scoring:.2f} | {seconds:.2f} | {total / seconds:.2f} | "
              f"{ours.dice_mean:.4f} / {ours.hd95_mean:.4f} / {ours.sdlogj:.5f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
