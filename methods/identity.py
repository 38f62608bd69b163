"""The ``identity`` method ("No IR" in the paper's tables): the zero displacement field."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark.core.pairs import RegistrationPair
from methods.base import Method, RegistrationResult, method_summary

__all__ = ["Identity"]


class Identity(Method):
    """No registration: ``u = 0`` everywhere, so the warped image is the moving image.

    It gives the "before registration" baseline of every metric.
    """

    name = "identity"
    description = 'No registration ("No IR"): the zero displacement field'
    learns = False

    def __init__(self):
        super().__init__()

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """No metric, no transform, nothing to choose."""
        return method_summary(
            metric="none",
            transform="none (zero field)",
            settings={},
            chosen_by="method",
            assumes_one_contrast=False,
        )

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        start = time.perf_counter()
        field = np.zeros((pair.ndim, *pair.fixed.shape), dtype=np.float32)
        runtime = time.perf_counter() - start
        warped = np.asarray(pair.moving.array, dtype=np.float32).copy()
        return RegistrationResult(displacement=field, warped=warped, runtime_s=runtime)
