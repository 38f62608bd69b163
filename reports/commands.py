"""``bench report``: the handler that builds the PDF report of a run folder."""

from __future__ import annotations

import argparse
import sys


def report(args: argparse.Namespace) -> int:
    """Build ``RUN_DIR/report/report.pdf`` (or ``--out``) with figures and tables beside it."""
    from reports.build import build_report

    result = build_report(
        args.run_dir, out=args.out, rankings=args.rankings, n_cases=args.cases, progress=True
    )
    print(
        f"{result.pdf} ({result.pages} pages; {len(result.figures)} figures in "
        f"{result.pdf.parent / 'figures'}, {len(result.tables)} tables in "
        f"{result.pdf.parent / 'tables'})",
        file=sys.stdout,
    )
    return 0
