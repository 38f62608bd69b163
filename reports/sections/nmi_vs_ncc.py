"""NMI- versus NCC-trained networks: the rows of the comparison statistics where both methods are
one architecture trained with either loss (:func:`benchmark.stats.comparisons.nmi_vs_ncc`)."""

from __future__ import annotations

import pandas as pd

from benchmark.core.numbers import format_p
from reports import tables
from reports.context import Context, Section

TITLE = "NMI- versus NCC-trained networks"


def build(ctx: Context) -> Section:
    """A table page ("No data." without such pairs) and the ``nmi_vs_ncc`` table."""
    from benchmark.stats.comparisons import nmi_vs_ncc

    loss_pairs = nmi_vs_ncc(ctx.comparisons)
    loss_frame = pd.DataFrame(
        {
            "structure": loss_pairs["structure"],
            "metric": loss_pairs["metric"],
            "NMI vs NCC": [
                f"{a} vs {b}" for a, b in zip(loss_pairs["a"], loss_pairs["b"], strict=True)
            ],
            "n": loss_pairs["n"].astype(str),
            "median a-b": [tables.fmt_num(v) for v in loss_pairs["median_diff"]],
            "P": [format_p(v) for v in loss_pairs["p"]],
            "P Holm": [format_p(v) for v in loss_pairs["p_holm"]],
            "favours": loss_pairs["favours"],
        }
    )
    pages = tables.table_pages(
        TITLE,
        [("The same network trained with either loss", loss_frame)] if len(loss_frame) else [],
        subtitle="Rows of the comparison statistics where both methods are one architecture "
        "(unet-nmi vs unet-ncc, poolnet-nmi vs poolnet-ncc).",
    )
    return Section(pages=pages, tables=[("nmi_vs_ncc", loss_pairs)])
