"""Validation during training: the loss terms and Dice of held-out pairs, beside no registration.

A :class:`Validator` holds a few whole validation pairs (percentile-normalised as for training).
:meth:`Validator.score` runs the network on each whole pair and returns the mean of the training
loss terms (similarity on the linearly warped moving image, inside the pair's mask when it has
one; bending energy in voxel units) and, where both label maps exist, the mean Dice over the
labels of the fixed image (moving labels warped with nearest neighbour). :attr:`Validator.identity`
is the same score of the zero field, so that a trained model can be compared with no
registration: :func:`worse_than_identity` says why a score is worse, or returns None.

Validation pairs are the fold's own (a hold-out split's ``val`` cases) or, for cross-validation,
a few training cases set aside by :func:`split_validation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from benchmark.core.numbers import json_value
from benchmark.core.pairs import PairSpec

#: Largest number of validation pairs scored (whole volumes; the first ones in key order).
MAX_VALIDATION_PAIRS = 8


@dataclass(frozen=True)
class ValidationScore:
    """Mean validation terms over the validation pairs (``dice`` NaN without label maps)."""

    loss: float
    similarity: float
    bending: float
    dice: float

    @classmethod
    def from_dict(cls, values: dict[str, float | None]) -> ValidationScore:
        """Inverse of :meth:`as_dict` (None back to NaN)."""
        return cls(**{k: math.nan if v is None else float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready: NaN (no labels) becomes None."""
        return {k: json_value(v) for k, v in asdict(self).items()}


def split_validation(
    pairs: Sequence[PairSpec], *, fraction: float, seed: int
) -> tuple[list[PairSpec], list[PairSpec]]:
    """Set aside ``round(fraction * cases)`` (at least 1) training cases for validation.

    All pairs of a case stay on one side. With fewer than 3 cases nothing is set aside and the
    validation pairs are the training pairs themselves (returned as the second item), so the
    training keeps all its data; ``fraction`` 0 does the same.

    Returns
    -------
    (train, val) : lists of PairSpec
    """
    cases = sorted({p.case for p in pairs})
    if fraction <= 0 or len(cases) < 3:
        return list(pairs), list(pairs)
    count = min(len(cases) - 1, max(1, round(fraction * len(cases))))
    order = np.random.default_rng([seed, 7]).permutation(len(cases))
    held = {cases[i] for i in order[:count]}
    return [p for p in pairs if p.case not in held], [p for p in pairs if p.case in held]


class Validator:
    """Scores of a network on whole validation pairs, and of the zero field.

    Parameters
    ----------
    pairs : sequence of PairSpec
        Validation pairs; at most :data:`MAX_VALIDATION_PAIRS` are used.
    config : TrainingConfig
        Loss and normalisation settings (the training's).
    device : torch.device
    """

    def __init__(self, pairs: Sequence[PairSpec], config, device: torch.device):
        from methods.training.inputs import as_input, pair_inputs

        self.config = config
        chosen = sorted(pairs, key=lambda p: p.key)[:MAX_VALIDATION_PAIRS]
        self.keys = [p.key for p in chosen]
        self.items = []
        for spec in chosen:
            pair = spec.load()
            fixed, moving, mask = pair_inputs(pair, config, device)
            labels = None
            if pair.fixed_labels is not None and pair.moving_labels is not None:
                fixed_labels = pair.fixed_labels.array
                values = [int(v) for v in np.unique(fixed_labels) if v != 0]
                if values:
                    labels = (fixed_labels, as_input(pair.moving_labels.array, device), values)
            self.items.append((fixed, moving, mask, labels))
        self.identity = self._score(None)

    def _terms(self, fixed, moving, mask, labels, disp):
        from methods.training.loss import field_loss
        from methods.transforms import warp
        from metrics import STATUS_ABSENT_MOVING, dice

        _, sim, bend = (float(t) for t in field_loss(self.config, fixed, moving, disp, mask))
        mean_dice = math.nan
        if labels is not None:
            fixed_labels, moving_labels, values = labels
            moved = moving_labels if disp is None else warp(
                moving_labels, disp, mode="nearest", padding="zeros"
            )
            moved = moved[0, 0].round().cpu().numpy().astype(fixed_labels.dtype)
            scores = []
            for v in values:  # a structure warped away scores 0, as in the results table
                d = dice(fixed_labels, moved, label=v)
                scores.append(0.0 if d.status == STATUS_ABSENT_MOVING else d.value)
            mean_dice = float(np.mean(scores))
        return sim + self.config.bending_weight * bend, sim, bend, mean_dice

    @torch.no_grad()
    def _score(self, model) -> ValidationScore:
        rows = []
        for fixed, moving, mask, labels in self.items:
            disp = None if model is None else model(fixed, moving)
            rows.append(self._terms(fixed, moving, mask, labels, disp))
        values = np.array(rows, dtype=np.float64)
        dice = values[:, 3]
        return ValidationScore(
            *(float(v) for v in values[:, :3].mean(axis=0)),
            float(np.nanmean(dice)) if np.isfinite(dice).any() else math.nan,
        )

    def score(self, model: torch.nn.Module) -> ValidationScore:
        """The network's mean validation terms (evaluation mode, no gradients)."""
        was_training = model.training
        model.eval()
        try:
            return self._score(model)
        finally:
            model.train(was_training)


#: A validation Dice this much below no registration's counts as worse (a few voxels of one
#: structure flipping is not a finding).
DICE_TOLERANCE = 1e-3


def worse_than_identity(score: ValidationScore, identity: ValidationScore) -> str | None:
    """Why ``score`` is worse than no registration on the validation pairs, or None.

    Worse means a higher (worse) similarity loss than the zero field, or a mean Dice more than
    :data:`DICE_TOLERANCE` lower.
    """
    reasons = []
    if score.similarity > identity.similarity:
        reasons.append(
            f"similarity {score.similarity:.4f} vs {identity.similarity:.4f} without registration"
        )
    dice_known = not (math.isnan(score.dice) or math.isnan(identity.dice))
    if dice_known and score.dice < identity.dice - DICE_TOLERANCE:
        reasons.append(f"Dice {score.dice:.3f} vs {identity.dice:.3f} without registration")
    return "; ".join(reasons) or None
