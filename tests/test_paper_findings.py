"""The paper's findings, checked on the demos with the ``quick`` preset (slow: ``-m slow``).

Runs ``bench run --methods all --preset quick`` on demo-dce and demo-acdc (each in a temporary
folder, demo generated there) and checks the claims of de Vos et al. (2020) that the demos can
show:

- every learned method whose loss suits the data registers better than no registration (mean
  Dice over the structures, and mean displacement error against the generator's ground truth):
  on demo-acdc (one contrast) all four, on demo-dce the NMI-trained ones. Global NCC assumes a
  linear intensity relation, which the breast phases do not have (the gland turns from darker to
  brighter than fat): that NCC-trained networks do worse there is the paper's point, checked
  below as NMI beating NCC, and their validation flags them;
- demo-dce (non-linear enhancement between phases): the NMI-trained networks are more accurate
  than the NCC-trained ones (displacement error); U-Net-NMI within 1.25x elastix's error is the
  one claim the quick budget does not reach (a strict xfail: it fails once the claim holds);
  fine-tuned on each pair (``instance_steps=40``) PoolNet-NMI is within 1.25x of elastix;
- demo-acdc (one contrast): NMI and NCC give Dice on par;
- PoolNet folds less than U-Net (unless both fold on fewer than 0.01 % of the voxels: with the
  quick preset's half-resolution U-Net field both fold next to nothing on demo-acdc).

The table the checks read is printed first, so a failure shows the numbers.
"""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.cli import main

pytestmark = pytest.mark.slow

LEARNED = ("unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc")


def run_demo(dataset: str, tmp_path, *, methods: str = "all", settings=()) -> pd.DataFrame:
    """``bench run`` of the demo in ``tmp_path`` (generated there once; a later call with other
    methods or ``--set`` settings reuses the folder, its data and its trained models)."""
    root, out = tmp_path / "data", tmp_path / "run"
    if not root.exists():
        assert main(["data", "demo", dataset, "--out", str(root)]) == 0
    extra = [arg for setting in settings for arg in ("--set", setting)]
    assert main(
        ["run", "--methods", methods, "--dataset", dataset, "--root", str(root), "--out", str(out),
         "--preset", "quick", "--jobs", "2", *extra]
    ) == 0
    return pd.read_csv(out / "results.csv")


@pytest.fixture(scope="module")
def dce_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-dce")


@pytest.fixture(scope="module")
def dce(dce_folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """demo-dce's results and their table (one run for the module)."""
    results = run_demo("demo-dce", dce_folder)
    return results, table(results)


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean per method of: Dice over the structures, displacement error, folding."""
    labels = results[results["metric"] == "dice"]
    image = results[results["structure"] == "image"]
    per_method = {
        "dice": labels.groupby("method")["value"].mean(),
        "disp_error_mm": image[image["metric"] == "disp_error_mm"].groupby("method")["value"].mean(),
        "folding_pct": image[image["metric"] == "folding_pct"].groupby("method")["value"].mean(),
    }
    frame = pd.DataFrame(per_method)
    print("\n" + frame.round(4).to_string())
    return frame


#: Folding below this share of the voxels (%) is negligible: in an ACDC-like volume of ~4e5 voxels,
#: a few tens of voxels. Between two such values "folds less" is noise, not a finding.
NEGLIGIBLE_FOLDING_PCT = 0.01


def check_common(frame: pd.DataFrame, improving: tuple[str, ...]) -> None:
    """The ``improving`` methods beat no registration; PoolNet folds less than U-Net (or both
    negligibly)."""
    for method in improving:
        assert frame.loc[method, "dice"] > frame.loc["identity", "dice"], method
        assert frame.loc[method, "disp_error_mm"] < frame.loc["identity", "disp_error_mm"], method
    for loss in ("nmi", "ncc"):
        unet = max(frame.loc[f"unet-{loss}", "folding_pct"], NEGLIGIBLE_FOLDING_PCT)
        assert frame.loc[f"poolnet-{loss}", "folding_pct"] <= unet, loss


def test_demo_dce_nmi_beats_identity_and_ncc(dce):
    results, frame = dce
    check_common(frame, ("unet-nmi", "poolnet-nmi"))
    assert results["case"].nunique() >= 12  # enough studies for a paired test
    for network in ("unet", "poolnet"):
        assert frame.loc[f"{network}-nmi", "disp_error_mm"] < frame.loc[f"{network}-ncc", "disp_error_mm"]


@pytest.mark.xfail(
    strict=True,
    reason="not reached in the quick budget (issue 10): U-Net-NMI 2.57 mm against elastix's "
    "0.55 mm in the breast (perf/README.md)",
)
def test_demo_dce_unet_nmi_nears_elastix(dce):
    _, frame = dce
    assert frame.loc["unet-nmi", "disp_error_mm"] <= 1.25 * frame.loc["elastix", "disp_error_mm"]


def test_demo_dce_fine_tuned_poolnet_nmi_nears_elastix(dce, dce_folder):
    """With instance-specific optimisation (``instance_steps=40``, docs/methods.md) the trained
    models are reused, both NMI networks come closer to the truth than in one pass, and
    PoolNet-NMI within 1.25x elastix's error."""
    _, one_pass = dce
    models = sorted((dce_folder / "run" / "models").glob("*-nmi/fold*/model.pt"))
    trained = {path: path.stat().st_mtime_ns for path in models}
    assert len(trained) == 2
    tuned = table(run_demo("demo-dce", dce_folder, methods="unet-nmi,poolnet-nmi",
                           settings=["instance_steps=40"]))  # fmt: skip
    assert {path: path.stat().st_mtime_ns for path in models} == trained  # not trained again
    for method in ("unet-nmi", "poolnet-nmi"):
        assert tuned.loc[method, "disp_error_mm"] < one_pass.loc[method, "disp_error_mm"], method
        assert tuned.loc[method, "dice"] > one_pass.loc[method, "dice"], method
    elastix = one_pass.loc["elastix", "disp_error_mm"]
    assert tuned.loc["poolnet-nmi", "disp_error_mm"] <= 1.25 * elastix


def test_demo_acdc_nmi_and_ncc_on_par(tmp_path):
    results = run_demo("demo-acdc", tmp_path)
    frame = table(results)
    check_common(frame, LEARNED)
    for network in ("unet", "poolnet"):
        nmi = frame.loc[f"{network}-nmi", "dice"]
        ncc = frame.loc[f"{network}-ncc", "dice"]
        assert abs(nmi - ncc) <= 0.05, (network, nmi, ncc)
