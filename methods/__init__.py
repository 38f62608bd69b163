"""Registration methods and their deep-learning core.

- ``methods.losses``: similarity losses (Parzen-window NMI, NCC, MSE) and the bending energy;
- ``methods.transforms``: warping, B-spline interpolation and free-form deformation, Jacobians;
- ``methods.networks``: the U-Net (dense field, VoxelMorph design) and PoolNet (B-spline control
  points, DIRNet design);
- ``methods.training``: patch sampling and the trainer;
- ``methods.registry`` and the adapters: the plug-in interface every method implements.

The package face re-exports the functions most users need (``from methods import nmi_loss``).
They are loaded on first access (module ``__getattr__``, PEP 562), so importing the package, the
registry or ``bench methods`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "nmi_loss": "methods.losses",
    "ncc_loss": "methods.losses",
    "mse_loss": "methods.losses",
    "bending_energy": "methods.losses",
    "warp": "methods.transforms",
    "bspline_ffd": "methods.transforms",
    "jacobian_determinant": "methods.transforms",
    "UNet": "methods.networks",
    "PoolNet": "methods.networks",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'methods' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
