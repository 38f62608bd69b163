"""Mean squared error between two images (optionally masked)."""

from __future__ import annotations

import torch
from torch import nn

from methods.losses._checks import check_pair, check_reduction, prepare_mask, reduce

__all__ = ["mse_loss", "MSELoss"]


def mse_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean squared intensity difference per batch element (lower is better).

    Parameters
    ----------
    a, b : torch.Tensor, shape (N, C, *spatial)
        Images of equal shape (2D or 3D, any number of channels), any floating dtype and device.
    mask : torch.Tensor, optional
        Bool or non-negative float weights broadcastable to ``a``'s shape: the loss is
        ``sum m (a - b)^2 / sum m`` over channels and voxels. A fully masked element gives ``0``.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over the batch; ``"none"`` returns shape ``(N,)``.

    Returns
    -------
    torch.Tensor
        The loss, dtype of the inputs.

    Examples
    --------
    >>> import torch
    >>> mse_loss(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)).item()
    0.25
    """
    reduction = check_reduction(reduction)
    check_pair(a, b, single_channel=False)
    sq = (a - b).square().flatten(1)
    if mask is None:
        return reduce(sq.mean(1), reduction)
    m = prepare_mask(mask, a, sq.dtype).flatten(1)
    return reduce((sq * m).sum(1) / m.sum(1).clamp_min(torch.finfo(sq.dtype).tiny), reduction)


class MSELoss(nn.Module):
    """Module wrapper of :func:`mse_loss`; ``forward(a, b, mask=None)``."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return mse_loss(a, b, mask=mask, reduction=self.reduction)
