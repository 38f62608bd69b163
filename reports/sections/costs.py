"""Cost per method: training time and iterations/s, time per registration, peak GPU memory and
peak RSS, from the cost records of ``costs.csv`` (:func:`reports.tables.cost_summary`); and the
timeline of the last run's tasks per worker with each worker's idle share
(:func:`reports.tables.task_timeline`)."""

from __future__ import annotations

from reports import figures, tables
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
    timeline = tables.task_timeline(costs, since=_run_start(ctx.run.run))
    if timeline.empty:
        return Section(pages=pages, tables=[("costs", summary)])
    workers = tables.timeline_summary(timeline)
    shown = workers.copy()
    for col in ("busy_s", "span_s", "idle_pct"):
        shown[col] = [tables.fmt_num(v) for v in shown[col]]
    pages += tables.table_pages(
        f"{TITLE}: workers of the last run", [("per worker", shown.astype(str))],
        subtitle=f"The run's {len(timeline)} task(s) of this run over "
        f"{tables.fmt_num(float(timeline['end_s'].max()))} s; idle: the share of that span a "
        "worker ran no task.",
    )
    fig = figures.timeline_figure(timeline, ctx.methods)
    return Section(
        pages=[*pages, fig], figures=[("task_timeline", fig)],
        tables=[("costs", summary), ("task_timeline", timeline), ("workers", workers)],
    )


def _run_start(run_info: dict) -> float | None:
    """The UNIX time of ``run.json``'s ``started`` (the last run's start), or None."""
    import datetime

    try:
        return datetime.datetime.strptime(str(run_info.get("started")),
                                          "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None
