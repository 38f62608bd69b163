"""Instance-specific optimisation: a trained network fine-tuned on the one pair it registers.

VoxelMorph's option (Balakrishnan et al., "VoxelMorph: a learning framework for deformable medical
image registration", IEEE TMI 2019, "instance-specific optimization"): starting from the trained
weights, a few Adam steps on the network's own training loss for the pair being registered, then
the field of the fine-tuned copy. The trained model itself is not changed. Off in both presets
(the paper's networks register in one pass); ``--set instance_steps=N`` turns it on
(docs/methods.md, "Instance-specific optimisation").
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from methods.training.config import TrainingConfig
from methods.training.loss import loss_terms


def fine_tune(
    model: torch.nn.Module,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    *,
    config: TrainingConfig,
    steps: int,
    mask: torch.Tensor | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A copy of ``model`` after ``steps`` Adam steps on the training loss of one pair.

    The loss is the training's (``config``: similarity, NMI bins and Parzen sigma, bending weight;
    linear interpolation, voxel units) on the whole images, the similarity inside ``mask`` when
    given; the optimiser is the training's (Adam, ``config.learning_rate`` and ``betas``). The
    network stays in evaluation mode (batch normalisation keeps its trained statistics). Memory
    is that of one training step on a patch the size of the whole image.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network, ``model(fixed, moving) -> (1, ndim, *spatial)`` voxel displacements;
        left unchanged.
    fixed, moving : torch.Tensor, shape (1, 1, *spatial)
        The pair, normalised as in training, on the model's device.
    config : TrainingConfig
        The configuration the model was trained with.
    steps : int
        Number of Adam steps, ``>= 0`` (0: the model itself is returned).
    mask : torch.Tensor, shape (1, 1, *spatial), optional
        Where the similarity is computed (e.g. the breast); the whole image when None.

    Returns
    -------
    model : torch.nn.Module
        The fine-tuned copy, in evaluation mode.
    info : dict
        ``instance_steps`` and, after at least one step, ``loss_before`` and ``loss_after``: the
        pair's loss with the trained and with the fine-tuned weights.
    """
    if steps == 0:
        return model, {"instance_steps": 0}
    tuned = copy.deepcopy(model).eval().requires_grad_(True)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=config.learning_rate, betas=config.betas)
    with torch.enable_grad():
        for step in range(steps):
            loss = loss_terms(config, tuned, fixed, moving, mask)[0]
            if step == 0:
                before = float(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    tuned.requires_grad_(False)
    with torch.no_grad():
        after = float(loss_terms(config, tuned, fixed, moving, mask)[0])
    return tuned, {"instance_steps": steps, "loss_before": before, "loss_after": after}
