"""A pair as the networks take it: both images percentile-normalised as in training, as float32
tensors of shape ``(1, 1, *spatial)`` on a device, with the pair's mask.

Training (its volumes), validation, registration and instance-specific optimisation all read a
pair through these functions, so that a network always sees the intensities it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.core.normalize import percentile_normalize
from methods.training.config import TrainingConfig


def normalized_images(pair, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pair's fixed and moving image, percentile-normalised as the network was trained
    (inside ``pair.mask`` when there is one)."""
    lower, upper = config.percentiles
    return tuple(
        percentile_normalize(image.array, mask=pair.mask, lower=lower, upper=upper)
        for image in (pair.fixed, pair.moving)
    )


def as_input(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A spatial array as a float32 tensor of shape ``(1, 1, *spatial)`` on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None].to(device)


def pair_inputs(
    pair, config: TrainingConfig, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The whole pair as the network and its loss take it: the fixed and the moving image
    normalised as in training (:func:`normalized_images`) and the pair's mask (None without
    one), each ``(1, 1, *spatial)`` float32 on ``device``."""
    fixed, moving = normalized_images(pair, config)
    mask = None if pair.mask is None else as_input(pair.mask, device)
    return as_input(fixed, device), as_input(moving, device), mask
