"""The report's figures (pyplot-free matplotlib ``Figure`` objects):

* :func:`boxplot_figure` -- Figure 4 analogue: folding %, Dice and Hausdorff per structure and method;
* :func:`nmi_folding_figure` -- Figure 2 analogue: NMI before and after each method, folding per method;
* :func:`case_figure` -- Figure 1/3 analogue: fixed, warped, subtraction and colour-coded field of
  one pair for every method, on one intensity window;
* :func:`ranking_figure` -- the ranks of a reader study per method (Table 1 as bars).
* :func:`critical_difference_figure` -- Friedman/post-hoc critical-difference diagrams per metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports.cases import CaseView
from reports.dvf_colour import dvf_rgba
from reports.pdf import new_page

BEFORE = "no registration"
BEFORE_COLOUR = "0.6"
WINDOW_PERCENTILES = (1.0, 99.0)


def method_colours(methods: list[str]) -> dict[str, tuple]:
    """A fixed colour per method (tab10 in method order), grey for "no registration"."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    colours = {m: cmap(i % 10) for i, m in enumerate(methods)}
    colours[BEFORE] = (0.6, 0.6, 0.6, 1.0)
    return colours


def _titled_page(title: str) -> Figure:
    """An A4 landscape page (:func:`reports.pdf.new_page`) with the figure's title in bold."""
    fig = new_page(landscape=True)
    fig.suptitle(title, fontsize=11, weight="bold")
    return fig


def _values(results: pd.DataFrame, method: str, structure: str, metric: str) -> np.ndarray:
    v = results.loc[
        (results["method"] == method)
        & (results["structure"] == structure)
        & (results["metric"] == metric),
        "value",
    ].to_numpy(dtype=np.float64)
    return v[np.isfinite(v)]


def _boxes(
    ax, data: list[np.ndarray], positions: list[float], colours: list, *, width=0.7, seed: int = 0
) -> None:
    """Boxplots with the individual values as jittered points (jitter from a fixed seed)."""
    rng = np.random.default_rng(seed)
    keep = [i for i, d in enumerate(data) if d.size]
    if keep:
        bp = ax.boxplot(
            [data[i] for i in keep],
            positions=[positions[i] for i in keep],
            widths=width,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black", "linewidth": 1},
        )
        for patch, i in zip(bp["boxes"], keep, strict=True):
            patch.set_facecolor(colours[i])
            patch.set_alpha(0.75)
    for i in keep:
        x = positions[i] + rng.uniform(-width / 4, width / 4, size=data[i].size)
        ax.scatter(x, data[i], s=4, color="black", alpha=0.5, linewidths=0, zorder=3)
    for i, d in enumerate(data):
        if not d.size:
            ax.text(
                positions[i],
                0.5,
                "no data",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="center",
                va="center",
                fontsize=7,
                color="red",
            )


def boxplot_figure(results: pd.DataFrame, methods: list[str]) -> Figure:
    """Figure 4 analogue: boxplots of folding % (whole image), Dice and Hausdorff distance per
    label structure, one box per method (Hausdorff: ``hd``, or ``hd95`` when ``hd`` is absent).
    NaN values are left out; a method without values shows "no data"."""
    colours = method_colours(methods)
    fig = _titled_page(
        "Folding, Dice and Hausdorff distance per structure and method (Figure 4 analogue)"
    )
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 2, 2]})
    fig.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.2, wspace=0.25)
    ax = axes[0]
    data = [_values(results, m, "image", "folding_pct") for m in methods]
    _boxes(ax, data, list(range(len(methods))), [colours[m] for m in methods])
    ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right")
    ax.set_ylabel("folding (% of volume)")
    ax.set_title("Folding")
    structures = [s for s in dict.fromkeys(results["structure"]) if s != "image"]
    hd_metric = "hd" if (results["metric"] == "hd").any() else "hd95"
    for ax, metric, label in (
        (axes[1], "dice", "Dice"),
        (
            axes[2],
            hd_metric,
            "Hausdorff distance (mm)"
            if hd_metric == "hd"
            else "95th percentile Hausdorff distance (mm)",
        ),
    ):
        step = len(methods) + 1
        data, positions, cols = [], [], []
        for g, s in enumerate(structures):
            for i, m in enumerate(methods):
                data.append(_values(results, m, s, metric))
                positions.append(g * step + i)
                cols.append(colours[m])
        _boxes(ax, data, positions, cols, seed=1)
        ax.set_xticks(
            [g * step + (len(methods) - 1) / 2 for g in range(len(structures))], structures
        )
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0])
        if not structures:
            ax.text(0.5, 0.5, "no label structures", transform=ax.transAxes, ha="center")
    fig.legend(
        handles=[Patch(facecolor=colours[m], alpha=0.75, label=m) for m in methods],
        loc="lower center",
        ncol=min(len(methods), 6),
        frameon=False,
    )
    return fig


def nmi_before(results: pd.DataFrame) -> np.ndarray:
    """NMI before registration, one value per (case, pair): the first finite ``nmi_before``."""
    rows = results[(results["structure"] == "image") & (results["metric"] == "nmi_before")]
    rows = rows[np.isfinite(rows["value"].to_numpy(dtype=np.float64))]
    return rows.groupby(["case", "pair"], sort=True)["value"].first().to_numpy(dtype=np.float64)


def nmi_folding_figure(results: pd.DataFrame, methods: list[str]) -> Figure:
    """Figure 2 analogue: histogram-based NMI before registration and after each method (left) and
    the folding percentage per method with the number of registrations that fold (right)."""
    colours = method_colours(methods)
    fig = _titled_page(
        "NMI before and after registration, and folding per method (Figure 2 analogue)"
    )
    left, right = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.22, wspace=0.25)
    labels = [BEFORE, *methods]
    data = [nmi_before(results)] + [_values(results, m, "image", "nmi") for m in methods]
    _boxes(left, data, list(range(len(labels))), [colours[x] for x in labels], seed=2)
    left.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    left.set_ylabel("normalized mutual information (histogram)")
    left.set_title("NMI")
    data = [_values(results, m, "image", "folding_pct") for m in methods]
    _boxes(right, data, list(range(len(methods))), [colours[m] for m in methods], seed=3)
    right.set_xticks(range(len(methods)), methods, rotation=60, ha="right")
    right.set_ylabel("folding (% of volume)")
    right.set_title("Folding (registrations with folding / all)", pad=14)
    for i, d in enumerate(data):
        if d.size:
            right.text(
                i,
                1.0,
                f"{int((d > 0).sum())}/{d.size}",
                transform=right.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    return fig


def folding_counts(results: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per method: registrations with any folding (``folding_pct > 0``), of how many, and NaNs."""
    rows = []
    for m in methods:
        v = results.loc[
            (results["method"] == m)
            & (results["structure"] == "image")
            & (results["metric"] == "folding_pct"),
            "value",
        ].to_numpy(dtype=np.float64)
        finite = v[np.isfinite(v)]
        rows.append(
            {
                "method": m,
                "with_folding": int((finite > 0).sum()),
                "n": int(finite.size),
                "n_nan": int(v.size - finite.size),
            }
        )
    return pd.DataFrame(rows, columns=["method", "with_folding", "n", "n_nan"])


def _window(images: list[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in images])
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    return (float(lo), float(hi)) if hi > lo else (float(lo), float(lo) + 1.0)


def case_figure(view: CaseView, methods: list[str]) -> Figure:
    """Figure 1/3 analogue for one pair.

    Columns: "no registration" (the moving image) and each method. Rows: the fixed image, the
    warped moving image, the subtraction ``warped - fixed``, and the displacement field as RGBA
    (components ``i, j, k`` as red, green, blue, from ``[-max, max]`` to ``[0, 1]``; vector length
    over its maximum as alpha, on black). Shared scales within the page: the intensity window is the
    1st-99th percentile of the fixed and moving slices; the subtraction window is symmetric,
    ``±`` the 99th percentile of ``|moving - fixed|``; ``max`` is the largest 99th percentile of
    ``|u_c|`` over methods and components and the length scale the largest 99th percentile of
    ``|u|``. Slices are drawn with ``i`` to the right and ``j`` up, at their physical aspect.
    """
    columns = [BEFORE, *methods]
    where = f", slice k = {view.slice_index}" if view.slice_index is not None else ""
    fig = _titled_page(
        f"{view.case} / {view.pair} (fold {view.fold}{where}): fixed, warped, "
        "subtraction and displacement field"
    )
    axes = np.atleast_2d(fig.subplots(4, len(columns), squeeze=False))
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.1, wspace=0.04, hspace=0.08)
    lo, hi = _window([view.fixed, view.moving])
    diff = np.abs(view.moving.astype(np.float64) - view.fixed)
    dmax = float(np.percentile(diff, 99)) if diff.size else 1.0
    dmax = dmax if dmax > 0 else max(hi - lo, 1.0)
    comps = [np.percentile(np.abs(u), 99) for u in view.disp.values()]
    max_comp = float(max(comps)) if comps and max(comps) > 0 else 1.0
    lens = [
        np.percentile(np.sqrt((u.astype(np.float64) ** 2).sum(axis=0)), 99)
        for u in view.disp.values()
    ]
    max_len = float(max(lens)) if lens and max(lens) > 0 else 1.0
    aspect = view.spacing[1] / view.spacing[0]

    def say_missing(ax, reason: str) -> None:
        ax.text(0.5, 0.5, "missing:\n" + reason, transform=ax.transAxes, ha="center",
                va="center", fontsize=7, color="red")

    def show(ax, image, **kw):
        ax.imshow(np.asarray(image).T, origin="lower", aspect=aspect, **kw)

    for c, name in enumerate(columns):
        warped = view.moving if name == BEFORE else view.warped.get(name)
        disp = None if name == BEFORE else view.disp.get(name)
        show(axes[0, c], view.fixed, cmap="gray", vmin=lo, vmax=hi)
        axes[0, c].set_title(name, fontsize=8)
        for r, content in ((1, warped), (2, warped)):
            ax = axes[r, c]
            if content is None:
                say_missing(ax, view.missing.get(name, "no output"))
            elif r == 1:
                show(ax, content, cmap="gray", vmin=lo, vmax=hi)
            else:
                show(
                    ax, content.astype(np.float64) - view.fixed, cmap="gray", vmin=-dmax, vmax=dmax
                )
        ax = axes[3, c]
        ax.set_facecolor("black")
        if name == BEFORE:  # no registration: the zero field (transparent on black)
            components = next(iter(view.disp.values())).shape[0] if view.disp else 3
            disp = np.zeros((components, *view.fixed.shape))
        if disp is not None:
            rgba = dvf_rgba(disp, max_component=max_comp, max_length=max_len)  # (I, J, 4)
            ax.imshow(rgba.transpose(1, 0, 2), origin="lower", aspect=aspect)
        elif name != BEFORE:
            say_missing(ax, view.missing.get(name, "no displacement"))
    for r, label in enumerate(
        ("fixed", "warped\n(moving)", "warped - fixed", "displacement\nRGBA")
    ):
        axes[r, 0].set_ylabel(label, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.text(
        0.5,
        0.03,
        f"Intensity window [{lo:.4g}, {hi:.4g}] (1st-99th percentile of fixed and moving); "
        f"subtraction window ±{dmax:.4g}; field colours: i, j, k -> red, green, blue over "
        f"±{max_comp:.3g} mm, alpha = length / {max_len:.3g} mm. Selection score "
        f"{view.score:.4g}.",
        ha="center",
        fontsize=7,
    )
    return fig


def ranking_figure(contingency: pd.DataFrame) -> Figure:
    """Stacked bars of how often each method got each rank (the contingency table, Table 1)."""
    import matplotlib

    fig = Figure(figsize=(8.27, 4.0))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.18, right=0.97, top=0.85, bottom=0.15)
    k = contingency.shape[1]
    cmap = matplotlib.colormaps["RdYlGn_r"]
    left = np.zeros(len(contingency))
    for j, rank in enumerate(contingency.columns):
        counts = contingency[rank].to_numpy(dtype=np.float64)
        ax.barh(
            range(len(contingency)),
            counts,
            left=left,
            color=cmap(j / max(k - 1, 1)),
            label=f"rank {rank}",
            edgecolor="white",
        )
        for y, (x0, c) in enumerate(zip(left, counts, strict=True)):
            if c:
                ax.text(x0 + c / 2, y, str(int(c)), ha="center", va="center", fontsize=7)
        left += counts
    ax.set_yticks(range(len(contingency)), list(contingency.index))
    ax.invert_yaxis()
    ax.set_xlabel("rankings")
    ax.set_title("Ranks per method (1 = preferred)", fontsize=10, weight="bold")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=k, frameon=False)
    return fig


def critical_difference_figure(
    mean_ranks: dict[str, pd.Series],
    posthoc_p: dict[str, pd.DataFrame],
    cds: dict[str, float],
    *,
    alpha: float = 0.05,
) -> Figure:
    """Critical-difference diagrams (Demšar 2006), one per metric, drawn by scikit-posthocs.

    Methods are placed at their average within-case rank (1 = best, left); methods joined by a
    bar are not significantly different by the post-hoc test at ``alpha``; the critical
    difference (Nemenyi) is given in the panel title.
    """
    import scikit_posthocs as sp

    metrics = list(mean_ranks)
    colours = method_colours(list(next(iter(mean_ranks.values())).index)) if metrics else {}
    fig = _titled_page(
        f"Critical-difference diagrams (average rank over cases; bars: not different at "
        f"{alpha:g})"
    )
    axes = fig.subplots(max(len(metrics), 1), 1, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.2, right=0.8, top=0.9, bottom=0.05, hspace=1.0)
    for ax, metric in zip(axes, metrics, strict=True):
        ranks = mean_ranks[metric]
        p = posthoc_p[metric]
        if p.isna().all().all():
            ax.axis("off")
            ax.set_title(f"{metric}: fewer than 3 methods or 2 cases", fontsize=9)
            continue
        drawn = sp.critical_difference_diagram(
            ranks, p, ax=ax, alpha=alpha, label_props={"fontsize": 7}, color_palette=colours
        )
        _sort_crossbars(drawn["crossbars"])
        cd = cds.get(metric, float("nan"))
        ax.set_title(f"{metric} (CD = {cd:.2f})", fontsize=9)
    return fig


def _sort_crossbars(crossbars: list[list[Line2D]]) -> None:
    """Order the points of each crossbar by rank. scikit-posthocs draws a bar through a *set* of
    method names, whose order follows Python's string hashing (``PYTHONHASHSEED``): the same bar
    then gave other PNG and PDF bytes in another process. The bar is horizontal, so its drawing
    does not change."""
    for lines in crossbars:
        for line in lines:
            x, y = (np.asarray(v, dtype=float) for v in line.get_data())
            order = np.argsort(x, kind="stable")
            line.set_data(x[order], y[order])


def timeline_figure(timeline: pd.DataFrame, methods: list[str]) -> Figure:
    """The run's tasks per worker over time (:func:`reports.tables.task_timeline`): one row per
    worker process, a bar per task from its start to its end, coloured by method, trainings
    hatched; gaps are cores waiting."""
    fig = _titled_page("Task timeline (tasks per worker; gaps: idle)")
    ax = fig.add_axes((0.08, 0.14, 0.74, 0.74))
    colours = method_colours(methods)
    workers = sorted(timeline["worker"].unique())
    for row in timeline.itertuples(index=False):
        ax.barh(row.worker, row.end_s - row.start_s, left=row.start_s, height=0.7,
                color=colours.get(row.method, (0.5, 0.5, 0.5, 1.0)), edgecolor="0.2",
                linewidth=0.3, hatch="//" if row.kind == "train" else None)
    ax.set_yticks(workers, [f"worker {w}" for w in workers])
    ax.set_xlabel("seconds since the run's first task")
    ax.invert_yaxis()
    shown = [m for m in methods if m in set(timeline["method"])]
    handles = [Patch(color=colours[m], label=m) for m in shown]
    handles.append(Patch(facecolor="white", edgecolor="0.2", hatch="//", label="training"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
