"""Report tables: display versions of the summary and comparison tables (formatted strings), and
their layout on A4 pages (headed blocks, split across pages when long).
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.core.numbers import format_p
from reports.pdf import new_page

ROW_HEIGHT = 0.16  # inches per table row at FONT_SIZE
FONT_SIZE = 7.5  # points; smaller for tables too wide for the page
HEADING_HEIGHT = 0.32
TOP, BOTTOM, LEFT, RIGHT = 0.9, 0.6, 0.6, 0.6  # page margins (inches)


def fmt_num(value: float, digits: int = 4) -> str:
    """``digits`` significant digits; ``NaN`` for missing values."""
    if value is None or not math.isfinite(float(value)):
        return "NaN"
    return f"{float(value):.{digits}g}"


def summary_display(summary: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Display blocks of :func:`~benchmark.stats.comparisons.summarize_metrics`, one per
    (structure, metric): columns ``method, n, NaN, mean ± SD, median [IQR]``."""
    blocks = {}
    for (structure, metric), g in summary.groupby(["structure", "metric"], sort=False):
        blocks[(structure, metric)] = pd.DataFrame(
            {
                "method": g["method"],
                "n": g["n"].astype(int).astype(str),
                "NaN": g["n_nan"].astype(int).astype(str),
                "mean ± SD": [
                    f"{fmt_num(m)} ± {fmt_num(s, 3)}"
                    for m, s in zip(g["mean"], g["sd"], strict=True)
                ],
                "median [IQR]": [
                    f"{fmt_num(m)} [{fmt_num(a)}, {fmt_num(b)}]"
                    for m, a, b in zip(g["median"], g["q1"], g["q3"], strict=True)
                ],
            }
        )
    return blocks


def comparisons_display(comparisons: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Display blocks of :func:`~benchmark.stats.comparisons.compare_methods`, one per
    (structure, metric): ``a, b, n, NaN, median a-b, W, P, P Holm, favours``."""
    blocks = {}
    for (structure, metric), g in comparisons.groupby(["structure", "metric"], sort=False):
        blocks[(structure, metric)] = pd.DataFrame(
            {
                "a": g["a"],
                "b": [
                    b + ("  (NMI vs NCC)" if x else "")
                    for b, x in zip(g["b"], g["nmi_vs_ncc"], strict=True)
                ],
                "n": g["n"].astype(int).astype(str),
                "NaN": g["n_nan"].astype(int).astype(str),
                "median a-b": [fmt_num(v) for v in g["median_diff"]],
                "W": [fmt_num(v) for v in g["statistic"]],
                "P": [format_p(v) for v in g["p"]],
                "P Holm": [format_p(v) for v in g["p_holm"]],
                "favours": g["favours"],
            }
        )
    return blocks


def cost_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """One row per method from the cost records (``costs.csv``): trainings (count, mean wall
    seconds, iterations/s, peak GPU MiB) and registrations (count, mean and median seconds each,
    peak GPU MiB), the peak RSS of the processes that ran them, and the devices."""
    rows = []
    for method, d in costs.groupby("method", sort=False):
        train, reg = d[d["kind"] == "train"], d[d["kind"] == "register"]
        rows.append(
            {
                "method": method,
                "trainings": len(train),
                "train_s": train["wall_s"].mean() if len(train) else math.nan,
                "train_it_per_s": train["iterations_per_s"].mean() if len(train) else math.nan,
                "train_gpu_mib": train["peak_gpu_mb"].max() if len(train) else math.nan,
                "registrations": len(reg),
                "reg_s_mean": reg["wall_s"].mean() if len(reg) else math.nan,
                "reg_s_median": reg["wall_s"].median() if len(reg) else math.nan,
                "reg_gpu_mib": reg["peak_gpu_mb"].max() if len(reg) else math.nan,
                "peak_rss_mib": d["peak_rss_mb"].max(),
                "devices": ", ".join(sorted(set(d["device"].astype(str)))),
            }
        )
    return pd.DataFrame(rows)


#: Columns of :func:`task_timeline`.
TIMELINE_COLUMNS = ("worker", "host", "pid", "kind", "method", "start_s", "end_s", "wall_s")


def task_timeline(costs: pd.DataFrame, *, since: float | None = None) -> pd.DataFrame:
    """The tasks of ``costs.csv`` that ran in one run (started at or after the UNIX time
    ``since``; all when None), one row each: ``worker`` (0, 1, ... in order of their first task,
    one per host and process), ``start_s`` / ``end_s`` (seconds since the run's first task) and
    the task's kind, method and wall seconds. Empty when the records carry no start time
    (older run folders)."""
    if costs.empty or not {"started", "pid"} <= set(costs.columns):
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    c = costs[pd.to_numeric(costs["started"], errors="coerce").notna()].copy()
    c["started"] = c["started"].astype(float)
    if since is not None:
        c = c[c["started"] >= since - 1.0]  # the run's start is recorded to the second
    if c.empty:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    c = c.sort_values("started", kind="stable")
    origin = c["started"].min()
    keys = list(zip(c["host"].astype(str), c["pid"].astype(str), strict=True))
    workers = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return pd.DataFrame({
        "worker": [workers[k] for k in keys],
        "host": c["host"].astype(str).to_numpy(),
        "pid": c["pid"].astype(str).to_numpy(),
        "kind": c["kind"].to_numpy(),
        "method": c["method"].to_numpy(),
        "start_s": (c["started"] - origin).to_numpy(),
        "end_s": (c["started"] - origin + c["wall_s"].astype(float)).to_numpy(),
        "wall_s": c["wall_s"].astype(float).to_numpy(),
    }).reset_index(drop=True)


def timeline_summary(timeline: pd.DataFrame) -> pd.DataFrame:
    """One row per worker of :func:`task_timeline`: tasks, busy seconds (sum of the tasks' wall
    time), the span from the run's first task to the worker's last end, and the idle share of
    the run's span (the time its cores waited)."""
    columns = ["worker", "host", "pid", "tasks", "busy_s", "span_s", "idle_pct"]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    span = float(timeline["end_s"].max())
    rows = []
    for worker, d in timeline.groupby("worker", sort=True):
        busy = float(d["wall_s"].sum())
        rows.append([worker, d["host"].iloc[0], d["pid"].iloc[0], len(d), busy,
                     float(d["end_s"].max()), 100.0 * (1 - busy / span) if span else math.nan])
    return pd.DataFrame(rows, columns=columns)


#: Characters per line of a page's subtitle (7.5 pt on the A4 text width), and its line step.
SUBTITLE_WIDTH, SUBTITLE_STEP = 150, 0.13


def _subtitle_lines(subtitle: str | None) -> list[str]:
    return textwrap.wrap(subtitle, SUBTITLE_WIDTH) if subtitle else []


def _page(title: str, subtitle: str | None) -> Figure:
    """A page with its title and the subtitle's lines under it (wrapped here, so that the
    content below can start after the last one)."""
    fig = new_page()
    w, h = fig.get_size_inches()
    fig.text(LEFT / w, 1 - 0.55 / h, title, fontsize=14, weight="bold", va="baseline")
    for i, line in enumerate(_subtitle_lines(subtitle)):
        fig.text(LEFT / w, 1 - (0.78 + SUBTITLE_STEP * i) / h, line, fontsize=7.5,
                 va="baseline", color="0.3")
    return fig


def _format_rows(frame: pd.DataFrame) -> tuple[str, list[str]]:
    """Fixed-width header and rows: columns padded to their widest cell, two spaces apart."""
    cells = frame.astype(str).to_numpy().tolist()
    header = [str(c) for c in frame.columns]
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(header)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return line(header), [line(r) for r in cells]


def _draw_table(fig: Figure, top: float, frame: pd.DataFrame) -> float:
    """Draw ``frame`` as monospaced text with its header at ``top`` inches from the page top.

    One text object per block and a rule under the header: fast to draw and to embed, and the PDF
    text keeps the table's rows (searchable, extractable). Returns the height used (inches).
    """
    w, h = fig.get_size_inches()
    header, rows = _format_rows(frame)
    longest = max(len(header), *(len(r) for r in rows)) if rows else len(header)
    size = min(FONT_SIZE, (w - LEFT - RIGHT) * 72 / (0.6 * max(longest, 1)))
    step = ROW_HEIGHT * size / FONT_SIZE
    x = LEFT / w
    fig.text(
        x,
        1 - (top + step * 0.8) / h,
        header,
        fontsize=size,
        family="DejaVu Sans Mono",
        weight="bold",
        va="baseline",
    )
    rule = 1 - (top + step * 1.05) / h
    fig.add_artist(
        Line2D(
            [x, x + (0.61 * size * longest / 72) / w],
            [rule, rule],
            lw=0.5,
            color="0.4",
            transform=fig.transFigure,
        )
    )
    if rows:
        fig.text(
            x,
            1 - (top + step * 1.3) / h,
            "\n".join(rows),
            fontsize=size,
            family="DejaVu Sans Mono",
            va="top",
            linespacing=step * 72 / size,
        )
    return step * (len(rows) + 1.4)


def table_pages(
    title: str,
    blocks: list[tuple[str, pd.DataFrame]],
    *,
    subtitle: str | None = None,
) -> list[Figure]:
    """Lay out headed table blocks on as many A4 pages as needed.

    Parameters
    ----------
    title : str
        Page heading (repeated with "(continued)").
    blocks : list of (heading, DataFrame)
        Each block is a bold heading and a table of strings; a block longer than a page is split.
    subtitle : str, optional
        A small explanatory line under the title of the first page.

    Returns
    -------
    list of Figure
    """
    pages: list[Figure] = []
    fig = _page(title, subtitle)
    pages.append(fig)
    page_h = fig.get_size_inches()[1]
    lines = len(_subtitle_lines(subtitle))
    y = TOP + (0.25 + SUBTITLE_STEP * (lines - 1) if lines else 0.0)
    if not blocks:
        w = fig.get_size_inches()[0]
        fig.text(LEFT / w, 1 - (y + 0.3) / page_h, "No data.", fontsize=9)
        return pages
    for heading, frame in blocks:
        start = 0
        while True:
            room = int((page_h - BOTTOM - y - HEADING_HEIGHT) / ROW_HEIGHT) - 2
            if room < min(3, len(frame) - start):
                fig = _page(f"{title} (continued)", None)
                pages.append(fig)
                y = TOP
                continue
            part = frame.iloc[start : start + room]
            w = fig.get_size_inches()[0]
            fig.text(LEFT / w, 1 - (y + 0.2) / page_h, heading, fontsize=9, weight="bold")
            y += HEADING_HEIGHT
            y += _draw_table(fig, y, part) + 0.15
            start += len(part)
            if start >= len(frame):
                break
    return pages


def text_page(title: str, lines: list[str], *, mono: bool = False) -> list[Figure]:
    """Pages of plain text lines (wrapped by the caller), split across pages when long."""
    pages = []
    per_page = 62
    chunks = [lines[i : i + per_page] for i in range(0, max(len(lines), 1), per_page)] or [[]]
    for n, chunk in enumerate(chunks):
        fig = _page(title if n == 0 else f"{title} (continued)", None)
        w, h = fig.get_size_inches()
        for i, line in enumerate(chunk):
            fig.text(
                LEFT / w,
                1 - (TOP + 0.25 + 0.16 * i) / h,
                line,
                fontsize=8,
                family="DejaVu Sans Mono" if mono else None,
                va="baseline",
            )
        pages.append(fig)
    return pages
