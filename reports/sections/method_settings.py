"""Methods and settings: each method's description and settings as recorded in ``run.json``."""

from __future__ import annotations

import textwrap

from reports import tables
from reports.context import Context, Section, fmt_mapping

TITLE = "Methods and settings"


def build(ctx: Context) -> Section:
    """Text pages, one block per method of the run (its ``run.json`` configuration, or "no
    configuration recorded")."""
    cfg = ctx.run.run.get("methods")
    lines = []
    for method in ctx.run.methods:
        lines.append(method)
        entry = cfg.get(method) if isinstance(cfg, dict) else None
        if not isinstance(entry, dict) or not entry:
            lines += ["    no configuration recorded", ""]
            continue
        for key, value in entry.items():
            text = fmt_mapping(value) if isinstance(value, (dict, list, tuple)) else str(value)
            for i, part in enumerate(textwrap.wrap(f"{key}: {text}", 100) or [f"{key}:"]):
                lines.append(("    " if i == 0 else "        ") + part)
        lines.append("")
    return Section(pages=tables.text_page(TITLE, lines))
