"""``Method.summary``: what run.json and the report's methods table say of each method configured
for a run (metric, transform, key settings, who chose them, whether the metric assumes one
contrast), built from the parameters ``configure`` records; None for a method that does not say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.core.errors import BenchError
from benchmark.core.pairs import RegistrationPair
from methods.base import SUMMARY_KEYS, Method, RegistrationResult, RunContext, method_summary
from methods.fields import fields_class
from methods.registry import BUILTINS, available_methods


def _summary(name: str, **context):
    cls = available_methods()[name]
    return cls.summary(cls.configure(RunContext(preset="quick", **context)))


class _PlugIn(Method):
    name = "plug-in"
    description = "a method that says nothing about itself"

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        return RegistrationResult(np.zeros((pair.ndim, *pair.fixed.shape), np.float32))


def test_a_plug_in_says_nothing_and_every_built_in_answers_json():
    assert _PlugIn.summary(_PlugIn.configure(RunContext())) is None
    for name in BUILTINS:
        for contrast in (None, "same", "different"):
            summary = _summary(name, contrast=contrast)
            assert tuple(summary) == SUMMARY_KEYS, name
            assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_method_summary_checks_its_fields():
    with pytest.raises(BenchError, match="settings must be JSON-serialisable"):
        method_summary(
            metric="NMI", transform="B-spline", settings={"x": object()}, chosen_by="preset",
            assumes_one_contrast=False,
        )
    with pytest.raises(BenchError, match="metric must be a non-empty string"):
        method_summary(
            metric="", transform="B-spline", settings={}, chosen_by="preset",
            assumes_one_contrast=False,
        )
    with pytest.raises(BenchError, match="assumes_one_contrast must be true, false or null"):
        method_summary(
            metric="NMI", transform="B-spline", settings={}, chosen_by="preset",
            assumes_one_contrast="no",
        )


def test_greedy_says_what_the_contrast_or_the_user_chose():
    different = _summary("greedy", contrast="different")
    assert different["metric"] == "NMI" and different["assumes_one_contrast"] is False
    assert different["transform"] == "rigid (-dof 6) + stationary velocity field (-sv)"
    assert different["chosen_by"] == "contrast (different)"
    assert different["settings"]["rigid_iterations"] == [100, 50, 10]
    assert different["settings"]["rigid_mask"] is False
    same = _summary("greedy", contrast="same")
    assert same["metric"] == "local NCC (radius 2 voxels)" and same["assumes_one_contrast"]
    assert same["transform"] == "greedy dense field" and same["chosen_by"] == "contrast (same)"
    assert "rigid_iterations" not in same["settings"]
    assert _summary("greedy")["chosen_by"] == "preset"
    forced = _summary("greedy", contrast="different", overrides={"greedy.metric": "ncc"})
    assert forced["assumes_one_contrast"] is True
    assert forced["chosen_by"] == "user (--set greedy.metric=ncc); contrast (different)"


def test_elastix_names_the_metric_of_its_preset_or_of_the_users_file(tmp_path):
    quick = _summary("elastix")
    cls = available_methods()["elastix"]
    paper = cls.summary(cls.configure(RunContext(preset="paper")))
    assert quick["metric"] == "AdvancedMattesMutualInformation (64 bins)"
    assert paper["metric"] == "NormalizedMutualInformation (64 bins)"
    assert (quick["settings"]["resolutions"], paper["settings"]["resolutions"]) == (2, 3)
    assert quick["transform"] == "B-spline" and quick["chosen_by"] == "preset"
    assert not quick["assumes_one_contrast"] and not paper["assumes_one_contrast"]
    user = _summary("elastix", overrides={"elastix.iterations": 7})
    assert user["chosen_by"] == "preset; user (--set elastix.iterations=7)"
    assert user["settings"]["iterations"] == 7
    own = tmp_path / "ssd.txt"
    own.write_text('(Transform "BSplineTransform")\n(Metric "AdvancedMeanSquares")\n')
    mine = cls.summary({"parameter_file": [str(own)]})
    assert mine["metric"] == "AdvancedMeanSquares" and mine["transform"] == "BSplineTransform"
    assert mine["assumes_one_contrast"] is True
    assert mine["chosen_by"] == f"user (--set elastix.parameter_file={own})"
    gone = cls.summary({"parameter_file": [str(tmp_path / "gone.txt")]})
    assert gone["metric"] == "unknown (parameter file)" and gone["assumes_one_contrast"] is None


def test_ants_syn_keeps_mattes_mi_for_both_contrasts():
    for contrast in ("same", "different"):
        summary = _summary("ants-syn", contrast=contrast)
        assert summary["metric"] == "Mattes MI (32 bins)" and not summary["assumes_one_contrast"]
        assert summary["settings"]["iterations"] == [100, 70, 20]
        assert summary["chosen_by"] == "preset"
    user = _summary("ants-syn", overrides={"ants-syn.iterations": [5, 4, 3]})
    assert user["chosen_by"] == "preset; user (--set ants-syn.iterations=5,4,3)"
    assert user["settings"]["iterations"] == [5, 4, 3]


def test_learned_methods_name_their_loss_and_transform():
    ncc = _summary("unet-ncc")
    assert ncc["metric"] == "NCC (global per patch)" and ncc["assumes_one_contrast"] is True
    assert ncc["transform"] == "dense field (U-Net)"
    assert ncc["chosen_by"] == "method (the loss); preset"
    local = _summary("poolnet-ncc", overrides={"ncc_window": 9, "iterations": 40})
    assert local["metric"] == "NCC (local, window 9 voxels)"
    assert local["transform"] == "B-spline control points (PoolNet)"
    assert local["settings"]["iterations"] == 40
    assert local["chosen_by"] == (
        "method (the loss); preset; the manifest's presets or --set (iterations=40)"
    )
    manifest = _summary("unet-nmi", presets={"quick": {"instance_steps": 5}})
    assert manifest["chosen_by"].endswith("(instance_steps=5)")
    nmi = _summary("poolnet-nmi", overrides={"nmi_bins": 16})
    assert nmi["metric"] == "NMI (Parzen, 16 bins, sigma 0.02)"
    assert nmi["assumes_one_contrast"] is False


def test_identity_and_precomputed_fields(tmp_path):
    identity = _summary("identity", contrast="different")
    assert (identity["metric"], identity["assumes_one_contrast"]) == ("none", False)
    cls = fields_class("mine", tmp_path)
    fields = cls.summary(cls().params)
    assert fields["metric"] == "unknown" and fields["chosen_by"] == "unknown"
    assert fields["assumes_one_contrast"] is None
    assert fields["settings"] == {"directory": str(tmp_path.resolve())}


class _SsdPlugIn(_PlugIn):
    """A plug-in whose similarity (SSD) assumes one contrast, and says so."""

    name = "ssd-plug-in"
    description = "zero field, says it optimises SSD"

    @classmethod
    def summary(cls, params):
        return method_summary(metric="SSD (sum of squared differences)", transform="none",
                              settings={}, chosen_by="method", assumes_one_contrast=True)


@pytest.mark.parametrize("demo, labelled", [("demo-dce", True), ("demo-acdc", False)])
def test_a_run_labels_a_one_contrast_similarity_only_on_a_multi_contrast_dataset(
    demo, labelled, tmp_path, clean_registry, monkeypatch, capsys
):
    """``bench run`` records each method's summary and label in run.json and prints the label;
    the report's methods table reads them."""
    from benchmark.cli import main
    from methods import registry
    from reports.build import make_context
    from reports.runfolder import load_run
    from reports.sections import method_settings

    monkeypatch.setitem(registry._REGISTERED, _SsdPlugIn.name, _SsdPlugIn)
    root, out = tmp_path / "data", tmp_path / "run"
    assert main(["data", "demo", demo, "--out", str(root), "--cases", "4"]) == 0
    capsys.readouterr()
    assert main(["run", "--methods", "identity,ssd-plug-in", "--dataset", demo, "--root",
                 str(root), "--folds", "0", "--out", str(out), "--preset", "quick"]) == 0
    printed = capsys.readouterr().out
    entries = json.loads((out / "run.json").read_text())["methods"]
    assert entries["identity"]["summary"]["metric"] == "none"
    assert entries["identity"]["label"] is None
    label = "SSD on a multi-contrast dataset" if labelled else None
    assert entries["ssd-plug-in"]["label"] == label
    assert (f"label: ssd-plug-in: {label}" in printed) == labelled
    table = method_settings.methods_table(make_context(load_run(out), n_cases=0, progress=False))
    assert list(table["label"]) == ["", label or ""]
    assert list(table["metric"]) == ["none", "SSD (sum of squared differences)"]
