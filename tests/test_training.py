"""Training: settings, patch sampling, checkpoints, resume and model reuse."""

import re

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmark.core.errors import BenchError
from benchmark.core.images import write_image
from benchmark.core.pairs import PairSpec
from methods.base import RunContext
from methods.registry import parse_set, setting_problems
from methods.training import trainer as trainer_module
from methods.training.config import TrainingConfig, make_config
from methods.training.patches import PatchSampler
from methods.training.trainer import load_model, train


def blob_pairs(tmp_path, n=2, shape=(40, 40, 6), shift=(2.0, -1.0, 0.0)):
    """Smooth random volumes and copies shifted by ``shift`` voxels, written as NIfTI pairs."""
    rng = np.random.default_rng(0)
    specs = []
    for i in range(n):
        fixed = ndimage.gaussian_filter(rng.random(shape), 3.0).astype(np.float32)
        moving = ndimage.shift(fixed, shift, order=3, mode="nearest").astype(np.float32)
        affine = np.diag([1.5, 1.5, 8.0, 1.0])
        f = write_image(tmp_path / f"c{i}_fixed.nii.gz", fixed, affine)
        m = write_image(tmp_path / f"c{i}_moving.nii.gz", moving, affine)
        specs.append(PairSpec("toy", f"case{i}", "a-b", f, m))
    return specs


def tiny_config(**kw):
    base = dict(
        network="unet",
        similarity="ncc",
        iterations=6,
        batch_size=2,
        patch_size=(16, 16, 4),
        unet_factors=(2, 2, 1),
        poolnet_grid=(4, 4, 1),
        checkpoint_every=2,
        unet_features=((4, 8), (8, 8, 4)),
    )
    base.update(kw)
    return TrainingConfig(**base)


def weights(path):
    return torch.load(path, weights_only=False)["model"]


def test_make_config_priority_and_types():
    cfg = make_config(
        "poolnet",
        "nmi",
        preset="paper",
        overrides={"iterations": 10, "patch_size": [32, 32, 4], "poolnet_grid": [4, 4, 1]},
    )
    assert cfg.iterations == 10  # override beats preset
    assert cfg.batch_size == 8  # from the paper preset
    assert cfg.patch_size == (32, 32, 4) and cfg.poolnet_grid == (4, 4, 1)
    assert cfg.learning_rate == 1e-3 and cfg.betas == (0.9, 0.999) and cfg.bending_weight == 0.05
    assert cfg.nmi_bins == 64 and cfg.nmi_sigma == 3e-3


def test_parse_set_and_errors():
    assert parse_set(["iterations=5", "patch_size=8,8,2", "ncc_window=null", "greedy.metric=nmi"]) == {
        "iterations": 5,
        "patch_size": [8, 8, 2],
        "ncc_window": None,
        "greedy.metric": "nmi",
    }
    problems = setting_problems(RunContext(overrides={"iteration": 5}))
    assert len(problems) == 1 and re.search("--set iteration=5: unknown setting 'iteration'.*iterations", problems[0])
    for item in ("iterations", "=5"):
        with pytest.raises(BenchError, match="KEY=VALUE"):
            parse_set([item])
    with pytest.raises(BenchError, match="network must be one of"):
        make_config("resnet", "nmi")
    with pytest.raises(BenchError, match="preset must be one of"):
        make_config("unet", "nmi", preset="fast")
    with pytest.raises(BenchError, match=r"patch_size \(8, 8, 4\), unet_factors \(2, 2\)"):
        make_config("unet", "nmi", overrides={"unet_factors": [2, 2], "patch_size": [8, 8, 4]})
    with pytest.raises(BenchError, match=r"patch_size must be at least 3 voxels.*\(8, 8, 2\)"):
        make_config("unet", "nmi", overrides={"patch_size": [8, 8, 2]})
    with pytest.raises(BenchError, match=r"poolnet_grid must be 2 or 3 positive integers.*\(8, 0\)"):
        make_config("poolnet", "nmi", overrides={"poolnet_grid": [8, 0]})


def test_config_digest_ignores_checkpoint_interval_only():
    a = tiny_config()
    assert a.digest() == tiny_config(checkpoint_every=3).digest()
    assert a.digest() != tiny_config(iterations=7).digest()
    assert a.digest() != tiny_config(similarity="nmi").digest()


def test_patch_sampler_links_fixed_and_moving_and_pads():
    rng = np.random.default_rng(1)
    fixed = rng.random((20, 18, 3)).astype(np.float32)
    moving = fixed + 1.0  # any patch of moving is the same patch of fixed plus one
    sampler = PatchSampler([(fixed, moving)], (8, 8, 5), rng=np.random.default_rng(2))
    f, m = sampler.sample(6)
    assert f.shape == m.shape == (6, 1, 8, 8, 5)
    np.testing.assert_allclose(m - f, 1.0, atol=1e-6)
    # the depth of 3 slices was padded to 5 by edge replication
    np.testing.assert_array_equal(f[:, :, :, :, 3], f[:, :, :, :, 2])
    # same seed, same patches
    again = PatchSampler([(fixed, moving)], (8, 8, 5), rng=np.random.default_rng(2)).sample(6)
    np.testing.assert_array_equal(again[0], f)


def test_patch_sampler_rejects_no_pairs_and_wrong_dimension():
    with pytest.raises(BenchError, match="no training pairs"):
        PatchSampler([], (8, 8), rng=np.random.default_rng(0))
    vol = np.zeros((10, 10), np.float32)
    with pytest.raises(BenchError, match="2D volume.*3D patches"):
        PatchSampler([(vol, vol)], (8, 8, 2), rng=np.random.default_rng(0), names=["p"])


def test_train_writes_model_log_and_reuses_it(tmp_path):
    specs = blob_pairs(tmp_path)
    cfg = tiny_config()
    model_path = train(cfg, specs, tmp_path / "model", seed=3, progress=False)
    assert model_path.is_file()
    log = (tmp_path / "model" / "training.csv").read_text().splitlines()
    assert log[0] == ",".join(trainer_module.TRAINING_COLUMNS) and len(log) == 1 + cfg.iterations
    assert (tmp_path / "model" / "training.png").stat().st_size > 0
    mtime = model_path.stat().st_mtime_ns
    # the same training again reuses the finished model
    assert train(cfg, specs, tmp_path / "model", seed=3, progress=False) == model_path
    assert model_path.stat().st_mtime_ns == mtime
    # another fold (other pairs), configuration or seed is refused, never reused silently
    with pytest.raises(BenchError, match="other training pairs"):
        train(cfg, specs[:1], tmp_path / "model", seed=3, progress=False)
    with pytest.raises(BenchError, match="another configuration"):
        train(tiny_config(iterations=8), specs, tmp_path / "model", seed=3, progress=False)
    with pytest.raises(BenchError, match="seed"):
        train(cfg, specs, tmp_path / "model", seed=4, progress=False)
    model, loaded_cfg = load_model(model_path)
    assert loaded_cfg == cfg and not model.training


def test_train_without_pairs_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="no training pairs"):
        train(tiny_config(), [], tmp_path / "m", progress=False)


@pytest.mark.parametrize(
    ("network", "ema_span"), [("unet", 0.0), ("poolnet", 0.0), ("unet", 0.5)]
)
def test_interrupted_training_resumes_to_identical_weights(
    tmp_path, monkeypatch, network, ema_span
):
    """Also with a moving average of the weights, which the checkpoint must carry."""
    specs = blob_pairs(tmp_path)
    extra = {} if network == "unet" else {"poolnet_grid": (4, 4, 1), "poolnet_features": 4}
    cfg = tiny_config(network=network, similarity="nmi", unet_features=None, **extra)
    if network == "unet":
        cfg = tiny_config(network="unet", similarity="nmi", ema_span=ema_span)
    reference = train(cfg, specs, tmp_path / "straight", seed=7, progress=False)

    real = trainer_module.loss_terms
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # after the checkpoint at iteration 2, during iteration 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "loss_terms", dying)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, specs, tmp_path / "killed", seed=7, progress=False)
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    assert not (tmp_path / "killed" / "model.pt").exists()
    monkeypatch.setattr(trainer_module, "loss_terms", real)
    resumed = train(cfg, specs, tmp_path / "killed", seed=7, progress=False)
    a, b = weights(reference), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    log = (tmp_path / "killed" / "training.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(i) for i in range(1, 7)]


def test_per_network_settings_and_command_line_priority():
    from methods.training.config import merge_settings

    manifest = {"iterations": 200, "poolnet": {"iterations": 500, "batch_size": 3}}
    assert make_config("poolnet", "nmi", overrides=manifest).iterations == 500
    assert make_config("poolnet", "nmi", overrides=manifest).batch_size == 3
    assert make_config("unet", "nmi", overrides=manifest).iterations == 200
    merged = merge_settings(manifest, {"iterations": 4})
    assert make_config("poolnet", "nmi", overrides=merged).iterations == 4  # --set wins
    assert make_config("poolnet", "nmi", overrides=merged).batch_size == 3
    with pytest.raises(BenchError, match="must be a mapping"):
        make_config("poolnet", "nmi", overrides={"poolnet": 5})
