"""The Figure 1/3 analogue: the example pairs of the context's selection
(:func:`reports.cases.select_cases`), each a page of fixed, warped, subtraction and colour-coded
displacement field per method (:func:`reports.figures.case_figure`), after a note saying how they
were chosen."""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure

from reports import figures, tables
from reports.cases import load_case_view, shown_methods
from reports.context import Context, Section, safe_name

TITLE = "Figure 1/3 analogue"


def build(ctx: Context) -> Section:
    """The note page, one page and figure per selected pair (``fig1_caseN_CASE_PAIR``) and the
    ``case_selection`` table; with no pair selected, a note saying so."""
    named = _case_figures(ctx)
    if len(ctx.selection):
        note = tables.text_page(
            TITLE,
            [
                *textwrap.wrap(
                    f"Pairs shown: {len(ctx.selection)}, chosen by {ctx.criterion}.", 95
                ),
                "Columns: no registration (moving image) and every method but identity. Rows: fixed,",
                "warped, warped - fixed, and the displacement field as RGBA (i, j, k components",
                "as red, green, blue; vector length as alpha). Scales are shared within a page.",
            ],
        )
    else:
        note = tables.text_page(
            TITLE, ["No example cases: pairs.csv lists no test pairs or --cases is 0."]
        )
    return Section(
        pages=[*note, *(f for _, f in named)],
        figures=named,
        tables=[("case_selection", ctx.selection)],
    )


def _case_figures(ctx: Context) -> list[tuple[str, Figure]]:
    """``(name, figure)`` of each selected pair, in the selection's order."""
    from tqdm.auto import tqdm

    run = ctx.run
    shown = shown_methods(run)
    named: list[tuple[str, Figure]] = []
    rows = list(ctx.selection.itertuples(index=False))
    for i, row in enumerate(
        tqdm(rows, desc="case figures", unit="case", disable=not ctx.progress, leave=False)
    ):
        view = load_case_view(
            run, int(row.fold), str(row.case), str(row.pair), score=float(row.score)
        )
        named.append(
            (
                f"fig1_case{i + 1}_{safe_name(row.case)}_{safe_name(row.pair)}",
                figures.case_figure(view, shown),
            )
        )
    return named
