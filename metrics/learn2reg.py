"""Learn2Reg's evaluation conventions: the per-pair numbers the challenge's own code computes,
re-implemented from its formulas for ``bench stats l2r`` (beside MIRBench's metrics, never
instead of them).

Source: github.com/MDL-UzL/L2R at commit 88475095 (``evaluation/evaluation.py``,
``evaluation/utils.py``, ``evaluation/surface-distance/surface_distance/metrics.py``). The field
is Learn2Reg's: ``(I, J, K, 3)`` in voxels, fixed -> moving (:func:`benchmark.core.learn2reg.to_l2r`
of the harness's field, what ``bench export-fields --format l2r`` writes).

- **Warped labels** (``evaluation.py`` L117-120): ``map_coordinates(moving, identity + disp,
  order=0)``, 0 outside the moving image.
- **DSC** per label (``utils.py`` L52-60): NaN when the label is absent from the fixed *or the
  moving* labels, else ``2 |F & W| / (|F| + |W|)``; the pair's value is the ``nanmean``.
- **HD95** per label (``utils.py`` L62-70 with ``surface_distance`` L136-290, L324-362): NaN as
  DSC, else the robust Hausdorff distance with **spacing 1** (voxels, whatever the images'
  spacing): surface elements on the 2x2x2-neighbourhood grid of the union's bounding box (plus one
  zero plane at the far end), each weighted by its marching-cubes area; per direction the
  distance at which the cumulative area first reaches 95 % of the total; the larger of the two
  directions; ``inf`` when the warped structure is empty. The pair's value is the ``nanmean``.
- **Jacobian determinant** (``utils.py`` L11-38): ``correlate`` with ``[-0.5, 0, 0.5]`` along
  each axis (zero padding), cropped by 2 voxels at every face, the determinant expanded along
  the first column.
- **SDlogJ** (``evaluation.py`` L138-146): ``std(log(clip(J + 3, 1e-9, 1e9)))`` over the cropped
  grid, or over its voxels where the fixed image's cropped mask is 1 (masked evaluation).
- **num_foldings** (``evaluation.py`` L147): the count of ``clip(J + 3, 1e-9, 1e9) <= 0``, which
  is 0 for every field (the clip's lower bound is positive).
- **TRE** (``utils.py`` L40-49): ``d = map_coordinates(disp[..., c], p.T)`` (cubic B-spline,
  0 outside), ``|| (p + d - q) * spacing_moving ||`` per landmark (mm), the moving image's
  ``pixdim``; the pair's value is the mean.

Numbers are float64 and equal (bit for bit where the operations are the same) to the
challenge's code on the same inputs; ``perf/l2r_scoring.py`` runs both.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from benchmark.core.errors import BenchError

__all__ = [
    "JACOBIAN_SHIFT",
    "JACOBIAN_CLIP",
    "JACOBIAN_CROP",
    "L2RPairScores",
    "l2r_warp_labels",
    "l2r_dice",
    "l2r_hd95",
    "l2r_jacobian_determinant",
    "l2r_sdlogj",
    "l2r_tre",
    "l2r_pair_scores",
]

#: ``J + 3`` before the logarithm (``evaluation.py`` L139-140).
JACOBIAN_SHIFT = 3.0
#: ``clip(0.000000001, 1000000000)`` (``evaluation.py`` L140).
JACOBIAN_CLIP = (1e-9, 1e9)
#: ``jacobian[:, :, 2:-2, 2:-2, 2:-2]`` (``utils.py`` L33).
JACOBIAN_CROP = 2
#: The robust Hausdorff percentile (``utils.py`` L68).
HD_PERCENT = 95.0


def _check_disp(disp: np.ndarray) -> np.ndarray:
    d = np.asarray(disp, dtype=np.float64)
    if d.ndim != 4 or d.shape[-1] != 3:
        raise BenchError(f"disp: expected a Learn2Reg field of shape (I, J, K, 3), got {d.shape}")
    if not np.isfinite(d).all():
        raise BenchError("disp: the field has NaN or infinite values")
    return d


def l2r_warp_labels(moving_labels: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The moving labels warped as Learn2Reg's evaluation warps them (nearest neighbour,
    ``map_coordinates(order=0)``, 0 outside), on the field's grid; the dtype of the input."""
    d = _check_disp(disp)
    m = np.asarray(moving_labels)
    if m.ndim != 3:
        raise BenchError(f"moving_labels: expected a 3D label map, got shape {m.shape}")
    coords = np.indices(d.shape[:3], dtype=np.float64)
    coords += np.moveaxis(d, -1, 0)
    return ndimage.map_coordinates(m, coords, order=0)


def _counts(labels: np.ndarray) -> np.ndarray:
    """Voxels per value ``0..max`` of an integer label map."""
    flat = labels.ravel()
    if flat.size and flat.min() < 0:
        raise BenchError("labels: negative label values")
    return np.bincount(flat.astype(np.intp, copy=False)) if flat.size else np.zeros(1, np.intp)


def _count(counts: np.ndarray, value: int) -> int:
    return int(counts[value]) if 0 <= value < len(counts) else 0


def _int_labels(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.integer):
        if not np.array_equal(a, np.round(a)):
            raise BenchError(f"{name}: label map with non-integer values")
        a = a.astype(np.int64)
    return a


def l2r_dice(
    fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, labels: Sequence[int]
) -> list[float]:
    """Learn2Reg's DSC of each label value (module docstring): NaN when absent from ``fixed`` or
    ``moving``."""
    f, m, w = (_int_labels(a, n) for a, n in ((fixed, "fixed"), (moving, "moving"), (warped, "warped")))
    if f.shape != w.shape:
        raise BenchError(f"fixed {f.shape} and warped {w.shape} labels differ in shape")
    nf, nm, nw = _counts(f), _counts(m), _counts(w)
    both = _counts(f[f == w])
    out = []
    for value in labels:
        v = int(value)
        if _count(nf, v) == 0 or _count(nm, v) == 0:
            out.append(float("nan"))
        else:
            out.append(2 * _count(both, v) / (_count(nf, v) + _count(nw, v)))
    return out


#: The 13 surface-element areas (spacing 1) of the marching-cubes cases of the surface-distance
#: library (Google DeepMind), which Learn2Reg's evaluation uses; ``_SURFEL_CODES[code]`` is the
#: index (a base-13 digit) of neighbour code ``code``'s area. Taken from MONAI's table of the same
#: normals (``monai.metrics.utils``; ``tests/test_learn2reg_metrics.py`` checks they agree), so
#: that scoring needs no MONAI.
_AREA_VALUES = (
    0.0,
    0.21650635094610965,
    0.4330127018922193,
    0.649519052838329,
    0.7071067811865476,
    0.8660254037844386,
    0.9236131321326573,
    1.0,
    1.149519052838329,
    1.2990381056766578,
    1.3660254037844386,
    1.4142135623730951,
    1.573132184970986,
)
_SURFEL_CODES = (
    "011414281248488714282839266c6ca81248266c23896ac848876ca86ac8b664"
    "1226486c236a89c8486c87a86ab6c864236a6ab635a3a36289c8c864a3626221"
    "1226263a468c8c98263a3a536ba6a632468c6ba68a78c6848c98a632c6846221"
    "466b8ca68ac678848ca69832c66284218ac6c662938282417884842182414110"
)


@functools.lru_cache(maxsize=1)
def _surfel_areas() -> np.ndarray:
    """Area of the surface element of each 2x2x2 neighbour code at spacing 1 (256 values)."""
    return np.array([_AREA_VALUES[int(d, 13)] for d in _SURFEL_CODES], dtype=np.float64)


#: Weights of the 2x2x2 neighbour code: corner (a, b, c) contributes 2 ** (7 - (4a + 2b + c)).
_NEIGHBOUR_KERNEL = (2 ** (7 - np.arange(8))).reshape(2, 2, 2)


def _surface(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(border, codes)`` of a cropped mask: the neighbour code of every 2x2x2 cell (one zero
    plane added at the far end of each axis, zeros outside) and the cells that are neither empty
    nor full."""
    padded = np.zeros(np.asarray(crop.shape) + 1, dtype=np.uint8)
    padded[:-1, :-1, :-1] = crop
    codes = ndimage.correlate(padded, _NEIGHBOUR_KERNEL.astype(np.uint8), mode="constant", cval=0)
    return (codes != 0) & (codes != 255), codes


def _robust_distance(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """The distance at which the cumulative area (sorted by distance, then area) first reaches
    ``percent`` % of the total; inf without elements."""
    if len(distances) == 0:
        return float("inf")
    order = np.lexsort((areas, distances))
    d, a = distances[order], areas[order]
    cumulative = np.cumsum(a) / np.sum(a)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(d[min(index, len(d) - 1)])


def _hd95_one(fixed_mask: np.ndarray, warped_mask: np.ndarray, table: np.ndarray) -> float:
    """Robust Hausdorff (95 %) of two boolean masks cropped to their union's bounding box."""
    border_f, code_f = _surface(fixed_mask)
    border_w, code_w = _surface(warped_mask)
    inf = np.full(border_f.shape, np.inf)
    dist_f = ndimage.distance_transform_edt(~border_f) if border_f.any() else inf
    dist_w = ndimage.distance_transform_edt(~border_w) if border_w.any() else inf
    f_to_w = _robust_distance(dist_w[border_f], table[code_f[border_f]], HD_PERCENT)
    w_to_f = _robust_distance(dist_f[border_w], table[code_w[border_w]], HD_PERCENT)
    return max(f_to_w, w_to_f)


def _bounding_boxes(labels: np.ndarray) -> dict[int, tuple[slice, ...]]:
    return {v + 1: s for v, s in enumerate(ndimage.find_objects(labels)) if s is not None}


def l2r_hd95(
    fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, labels: Sequence[int]
) -> list[float]:
    """Learn2Reg's HD95 of each label value in **voxels** (module docstring): NaN when absent
    from ``fixed`` or ``moving``, inf when the warped structure is empty.

    Each structure is cut out of the two maps by the bounding box of its union (found for all
    labels in one pass), as the surface-distance library crops before its filters.
    """
    f, m, w = (_int_labels(a, n) for a, n in ((fixed, "fixed"), (moving, "moving"), (warped, "warped")))
    if f.shape != w.shape or f.ndim != 3:
        raise BenchError(f"fixed {f.shape} and warped {w.shape}: expected two 3D maps of one shape")
    nm = _counts(m)
    table = _surfel_areas()
    boxes_f = _bounding_boxes(np.clip(f, 0, None))
    boxes_w = _bounding_boxes(np.clip(w, 0, None))
    out = []
    for value in labels:
        v = int(value)
        if v not in boxes_f or _count(nm, v) == 0:
            out.append(float("nan"))
            continue
        box = boxes_f[v]
        if v in boxes_w:
            box = tuple(
                slice(min(a.start, b.start), max(a.stop, b.stop))
                for a, b in zip(box, boxes_w[v], strict=True)
            )
        out.append(_hd95_one(f[box] == v, w[box] == v, table))
    return out


def _jacobian_block(d: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The cropped determinant of the planes ``lo..hi-1`` (uncropped indices) along axis 0."""
    c = JACOBIAN_CROP
    n = d.shape[:3]
    inner = (slice(lo, hi), slice(c, n[1] - c), slice(c, n[2] - c))

    def grad(comp: int, axis: int) -> np.ndarray:
        plus = list(inner)
        minus = list(inner)
        plus[axis] = slice(inner[axis].start + 1, inner[axis].stop + 1)
        minus[axis] = slice(inner[axis].start - 1, inner[axis].stop - 1)
        u = d[..., comp]
        return 0.5 * u[tuple(plus)] - 0.5 * u[tuple(minus)]

    # j[a][k] = d u_k / d x_a + delta_ak: row a = the derivative's axis, as grad_disp's
    j = [[grad(k, a) + (1.0 if a == k else 0.0) for k in range(3)] for a in range(3)]
    return (
        j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1])
        - j[1][0] * (j[0][1] * j[2][2] - j[0][2] * j[2][1])
        + j[2][0] * (j[0][1] * j[1][2] - j[0][2] * j[1][1])
    )


def l2r_jacobian_determinant(disp: np.ndarray, *, slab: int = 8) -> np.ndarray:
    """Learn2Reg's Jacobian determinant of a voxel field ``(I, J, K, 3)``: central differences,
    cropped by 2 voxels at every face (shape ``(I - 4, J - 4, K - 4)``), computed in slabs of
    ``slab`` planes along axis 0 (the same numbers, cache-sized work).

    Examples
    --------
    >>> u = np.zeros((6, 6, 6, 3))
    >>> u[..., 0] = 0.5 * np.arange(6)[:, None, None]  # stretched by 1.5 along i
    >>> l2r_jacobian_determinant(u).round(12).tolist()
    [[[1.5, 1.5], [1.5, 1.5]], [[1.5, 1.5], [1.5, 1.5]]]
    """
    d = _check_disp(disp)
    c = JACOBIAN_CROP
    n = d.shape[:3]
    if min(n) <= 2 * c:
        raise BenchError(f"disp: the grid {n} is too small for the 2-voxel crop")
    out = np.empty(tuple(k - 2 * c for k in n), dtype=np.float64)
    for start in range(c, n[0] - c, slab):
        stop = min(n[0] - c, start + slab)
        out[start - c : stop - c] = _jacobian_block(d, start, stop)
    return out


def l2r_sdlogj(
    disp: np.ndarray, *, mask: np.ndarray | None = None, det: np.ndarray | None = None
) -> tuple[float, int]:
    """``(SDlogJ, num_foldings)`` as Learn2Reg computes them (module docstring).

    ``mask`` is the fixed image's mask on the field's grid (masked evaluation: the voxels where
    its cropped values are 1); ``det`` a determinant from :func:`l2r_jacobian_determinant`.
    """
    jac = l2r_jacobian_determinant(disp) if det is None else det
    clipped = np.clip(jac + JACOBIAN_SHIFT, *JACOBIAN_CLIP)
    log_det = np.log(clipped)
    folds = int(np.count_nonzero(clipped <= 0))
    if mask is None:
        return float(log_det.std()), folds
    c = JACOBIAN_CROP
    m = np.asarray(mask)
    if m.shape != tuple(k + 2 * c for k in log_det.shape):
        raise BenchError(f"mask shape {m.shape} does not match the field's grid")
    valid = m[c:-c, c:-c, c:-c] == 1
    return float(np.ma.MaskedArray(log_det, ~valid).std()), folds


def l2r_tre(
    fixed_points: np.ndarray,
    moving_points: np.ndarray,
    disp: np.ndarray,
    *,
    spacing_moving: Sequence[float],
) -> np.ndarray:
    """Learn2Reg's TRE of each landmark in mm (module docstring): cubic interpolation of the
    voxel field at the fixed points, the moving image's spacing."""
    d = _check_disp(disp)
    p = np.asarray(fixed_points, dtype=np.float64)
    q = np.asarray(moving_points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape != q.shape:
        raise BenchError(
            f"landmarks: fixed {p.shape} and moving {q.shape} points; expected two (n, 3) arrays"
        )
    at = np.stack([ndimage.map_coordinates(d[..., c], p.T) for c in range(3)], axis=1)
    return np.linalg.norm((p + at - q) * np.asarray(spacing_moving, dtype=np.float64), axis=1)


def _nanmean(values: Sequence[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or np.isnan(a).all():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in a mean with inf
        return float(np.nanmean(a))


@dataclass
class L2RPairScores:
    """Learn2Reg's numbers of one pair.

    Attributes
    ----------
    dice, hd95 : list of float
        Per label value (in the order given), NaN where Learn2Reg gives NaN; ``hd95`` in voxels.
    sdlogj : float
    num_foldings : int
    tre : ndarray
        Per landmark, mm (empty without landmarks).
    """

    dice: list[float] = field(default_factory=list)
    hd95: list[float] = field(default_factory=list)
    sdlogj: float = float("nan")
    num_foldings: int = 0
    tre: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def dice_mean(self) -> float:
        """``nanmean`` over the labels (Learn2Reg's per-case DSC)."""
        return _nanmean(self.dice)

    @property
    def hd95_mean(self) -> float:
        """``nanmean`` over the labels (inf when a structure was warped away)."""
        return _nanmean(self.hd95)

    @property
    def tre_mean(self) -> float:
        return float(self.tre.mean()) if self.tre.size else float("nan")


def l2r_pair_scores(
    disp: np.ndarray,
    *,
    labels: Mapping[str, int] | Sequence[int] = (),
    fixed_labels: np.ndarray | None = None,
    moving_labels: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    spacing_moving: Sequence[float] | None = None,
) -> L2RPairScores:
    """Every Learn2Reg number of one pair from its voxel field ``(I, J, K, 3)``: DSC and HD95
    of ``labels`` (values, or a name -> value mapping) when both label maps are given, SDlogJ and
    num_foldings (masked by ``mask`` when given), TRE of ``landmarks`` (fixed, moving points)."""
    values = list(labels.values()) if isinstance(labels, Mapping) else list(labels)
    out = L2RPairScores()
    if fixed_labels is not None and moving_labels is not None and values:
        warped = l2r_warp_labels(moving_labels, disp)
        out.dice = l2r_dice(fixed_labels, moving_labels, warped, values)
        out.hd95 = l2r_hd95(fixed_labels, moving_labels, warped, values)
    out.sdlogj, out.num_foldings = l2r_sdlogj(disp, mask=mask)
    if landmarks is not None and len(landmarks[0]):
        if spacing_moving is None:
            raise BenchError("l2r_pair_scores: landmarks need spacing_moving")
        out.tre = l2r_tre(*landmarks, disp, spacing_moving=spacing_moving)
    return out
