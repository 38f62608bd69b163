"""Training and validation: each trained model's validation beside no registration
(``validation.csv``), flagged when worse, and what each method adds of its trainings (a learned
method: its training curves, through :meth:`methods.base.Method.report_figures` of the class the
registry finds; a plug-in no longer installed keeps its table row)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from benchmark.core.layout import RunLayout
from reports import tables
from reports.context import Context, Section, safe_name

TITLE = "Training and validation"


def build(ctx: Context) -> Section:
    """The models table (pages), one figure per training and method figure kind
    (``KIND_METHOD_foldF[-seedS]``), and the ``validation`` table; empty without
    ``validation.csv`` (no method learns)."""
    validation = ctx.run.validation
    if validation.empty:
        return Section()
    pages = tables.table_pages(
        TITLE, [("Models", _display(validation))], subtitle=_subtitle(validation)
    )
    figs = _training_figures(ctx, validation)
    return Section(
        pages=pages + [f for _, f in figs], figures=figs, tables=[("validation", validation)]
    )


def _display(validation: pd.DataFrame) -> pd.DataFrame:
    """``validation.csv`` as display strings."""
    return pd.DataFrame(
        {
            "method": validation["method"],
            "fold": validation["fold"].astype(str),
            "seed": validation["seed"].astype(str),
            "best it.": validation["best_iteration"].astype(str),
            "val. similarity": [tables.fmt_num(v) for v in validation["val_similarity"]],
            "no registration": [tables.fmt_num(v) for v in validation["identity_similarity"]],
            "val. Dice": [tables.fmt_num(v) for v in validation["val_dice"]],
            "no reg. Dice": [tables.fmt_num(v) for v in validation["identity_dice"]],
            "worse than no registration": [
                "WORSE: " + w if w else "no" for w in validation["worse_than_identity"].fillna("")
            ],
        }
    )


def _subtitle(validation: pd.DataFrame) -> str:
    flagged = validation[validation["worse_than_identity"].fillna("") != ""]
    return (
        "Best model by validation loss; similarity = the training loss term (lower is better) on "
        "whole validation pairs. "
        + (
            f"{len(flagged)} model(s) are worse than no registration on their validation pairs."
            if len(flagged)
            else "Every model is better than no registration on its validation pairs."
        )
    )


def _training_figures(ctx: Context, validation: pd.DataFrame) -> list[tuple[str, Figure]]:
    """``(name, figure)`` of what each trained model's method class contributes."""
    from methods.registry import available_methods

    known = available_methods()
    figs: list[tuple[str, Figure]] = []
    for row in validation.itertuples():
        cls = known.get(row.method)
        if cls is None:  # a plug-in no longer installed: its table row stays
            continue
        folder = RunLayout(ctx.run.path).model_dir(row.method, int(row.fold), int(row.seed))
        flag = " (WORSE THAN NO REGISTRATION)" if row.worse_than_identity else ""
        where, name = f"fold {row.fold}", f"fold{row.fold}"
        if row.seed:
            where, name = f"{where}, seed {row.seed}", f"{name}-seed{row.seed}"
        for kind, fig in cls.report_figures(folder, title=f"{row.method}, {where}{flag}"):
            figs.append((f"{kind}_{safe_name(row.method)}_{name}", fig))
    return figs
