"""Registration methods and their deep-learning core.

- ``methods.losses``: similarity losses (Parzen-window NMI, NCC, MSE) and the bending energy;
- ``methods.transforms``: warping, B-spline interpolation and free-form deformation, Jacobians;
- ``methods.networks``: the U-Net (dense field, VoxelMorph design) and PoolNet (B-spline control
  points, DIRNet design);
- ``methods.training``: patch sampling and the trainer;
- ``methods.registry`` and the adapters: the plug-in interface every method implements.

The package face re-exports the functions most users need; importing it imports torch.
"""

from methods.losses import bending_energy, mse_loss, ncc_loss, nmi_loss
from methods.networks import PoolNet, UNet
from methods.transforms import bspline_ffd, jacobian_determinant, warp

__all__ = [
    "nmi_loss",
    "ncc_loss",
    "mse_loss",
    "bending_energy",
    "warp",
    "bspline_ffd",
    "jacobian_determinant",
    "UNet",
    "PoolNet",
]
