"""The training loss of the learning methods, in one place: similarity of the fixed image and the
linearly warped moving image plus ``bending_weight`` times the bending energy (voxel units).

Training (:mod:`~methods.training.trainer`), validation (:mod:`~methods.training.validation`)
and instance-specific optimisation (:mod:`~methods.training.instance`) all score a field with
:func:`field_loss`; :func:`loss_terms` runs the network first.
"""

from __future__ import annotations

import torch

from methods.training.config import TrainingConfig


def field_loss(
    config: TrainingConfig,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    disp: torch.Tensor | None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, similarity, bending)`` of the voxel displacement ``disp`` (``None``: the zero
    field, the moving image itself and bending 0).

    The similarity is ``config.similarity`` (Parzen NMI with ``nmi_bins`` and ``nmi_sigma``, or
    NCC with ``ncc_window``) inside ``mask`` when given. The bending energy needs three voxels
    along every axis; on a thinner grid it is 0.
    """
    from methods.losses import bending_energy, ncc_loss, nmi_loss
    from methods.transforms import warp

    if disp is None:
        warped, bend = moving, torch.zeros((), dtype=fixed.dtype, device=fixed.device)
    else:
        warped = warp(moving, disp, mode="linear", padding="border")
        if min(disp.shape[2:]) >= 3:
            bend = bending_energy(disp)
        else:
            bend = torch.zeros((), dtype=disp.dtype, device=disp.device)
    if config.similarity == "nmi":
        sim = nmi_loss(warped, fixed, bins=config.nmi_bins, sigma=config.nmi_sigma, mask=mask)
    else:
        sim = ncc_loss(warped, fixed, window=config.ncc_window, mask=mask)
    return sim + config.bending_weight * bend, sim, bend


def loss_terms(
    config: TrainingConfig,
    model: torch.nn.Module,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`field_loss` of the field ``model(fixed, moving)`` (one mini-batch)."""
    return field_loss(config, fixed, moving, model(fixed, moving), mask)
