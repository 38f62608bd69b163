"""The training curves of one model as a PNG: training and validation similarity and bending."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.core.atomic import atomic_path


def plot_training_curves(history: Sequence[Sequence], path: Path, *, identity=None) -> Path:
    """:func:`training_curves_figure` written to ``path`` (PNG, atomic)."""
    fig = training_curves_figure(history, identity=identity)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def training_curves_figure(history: Sequence[Sequence], *, identity=None, title: str = ""):
    """The curves of ``training.csv`` rows (``trainer.TRAINING_COLUMNS``) as a matplotlib Figure.

    Left: the training similarity (running mean over 5 % of the iterations) and the validation
    similarity, with the validation similarity of no registration (``identity``, a
    mapping with ``similarity`` and ``dice``, as ``model.json`` stores it, or an object with those
    attributes) as a dashed line. Right: the bending energy (log scale), and the
    validation Dice on a second axis when there is one.
    """
    from matplotlib.figure import Figure

    rows = np.array([[np.nan if v in (None, "") else float(v) for v in row] for row in history])
    it, sim, bend = rows[:, 0], rows[:, 2], rows[:, 3]
    val = ~np.isnan(rows[:, 6])
    window = max(1, len(it) // 20)
    smooth = np.convolve(sim, np.ones(window) / window, mode="valid")
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(it, sim, color="0.8", lw=0.6, label="training (per iteration)")
    left.plot(it[window - 1 :], smooth, color="C0", label=f"training (mean of {window})")
    left.plot(it[val], rows[val, 6], "o-", color="C1", label="validation")
    identity_sim, identity_dice = _identity_values(identity)
    if identity is not None:
        left.axhline(identity_sim, ls="--", color="C3", label="validation, no registration")
    left.set(xlabel="iteration", ylabel="similarity loss (lower is better)")
    left.legend(fontsize=7)
    right.semilogy(it, np.maximum(bend, 1e-12), color="C0", lw=0.8, label="bending (training)")
    right.set(xlabel="iteration", ylabel="bending energy (voxel units)")
    dice = rows[val, 8]
    if np.isfinite(dice).any():
        twin = right.twinx()
        twin.plot(it[val], dice, "o-", color="C2", label="validation Dice")
        if identity is not None and np.isfinite(identity_dice):
            twin.axhline(identity_dice, ls="--", color="C2", lw=0.8)
        twin.set_ylabel("mean Dice (validation)")
        twin.legend(fontsize=7, loc="lower right")
    right.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _identity_values(identity) -> tuple[float, float]:
    """``(similarity, dice)`` of no registration from a mapping or an object with those
    attributes (``dice`` None or missing: NaN)."""
    if identity is None:
        return np.nan, np.nan
    get = identity.get if isinstance(identity, dict) else lambda k: getattr(identity, k, None)
    dice = get("dice")
    return float(get("similarity")), np.nan if dice is None else float(dice)
