"""The paper's claims on the demos, with the ``quick`` preset (slow: ``-m slow``).

Runs ``bench run --methods all --preset quick --jobs 2`` on demo-dce and demo-acdc (each in a
temporary folder, the demo generated there), prints the ``claims.csv`` the run wrote
(:mod:`benchmark.stats.claims`: the claims as de Vos et al. state them, each decided by a
case-level paired test or by the paper's counting) and asserts each claim's verdict:

- demo-dce (contrast changes between the phases), one pass and fine-tuned on each pair
  (``--set instance_steps=40``, the trained models reused): PoolNet-NMI on par with elastix,
  U-Net-NMI behind elastix, registrations with folding U-Net >= PoolNet >= elastix = 0, the
  highest NMI after registration for U-Net and the lowest for elastix;
- demo-acdc (one contrast): every network reaches high Dice, NMI and NCC on par, the folding and
  smoothness claims of Figure 4.

A claim measured not to hold on a demo is a strict xfail whose reason gives the numbers of the
measured run (:data:`NOT_HOLDING`); it fails as soon as the claim holds. A claim whose verdict was
measured to differ between machines (:data:`VERDICT_VARIES`: the networks' training follows the
CPU's floating-point kernels, so their numbers differ in the last digits and then more) passes
when it holds and is an xfail with both measurements when it does not; what both machines showed
is asserted on its own (:func:`test_demo_acdc_nmi_and_ncc_within_a_hundredth`). Nothing is tuned
to make a claim hold. Besides the claims, the learned methods whose loss suits the data must beat
no registration.
"""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.cli import main

pytestmark = pytest.mark.slow

LEARNED = ("unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc")

#: (demo, variant, claim) -> why the claim does not hold there, with the measured numbers.
NOT_HOLDING: dict[tuple[str, str, str], str] = {
    ("demo-dce", "one pass", "dce-poolnet-on-par-elastix"):
        "one pass with the quick budget: PoolNet-NMI 2.41 mm against elastix's 0.55 mm in the "
        "breast (paired Wilcoxon over 12 studies, P < 0.001; run of 2026-12-07, perf/README.md); "
        "fine-tuned on each pair it holds (0.549 against 0.550 mm, P 0.42). On an AMD EPYC VM the "
        "same: 2.374 against 0.550 mm, P < 0.001; fine-tuned 0.544, P 0.52",
    ("demo-dce", "one pass", "dce-nmi-unet-highest-elastix-lowest"):
        "one pass with the quick budget the networks register less than elastix and their NMI "
        "after registration stays below elastix's: U-Net-NMI 0.110, PoolNet-NMI 0.105, elastix "
        "0.160 (means over 12 studies; run of 2026-12-07); fine-tuned on each pair it holds "
        "(0.166, 0.162, 0.160). On an AMD EPYC VM the same: 0.1095, 0.1061, 0.1604; fine-tuned "
        "0.1665, 0.1622, 0.1604",
    ("demo-acdc", "one pass", "cine-folding-unet-more"):
        "almost no folding with the quick preset's bending weight: mean folding 0 % for U-Net-NMI "
        "and both PoolNets, 0.0014 % for U-Net-NCC, so the U-Nets do not fold 'much more' "
        "(run of 2026-12-07; on an AMD EPYC VM 0 % and 0.0011 %)",
    ("demo-acdc", "one pass", "cine-unet-nmi-least-smooth"):
        "the NCC-trained U-Net's fields are the least smooth: SD of log |J| U-Net-NMI 0.161, "
        "U-Net-NCC 0.176, PoolNet-NMI 0.135, PoolNet-NCC 0.149 (run of 2026-12-07; on an AMD "
        "EPYC VM 0.168, 0.174, 0.138, 0.147)",
}

#: (demo, variant, claim) -> the verdicts measured on different machines, with their numbers. The
#: claim passes where it holds and is an xfail with this reason where it does not.
VERDICT_VARIES: dict[tuple[str, str, str], str] = {
    ("demo-acdc", "one pass", "cine-nmi-ncc-on-par"):
        "the verdict depends on the machine: on the VM of the first measurement (CPU not "
        "recorded) the NCC-trained networks ended slightly ahead in Dice (U-Net 0.8768 NMI "
        "against 0.8827 NCC, paired Wilcoxon over 8 cases P 0.078; PoolNet 0.8823 against "
        "0.8890, P 0.039); on an AMD EPYC VM (torch CPU capability AVX2) it holds (U-Net 0.8788 "
        "against 0.8830, P 0.31; PoolNet 0.8865 against 0.8867, P 0.84); same code, both runs "
        "of 2026-12-07. On both, NMI and NCC within 0.007 mean Dice",
}
#: Mean Dice within which NMI- and NCC-trained networks were on par on every machine measured.
ON_PAR_DICE = 0.01

DCE_CLAIMS = (
    "dce-poolnet-on-par-elastix",
    "dce-unet-behind-elastix",
    "dce-folding-unet-poolnet-elastix",
    "dce-nmi-unet-highest-elastix-lowest",
)
ACDC_CLAIMS = (
    "cine-networks-high-dice",
    "cine-nmi-ncc-on-par",
    "cine-folding-unet-more",
    "cine-folding-unet-ncc-most",
    "cine-folding-poolnet-nmi-lowest",
    "cine-unet-nmi-least-smooth",
)


def run_demo(dataset: str, folder, *, methods: str = "all", settings=()) -> pd.DataFrame:
    """``bench run`` of the demo in ``folder`` (generated there once; a later call with other
    methods or settings reuses the folder, its data and trained models, and keeps the rows of
    the methods it does not run); returns the claims table the run wrote, printed, with the
    mean Dice and displacement error per method of the run as ``attrs``."""
    root, out = folder / "data", folder / "run"
    if not root.exists():
        assert main(["data", "demo", dataset, "--out", str(root)]) == 0
    extra = [arg for setting in settings for arg in ("--set", setting)]
    assert main(
        ["run", "--methods", methods, "--dataset", dataset, "--root", str(root), "--out", str(out),
         "--preset", "quick", "--jobs", "2", *extra]
    ) == 0
    claims = pd.read_csv(out / "claims.csv", keep_default_na=False)
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        print("\n" + claims[["claim", "verdict", "numbers", "test", "reason"]].to_string())
    results = pd.read_csv(out / "results.csv")
    for metric in ("dice", "disp_error_mm"):
        claims.attrs[metric] = results[results["metric"] == metric].groupby("method")["value"].mean()
    return claims


def check(claims: pd.DataFrame, demo: str, variant: str, claim: str) -> None:
    row = claims.set_index("claim").loc[claim]
    varies = VERDICT_VARIES.get((demo, variant, claim))
    if varies is not None and row["verdict"] == "does not hold":
        pytest.xfail(f"{claim}: {varies} (this run: {row['numbers']}; {row['test']})")
    why = NOT_HOLDING.get((demo, variant, claim))
    if why is not None:
        assert row["verdict"] == "does not hold", f"{claim} now holds: remove it from NOT_HOLDING"
        pytest.xfail(f"{claim}: {why}")
    assert row["verdict"] == "holds", f"{claim}: {row['verdict']} ({row['numbers']}; {row['test']})"


@pytest.fixture(scope="module")
def dce_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-dce")


@pytest.fixture(scope="module")
def dce(dce_folder) -> pd.DataFrame:
    return run_demo("demo-dce", dce_folder)


@pytest.fixture(scope="module")
def dce_tuned(dce, dce_folder) -> pd.DataFrame:
    """The NMI networks fine-tuned on each pair (40 steps), their trained models reused."""
    models = sorted((dce_folder / "run" / "models").glob("*-nmi/fold*/model.pt"))
    trained = {path: path.stat().st_mtime_ns for path in models}
    assert len(trained) == 2
    claims = run_demo("demo-dce", dce_folder, methods="unet-nmi,poolnet-nmi",
                      settings=["instance_steps=40"])  # fmt: skip
    assert {path: path.stat().st_mtime_ns for path in models} == trained  # not trained again
    return claims


@pytest.fixture(scope="module")
def acdc_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-acdc")


@pytest.fixture(scope="module")
def acdc(acdc_folder) -> pd.DataFrame:
    return run_demo("demo-acdc", acdc_folder)


@pytest.mark.parametrize("claim", DCE_CLAIMS)
def test_demo_dce_one_pass(dce, claim):
    check(dce, "demo-dce", "one pass", claim)


@pytest.mark.parametrize("claim", DCE_CLAIMS)
def test_demo_dce_fine_tuned(dce_tuned, claim):
    check(dce_tuned, "demo-dce", "instance_steps=40", claim)


@pytest.mark.parametrize("claim", ACDC_CLAIMS)
def test_demo_acdc(acdc, claim):
    check(acdc, "demo-acdc", "one pass", claim)


def test_the_suited_networks_beat_no_registration(dce, acdc):
    """In one pass, on demo-acdc all four networks, on demo-dce the NMI-trained ones (global
    NCC assumes one contrast: its failure there is the paper's point), in Dice and displacement
    error."""
    for claims, suited in ((dce, ("unet-nmi", "poolnet-nmi")), (acdc, LEARNED)):
        dice, error = claims.attrs["dice"], claims.attrs["disp_error_mm"]
        for method in suited:
            assert dice[method] > dice["identity"], method
            assert error[method] < error["identity"], method


def test_demo_acdc_nmi_and_ncc_within_a_hundredth(acdc):
    """What every machine showed of "NMI and NCC on par" on one contrast (its paired test's
    verdict varies, :data:`VERDICT_VARIES`): per network, the NMI- and NCC-trained mean Dice
    within :data:`ON_PAR_DICE`."""
    dice = acdc.attrs["dice"]
    for network in ("unet", "poolnet"):
        gap = dice[f"{network}-nmi"] - dice[f"{network}-ncc"]
        assert abs(gap) < ON_PAR_DICE, f"{network}: NMI - NCC mean Dice {gap:+.4f}"
