"""Instance-specific optimisation (``instance_steps``): a copy of the network fine-tuned on the
pair it registers recovers a known shift; the trained model and its digest stay as they are."""

import hashlib

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.data.manifest import load_manifest
from methods.registry import get_method
from methods.training.config import make_config
from methods.training.instance import fine_tune
from methods.training.loss import loss_terms
from methods.training.trainer import build_model

SHIFT = 1.5  # voxels, along the first array axis
GEOMETRY = {"patch_size": [48, 48], "unet_factors": [2, 2], "poolnet_grid": [8, 8]}


def shifted_pair(size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random 2D image and a copy moved by SHIFT voxels: moving(x) = fixed(x - s), so
    the field that aligns them (``warped(x) = moving(x + u(x))``) is ``u = +s``."""
    rng = np.random.default_rng(seed)
    fixed = ndimage.gaussian_filter(rng.standard_normal((size, size)), 3.0)
    fixed = (fixed - fixed.min()) / (fixed.max() - fixed.min())
    moving = ndimage.shift(fixed, (SHIFT, 0.0), order=3, mode="nearest")
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    return as_tensor(fixed), as_tensor(moving)


@pytest.mark.parametrize("similarity", ["nmi", "ncc"])
def test_fine_tuning_an_untrained_unet_recovers_a_known_shift(similarity):
    torch.manual_seed(0)
    config = make_config("unet", similarity, overrides=GEOMETRY)
    model = build_model(config, seed=0).eval()
    before = [p.detach().clone() for p in model.parameters()]
    fixed, moving = shifted_pair()
    tuned, info = fine_tune(model, fixed, moving, config=config, steps=60)
    assert info["instance_steps"] == 60 and info["loss_after"] < info["loss_before"]
    with torch.no_grad():
        u = tuned(fixed, moving)[0][:, 8:-8, 8:-8]  # away from the border
    assert abs(float(u[0].mean()) - SHIFT) < 0.25, float(u[0].mean())
    assert abs(float(u[1].mean())) < 0.1
    # the trained model is untouched, and the copy's loss is the one reported
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with torch.no_grad():
        assert float(loss_terms(config, tuned, fixed, moving)[0]) == pytest.approx(
            info["loss_after"]
        )


def test_zero_steps_is_the_model_itself_and_the_mask_restricts_the_loss():
    config = make_config("poolnet", "nmi", overrides=GEOMETRY)
    model = build_model(config, seed=0).eval()
    fixed, moving = shifted_pair()
    assert fine_tune(model, fixed, moving, config=config, steps=0) == (model, {"instance_steps": 0})
    mask = torch.zeros_like(fixed)
    mask[..., :24, :] = 1
    _, whole = fine_tune(model, fixed, moving, config=config, steps=1)
    _, half = fine_tune(model, fixed, moving, config=config, steps=1, mask=mask)
    assert half["loss_before"] != pytest.approx(whole["loss_before"])


def test_instance_steps_is_checked_and_not_part_of_the_model_digest():
    plain = make_config("unet", "nmi", overrides=GEOMETRY)
    tuned = make_config("unet", "nmi", overrides={**GEOMETRY, "instance_steps": 20})
    assert tuned.instance_steps == 20 and tuned.digest() == plain.digest()
    assert make_config("unet", "nmi", overrides={"instance_steps": 5.0}).instance_steps == 5
    for bad in (-1, 2.5, True, "ten"):
        with pytest.raises(BenchError, match="instance_steps must be an integer >= 0"):
            make_config("unet", "nmi", overrides={"instance_steps": bad})


def test_a_learned_method_registers_with_instance_steps_and_keeps_its_model(tmp_path):
    root = tmp_path / "demo"
    assert main(["data", "demo", "demo-acdc", "--out", str(root), "--cases", "2"]) == 0
    fold = load_manifest("demo-acdc", root=root).folds()[0]
    tiny = {"iterations": 2, "batch_size": 1, "patch_size": [32, 32, 4]}
    one_pass = get_method("unet-nmi", settings=tiny)
    one_pass.fit(fold.train, workdir=tmp_path / "model", seed=0)
    stored = hashlib.sha256(one_pass.model_path.read_bytes()).hexdigest()
    tuned = get_method(
        "unet-nmi", settings={**tiny, "instance_steps": 3}, model_path=str(one_pass.model_path)
    )
    pair = fold.test[0].load()
    first, second = one_pass.register(pair), tuned.register(pair)
    assert first.meta == {"instance_steps": 0}
    assert second.meta["instance_steps"] == 3
    assert second.meta["loss_after"] < second.meta["loss_before"]
    assert not np.array_equal(first.displacement, second.displacement)
    assert second.runtime_s > first.runtime_s
    assert hashlib.sha256(one_pass.model_path.read_bytes()).hexdigest() == stored
    np.testing.assert_array_equal(one_pass.register(pair).displacement, first.displacement)
