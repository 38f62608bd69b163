"""Scoring one registered pair: the shared warp of images and labels, then every metric.

Every method is scored here the same way, from its displacement field alone: the moving image is
warped with cubic B-splines (border padding), the moving labels with nearest neighbour
(background padding), as ``docs/conventions.md`` says.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from benchmark.pairs import RegistrationPair

#: The metrics of ``results.csv`` in report order, with their units.
METRIC_UNITS: dict[str, str] = {
    "dice": "1",
    "hd": "mm",
    "hd95": "mm",
    "nmi_before": "1",
    "nmi": "1",
    "folding_pct": "%",
    "sdlogj": "1",
    "disp_error_mm": "mm",
    "runtime_s": "s",
}
LABEL_METRICS = ("dice", "hd", "hd95")


def warp_pair(
    pair: RegistrationPair, disp: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(warped image float32, warped labels or None)`` of the pair's moving image and labels."""
    from methods.transforms import warp_array

    spacing = pair.spacing
    warped = warp_array(pair.moving.array, disp, spacing=spacing, mode="bspline", padding="border")
    warped_labels = None
    if pair.moving_labels is not None:
        warped_labels = warp_array(
            pair.moving_labels.array, disp, spacing=spacing, mode="nearest", padding="zeros"
        )
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

    ``nmi_before`` compares fixed and moving, ``nmi`` fixed and warped (hard 64-bin histogram on
    percentile-normalised images, inside ``pair.mask`` when there is one); ``folding_pct`` and
    ``sdlogj`` are over the whole fixed grid; ``disp_error_mm`` only when the pair has a ground
    truth; ``dice``, ``hd``, ``hd95`` per structure of ``labels`` when both label maps exist.
    """
    from metrics import displacement_error, folding_percentage, histogram_nmi, label_metrics, sdlogj

    spacing = pair.spacing
    rows: list[dict] = []

    def add(metric: str, value: float, status: str = "ok", structure: str = "image") -> None:
        rows.append(
            {
                "structure": structure,
                "metric": metric,
                "value": float(value),
                "unit": METRIC_UNITS[metric],
                "status": status,
            }
        )

    if pair.fixed_labels is not None and warped_labels is not None:
        rows.extend(
            label_metrics(pair.fixed_labels.array, warped_labels, labels, spacing=spacing)
        )
    for metric, image in (("nmi_before", pair.moving.array), ("nmi", warped)):
        v = histogram_nmi(pair.fixed.array, image, mask=pair.mask)
        add(metric, v.value, v.status)
    folding = folding_percentage(disp, spacing=spacing)
    add("folding_pct", folding.percent, "ok" if np.isfinite(folding.percent) else "empty-mask")
    v = sdlogj(disp, spacing=spacing)
    add("sdlogj", v.value, v.status)
    if pair.true_displacement is not None:
        err = displacement_error(disp, pair.true_displacement)
        add("disp_error_mm", err.mean, err.status)
    add("runtime_s", runtime_s, "ok" if np.isfinite(runtime_s) else "not-measured")
    return rows


def failure_rows(labels: Mapping[str, int], reason: str, *, has_labels: bool) -> list[dict]:
    """NaN rows for every metric of a pair whose registration failed, with the reason."""
    status = f"failed: {reason}".replace("\n", " ")[:500]
    rows = []
    if has_labels:
        for name in labels:
            for metric in LABEL_METRICS:
                rows.append(_nan_row(name, metric, status))
    for metric in ("nmi_before", "nmi", "folding_pct", "sdlogj", "runtime_s"):
        rows.append(_nan_row("image", metric, status))
    return rows


def _nan_row(structure: str, metric: str, status: str) -> dict:
    return {
        "structure": structure,
        "metric": metric,
        "value": float("nan"),
        "unit": METRIC_UNITS[metric],
        "status": status,
    }
