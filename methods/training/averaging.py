"""Exponential moving average of a network's weights during training (``ema_span``).

A short training on a few pairs with mini-batches of one or two patches ends wherever the last
noisy Adam steps left it. The average of the recent weights (Polyak averaging, as an exponential
moving average: ``average <- decay * average + (1 - decay) * weights`` after every step) is a
less noisy model at no cost in steps. ``ema_span`` sets how far back it reaches as a share of the
iterations: ``decay = 1 - 1 / (ema_span * iterations)``, e.g. 0.98 for 0.1 of 500 iterations.
In the first steps the decay is ``min(decay, t / (t + 10))`` at step ``t``, so the average does not
start out dominated by the untrained initial weights (TensorFlow's ``ExponentialMovingAverage``
ramps its decay the same way).

Written here rather than with ``torch.optim.swa_utils.AveragedModel``: that class has no ramp of
the decay, and its copy of the model would need its own state in the checkpoint format anyway.
"""

from __future__ import annotations

import copy

import torch


def ema_decay(span: float, iterations: int) -> float:
    """The decay whose average spans ``span * iterations`` steps (0 when that is at most 1)."""
    return max(0.0, 1.0 - 1.0 / max(1.0, span * iterations))


class WeightAverage:
    """A frozen copy of ``model`` (evaluation mode) that follows its weights' moving average.

    Parameters
    ----------
    model : torch.nn.Module
        The network being trained; its current weights start the average.
    decay : float in [0, 1)
        Weight of the old average per step (see :func:`ema_decay`).
    """

    def __init__(self, model: torch.nn.Module, *, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay used after training step ``step`` (1-based): ramped up over the first steps."""
        return min(self.decay, step / (step + 10.0))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards ``model``'s weights after training step ``step``."""
        weight = 1.0 - self.decay_at(step)
        current = model.state_dict()
        for name, average in self.model.state_dict().items():
            if average.is_floating_point():
                average.lerp_(current[name], weight)
            else:  # integer buffers (batch normalisation's step counter): the latest value
                average.copy_(current[name])
