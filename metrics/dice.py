"""Dice overlap of one structure between the fixed labels and the warped moving labels."""

from __future__ import annotations

import numpy as np

from metrics._common import NAN, STATUS_OK, MetricValue, absence_status, as_mask, check_same_shape


def dice(
    fixed: np.ndarray,
    warped: np.ndarray,
    *,
    label: int | None = None,
) -> MetricValue:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of one structure.

    Parameters
    ----------
    fixed : ndarray, shape (*spatial)
        Reference: a boolean mask, or an integer label map when ``label`` is given (the fixed
        image's labels).
    warped : ndarray, same shape
        The moving labels warped onto the fixed grid (nearest neighbour), same kind as ``fixed``.
    label : int, optional
        Label value to compare in label maps. Without it both arrays must be boolean (an integer
        map without a label is refused rather than silently merging all structures).

    Returns
    -------
    MetricValue
        ``value`` in ``[0, 1]`` (unit ``"1"``), computed from integer voxel counts in float64.
        Edge cases, never a crash and never a silent 0 or 1: the structure empty in both arrays
        gives NaN with status ``"label-absent-both"``, empty only in ``fixed`` gives NaN with
        ``"label-absent-fixed"``, empty only in ``warped`` gives NaN with
        ``"label-absent-moving"`` (the moving labels warped out of, or missing from, the fixed
        grid).

    Raises
    ------
    BenchError
        Different shapes, a non-boolean array without ``label``, a boolean array with ``label``.

    Examples
    --------
    >>> fixed = np.zeros((4, 4), np.int16)
    >>> fixed[1:3, 1:3] = 1
    >>> warped = np.zeros((4, 4), np.int16)
    >>> warped[1:3, 1:4] = 1
    >>> dice(fixed, warped, label=1)  # 2 * 4 / (4 + 6)
    MetricValue(value=0.8, status='ok', unit='1')
    """
    a = as_mask(fixed, label=label, name="fixed")
    b = as_mask(warped, label=label, name="warped")
    check_same_shape(a, b, ("fixed", "warped"))
    n_a = int(np.count_nonzero(a))
    n_b = int(np.count_nonzero(b))
    status = absence_status(n_a > 0, n_b > 0)
    if status != STATUS_OK:
        return MetricValue(NAN, status, "1")
    n_ab = int(np.count_nonzero(a & b))
    return MetricValue(2.0 * n_ab / (n_a + n_b), STATUS_OK, "1")
