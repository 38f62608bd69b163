"""Dice: float64 direct formula, MONAI's DiceMetric, label maps and the absent-label statuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.core.errors import BenchError
from metrics import (
    STATUS_ABSENT_BOTH,
    STATUS_ABSENT_FIXED,
    STATUS_ABSENT_MOVING,
    STATUS_OK,
    MetricValue,
    dice,
)


def _random_masks(seed: int, shape=(9, 8, 7), p=0.4):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < p, rng.random(shape) < p


def _direct(a: np.ndarray, b: np.ndarray) -> float:
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return 2.0 * float((a64 * b64).sum()) / float(a64.sum() + b64.sum())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.floats(0.05, 0.95))
def test_dice_matches_direct_float64_formula_and_is_symmetric(seed, p):
    a, b = _random_masks(seed, p=p)
    if not a.any() or not b.any():
        return
    result = dice(a, b)
    assert result.status == STATUS_OK and result.unit == "1"
    assert result.value == pytest.approx(_direct(a, b), rel=1e-12, abs=0)
    assert dice(b, a).value == result.value
    assert 0.0 <= result.value <= 1.0


def test_dice_matches_monai_dice_metric():
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(3)
    fixed = rng.integers(0, 4, size=(12, 10, 8))
    warped = np.where(rng.random(fixed.shape) < 0.3, rng.integers(0, 4, size=fixed.shape), fixed)

    def onehot(x):
        return torch.from_numpy(np.stack([x == c for c in range(4)])[None].astype(np.float32))

    metric = monai_metrics.DiceMetric(include_background=True, reduction="none")
    reference = metric(y_pred=onehot(warped), y=onehot(fixed))[0].double().numpy()
    ours = [dice(fixed, warped, label=c).value for c in range(4)]
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_dice_known_values():
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    a[:2] = True  # 8 voxels
    b[1:3] = True  # 8 voxels, 4 shared
    assert dice(a, b).value == pytest.approx(0.5)
    assert dice(a, a) == MetricValue(1.0, STATUS_OK, "1")
    assert dice(a, ~a).value == 0.0  # disjoint but both present: a real 0, status ok
    assert dice(a, ~a).status == STATUS_OK


def test_dice_label_map_selects_one_label():
    fixed = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.uint8)
    warped = np.array([[1, 1, 0], [2, 0, 0]], dtype=np.int16)
    assert dice(fixed, warped, label=1).value == pytest.approx(2 * 1 / 4)
    assert dice(fixed, warped, label=2).value == pytest.approx(2 * 1 / 3)


@pytest.mark.parametrize(
    ("in_fixed", "in_warped", "status"),
    [
        (False, False, STATUS_ABSENT_BOTH),
        (False, True, STATUS_ABSENT_FIXED),
        (True, False, STATUS_ABSENT_MOVING),
    ],
)
def test_dice_absent_label_is_nan_with_status(in_fixed, in_warped, status):
    fixed = np.zeros((5, 5, 5), dtype=np.uint8)
    warped = np.zeros((5, 5, 5), dtype=np.uint8)
    fixed[1:3, 1:3, 1:3] = 2
    warped[2:4, 2:4, 2:4] = 2
    if in_fixed:
        fixed[0, 0, 0] = 3
    if in_warped:
        warped[4, 4, 4] = 3
    result = dice(fixed, warped, label=3)
    assert math.isnan(result.value)
    assert result.status == status
    assert not result.ok
    # empty boolean masks behave the same
    assert dice(fixed == 3, warped == 3).status == status


def test_dice_rejects_bad_input():
    a = np.zeros((3, 4), dtype=bool)
    with pytest.raises(BenchError, match=r"\(3, 4\).*\(4, 3\)"):
        dice(a, np.zeros((4, 3), dtype=bool))
    with pytest.raises(BenchError, match="label="):
        dice(np.zeros((3, 4), dtype=np.uint8), np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(BenchError, match="integer label map"):
        dice(a, a, label=1)
