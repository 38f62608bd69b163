"""Scoring one registered pair: the shared warp of images and labels, then every metric.

Every method is scored here the same way, from its displacement field alone: the moving image is
warped with cubic B-splines (border padding), the moving labels with nearest neighbour
(background padding), as ``docs/conventions.md`` says.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from benchmark.core.pairs import RegistrationPair
from metrics.catalog import IMAGE, LABEL_METRICS, METRIC_UNITS

#: Training-side conventions of the methods, recorded beside the metrics in ``run.json``.
METHOD_CONVENTIONS: dict[str, str] = {
    "ncc": "networks trained with NCC use one global NCC per patch (VoxelMorph uses a local "
    "9-voxel window)",
    "elastix": "preset paper: NormalizedMutualInformation; preset quick: "
    "AdvancedMattesMutualInformation",
}


def warp_pair(pair: RegistrationPair, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(warped image float32, warped labels or None)`` of the pair's moving image and labels."""
    from methods.transforms.warp import warp_image, warp_labels

    warped = warp_image(pair.moving.array, disp, spacing=pair.spacing)
    warped_labels = None
    if pair.moving_labels is not None:
        warped_labels = warp_labels(pair.moving_labels.array, disp, spacing=pair.spacing)
    return warped, warped_labels


def score_pair(
    pair: RegistrationPair,
    disp: np.ndarray,
    *,
    labels: Mapping[str, int],
    runtime_s: float,
    warped: np.ndarray,
    warped_labels: np.ndarray | None,
) -> list[dict]:
    """The metric rows of one pair: ``structure, metric, value, unit, status`` each.

    ``dice_before`` compares fixed and moving labels; ``dice``, ``hd``, ``hd95`` fixed and warped
    labels, per structure of ``labels`` when both label maps exist (a structure the warp removed:
    Dice 0, status ``label-lost``). ``nmi_before`` compares fixed and moving, ``nmi`` fixed and
    warped (hard 64-bin histogram on percentile-normalised images, inside ``pair.mask`` when there
    is one); ``folding_pct`` (central differences), ``folding_fwd_pct`` (forward differences)
    and ``sdlogj`` are over the whole fixed grid; ``disp_error_mm`` (in the foreground, see
    :func:`metrics.foreground_mask`) and ``disp_error_grid_mm`` (whole grid) only when the pair
    has a ground truth; ``tre_mm`` only when it has landmarks. See
    :data:`metrics.catalog.METRIC_CONVENTIONS`.
    """
    from metrics import (
        STATUS_NO_FOREGROUND,
        dice,
        displacement_error,
        folding_forward_percentage,
        folding_percentage,
        foreground_mask,
        histogram_nmi,
        label_metrics,
        sdlogj,
        target_registration_error,
    )

    spacing = pair.spacing
    rows: list[dict] = []

    def add(metric: str, value: float, status: str = "ok", structure: str = IMAGE) -> None:
        rows.append(
            {
                "structure": structure,
                "metric": metric,
                "value": float(value),
                "unit": METRIC_UNITS[metric],
                "status": status,
            }
        )

    if (
        pair.fixed_labels is not None
        and pair.moving_labels is not None
        and warped_labels is not None
    ):
        fixed_labels, moving_labels = pair.fixed_labels.array, pair.moving_labels.array
        for name, value in labels.items():
            d = dice(fixed_labels, moving_labels, label=int(value))
            add("dice_before", d.value, d.status, structure=str(name))
        rows.extend(
            label_metrics(
                fixed_labels, warped_labels, labels, spacing=spacing, moving_labels=moving_labels
            )
        )
    for metric, image in (("nmi_before", pair.moving.array), ("nmi", warped)):
        v = histogram_nmi(pair.fixed.array, image, mask=pair.mask)
        add(metric, v.value, v.status)
    for metric, fold in (
        ("folding_pct", folding_percentage(disp, spacing=spacing)),
        ("folding_fwd_pct", folding_forward_percentage(disp, spacing=spacing)),
    ):
        add(metric, fold.percent, fold.status)
    v = sdlogj(disp, spacing=spacing)
    add("sdlogj", v.value, v.status)
    if pair.true_displacement is not None:
        fg = foreground_mask(
            mask=pair.mask,
            fixed_labels=None if pair.fixed_labels is None else pair.fixed_labels.array,
            spacing=spacing,
        )
        if fg is None:
            add("disp_error_mm", float("nan"), STATUS_NO_FOREGROUND)
        else:
            err = displacement_error(disp, pair.true_displacement, mask=fg)
            add("disp_error_mm", err.mean, err.status)
        err = displacement_error(disp, pair.true_displacement)
        add("disp_error_grid_mm", err.mean, err.status)
    if pair.landmarks is not None:
        v = target_registration_error(*pair.landmarks, disp, spacing=spacing)
        add("tre_mm", v.value, v.status)
    add("runtime_s", runtime_s, "ok" if np.isfinite(runtime_s) else "not-measured")
    return rows


def failure_rows(labels: Mapping[str, int], reason: str, *, pair: RegistrationPair) -> list[dict]:
    """NaN rows, status ``failed: reason``, for every metric :func:`score_pair` would give."""
    status = f"failed: {reason}".replace("\n", " ")[:500]
    rows = []
    if pair.fixed_labels is not None and pair.moving_labels is not None:
        for name in labels:
            for metric in LABEL_METRICS:
                rows.append(_nan_row(name, metric, status))
    image_metrics = ["nmi_before", "nmi", "folding_pct", "folding_fwd_pct", "sdlogj"]
    if pair.true_displacement is not None:
        image_metrics += ["disp_error_mm", "disp_error_grid_mm"]
    if pair.landmarks is not None:
        image_metrics.append("tre_mm")
    for metric in (*image_metrics, "runtime_s"):
        rows.append(_nan_row(IMAGE, metric, status))
    return rows


def _nan_row(structure: str, metric: str, status: str) -> dict:
    return {
        "structure": structure,
        "metric": metric,
        "value": float("nan"),
        "unit": METRIC_UNITS[metric],
        "status": status,
    }
