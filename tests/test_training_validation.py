"""Validation during training: the held-out split, the best model, and worse-than-identity."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmark.core.images import write_image
from benchmark.core.pairs import PairSpec
from methods.training import trainer as trainer_module
from methods.training.config import TrainingConfig
from methods.training.trainer import read_model_info, train, validation_iterations
from methods.training.validation import (
    ValidationScore,
    Validator,
    split_validation,
    worse_than_identity,
)


def pairs_on_disk(tmp_path, cases=4, shift=(2.0, 0.0, 0.0), with_labels=False):
    rng = np.random.default_rng(1)
    specs = []
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    for i in range(cases):
        fixed = ndimage.gaussian_filter(rng.random((24, 24, 6)), 2.0).astype(np.float32)
        moving = ndimage.shift(fixed, shift, order=1, mode="nearest").astype(np.float32)
        f = write_image(tmp_path / f"c{i}_f.nii.gz", fixed, affine)
        m = write_image(tmp_path / f"c{i}_m.nii.gz", moving, affine)
        labels = {}
        if with_labels:
            lab = (fixed > np.median(fixed)).astype(np.uint8)
            moved = ndimage.shift(lab, shift, order=0, mode="nearest").astype(np.uint8)
            labels = {
                "fixed_labels": write_image(tmp_path / f"c{i}_fl.nii.gz", lab, affine),
                "moving_labels": write_image(tmp_path / f"c{i}_ml.nii.gz", moved, affine),
            }
        specs.append(PairSpec("toy", f"case{i}", "a-b", f, m, **labels))
    return specs


def config(**kw):
    base = dict(
        network="unet", similarity="ncc", iterations=6, batch_size=2, patch_size=(16, 16, 4),
        checkpoint_every=3, unet_features=((4, 8), (8, 8, 4)), validations=3,
    )
    base.update(kw)
    return TrainingConfig(**base)


def test_split_validation_keeps_cases_together_and_is_deterministic(tmp_path):
    specs = pairs_on_disk(tmp_path, cases=4)
    specs += [PairSpec("toy", s.case, "b-a", s.moving, s.fixed) for s in specs]
    train_a, val_a = split_validation(specs, fraction=0.25, seed=3)
    train_b, val_b = split_validation(specs, fraction=0.25, seed=3)
    assert [p.key for p in val_a] == [p.key for p in val_b]
    assert len({p.case for p in val_a}) == 1 and len(val_a) == 2  # one case, both directions
    assert not {p.case for p in val_a} & {p.case for p in train_a}
    assert len(train_a) + len(val_a) == len(specs)
    # too few cases: nothing set aside, validation on the training pairs
    few = specs[:2]
    assert split_validation(few, fraction=0.5, seed=0) == (few, few)
    assert split_validation(specs, fraction=0.0, seed=0) == (specs, specs)


def test_validation_iterations_are_spread_and_include_the_last():
    assert validation_iterations(config(iterations=100, validations=4)) == {25, 50, 75, 100}
    assert validation_iterations(config(iterations=3, validations=10)) == {1, 2, 3}


def test_identity_score_and_dice_against_direct_computation(tmp_path):
    specs = pairs_on_disk(tmp_path, cases=1, with_labels=True)
    validator = Validator(specs, config(similarity="ncc"), torch.device("cpu"))
    pair = specs[0].load()
    a = pair.fixed_labels.array == 1
    b = pair.moving_labels.array == 1
    expected = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert validator.identity.dice == pytest.approx(expected, abs=1e-12)
    assert validator.identity.bending == 0.0
    # NCC of the whole normalised volumes, independently with numpy
    from methods.training.inputs import normalized_images

    f, m = normalized_images(pair, validator.config)
    r = np.corrcoef(f.ravel().astype(np.float64), m.ravel().astype(np.float64))[0, 1]
    assert validator.identity.similarity == pytest.approx(-r, abs=1e-4)


class ConstantShift(torch.nn.Module):
    """A 'network' that predicts the same displacement everywhere (voxels)."""

    def __init__(self, shift):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(shift, dtype=torch.float32))

    def forward(self, fixed, moving):
        shape = (fixed.shape[0], len(self.shift), *fixed.shape[2:])
        return self.shift.view(1, -1, *([1] * (fixed.dim() - 2))).expand(shape)


def test_model_worse_than_identity_is_recorded_and_named(tmp_path, monkeypatch, caplog):
    # fixed == moving: any displacement is worse than none
    specs = pairs_on_disk(tmp_path, cases=3, shift=(0.0, 0.0, 0.0), with_labels=True)
    monkeypatch.setattr(trainer_module, "build_model", lambda cfg, seed: ConstantShift([3.0, 0, 0]))
    cfg = config(learning_rate=1e-9, similarity="ncc")
    train(cfg, specs, tmp_path / "m", seed=0, progress=False)
    info = read_model_info(tmp_path / "m")
    v = info["validation"]
    assert v["held_out"] and len(v["pairs"]) == 1  # one of three cases set aside
    assert "similarity" in v["worse_than_identity"] and "Dice" in v["worse_than_identity"]
    assert v["best"]["dice"] < v["identity"]["dice"]
    assert any("worse than no registration" in r.message for r in caplog.records)


def test_saved_model_is_the_best_validated_one(tmp_path, monkeypatch):
    specs = pairs_on_disk(tmp_path, cases=3, shift=(2.0, 0.0, 0.0))
    cfg = config(iterations=12, validations=4, learning_rate=0.05)
    path = train(cfg, specs, tmp_path / "m", seed=0, progress=False)
    info = read_model_info(tmp_path / "m")
    rows = np.genfromtxt(tmp_path / "m" / "training.csv", delimiter=",", names=True)
    validated = rows[~np.isnan(rows["val_loss"])]
    assert list(validated["iteration"]) == [3, 6, 9, 12]
    best = validated[np.argmin(validated["val_loss"])]
    assert info["validation"]["best_iteration"] == int(best["iteration"])
    # the saved weights give the recorded best score
    model, loaded = trainer_module.load_model(path)
    val_pairs = [s for s in specs if f"toy:{s.key}" in info["val_pairs"]]
    score = Validator(val_pairs, loaded, torch.device("cpu")).score(model)
    assert score.loss == pytest.approx(info["validation"]["best"]["loss"], rel=1e-5)


def test_worse_than_identity_rules():
    identity = ValidationScore(loss=-0.5, similarity=-0.5, bending=0.0, dice=0.7)
    assert worse_than_identity(ValidationScore(-0.6, -0.6, 0.1, 0.8), identity) is None
    assert "similarity" in worse_than_identity(ValidationScore(-0.4, -0.4, 0.0, 0.8), identity)
    assert "Dice" in worse_than_identity(ValidationScore(-0.6, -0.6, 0.0, 0.6), identity)
    assert worse_than_identity(ValidationScore(-0.6, -0.6, 0.0, 0.6995), identity) is None
    no_labels = ValidationScore(-0.6, -0.6, 0.0, math.nan)
    assert worse_than_identity(no_labels, identity) is None
    assert json.dumps(no_labels.as_dict())  # NaN Dice is written as null
