"""L2R conventions: for a run of a Learn2Reg task, every metric in MIRBench's convention and in
Learn2Reg's (its evaluation code's formulas) side by side, Learn2Reg's ranking recomputed beside
MIRBench's case-level ranking, and one note per difference citing the formula
(:func:`benchmark.stats.learn2reg.l2r_report_tables`)."""

from __future__ import annotations

import textwrap

from benchmark.stats.learn2reg import l2r_report_tables
from reports import tables
from reports.context import Context, Section

TITLE = "L2R conventions"


def is_learn2reg(ctx: Context) -> bool:
    """The run's dataset is a Learn2Reg task (its loader is ``learn2reg``)."""
    dataset = ctx.run.run.get("dataset")
    return isinstance(dataset, dict) and dataset.get("loader") == "learn2reg"


def build(ctx: Context) -> Section:
    """Table pages of both conventions and of both rankings, a page of notes, and the tables
    ``l2r_methods`` and ``l2r_ranking``."""
    blocks, notes = l2r_report_tables(ctx.run.path)
    shown = [(title, frame.map(_cell)) for title, frame in blocks]
    pages = tables.table_pages(
        TITLE, shown, subtitle="MIRBench: mm, log J, non-positive J, case-level paired tests; "
        "L2R: as Learn2Reg's evaluation and ranking code compute them"
    )
    lines = []
    for note in notes:
        lines += textwrap.wrap(note, 110, initial_indent="- ", subsequent_indent="  ") + [""]
    pages += tables.text_page(f"{TITLE}: the differences", lines)
    names = ("l2r_methods", "l2r_ranking")
    return Section(pages=pages, tables=[(n, frame) for n, (_, frame) in zip(names, blocks, strict=True)])


def _cell(value) -> str:
    return tables.fmt_num(value) if isinstance(value, float) else str(value)
