"""``bench stats ranking``, ``compare``, ``rank`` and ``l2r``: thin handlers printing the
statistics of :mod:`benchmark.stats.ranking`, :mod:`~benchmark.stats.comparisons`,
:mod:`~benchmark.stats.metric_ranking` and :mod:`~benchmark.stats.learn2reg`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import pandas as pd

from benchmark.core.numbers import format_p
from benchmark.stats.comparisons import TEST_LEVEL_NOTE


def ranking(args: argparse.Namespace) -> int:
    """Print the contingency table, chi-square, pairwise and Friedman tests of a rankings CSV."""
    from benchmark.stats.ranking import analyze_rankings, read_rankings

    stats = analyze_rankings(read_rankings(args.csv), validate=False)
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
    else:
        print(stats.to_text())
    return 0


def _records(table: pd.DataFrame) -> list[dict]:
    out = []
    for row in table.to_dict(orient="records"):
        out.append(
            {
                k: (
                    None
                    if isinstance(v, float) and not math.isfinite(v)
                    else (v.item() if hasattr(v, "item") else v)
                )
                for k, v in row.items()
            }
        )
    return out


def format_comparisons(summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """Plain-text summary (median [IQR], mean ± SD per method) and paired tests, per structure x
    metric."""
    lines = []
    for (structure, metric), block in summary.groupby(["structure", "metric"], sort=False):
        unit = block["unit"].iloc[0]
        lines.append(f"== {structure} / {metric}" + (f" [{unit}]" if unit not in ("", "1") else ""))
        width = max(8, *(len(m) for m in block["method"]))
        lines.append(
            f"  {'method':<{width}} {'n':>4} {'NaN':>4} {'median [IQR]':>28} {'mean ± SD':>22}"
        )
        for r in block.itertuples(index=False):
            lines.append(
                f"  {r.method:<{width}} {r.n:>4d} {r.n_nan:>4d} "
                f"{f'{r.median:.4g} [{r.q1:.4g}, {r.q3:.4g}]':>28} "
                f"{f'{r.mean:.4g} ± {r.sd:.3g}':>22}"
            )
        cmp = comparisons[
            (comparisons["structure"] == structure) & (comparisons["metric"] == metric)
        ]
        if not cmp.empty:
            lines.append(
                f"  {'a':<{width}} {'b':<{width}} {'n':>4} {'median a-b':>11} "
                f"{'P':>7} {'P Holm':>7}  favours"
            )
            for r in cmp.itertuples(index=False):
                lines.append(
                    f"  {r.a:<{width}} {r.b:<{width}} {r.n:>4d} {r.median_diff:>11.4g} "
                    f"{format_p(r.p):>7} {format_p(r.p_holm):>7}  {r.favours}"
                    + ("  (NMI vs NCC)" if r.nmi_vs_ncc else "")
                )
        lines.append("")
    lines.append(
        TEST_LEVEL_NOTE + "; zero differences discarded; Holm over the method pairs of each "
        "structure x metric. n = cases."
    )
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> int:
    """Print per-method summaries and paired Wilcoxon tests of a run folder or results table."""
    from benchmark.stats.comparisons import compare_methods, summarize_metrics
    from benchmark.stats.results import read_results

    results = read_results(args.run_dir)
    summary = summarize_metrics(results)
    comparisons = compare_methods(results)
    if args.json:
        print(
            json.dumps(
                {
                    "test_level": "case",
                    "test_note": TEST_LEVEL_NOTE,
                    "summary": _records(summary),
                    "comparisons": _records(comparisons),
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write(format_comparisons(summary, comparisons) + "\n")
    return 0


def rank(args: argparse.Namespace) -> int:
    """Print the ranking across metrics with its uncertainty (text or ``--json``)."""
    from benchmark.stats.metric_ranking import rank_methods
    from benchmark.stats.results import read_results

    ranking = rank_methods(
        read_results(args.run_dir),
        n_boot=args.bootstrap,
        seed=args.seed,
        alpha=args.alpha,
        posthoc=args.posthoc,
    )
    if args.json:
        print(json.dumps(ranking.to_dict(), indent=2))
    else:
        sys.stdout.write(ranking.to_text() + "\n")
    return 0


def l2r(args: argparse.Namespace) -> int:
    """Write ``RUN_DIR/l2r_scores.csv`` and print both conventions side by side and the two
    rankings (text or ``--json``)."""
    from benchmark.stats.learn2reg import stats_l2r

    result = stats_l2r(args.run_dir, masked=args.masked)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(result.to_text() + "\n")
    return 0
