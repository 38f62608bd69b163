"""The paper's claims on this run: every claim of :data:`benchmark.stats.claims.CLAIMS` with its
verdict on the run's results (and on the reader study's rankings when the report is given them),
the figures it compared and its test, or why it cannot be tested here."""

from __future__ import annotations

import textwrap

from benchmark.stats.claims import UNTESTABLE, evaluate_claims
from reports import tables
from reports.context import Context, Section

TITLE = "The paper's claims on this run"


def build(ctx: Context) -> Section:
    """Text pages, one block per claim, and the ``claims`` table."""
    claims = evaluate_claims(ctx.results, contrast=ctx.run.contrast, rankings=ctx.ranking_stats)
    counts = claims["verdict"].value_counts()
    lines = [
        f"Dataset contrast: {ctx.run.contrast or 'not stated'}. "
        + ", ".join(f"{counts[v]} {v}" for v in counts.index) + ".",
        "Comparisons are case-level paired Wilcoxon tests at 0.05; 'on par' holds without a "
        "significant difference against the method (docs/methods.md, \"The paper's claims\").",
        "A learned method is one training per fold and seed: a verdict that rests on a small "
        "difference can change with the seed or the machine (docs/conventions.md, \"Randomness "
        "and reproducibility\"); --seeds repeats the trainings.",
        "",
    ]
    for row in claims.itertuples(index=False):
        lines.append(f"{row.verdict.upper()}: {row.statement}  [{row.claim}]")
        details = [row.reason] if row.verdict == UNTESTABLE else [row.numbers, row.test]
        for detail in filter(None, details):
            lines += ["    " + part for part in textwrap.wrap(detail, 104)]
        lines.append("")
    return Section(pages=tables.text_page(TITLE, lines), tables=[("claims", claims)])
