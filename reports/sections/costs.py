"""Cost per method: training time and iterations/s, time per registration, peak GPU memory and
peak RSS, from the cost records of ``costs.csv`` (:func:`reports.tables.cost_summary`)."""

from __future__ import annotations

from reports import tables
from reports.context import Context, Section

TITLE = "Cost per method"

#: Numeric columns of :func:`reports.tables.cost_summary` shown with :func:`reports.tables.fmt_num`.
NUMBER_COLUMNS = (
    "train_s", "train_it_per_s", "train_gpu_mib", "reg_s_mean", "reg_s_median", "reg_gpu_mib",
    "peak_rss_mib",
)


def build(ctx: Context) -> Section:
    """A table page and the ``costs`` table (one row per method); a note page without
    ``costs.csv``."""
    costs = ctx.run.costs
    if costs.empty:
        return Section(pages=tables.text_page(
            TITLE, ["No cost records (costs.csv) in this run folder."]
        ))
    summary = tables.cost_summary(costs)
    shown = summary.copy()
    for col in NUMBER_COLUMNS:
        shown[col] = [tables.fmt_num(v) for v in shown[col]]
    pages = tables.table_pages(
        TITLE,
        [("per method", shown.astype(str))],
        subtitle="Wall seconds per training and per registration (mean, median), iterations/s, "
        "peak GPU memory (torch.cuda.max_memory_allocated, MiB; 0 on CPU) and the peak RSS of "
        "the worker processes (MiB).",
    )
    return Section(pages=pages, tables=[("costs", summary)])
