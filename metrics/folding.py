"""Folding of a displacement field: % of non-positive Jacobian determinants and SD of log |J|."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from metrics._common import (
    NAN,
    STATUS_EMPTY_MASK,
    STATUS_OK,
    MetricValue,
    check_field,
    check_mask,
    check_spacing,
)
from metrics.jacobian import jacobian_determinant

#: Lower and upper clip of the Jacobian determinant before the logarithm in :func:`sdlogj`
#: (the bounds of the Learn2Reg evaluation script).
LOG_JACOBIAN_CLIP = (1e-9, 1e9)


class FoldingResult(NamedTuple):
    """Amount of folding of one displacement field.

    Attributes
    ----------
    percent : float
        ``100 * count / n_voxels`` (the ``folding_pct`` metric, unit ``"%"``); NaN for an empty mask.
    count : int
        Number of voxels with a Jacobian determinant ``<= 0``.
    n_voxels : int
        Number of voxels evaluated (the mask's size, or all voxels).
    status : str
        ``"ok"`` or ``"empty-mask"``.
    """

    percent: float
    count: int
    n_voxels: int
    status: str = STATUS_OK

    @property
    def value(self) -> float:
        """The percentage (same as :attr:`percent`), for uniform access with :class:`MetricValue`."""
        return self.percent

    @property
    def unit(self) -> str:
        """``"%"``."""
        return "%"

    def as_metric(self) -> MetricValue:
        """The percentage as a :class:`MetricValue` (value, status, unit ``"%"``)."""
        return MetricValue(self.percent, self.status, "%")


def _folds(det: np.ndarray) -> FoldingResult:
    """Share of non-positive values among the determinants of the evaluated voxels (or cells);
    NaN with ``"empty-mask"`` when none is evaluated."""
    n = int(det.size)
    if n == 0:
        return FoldingResult(NAN, 0, 0, STATUS_EMPTY_MASK)
    count = int(np.count_nonzero(det <= 0))
    return FoldingResult(100.0 * count / n, count, n, STATUS_OK)


def folding_percentage(
    disp: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    mask: np.ndarray | None = None,
) -> FoldingResult:
    """Percentage (and count) of voxels where the transformation folds.

    The Jacobian determinant of ``phi(x) = x + u(x)`` is computed with the spacing by the
    NumPy implementation :func:`metrics.jacobian.jacobian_determinant` (determinant
    written out, central differences inside, one-sided at the borders; not ``np.linalg.det`` per
    voxel). A voxel folds when ``det <= 0``: negative determinants are foldings, an exact zero is
    a singularity (the paper's "amount of folding (i.e. singularities)"); for real-valued fields
    exact zeros are rare and the count equals the count of negative determinants.

    Parameters
    ----------
    disp : ndarray, shape (ndim, *spatial), ndim 2 or 3
        Displacement in mm along the array axes on the fixed grid (project convention).
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1.
    mask : ndarray of bool, shape (*spatial), optional
        Voxels evaluated (e.g. a body mask); all voxels when omitted.

    Returns
    -------
    FoldingResult
        ``percent`` in ``[0, 100]``, ``count``, ``n_voxels``, ``status``. An all-zero field gives
        0 % and count 0. An empty mask gives NaN, count 0, status ``"empty-mask"``.

    Raises
    ------
    BenchError
        Bad field shape or non-finite values, bad spacing, mask of another shape.

    Examples
    --------
    >>> u = np.zeros((2, 4, 4))
    >>> u[0, 2:] = -3.0  # the lower half moves 3 voxels up, past the upper half: a fold
    >>> folding_percentage(u).count > 0, folding_percentage(np.zeros((2, 4, 4))).percent
    (True, 0.0)
    """
    det = jacobian_determinant(disp, spacing=spacing)
    return _folds(det if mask is None else det[check_mask(mask, det.shape)])


def sdlogj(
    disp: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    mask: np.ndarray | None = None,
) -> MetricValue:
    """Standard deviation of the log Jacobian determinant (SDlogJ), a smoothness measure.

    ``std(log(clip(det, 1e-9, 1e9)))`` over the (masked) voxels, population SD (``ddof=0``), with
    ``det`` from :func:`metrics.jacobian.jacobian_determinant` as in
    :func:`folding_percentage`. Non-positive determinants (folds) are clipped to ``1e-9`` before
    the logarithm, so each fold contributes ``log(1e-9) ~ -20.7`` and inflates the SD instead of
    producing NaN. The clip bounds are those of the Learn2Reg challenge evaluation
    (github.com/MDL-UzL/L2R, ``evaluation/evaluation.py``:
    ``(jacobian_determinant(disp) + 3).clip(0.000000001, 1000000000)``, then
    ``np.log(...).std()``). Unlike that script this function does **not** add 3 to the
    determinant before clipping (the shift changes the value) and does not crop 2 voxels at the
    borders, so numbers are not directly comparable with Learn2Reg leaderboards.

    Parameters
    ----------
    disp, spacing, mask
        As in :func:`folding_percentage`.

    Returns
    -------
    MetricValue
        Unit ``"1"``, ``>= 0``. An all-zero field (det = 1 everywhere) and any affine field give 0.
        An empty mask gives NaN with status ``"empty-mask"``.

    Examples
    --------
    >>> sdlogj(np.zeros((2, 4, 4)))  # an affine field has a constant Jacobian
    MetricValue(value=0.0, status='ok', unit='1')
    """
    det = jacobian_determinant(disp, spacing=spacing)
    if mask is not None:
        m = check_mask(mask, det.shape)
        if not m.any():
            return MetricValue(NAN, STATUS_EMPTY_MASK, "1")
        det = det[m]
    log_det = np.log(np.clip(det, *LOG_JACOBIAN_CLIP))
    return MetricValue(float(log_det.std()), STATUS_OK, "1")


def folding_forward_percentage(
    disp: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    mask: np.ndarray | None = None,
) -> FoldingResult:
    """Percentage of voxel cells that fold, from **forward** differences (``folding_fwd_pct``).

    The central differences of :func:`folding_percentage` skip the voxel itself
    (``(u[x+1] - u[x-1]) / 2``), so they cannot see folding at the scale of one voxel: a field
    alternating ``+0.8, -0.8, +0.8, ...`` voxel along an axis reverses the order of every second
    pair of neighbours, yet its central differences are 0 and :func:`folding_percentage` reports
    0 %. Here the Jacobian of ``x -> x + u(x)`` at voxel ``x`` is ``I + (u[x + e_a] - u[x]) / s_a``
    (column ``a``, ``s_a`` the spacing), i.e. whether the cell between ``x`` and its forward
    neighbours keeps its orientation; on that field every second cell along the axis folds (50 %).

    This is the count the Learn2Reg evaluation intends (share of non-positive Jacobian
    determinants) without its defects: no shift of the determinant by +3 before it is compared
    (github.com/MDL-UzL/L2R, ``evaluation/evaluation.py``: ``(jacobian_determinant(disp) +
    3).clip(1e-9, 1e9)``, after which no value can be <= 0), no 2-voxel border crop, spacing
    taken into account, and forward rather than central differences.

    Parameters
    ----------
    disp, spacing
        As in :func:`folding_percentage`.
    mask : ndarray of bool, shape (*spatial), optional
        Voxels evaluated (a cell is named by its first corner ``x``); all when omitted.

    Returns
    -------
    FoldingResult
        Over the ``prod(n_a - 1)`` cells (the last index of each axis has no forward neighbour):
        ``percent`` in ``[0, 100]``, ``count`` of cells with ``det <= 0``, ``n_voxels`` cells
        evaluated. An empty mask (or a grid with an axis of length 1) gives NaN with
        ``"empty-mask"``. Computed in float64.

    Examples
    --------
    >>> folding_forward_percentage(np.zeros((2, 4, 4)))  # 3 x 3 cells
    FoldingResult(percent=0.0, count=0, n_voxels=9, status='ok')
    """
    u = check_field(disp, name="disp").astype(np.float64)
    nd = u.ndim - 1
    s = check_spacing(spacing, nd)
    if mask is not None:
        check_mask(mask, u.shape[1:])
    inner = tuple(slice(0, n - 1) for n in u.shape[1:])
    jac = np.empty((nd, nd, *(max(n - 1, 0) for n in u.shape[1:])), dtype=np.float64)
    for a in range(nd):
        fwd = tuple(slice(1, None) if b == a else inner[b] for b in range(nd))
        for c in range(nd):
            jac[c, a] = (u[c][fwd] - u[c][inner]) / float(s[a]) + (1.0 if a == c else 0.0)
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    return _folds(det if mask is None else det[np.asarray(mask, dtype=bool)[inner]])
