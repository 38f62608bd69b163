"""Per-structure label metrics (Dice, Hausdorff, 95th-percentile Hausdorff) as result-table rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from benchmark.core.errors import BenchError
from metrics._common import NAN, STATUS_ABSENT_MOVING, STATUS_LOST, check_same_shape, check_spacing
from metrics.dice import dice
from metrics.hausdorff import hausdorff_distance


def label_metrics(
    fixed_labels: np.ndarray,
    warped_labels: np.ndarray,
    labels: Mapping[str, int],
    *,
    spacing: Sequence[float] | None,
    moving_labels: np.ndarray | None = None,
    percentile_mode: str = "max-directed",
) -> list[dict[str, object]]:
    """Dice, Hausdorff and 95th-percentile Hausdorff of every named structure.

    Parameters
    ----------
    fixed_labels : ndarray of int, shape (*spatial)
        Label map of the fixed image.
    warped_labels : ndarray of int, same shape
        Moving labels warped onto the fixed grid with nearest neighbour.
    labels : mapping of str to int
        Structure name -> label value, from the manifest (ACDC: ``{"RV": 1, "LVm": 2, "LVb": 3}``);
        background is not listed.
    spacing : sequence of float or None
        Voxel size of the fixed grid in mm along the array axes (``None`` = 1 mm).
    moving_labels : ndarray of int, optional
        The moving labels before warping (any shape). A structure present in ``fixed_labels`` and
        in ``moving_labels`` but absent from ``warped_labels`` was warped away by the method: its
        Dice is 0 and its distances NaN, all with status ``"label-lost"``, so the case stays in
        summaries and paired tests instead of dropping out (without ``moving_labels`` such a
        structure gets NaN with ``"label-absent-moving"``).
    percentile_mode : {"max-directed", "pooled"}
        95th-percentile convention of :func:`metrics.hausdorff_distance`.

    Returns
    -------
    list of dict
        Three rows per structure, in the order of ``labels``, each
        ``{"structure": name, "metric": "dice"|"hd"|"hd95", "value": float, "unit": "1"|"mm",
        "status": str}`` — the last five columns of ``results.csv``; the caller adds method,
        fold, case and pair. A structure absent from one or both maps gets NaN values with the
        status ``"label-absent-fixed"``, ``"label-absent-moving"`` or ``"label-absent-both"``;
        a structure lost by the warp gets Dice 0 with ``"label-lost"`` (see ``moving_labels``).

    Raises
    ------
    BenchError
        Non-integer label maps, different shapes, a label value that is not an integer.
    """
    f = np.asarray(fixed_labels)
    w = np.asarray(warped_labels)
    for name, arr in (("fixed_labels", f), ("warped_labels", w)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise BenchError(f"{name}: expected an integer label map, got dtype {arr.dtype}")
    check_same_shape(f, w, ("fixed_labels", "warped_labels"))
    check_spacing(spacing, f.ndim)
    rows: list[dict[str, object]] = []
    for structure, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BenchError(
                f"labels[{structure!r}]: expected an integer label value, got {value!r}"
            )
        d = dice(f, w, label=int(value))
        h = hausdorff_distance(
            f,
            w,
            spacing=spacing,
            label=int(value),
            percentile=95.0,
            percentile_mode=percentile_mode,
        )
        values = [
            ("dice", float(d.value), d.unit, d.status),
            ("hd", float(h.hd.value), h.hd.unit, h.hd.status),
            ("hd95", float(h.hd_percentile.value), h.hd_percentile.unit, h.hd_percentile.status),
        ]
        if (
            d.status == STATUS_ABSENT_MOVING
            and moving_labels is not None
            and bool(np.any(np.asarray(moving_labels) == int(value)))
        ):
            values = [
                ("dice", 0.0, d.unit, STATUS_LOST),
                ("hd", NAN, h.hd.unit, STATUS_LOST),
                ("hd95", NAN, h.hd_percentile.unit, STATUS_LOST),
            ]
        for metric, v, unit, status in values:
            rows.append(
                {
                    "structure": str(structure),
                    "metric": metric,
                    "value": v,
                    "unit": unit,
                    "status": status,
                }
            )
    return rows
