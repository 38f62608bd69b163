"""The report's sections one at a time (``reports.sections``): each built alone on a synthetic run
folder (``tests/fake_run.py``) and on the edge case it handles, and the declared list itself (ids,
titles, modules, conditions, table of contents). The whole report is tested in test_report.py."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import shutil

import numpy as np
import pandas as pd
import pytest
from fake_run import RUN_NAMES, make_fake_run, paper_table1_rankings
from matplotlib.text import Text

import reports.sections
from benchmark.core.errors import BenchError
from benchmark.runner.collect import COST_COLUMNS
from benchmark.stats.claims import CLAIMS
from reports.build import make_context
from reports.context import Context, Section, fmt_mapping, safe_name
from reports.pdf import report_style
from reports.runfolder import load_run
from reports.sections import SECTIONS, VARIABLE_OUTPUTS, active, table_of_contents

LEARNED = ["unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc"]
SPECS = {spec.id: spec for spec in SECTIONS}


@pytest.fixture(scope="module")
def ctx(fake_run_dir) -> Context:
    """A context of the shared fake run: one example pair, no rankings."""
    return make_context(load_run(fake_run_dir), n_cases=1, progress=False)


@pytest.fixture(scope="module")
def own_rankings(fake_run_dir, tmp_path_factory):
    """Rankings of three of the run's methods on every pair of the run, by one reader."""
    results = pd.read_csv(fake_run_dir / "results.csv", dtype={"case": str, "pair": str})
    keys = sorted(set(results["case"] + "/" + results["pair"]))
    methods = ["elastix", "unet-nmi", "poolnet-nmi"]
    path = tmp_path_factory.mktemp("own_rankings") / "rankings.csv"
    pd.DataFrame(
        [
            {"case": key, "method": m, "rank": (i + r) % 3 + 1, "reader": "r1"}
            for r, key in enumerate(keys)
            for i, m in enumerate(methods)
        ]
    ).to_csv(path, index=False)
    return path


def build(section_id: str, ctx: Context) -> Section:
    with report_style():
        return SPECS[section_id].build(ctx)


def text(section: Section) -> str:
    """Every text drawn on the section's pages."""
    return "\n".join(
        t.get_text() for page in section.pages for t in page.findobj(Text) if t.get_text()
    )


def names(pairs) -> list[str]:
    return [name for name, _ in pairs]


# ------------------------------------------------------------------------------ the list


def test_each_declared_section_is_one_module_with_its_title():
    ids = [spec.id for spec in SECTIONS]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "title"
    for spec in SECTIONS:
        module = importlib.import_module(f"reports.sections.{spec.id}")
        assert spec.build is module.build, spec.id
        assert spec.title == module.TITLE, spec.id
        assert module.__doc__, spec.id
    modules = {m.name for m in pkgutil.iter_modules(reports.sections.__path__)}
    assert modules == set(ids)  # no section module left out of the list
    assert len({spec.title for spec in SECTIONS}) == len(SECTIONS)


def test_the_conditions_and_the_contents_follow_the_rankings(ctx, fake_run_dir):
    without = table_of_contents(ctx)
    always = reports.sections.always
    assert [spec.id for spec in active(ctx)] == [s.id for s in SECTIONS if s.when is always]
    assert not any("Reader study" in line for line in without)
    assert "Figure 1/3 analogue: 1 example case(s)" in without
    assert without == ctx.contents
    rankings = paper_table1_rankings(names=RUN_NAMES)
    with_ranks = dataclasses.replace(ctx, rankings=rankings, selection=ctx.selection.iloc[:0])
    lines = table_of_contents(with_ranks)
    not_l2r = [s.id for s in SECTIONS if s.id != "learn2reg"]  # a demo-acdc run
    assert [spec.id for spec in active(with_ranks)] == not_l2r
    assert lines[-2:] == ("Reader study: Table 1 and its statistics", "Reader study versus metrics")
    assert "Figure 1/3 analogue: 0 example case(s)" in lines
    assert len(lines) == len(not_l2r) - 1  # every section but the title page is listed
    assert set(VARIABLE_OUTPUTS) >= {"figures/fig1_case*.png", "tables/ranking_*.csv"}


def test_text_helpers():
    assert safe_name("unet nmi/fold 0") == "unet_nmi_fold_0"
    assert safe_name("a.b_c-d") == "a.b_c-d"
    assert fmt_mapping({"a": {"b": 1}, "c": [1, 2]}) == "a: b: 1, c: [1, 2]"
    assert fmt_mapping([0, 1]) == "0, 1" and fmt_mapping("x") == "x"
    for empty in (None, {}, []):
        assert fmt_mapping(empty) == "not recorded"


# ------------------------------------------------------------------------------ sections


def test_title(ctx):
    section = build("title", ctx)
    assert len(section.pages) == 1 and not section.figures and not section.tables
    shown = text(section)
    assert "demo-acdc" in shown and "2026-11-20" in shown and "torch: 2.13.0" in shown
    assert "4 (4 cases)" in shown  # test pairs
    for line in ctx.contents:
        assert f"- {line}" in shown


def test_method_settings(ctx):
    section = build("method_settings", ctx)
    shown = text(section)
    assert names(section.tables) == ["methods"]
    table = section.tables[0][1]
    assert list(table["method"]) == ctx.methods
    # the fake run's entries predate the methods' summaries: said so, no label column
    assert set(table["metric"]) == {"not recorded"} and set(table["label"]) == {""}
    assert "label" not in shown.split("Methods\n", 1)[-1].split("\n", 1)[0]
    for method in ctx.methods:
        assert f"synthetic {method}" in shown
    assert "params: iterations: 10, seed: 0" in shown
    bare = dataclasses.replace(ctx, run=dataclasses.replace(ctx.run, run={}))
    assert text(build("method_settings", bare)).count("no configuration recorded") == 6


def test_method_settings_from_the_methods_summaries_on_a_multi_contrast_dataset(ctx):
    """The entries ``bench run`` writes (``method_entry``) for demo-dce's contrast: one row per
    method with its metric and who chose it, the NCC networks labelled, nothing else; the
    summary section marks the labelled methods."""
    from benchmark.runner.runfiles import method_entry
    from methods.base import RunContext
    from methods.registry import available_methods

    context = RunContext(preset="quick", contrast="different")
    entries = {}
    for method in ctx.methods:
        cls = available_methods()[method]
        entries[method] = method_entry(cls, cls.configure(context), "different")
    run_json = {**ctx.run.run, "methods": entries, "dataset": {"contrast": "different"}}
    labelled = dataclasses.replace(ctx, run=dataclasses.replace(ctx.run, run=run_json))
    section = build("method_settings", labelled)
    table = section.tables[0][1].set_index("method")
    ncc = [m for m in ctx.methods if m.endswith("-ncc")]
    assert ncc and set(table.index[table["label"] != ""]) == set(ncc)
    assert all(table.loc[m, "label"].endswith("on a multi-contrast dataset") for m in ncc)
    assert table.loc["unet-nmi", "metric"].startswith("NMI")
    assert table.loc["identity", "key settings"] == "none"  # a method without settings
    assert table.loc["elastix", "metric"].startswith("AdvancedMattesMutualInformation")
    if "greedy" in table.index:
        assert table.loc["greedy", "metric"] == "NMI"
        assert table.loc["greedy", "chosen by"] == "contrast (different)"
    shown = " ".join(text(section).split())  # subtitles are wrapped into lines
    assert "Dataset contrast: different" in shown and "on a multi-contrast dataset" in shown
    summary = " ".join(text(build("summary", labelled)).split())
    for m in ctx.methods:
        assert (f"{m} * " in summary) == (m in ncc), m
    assert f"{ncc[0]}: {table.loc[ncc[0], 'label']}" in summary


def test_training(ctx, tmp_path):
    section = build("training", ctx)
    assert names(section.tables) == ["validation"]
    assert sorted(names(section.figures)) == sorted(
        f"training_{m}_fold{f}" for m in LEARNED for f in (0, 1)
    )
    assert len(section.pages) == 1 + 8  # the models table, then the curves
    assert "1 model(s) are worse than no registration" in " ".join(text(section).split())
    # a second seed's model gets its own figure; a method no longer installed keeps its row only
    shutil.copytree(ctx.run.path / "models", tmp_path / "models")
    shutil.copytree(
        tmp_path / "models" / "unet-nmi" / "fold0", tmp_path / "models" / "unet-nmi" / "fold0-seed1"
    )
    v = ctx.run.validation
    extra = pd.concat(
        [v, v.iloc[:1].assign(seed=1), v.iloc[:1].assign(method="ghost-net")], ignore_index=True
    )
    run = dataclasses.replace(ctx.run, path=tmp_path, validation=extra)
    more = build("training", dataclasses.replace(ctx, run=run))
    assert set(names(more.figures)) - set(names(section.figures)) == {
        "training_unet-nmi_fold0-seed1"
    }
    assert "ghost-net" in text(more)
    empty = dataclasses.replace(ctx.run, validation=pd.DataFrame())
    assert build("training", dataclasses.replace(ctx, run=empty)) == Section()


def test_missing(ctx):
    section = build("missing", ctx)
    assert "Nothing is missing" in text(section)
    assert names(section.tables) == ["missing_data"] and section.tables[0][1].empty
    miss = pd.DataFrame(
        [
            {"what": "method-no-results", "method": "poolnet-ncc", "detail": "no rows"},
            {"what": "nan-metric", "method": "elastix", "detail": "LVb / hd: 1 NaN"},
            {"what": "something-new", "method": "", "detail": "a detail"},
        ]
    )
    run = dataclasses.replace(ctx.run, missing=miss)
    shown = text(build("missing", dataclasses.replace(ctx, run=run)))
    assert "Methods without results:" in shown and "  - poolnet-ncc: no rows" in shown
    assert "NaN metric values" in shown and "  - elastix: LVb / hd: 1 NaN" in shown
    assert "something-new:" in shown and "  - a detail" in shown
    assert "Nothing is missing" not in shown


def test_summary(ctx):
    section = build("summary", ctx)
    assert names(section.tables) == ["summary"] and section.tables[0][1] is ctx.summary
    shown = text(section)
    assert "LVb / hd [mm]" in shown and "image / folding_pct [%]" in shown
    assert "RV / dice" in shown and "RV / dice [" not in shown  # unitless: no [1]
    assert "mean ± SD" in shown


def test_claims(ctx, fake_run_dir, tmp_path, own_rankings):
    import dataclasses
    import json
    import shutil

    section = build("claims", ctx)
    claims = section.tables[0][1]
    assert names(section.tables) == ["claims"] and len(claims) == len(CLAIMS)
    assert "Dataset contrast: same" in text(section)
    shown = claims.set_index("claim")
    assert shown.loc["cine-folding-unet-more", "verdict"] in ("holds", "does not hold")
    assert shown.loc["dce-poolnet-on-par-elastix", "verdict"] == "not testable"
    assert "NOT TESTABLE: breast DCE" in text(section)
    # a run folder that states no contrast: every claim not testable, said why
    run = tmp_path / "run"
    shutil.copytree(fake_run_dir, run)
    info = json.loads((run / "run.json").read_text())
    del info["dataset"]["contrast"]
    (run / "run.json").write_text(json.dumps(info))
    bare = dataclasses.replace(ctx, run=load_run(run))
    claims = build("claims", bare).tables[0][1]
    assert (claims["verdict"] == "not testable").all()
    assert claims["reason"].str.contains("states no contrast").all()


def test_the_l2r_section_is_only_for_learn2reg_tasks(ctx):
    assert "learn2reg" not in [spec.id for spec in active(ctx)]  # demo-acdc's fake run
    assert not SPECS["learn2reg"].when(ctx)


def test_comparisons(ctx):
    section = build("comparisons", ctx)
    assert names(section.tables) == ["comparisons"]
    assert section.tables[0][1] is ctx.comparisons
    assert "P Holm" in text(section) and len(section.pages) >= 1


def test_costs(ctx):
    section = build("costs", ctx)
    assert not section.tables
    assert "No cost records (costs.csv)" in text(section)
    rows = [
        {"kind": "train", "method": "unet-nmi", "wall_s": 10.0, "iterations_per_s": 4.0},
        {"kind": "train", "method": "unet-nmi", "wall_s": 30.0, "iterations_per_s": 6.0},
        {"kind": "register", "method": "unet-nmi", "wall_s": 0.5},
        {"kind": "register", "method": "elastix", "wall_s": 20.0},
        {"kind": "register", "method": "elastix", "wall_s": 40.0},
    ]
    costs = pd.DataFrame(rows, columns=list(COST_COLUMNS)).assign(
        peak_rss_mb=512.0, peak_gpu_mb=0.0, device="cpu"
    )
    run = dataclasses.replace(ctx.run, costs=costs)
    section = build("costs", dataclasses.replace(ctx, run=run))
    assert names(section.tables) == ["costs"]
    table = section.tables[0][1].set_index("method")
    assert table.loc["unet-nmi", "train_s"] == 20.0 and table.loc["unet-nmi", "trainings"] == 2
    assert table.loc["elastix", "reg_s_median"] == 30.0
    assert np.isnan(table.loc["elastix", "train_s"])
    shown = text(section)
    assert "elastix" in shown and "NaN" in shown


def test_the_cost_section_draws_the_last_runs_timeline(ctx):
    """Two workers: worker 0 busy 0-10 s and 12-20 s, worker 1 busy 0-5 s; a task of an
    earlier run (started before run.json's start) is left out."""
    import datetime

    start = datetime.datetime.strptime(ctx.run.run["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    rows = [
        {"kind": "train", "method": "unet-nmi", "wall_s": 10.0, "pid": 11, "started": start},
        {"kind": "register", "method": "unet-nmi", "wall_s": 8.0, "pid": 11, "started": start + 12},
        {"kind": "register", "method": "elastix", "wall_s": 5.0, "pid": 12, "started": start + 0.5},
        {"kind": "register", "method": "elastix", "wall_s": 5.0, "pid": 12, "started": start - 99},
    ]
    costs = pd.DataFrame(rows, columns=list(COST_COLUMNS)).assign(
        peak_rss_mb=512.0, peak_gpu_mb=0.0, device="cpu", host="h"
    )
    run = dataclasses.replace(ctx.run, costs=costs)
    section = build("costs", dataclasses.replace(ctx, run=run))
    assert names(section.tables) == ["costs", "task_timeline", "workers"]
    assert names(section.figures) == ["task_timeline"]
    timeline = section.tables[1][1]
    assert len(timeline) == 3 and timeline["end_s"].max() == 20.0
    workers = section.tables[2][1].set_index("worker")
    assert workers.loc[0, "busy_s"] == 18.0 and workers.loc[0, "idle_pct"] == pytest.approx(10.0)
    assert workers.loc[1, "busy_s"] == 5.0 and workers.loc[1, "idle_pct"] == pytest.approx(75.0)


def test_seeds(ctx):
    section = build("seeds", ctx)
    assert not section.tables and "Every method ran with one seed" in text(section)
    r0 = ctx.results.assign(seed=0)
    r1 = r0[r0["method"] == "unet-nmi"].assign(seed=1)
    r1 = r1.assign(value=r1["value"] + 0.01)
    section = build("seeds", dataclasses.replace(ctx, results=pd.concat([r0, r1])))
    assert names(section.tables) == ["seed_spread"]
    spread = section.tables[0][1]
    assert set(spread["method"]) == {"unet-nmi"} and (spread["seeds"] == 2).all()
    row = spread[(spread["structure"] == "LVb") & (spread["metric"] == "dice")].iloc[0]
    base = r0[(r0["method"] == "unet-nmi") & (r0["structure"] == "LVb") & (r0["metric"] == "dice")]
    assert row["pair_sd"] == pytest.approx(0.01 / np.sqrt(2))
    assert row["seed_mean_min"] == pytest.approx(base["value"].mean())
    assert row["seed_mean_max"] == pytest.approx(base["value"].mean() + 0.01)
    assert "pair_sd" in text(section)


def test_metric_ranking(ctx):
    section = build("metric_ranking", ctx)
    assert names(section.figures) == ["critical_difference"]
    assert section.pages[-1] is section.figures[0][1]
    assert names(section.tables) == [
        "metric_ranks", "metric_rank_tests", "metric_rank_friedman", "dsc30"
    ]
    ranks = section.tables[0][1]
    assert sorted(ranks["method"]) == sorted(ctx.methods)
    shown = text(section)
    assert "Friedman tests, nemenyi post-hoc" in shown and "geo mean" in shown
    assert section.tables[3][1].empty and "DSC30" not in shown  # no dice_before in the run
    dice = ctx.results[ctx.results["metric"] == "dice"]
    before = dice.assign(metric="dice_before", value=dice["value"] - 0.1)
    with_before = dataclasses.replace(ctx, results=pd.concat([ctx.results, before]))
    section = build("metric_ranking", with_before)
    d30 = section.tables[3][1]
    assert d30["method"].tolist() == ctx.methods and (d30["n"] == 2).all()  # ceil(0.3 x 4)
    assert "DSC30: mean Dice over the 2 hardest cases" in text(section)
    alone = dataclasses.replace(
        ctx, methods=["elastix"], results=ctx.results[ctx.results["method"] == "elastix"]
    )
    section = build("metric_ranking", alone)
    assert not section.tables and not section.figures and len(section.pages) == 1
    assert "No ranking: ranking needs at least two methods" in text(section)


def test_nmi_vs_ncc(ctx):
    section = build("nmi_vs_ncc", ctx)
    pairs = section.tables[0][1]
    assert names(section.tables) == ["nmi_vs_ncc"] and len(pairs) == 2 * (3 * 3 + 4)
    assert {tuple(p) for p in pairs[["a", "b"]].to_numpy()} == {
        ("unet-nmi", "unet-ncc"), ("poolnet-nmi", "poolnet-ncc")
    }
    assert "unet-nmi vs unet-ncc" in text(section)


def test_nmi_vs_ncc_without_such_pairs(tmp_path):
    run = make_fake_run(tmp_path, n_cases=2, methods=("identity", "elastix"), shape=(16, 16, 4))
    small = make_context(load_run(run), n_cases=0, progress=False)
    section = build("nmi_vs_ncc", small)
    assert section.tables[0][1].empty and "No data." in text(section)
    assert build("training", small) == Section()  # no method learns: no validation.csv


def test_figure4_and_figure2(ctx):
    section = build("figure4", ctx)
    assert names(section.figures) == ["fig4_boxplots"] and section.pages == [section.figures[0][1]]
    counts = section.tables[0][1]
    assert names(section.tables) == ["folding_counts"]
    assert set(ctx.methods) <= set(counts.astype(str).to_numpy().ravel())
    assert "Figure 4 analogue" in text(section)
    section = build("figure2", ctx)
    assert names(section.figures) == ["fig2_nmi_folding"] and len(section.pages) == 1
    assert not section.tables and "Figure 2 analogue" in text(section)


def test_cases(ctx):
    section = build("cases", ctx)
    (row,) = ctx.selection.itertuples(index=False)
    assert names(section.figures) == [f"fig1_case1_{row.case}_{row.pair}"]
    assert len(section.pages) == 2 and section.pages[1] is section.figures[0][1]
    assert "Pairs shown: 1, chosen by largest deformation" in text(section)  # wrapped at 95
    assert names(section.tables) == ["case_selection"]
    none = build("cases", dataclasses.replace(ctx, selection=ctx.selection.iloc[:0]))
    assert not none.figures and len(none.pages) == 1
    assert "No example cases" in text(none)


def test_table1(ctx, tmp_path):
    path = tmp_path / "rankings.csv"
    paper_table1_rankings(names=RUN_NAMES).to_csv(path, index=False)
    with_ranks = make_context(ctx.run, rankings=path, n_cases=0, progress=False)
    section = build("table1", with_ranks)
    assert names(section.figures) == ["table1_ranks"]
    assert names(section.tables) == ["ranking_contingency", "ranking_pairwise", "ranking_tests"]
    contingency = section.tables[0][1].set_index("method")
    assert contingency.loc["unet-nmi"].tolist() == [13, 12, 25]
    assert contingency.loc["elastix"].tolist() == [17, 18, 15]
    shown = text(section)
    assert "32 of 50 (64%)" in shown and "Table 1: ranks of 50 rankings of 50 cases" in shown
    assert "Reader agreement" not in shown  # one reader
    tests = section.tables[2][1]
    assert tests["test"].tolist() == ["chi-square independence", "Friedman", "Kendall W"]


def test_readers_vs_metrics(ctx, own_rankings, tmp_path):
    with_ranks = make_context(ctx.run, rankings=own_rankings, n_cases=0, progress=False)
    section = build("readers_vs_metrics", with_ranks)
    per_case = section.tables[0][1]
    assert names(section.tables) == ["readers_vs_metrics"]
    assert per_case["case"].tolist() == sorted(with_ranks.rankings["case"].unique())
    assert per_case["tau"].between(-1, 1).all()
    assert "Kendall tau" in text(section)
    # the paper's rankings name methods the run does not have: refused, naming them
    path = tmp_path / "paper.csv"
    paper_table1_rankings().to_csv(path, index=False)
    with pytest.raises(BenchError, match=r"ranks method\(s\) U-Net, PoolNet that the run does"):
        make_context(ctx.run, rankings=path, n_cases=0, progress=False)
