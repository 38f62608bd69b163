"""The title page: what the run is (folder, date, dataset and manifest, methods, folds, test pairs,
presets, seeds, versions, command, report version) and the table of contents
(:attr:`reports.context.Context.contents`)."""

from __future__ import annotations

import shlex
import textwrap

from matplotlib.figure import Figure

from benchmark import __version__
from reports.context import Context, Section, fmt_mapping
from reports.pdf import new_page
from reports.runfolder import RunFolder

TITLE = "MIRBench report"


def build(ctx: Context) -> Section:
    """One page: the run's facts and the table of contents."""
    return Section(pages=[_title_page(ctx.run, list(ctx.contents))])


def _command(command) -> str:
    if isinstance(command, (list, tuple)):
        return shlex.join(str(c) for c in command)
    return str(command) if command else "not recorded"


def _fold_summary(run: RunFolder) -> str:
    if run.folds:
        parts = []
        for k in sorted(run.folds, key=lambda x: (not str(x).isdigit(), len(str(x)), str(x))):
            f = run.folds[k]
            if isinstance(f, dict):
                val = f" / {len(f['val'])} val" if f.get("val") else ""
                parts.append(
                    f"fold {k}: {len(f.get('train', []))} train{val} / "
                    f"{len(f.get('test', []))} test"
                )
        return f"{len(run.folds)} folds ({'; '.join(parts)})"
    if len(run.pairs):
        counts = run.pairs.groupby("fold").size()
        return (
            f"{len(counts)} folds ("
            + "; ".join(f"fold {k}: {v} test pairs" for k, v in counts.items())
            + ")"
        )
    folds = sorted(set(run.results["fold"]))
    return f"{len(folds)} folds ({', '.join(map(str, folds))})" if folds else "not recorded"


def _facts(run: RunFolder) -> list[tuple[str, str]]:
    """(label, value) of every line of the title page's run description."""
    ds = run.run.get("dataset")
    manifest = ""
    if isinstance(ds, dict) and (ds.get("manifest") or ds.get("path")):
        manifest = f"{ds.get('manifest') or ds['path']}" + (
            f" (sha256 {str(ds['sha256'])[:16]}...)" if ds.get("sha256") else ""
        )
    methods_cfg = run.run.get("methods")
    presets = run.run.get("presets") or run.run.get("preset")
    if presets is None and isinstance(methods_cfg, dict):
        presets = {
            m: c.get("preset")
            for m, c in methods_cfg.items()
            if isinstance(c, dict) and c.get("preset")
        } or None
    n_pairs = run.results[["case", "pair"]].drop_duplicates().shape[0]
    return [
        ("Run folder", run.path.name),
        ("Date of the run", run.date),
        ("Dataset", run.dataset),
        ("Manifest", manifest or "not recorded"),
        ("Methods", ", ".join(run.methods)),
        ("Folds", _fold_summary(run)),
        (
            "Test pairs",
            f"{len(run.pairs) if len(run.pairs) else n_pairs} "
            f"({run.results['case'].nunique()} cases)",
        ),
        ("Presets", fmt_mapping(presets)),
        ("Seeds", fmt_mapping(run.run.get("seeds", run.run.get("seed")))),
        ("Versions", fmt_mapping(run.run.get("versions"))),
        ("Command", _command(run.run.get("command"))),
        ("Report", f"mirbench {__version__}"),
    ]


def _title_page(run: RunFolder, contents: list[str]) -> Figure:
    fig = new_page()
    w, h = fig.get_size_inches()
    fig.text(0.5, 1 - 1.2 / h, TITLE, ha="center", fontsize=22, weight="bold")
    fig.text(
        0.5,
        1 - 1.6 / h,
        "Unsupervised deep-learning image registration with mutual "
        "information (after de Vos et al., SPIE Medical Imaging 2020)",
        ha="center",
        fontsize=9,
        color="0.3",
    )
    y = 2.4
    for label, value in _facts(run):
        lines = textwrap.wrap(str(value), 80) or [""]
        fig.text(0.9 / w, 1 - y / h, label, fontsize=9, weight="bold", va="top")
        for line in lines:
            fig.text(2.5 / w, 1 - y / h, line, fontsize=9, va="top")
            y += 0.2
        y += 0.08
    y += 0.3
    fig.text(0.9 / w, 1 - y / h, "Contents", fontsize=11, weight="bold", va="top")
    y += 0.3
    for item in contents:
        fig.text(1.1 / w, 1 - y / h, f"- {item}", fontsize=9, va="top")
        y += 0.2
    return fig
