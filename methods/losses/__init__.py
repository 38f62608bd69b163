"""Similarity losses and regularisers of the registration core.

- :mod:`methods.losses.nmi`: Parzen-window normalized mutual information (the paper's loss);
- :mod:`methods.losses.ncc`: global and local (windowed) normalized cross correlation;
- :mod:`methods.losses.mse`: mean squared error;
- :mod:`methods.losses.bending`: bending energy of dense fields and of B-spline control grids.

Every similarity loss takes images ``(N, C, *spatial)`` and returns a value to minimise.
"""

from methods.losses.bending import BendingEnergy, bending_energy, bspline_bending_energy
from methods.losses.mse import MSELoss, mse_loss
from methods.losses.ncc import NCCLoss, ncc_loss
from methods.losses.nmi import NMILoss, nmi_loss, nmi_loss_dense, parzen_joint_histogram

__all__ = [
    "nmi_loss",
    "nmi_loss_dense",
    "parzen_joint_histogram",
    "ncc_loss",
    "mse_loss",
    "bending_energy",
    "bspline_bending_energy",
    "NMILoss",
    "NCCLoss",
    "MSELoss",
    "BendingEnergy",
]
