"""Methods and settings: the methods table (one row per method: similarity metric, transformation
model, key settings, who chose them, and its label on this dataset, e.g. "NCC on a
multi-contrast dataset"), then each method's description and settings as recorded in
``run.json``."""

from __future__ import annotations

import textwrap

import pandas as pd

from reports import tables
from reports.context import Context, Section, fmt_mapping

TITLE = "Methods and settings"

#: The columns of the methods table (``tables/methods.csv``).
COLUMNS = ("method", "metric", "transform", "key settings", "chosen by", "label")

NOT_SAID = "not recorded"


def methods_table(ctx: Context) -> pd.DataFrame:
    """One row per method of the run: :data:`COLUMNS`, from each method's ``summary`` and
    ``label`` in ``run.json`` (``not recorded`` where the method does not say, e.g. a plug-in
    without :meth:`~methods.base.Method.summary` or an older run folder)."""
    rows = []
    for method in ctx.run.methods:
        entry = ctx.run.method_entry(method)
        summary = entry.get("summary") if isinstance(entry.get("summary"), dict) else {}
        rows.append(
            {
                "method": method,
                "metric": summary.get("metric", NOT_SAID),
                "transform": summary.get("transform", NOT_SAID),
                "key settings": _settings_text(summary),
                "chosen by": summary.get("chosen_by", NOT_SAID),
                "label": entry.get("label") or "",
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _settings_text(summary: dict) -> str:
    """A summary's key settings on one line; ``none`` for a method without settings."""
    if not summary:
        return NOT_SAID
    return fmt_mapping(summary.get("settings")) if summary.get("settings") else "none"


def build(ctx: Context) -> Section:
    """The methods table (``methods``; on the page without the key settings, which follow per
    method), then text pages, one block per method of the run (its key settings and
    ``run.json`` configuration, or "no configuration recorded")."""
    table = methods_table(ctx)
    shown = table.drop(columns="key settings")
    if not shown["label"].astype(bool).any():
        shown = shown.drop(columns="label")
    contrast = ctx.run.contrast or "not stated"
    pages = tables.table_pages(
        TITLE,
        [("Methods", shown)],
        subtitle=f"Dataset contrast: {contrast}. Chosen by: the method's preset, the dataset's "
        "contrast, the user (--set), or fixed by the method. A label marks a similarity that "
        "assumes one contrast run on a multi-contrast dataset (run as asked).",
    )
    key_settings = dict(zip(table["method"], table["key settings"], strict=True))
    lines = []
    for method in ctx.run.methods:
        lines.append(method)
        entry = ctx.run.method_entry(method)
        if not entry:
            lines += ["    no configuration recorded", ""]
            continue
        shown_entry = {"key settings": key_settings[method], **entry}
        shown_entry.pop("summary", None)
        if not shown_entry.get("label"):
            shown_entry.pop("label", None)
        for key, value in shown_entry.items():
            text = fmt_mapping(value) if isinstance(value, (dict, list, tuple)) else str(value)
            for i, part in enumerate(textwrap.wrap(f"{key}: {text}", 100) or [f"{key}:"]):
                lines.append(("    " if i == 0 else "        ") + part)
        lines.append("")
    pages += tables.text_page(f"{TITLE} (per method)", lines)
    return Section(pages=pages, tables=[("methods", table)])
