"""Displacement error in mm against a ground-truth displacement field, and the mean displacement
length by which the report and the reader study pick the most deformed pairs."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from metrics._common import (
    NAN,
    STATUS_EMPTY_MASK,
    STATUS_NO_GROUND_TRUTH,
    STATUS_OK,
    MetricValue,
    check_field,
    check_mask,
    check_same_shape,
)


class DisplacementErrorResult(NamedTuple):
    """Summary of the per-voxel Euclidean error ``|u - u_true|`` in mm.

    Attributes
    ----------
    mean, median, p95, max : float
        Statistics over the evaluated voxels, mm (NaN when undefined). ``mean`` is the
        ``disp_error_mm`` metric.
    status : str
        ``"ok"``, ``"no-ground-truth"`` or ``"empty-mask"``.
    """

    mean: float
    median: float
    p95: float
    max: float
    status: str = STATUS_OK

    @property
    def value(self) -> float:
        """The mean error (same as :attr:`mean`)."""
        return self.mean

    @property
    def unit(self) -> str:
        """``"mm"``."""
        return "mm"

    def as_metric(self) -> MetricValue:
        """The mean error as a :class:`MetricValue` (unit ``"mm"``)."""
        return MetricValue(self.mean, self.status, "mm")


def displacement_error(
    disp: np.ndarray,
    true_disp: np.ndarray | None,
    *,
    mask: np.ndarray | None = None,
) -> DisplacementErrorResult:
    """Euclidean distance between an estimated and a ground-truth displacement, per voxel, in mm.

    Both fields follow the project convention (fixed grid, fixed -> moving, mm along the array
    axes), so the error at voxel ``x`` is ``|| u(x) - u_true(x) ||_2`` in mm with no spacing
    needed. Computed in float64.

    Parameters
    ----------
    disp : ndarray, shape (ndim, *spatial), ndim 2 or 3
        Estimated displacement, mm.
    true_disp : ndarray, same shape, or None
        Ground-truth displacement, mm; ``None`` when the dataset has none.
    mask : ndarray of bool, shape (*spatial), optional
        Voxels evaluated; all when omitted.

    Returns
    -------
    DisplacementErrorResult
        ``mean``, ``median``, ``p95`` (linear-interpolated 95th percentile) and ``max`` in mm. No
        ground truth gives all NaN with status ``"no-ground-truth"``; an empty mask all NaN with
        ``"empty-mask"``. Identical fields give 0.

    Raises
    ------
    BenchError
        Bad field shapes (both shapes printed), non-finite values, mask of another shape.

    Examples
    --------
    >>> truth = np.zeros((2, 4, 4))
    >>> off = truth + np.array([3.0, 4.0])[:, None, None]  # 5 mm wrong everywhere
    >>> displacement_error(off, truth).mean
    5.0
    """
    u = check_field(disp, name="disp")
    if true_disp is None:
        return DisplacementErrorResult(NAN, NAN, NAN, NAN, STATUS_NO_GROUND_TRUTH)
    t = check_field(true_disp, name="true_disp")
    check_same_shape(u, t, ("disp", "true_disp"))
    diff = u.astype(np.float64) - t.astype(np.float64)
    err = np.sqrt(np.einsum("c...,c...->...", diff, diff))
    if mask is not None:
        m = check_mask(mask, err.shape)
        if not m.any():
            return DisplacementErrorResult(NAN, NAN, NAN, NAN, STATUS_EMPTY_MASK)
        err = err[m]
    else:
        err = err.ravel()
    return DisplacementErrorResult(
        float(err.mean()),
        float(np.median(err)),
        float(np.percentile(err, 95)),
        float(err.max()),
        STATUS_OK,
    )


#: Margin (mm) by which the union of the fixed labels is dilated to give the foreground of the
#: displacement error when the dataset has no mask: the motion next to a structure matters too,
#: the air far from it does not.
FOREGROUND_MARGIN_MM = 5.0


def foreground_mask(
    *,
    mask: np.ndarray | None,
    fixed_labels: np.ndarray | None,
    spacing=None,
    margin_mm: float = FOREGROUND_MARGIN_MM,
) -> np.ndarray | None:
    """The voxels where ``disp_error_mm`` is evaluated.

    The dataset's mask when there is one; else every voxel within ``margin_mm`` (Euclidean
    distance in mm, with the spacing: ``scipy.ndimage.distance_transform_edt``) of a labelled
    voxel of the fixed image (label > 0), i.e. the union of the structures dilated by a ball of
    radius ``margin_mm``; else ``None`` (no foreground known).

    Parameters
    ----------
    mask : ndarray of bool, shape (*spatial), or None
    fixed_labels : ndarray of int, shape (*spatial), or None
    spacing : sequence of float, optional
        Voxel size in mm along the array axes; ``None`` means 1.
    margin_mm : float
        Dilation radius, default :data:`FOREGROUND_MARGIN_MM` (5 mm).
    """
    from scipy.ndimage import distance_transform_edt

    from metrics._common import check_spacing

    if mask is not None:
        return np.asarray(mask, dtype=bool)
    if fixed_labels is None:
        return None
    union = np.asarray(fixed_labels) > 0
    if not union.any():
        return union
    s = check_spacing(spacing, union.ndim)
    return distance_transform_edt(~union, sampling=s) <= margin_mm


def mean_displacement_length(disp: np.ndarray) -> float:
    """Mean over the grid of the displacement length ``|u(x)|``, in the field's unit (mm).

    The "deformation" by which the report and the reader study choose the pairs to show (the
    paper's pairs "having maximum deformation between them"). Computed in float64.

    Parameters
    ----------
    disp : ndarray, shape (ndim, *spatial), ndim 2 or 3
        Displacement in mm along the array axes.

    Returns
    -------
    float
        ``mean_x sqrt(sum_c u_c(x)^2)``; 0 for an all-zero field, NaN when a value is NaN.

    Examples
    --------
    >>> u = np.zeros((2, 2, 2))
    >>> u[0, 0], u[1, 0] = 3.0, 4.0  # |u| = 5 mm on half the grid
    >>> mean_displacement_length(u)
    2.5
    """
    u = np.asarray(disp, dtype=np.float64)
    return float(np.sqrt((u**2).sum(axis=0)).mean())
