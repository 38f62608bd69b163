"""The four learning methods: they train on demo pairs and beat identity on held-out pairs."""

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.data.manifest import load_manifest
from benchmark.runner.scoring import warp_pair
from methods.registry import get_method
from metrics import dice

# the demo's quick preset (data_manifests/demo-acdc.yaml; PoolNet with a larger budget)
SETTINGS = {
    "batch_size": 1,
    "patch_size": [96, 96, 8],
    "unet_features": [[8, 16, 16, 16], [16, 16, 16, 16, 8, 8]],
}
ITERATIONS = {"unet": 250, "poolnet": 800}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "4"]) == 0
    return load_manifest("demo-acdc", root=root)


def mean_dice(pairs, fields):
    values = []
    for pair, disp in zip(pairs, fields, strict=True):
        _, warped_labels = warp_pair(pair, disp)
        for label in (1, 2, 3):
            values.append(dice(pair.fixed_labels.array == label, warped_labels == label).value)
    return float(np.mean(values))


@pytest.mark.parametrize(
    "name",
    [
        "unet-nmi",
        pytest.param("unet-ncc", marks=pytest.mark.slow),
        pytest.param("poolnet-nmi", marks=pytest.mark.slow),
        pytest.param("poolnet-ncc", marks=pytest.mark.slow),
    ],
)
def test_trained_method_beats_identity_on_held_out_pairs(demo, tmp_path, name):
    fold = demo.folds()[0]
    network = name.split("-")[0]
    method = get_method(
        name, preset="quick", settings={**SETTINGS, "iterations": ITERATIONS[network]}
    )
    method.fit(fold.train, workdir=tmp_path / name, seed=0)
    pairs = [spec.load() for spec in fold.test]
    assert not {p.case for p in pairs} & {s.case for s in fold.train}  # held out
    results = [method.register(p) for p in pairs]
    for pair, result in zip(pairs, results, strict=True):
        assert result.displacement.shape == (3, *pair.fixed.shape)
        assert result.displacement.dtype == np.float32 and result.runtime_s > 0
    before = mean_dice(pairs, [np.zeros_like(r.displacement) for r in results])
    after = mean_dice(pairs, [r.displacement for r in results])
    assert after > before + 0.03, (before, after)


def test_register_before_fit_and_wrong_dimension_are_clear_errors(demo, tmp_path):
    method = get_method("unet-nmi", settings={**SETTINGS, "iterations": 1})
    pair = demo.folds()[0].test[0].load()
    with pytest.raises(BenchError, match="not trained"):
        method.register(pair)
    with pytest.raises(BenchError, match="does not exist"):
        get_method("unet-nmi", model_path=str(tmp_path / "none.pt")).fit(
            [], workdir=tmp_path, seed=0
        )


def test_bench_train_command(demo, tmp_path, capsys):
    out = tmp_path / "model"
    base = ["train", "--dataset", "demo-acdc", "--root", str(demo.root), "--fold", "0"]
    tiny = ["--set", "iterations=2", "--set", "patch_size=32,32,4", "--set", "batch_size=1"]
    assert main([*base, "--method", "poolnet-ncc", "--out", str(out), *tiny]) == 0
    assert (out / "model.pt").is_file() and (out / "training.csv").is_file()
    printed = capsys.readouterr().out
    assert str(out / "model.pt") in printed and "validation (" in printed
    assert "no registration" in printed
    assert main([*base, "--method", "identity"]) == 2
    assert "does not learn" in capsys.readouterr().err
    assert main([*base, "--method", "unet-nmi", "--fold", "9"]) == 2
    assert "--fold 9" in capsys.readouterr().err
    # an unfinished training is only continued when asked
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"")
    assert main([*base, "--method", "unet-nmi", "--out", str(unfinished), *tiny]) == 2
    assert "--resume" in capsys.readouterr().err
