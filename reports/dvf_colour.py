"""Colour coding of displacement fields as in the paper's Figures 1 and 3: the components along the
array axes ``i, j, k`` as red, green and blue, and the scaled vector length as alpha.
"""

from __future__ import annotations

import numpy as np

from benchmark.core.errors import BenchError


def dvf_rgba(
    disp: np.ndarray, *, max_component: float | None = None, max_length: float | None = None
) -> np.ndarray:
    """RGBA colours of a displacement field (one slice or a whole volume).

    Parameters
    ----------
    disp : ndarray, shape (C, *spatial)
        Displacement components in mm along the array axes (``C`` = 2 or 3, any number of spatial
        axes, e.g. a 2D slice ``(3, I, J)`` of a 3D field).
    max_component : float, optional
        Component value mapped to full intensity: component ``c`` becomes
        ``0.5 + 0.5 * clip(u_c / max_component, -1, 1)``, so ``-max -> 0``, ``0 -> 0.5``,
        ``+max -> 1``. Default: the largest absolute component (1 when the field is zero). Pass the
        same value for all panels that are compared.
    max_length : float, optional
        Vector length mapped to alpha 1: ``alpha = clip(|u| / max_length, 0, 1)``. Default: the
        largest vector length (alpha 0 everywhere for a zero field).

    Returns
    -------
    ndarray, shape (*spatial, 4), float64 in [0, 1]
        Red, green, blue = components 0, 1, 2 (blue is 0.5, i.e. zero, for a 2D field), alpha.
    """
    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim < 2 or disp.shape[0] not in (2, 3):
        raise BenchError(
            f"dvf_rgba: expected a field of shape (2 or 3, *spatial), got {disp.shape}"
        )
    if max_component is None:
        m = float(np.abs(disp).max()) if disp.size else 0.0
        max_component = m if m > 0 else 1.0
    if max_component <= 0:
        raise BenchError(f"dvf_rgba: max_component must be > 0, got {max_component}")
    length = np.sqrt((disp**2).sum(axis=0))
    if max_length is None:
        max_length = float(length.max()) if length.size else 0.0
    rgba = np.empty((*disp.shape[1:], 4), dtype=np.float64)
    for c in range(3):
        if c < disp.shape[0]:
            rgba[..., c] = 0.5 + 0.5 * np.clip(disp[c] / max_component, -1.0, 1.0)
        else:
            rgba[..., c] = 0.5
    rgba[..., 3] = np.clip(length / max_length, 0.0, 1.0) if max_length > 0 else 0.0
    return rgba
