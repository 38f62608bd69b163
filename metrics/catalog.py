"""The metrics of the results table: names in report order, units, which direction is better,
and how each is computed in one line; and the columns of the table itself.

This module is the one place these facts are written (``docs/conventions.md``, "Result tables"
and "Metrics"): the runner scores with them, ``run.json`` records :data:`METRIC_CONVENTIONS`,
and the statistics and the report read the table with them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from metrics.displacement import FOREGROUND_MARGIN_MM

#: The columns that come first in ``results.csv`` / ``results.parquet``, in this order.
RESULT_COLUMNS = ("method", "fold", "case", "pair", "structure", "metric", "value", "unit", "status")
#: The ``structure`` of whole-image metrics (label metrics carry the manifest's label name).
IMAGE = "image"


class MetricInfo(NamedTuple):
    """One metric of the results table."""

    unit: str
    """``1`` (unitless), ``mm``, ``%`` or ``s``."""
    better: str | None
    """``"higher"`` or ``"lower"``; ``None`` for the values before registration."""
    convention: str
    """How it is computed, in one line (written into ``run.json``)."""
    bounds: tuple[float, float] = (0.0, math.inf)
    """The range every finite value lies in (a results table outside it is refused)."""


#: Range of the histogram NMI under both of its definitions (``paper``: MI / (H(A) + H(B)) in
#: [0, 0.5]; ``studholme``: (H(A) + H(B)) / H(A, B) in [1, 2]).
NMI_BOUNDS = (0.0, 2.0)

#: Every metric of ``results.csv``, in report order.
METRIC_TABLE: dict[str, MetricInfo] = {
    "dice_before": MetricInfo(
        "1", None, "Dice of fixed and unwarped moving labels (the 'no registration' value)",
        (0.0, 1.0),
    ),
    "dice": MetricInfo(
        "1",
        "higher",
        "Dice of fixed and warped labels (nearest neighbour); 0 with status label-lost when "
        "the warp removed a structure present in fixed and moving",
        (0.0, 1.0),
    ),
    "hd": MetricInfo("mm", "lower", "Hausdorff distance of label surfaces, mm"),
    "hd95": MetricInfo(
        "mm", "lower", "95th percentile of the directed surface distances (max of both directions), mm"
    ),
    "nmi_before": MetricInfo(
        "1",
        None,
        "histogram NMI (64 bins) of fixed and moving, percentile-normalised, in the mask",
        NMI_BOUNDS,
    ),
    "nmi": MetricInfo(
        "1",
        "higher",
        "histogram NMI (64 bins) of fixed and warped, percentile-normalised, in the mask",
        NMI_BOUNDS,
    ),
    "folding_pct": MetricInfo(
        "%",
        "lower",
        "% voxels with Jacobian determinant <= 0, central differences (blind to voxel-scale "
        "folding), whole grid",
        (0.0, 100.0),
    ),
    "folding_fwd_pct": MetricInfo(
        "%",
        "lower",
        "% voxel cells with Jacobian determinant <= 0, forward differences, whole grid",
        (0.0, 100.0),
    ),
    "sdlogj": MetricInfo(
        "1", "lower", "SD of log(clip(det J, 1e-9, 1e9)), central differences, whole grid"
    ),
    "disp_error_mm": MetricInfo(
        "mm",
        "lower",
        "mean |u - u_true| in the foreground: the dataset mask, else the fixed labels dilated by "
        f"{FOREGROUND_MARGIN_MM:g} mm",
    ),
    "disp_error_grid_mm": MetricInfo(
        "mm", "lower", "mean |u - u_true| over the whole grid (background included)"
    ),
    "tre_mm": MetricInfo(
        "mm",
        "lower",
        "mean distance of mapped fixed landmarks to moving landmarks, mm (u linear)",
    ),
    "runtime_s": MetricInfo("s", "lower", "wall-clock seconds of the method's register() call"),
}

#: Metric names in report order.
METRICS = tuple(METRIC_TABLE)
#: Unit of each metric.
METRIC_UNITS = {name: info.unit for name, info in METRIC_TABLE.items()}
#: One-line convention of each metric (``run.json``, ``conventions``).
METRIC_CONVENTIONS = {name: info.convention for name, info in METRIC_TABLE.items()}
#: Metrics that do not depend on the method (the images before registration).
BEFORE_METRICS = tuple(name for name, info in METRIC_TABLE.items() if info.better is None)
HIGHER_IS_BETTER = frozenset(n for n, info in METRIC_TABLE.items() if info.better == "higher")
LOWER_IS_BETTER = frozenset(n for n, info in METRIC_TABLE.items() if info.better == "lower")
#: The range of each metric's finite values.
METRIC_BOUNDS = {name: info.bounds for name, info in METRIC_TABLE.items()}
#: Metrics given per structure of the label maps.
LABEL_METRICS = ("dice_before", "dice", "hd", "hd95")
