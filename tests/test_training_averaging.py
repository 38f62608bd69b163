"""The moving average of the weights (``ema_span``): its arithmetic, and that training keeps it."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training import blob_pairs, tiny_config

from methods.training.averaging import WeightAverage, ema_decay
from methods.training.trainer import train


def test_ema_decay_spans_the_share_of_the_iterations():
    assert ema_decay(0.1, 500) == pytest.approx(0.98)
    assert ema_decay(0.1, 1000) == pytest.approx(0.99)
    assert ema_decay(0.1, 10) == 0.0  # a span of one step: the latest weights
    assert ema_decay(0.0, 10) == 0.0


def _linear(values):
    layer = torch.nn.Linear(len(values), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([values], dtype=torch.float32))
    return layer


@settings(max_examples=25, deadline=None)
@given(
    decay=st.floats(0.0, 0.999),
    start=st.lists(st.floats(-10, 10), min_size=3, max_size=3),
    target=st.lists(st.floats(-10, 10), min_size=3, max_size=3),
    steps=st.integers(1, 60),
)
def test_average_matches_the_float64_recursion(decay, start, target, steps):
    model = _linear(start)
    average = WeightAverage(model, decay=decay)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([target], dtype=torch.float32))
    expected = np.array(start, dtype=np.float64)
    for t in range(1, steps + 1):
        average.update(model, t)
        d = min(decay, t / (t + 10.0))
        expected = d * expected + (1 - d) * np.array(target, dtype=np.float64)
    got = average.model.weight.detach().double().numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # a convex combination of the start and the target, never beyond them
    low, high = np.minimum(start, target), np.maximum(start, target)
    assert np.all(got >= low - 1e-4) and np.all(got <= high + 1e-4)


def test_average_is_a_frozen_copy_and_copies_integer_buffers():
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.BatchNorm3d(2))
    average = WeightAverage(model, decay=0.9)
    assert not average.model.training
    assert all(not p.requires_grad for p in average.model.parameters())
    model(torch.rand(2, 1, 5, 5, 5))  # training mode: counts a batch, moves the running stats
    average.update(model, 100)
    assert int(average.model[1].num_batches_tracked) == 1
    before = model[0].weight.detach().clone()
    with torch.no_grad():
        average.model[0].weight.add_(1.0)
    torch.testing.assert_close(model[0].weight, before)  # the copy shares nothing
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_training_keeps_the_average_not_the_live_network(tmp_path):
    specs = blob_pairs(tmp_path)
    cfg = tiny_config(ema_span=0.5, validations=1)  # validated (and kept) at the last step
    model_path = train(cfg, specs, tmp_path / "m", seed=1, progress=False)
    saved = torch.load(model_path, weights_only=False)["model"]
    checkpoint = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=False)
    live, averaged = checkpoint["model"], checkpoint["average"]
    assert any(not torch.equal(live[k], averaged[k]) for k in live)
    for key in saved:
        torch.testing.assert_close(saved[key], averaged[key], rtol=0, atol=0, msg=key)
