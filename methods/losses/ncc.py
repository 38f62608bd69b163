"""Normalized cross correlation: global (Pearson, per batch element) and local (VoxelMorph windows).

- Global (``window=None``): ``r = cov(A, B) / sqrt(max(var(A) var(B), eps^2))``, the Pearson
  correlation over all voxels (mask-weighted when a mask is given). A constant image gives ``0``.
- Local (``window`` an odd int or per-axis tuple): VoxelMorph's definition (Balakrishnan et al.
  2019): window sums ``S`` of ``A, B, A^2, B^2, AB`` over the ``n`` voxels of the window, per voxel
  ``cc = (S_AB - S_A S_B / n)^2 / ((S_AA - S_A^2 / n) (S_BB - S_B^2 / n) + eps)``, i.e. the
  *squared* local correlation, averaged over the voxels (mask-weighted when a mask is given).
  One deliberate difference: at the borders the window is cropped to the image (``n`` counts the
  voxels inside), whereas VoxelMorph zero-pads and so treats outside voxels as intensity 0 (which
  makes a constant image correlate with anything near the border). In the interior both agree.
  Constant windows give ``0`` thanks to ``eps`` (default 1e-5, in units of summed squared
  intensities, as in VoxelMorph).

Both return ``-NCC`` (lower is better), one value per batch element before reduction, and work for
2D and 3D images on any device. Channels are averaged for the local form and pooled for the global
form (the registration core uses one channel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.errors import BenchError
from methods.losses._checks import check_pair, check_reduction, prepare_mask, reduce

__all__ = ["ncc_loss", "NCCLoss"]


def _check_window(window: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(window, bool):
        raise BenchError(f"window={window!r} must be an odd int or a tuple of {ndim} odd ints")
    items = (window,) * ndim if isinstance(window, int) else tuple(window)
    if len(items) != ndim or not all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 and w % 2 == 1 for w in items
    ):
        raise BenchError(
            f"window={window!r} must be an odd positive int or a tuple of {ndim} odd positive ints"
        )
    return items


def _global_ncc(
    a: torch.Tensor, b: torch.Tensor, m: torch.Tensor | None, eps: float
) -> torch.Tensor:
    a2, b2 = a.flatten(1), b.flatten(1)
    w = torch.ones_like(a2) if m is None else m.flatten(1)
    total = w.sum(1, keepdim=True).clamp_min(torch.finfo(a2.dtype).tiny)
    da = a2 - (w * a2).sum(1, keepdim=True) / total
    db = b2 - (w * b2).sum(1, keepdim=True) / total
    cov = (w * da * db).sum(1) / total[:, 0]
    var_a = (w * da * da).sum(1) / total[:, 0]
    var_b = (w * db * db).sum(1) / total[:, 0]
    return cov / torch.sqrt((var_a * var_b).clamp_min(eps * eps))


def _local_ncc(
    a: torch.Tensor, b: torch.Tensor, m: torch.Tensor | None, window: tuple[int, ...], eps: float
) -> torch.Tensor:
    n, c = a.shape[:2]
    ndim = a.dim() - 2
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    count = 1
    for w in window:
        count *= w
    pad = [w // 2 for w in window]
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    means = pool(stack, window, stride=1, padding=pad, count_include_pad=False)
    ones = torch.ones_like(a[:1, :1])
    n_in = (
        pool(ones, window, stride=1, padding=pad, count_include_pad=True) * count
    )  # voxels inside
    m_a, m_b, m_aa, m_bb, m_ab = means.split(c, dim=1)
    cross = n_in * (m_ab - m_a * m_b)
    var_a = n_in * (m_aa - m_a * m_a)
    var_b = n_in * (m_bb - m_b * m_b)
    cc = cross * cross / (var_a * var_b + eps)
    if m is None:
        return cc.flatten(1).mean(1)
    wts = m.flatten(1)
    return (cc.flatten(1) * wts).sum(1) / wts.sum(1).clamp_min(torch.finfo(cc.dtype).tiny)


def ncc_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    window: int | Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-5,
) -> torch.Tensor:
    """Negative normalized cross correlation, global or local (lower is better).

    Parameters
    ----------
    a, b : torch.Tensor, shape (N, C, *spatial)
        Images of equal shape, 2D or 3D, floating, any device.
    window : int or tuple of int, optional
        ``None`` (default): global Pearson correlation per batch element. Otherwise the odd window
        size of the local NCC (one int for every axis or one per spatial axis; VoxelMorph uses 9).
    mask : torch.Tensor, optional
        Bool or non-negative float weights broadcastable to ``a``'s shape. Global: weighted
        moments. Local: weighted average of the per-voxel ``cc`` (the window sums stay unmasked).
        A fully masked element gives ``0``.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over the batch; ``"none"`` returns shape ``(N,)``.
    eps : float, default 1e-5
        Global: lower bound of ``sqrt(var_a var_b)``. Local: added to the variance product.

    Returns
    -------
    torch.Tensor
        ``-r`` in ``[-1, 1]`` (global) or ``-mean(cc)`` in ``[-1, 0]`` (local), dtype of ``a``.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> ncc_loss(x, 2 * x + 1).item(), ncc_loss(x, 1 - x).item()  # -NCC: -1 for a linear match
    (-1.0, 1.0)
    """
    reduction = check_reduction(reduction)
    ndim = check_pair(a, b, single_channel=False)
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise BenchError(f"eps={eps!r} must be a positive float")
    m = prepare_mask(mask, a, a.dtype)
    if window is None:
        value = _global_ncc(a, b, m, float(eps))
    else:
        value = _local_ncc(a, b, m, _check_window(window, ndim), float(eps))
    return reduce(-value, reduction)


class NCCLoss(nn.Module):
    """Module wrapper of :func:`ncc_loss`; ``forward(a, b, mask=None)``."""

    def __init__(
        self,
        *,
        window: int | Sequence[int] | None = None,
        reduction: str = "mean",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.window = window
        self.reduction = check_reduction(reduction)
        self.eps = eps

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return ncc_loss(a, b, window=self.window, mask=mask, reduction=self.reduction, eps=self.eps)

    def extra_repr(self) -> str:
        return f"window={self.window}, reduction={self.reduction!r}, eps={self.eps}"
