"""``bench export-fields RUN_DIR --format l2r``: a run's displacement fields in the Learn2Reg
convention, so that they can go into Learn2Reg's evaluation (or back into ``bench run`` with
``--methods fields:NAME=DIR``).

Writes ``OUT/METHOD/disp_FIXED_MOVING.nii.gz`` per finished pair (names by
:func:`benchmark.core.learn2reg.l2r_name`, values in voxels along the array axes, fixed -> moving, by
:func:`benchmark.core.learn2reg.write_l2r_field`); ``OUT`` defaults to ``RUN_DIR/export/l2r``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement
from benchmark.core.layout import RESULT_FILE, RunLayout
from benchmark.core.pairs import DISPLACEMENT_FILE

__all__ = ["FORMATS", "export_fields", "export_command"]

log = logging.getLogger(__name__)

#: Export formats.
FORMATS = ("l2r",)


def export_fields(
    run_dir: str | Path,
    *,
    fmt: str = "l2r",
    out: str | Path | None = None,
    methods: Sequence[str] | None = None,
    dtype: str = "float64",
) -> dict[str, list[Path]]:
    """Export the fields of a run folder; return the files written per method.

    Parameters
    ----------
    run_dir : path
        A run folder of ``bench run`` (``run.json``, ``pairs.csv``, ``pairs/``).
    fmt : {"l2r"}
        Learn2Reg: ``(I, J, K, 3)`` NIfTI, voxels, fixed -> moving, ``disp_FIXED_MOVING.nii.gz``.
    out : path, optional
        Output folder (default ``RUN_DIR/export/l2r``); one sub-folder per method.
    methods : sequence of str, optional
        Methods to export (default every method of the run).
    dtype : {"float64", "float32", "float16"}
        Stored dtype; float64 round-trips exactly.

    Raises
    ------
    BenchError
        For a folder that is not a run folder, an unknown format or method, or two pairs that
        would share one Learn2Reg file name.
    """
    from benchmark.core.learn2reg import L2R_DTYPES, l2r_name, write_l2r_field

    check_choice("--format", fmt, FORMATS)
    check_choice("--dtype", dtype, L2R_DTYPES)
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    for path in (layout.run_json, layout.pairs_csv):
        if not path.is_file():
            raise BenchError(f"{run_dir}: not a run folder ({path.name} is missing)")
    import pandas as pd

    run_methods = list(json.loads(layout.run_json.read_text()).get("methods", {}))
    chosen = run_methods if methods is None else list(methods)
    unknown = [m for m in chosen if m not in run_methods]
    if unknown:
        raise BenchError(
            f"--methods {unknown}: not in the run; its methods are {', '.join(run_methods)}"
        )
    pairs = pd.read_csv(layout.pairs_csv, dtype={"case": str, "pair": str})
    names = [l2r_name(r.fixed, r.moving, r.case) for r in pairs.itertuples()]
    seen: dict[str, str] = {}
    for name, r in zip(names, pairs.itertuples(), strict=True):
        key = f"{r.case}/{r.pair}"
        if name in seen and seen[name] != key:
            raise BenchError(
                f"pairs {seen[name]} and {key} would both be written as {name}.nii.gz; "
                "rename the images so that each pair gets its own Learn2Reg name"
            )
        seen[name] = key
    out = run_dir / "export" / fmt if out is None else Path(out)
    written: dict[str, list[Path]] = {}
    for method in chosen:
        written[method] = []
        missing = 0
        for name, r in zip(names, pairs.itertuples(), strict=True):
            folder = layout.pair_dir(method, int(r.fold), r.case, r.pair)
            source = folder / DISPLACEMENT_FILE
            if not ((folder / RESULT_FILE).is_file() and source.is_file()):
                missing += 1
                continue
            u, affine = read_displacement(source)
            target = out / method / f"{name}.nii.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            written[method].append(write_l2r_field(target, u, affine, dtype=dtype))
        if missing:
            log.warning(
                "%s: %d of %d pairs have no field (failed or not run) and were not exported",
                method,
                missing,
                len(pairs),
            )
    if not any(written.values()):
        raise BenchError(
            f"{run_dir}: no pair of {', '.join(chosen)} holds a displacement field (every "
            "registration failed or has not run yet); nothing was exported"
        )
    return written


def export_command(args: argparse.Namespace) -> int:
    """``bench export-fields``: print one line per method (files written, folder)."""
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",")]
    written = export_fields(
        args.run_dir, fmt=args.format, out=args.out, methods=methods, dtype=args.dtype
    )
    for method, files in written.items():
        folder = files[0].parent if files else "(none)"
        print(f"{method}: {len(files)} field(s) in {folder}", file=sys.stdout)
    return 0
