"""Registration networks: (fixed, moving) -> displacement field in voxels on the fixed grid.

- :class:`UNet` (``unet.py``): VoxelMorph design, predicts the dense field directly;
- :class:`PoolNet` (``poolnet.py``): DIRNet/DLIR design, predicts cubic B-spline control points
  (:meth:`PoolNet.control_points`) expanded by :func:`methods.transforms.bspline_ffd`;
- :func:`build_network` (``factory.py``): construct either from a name and keyword settings.

Both take ``forward(fixed, moving)`` with ``(N, C, *spatial)`` tensors of any spatial size and
return ``(N, ndim, *spatial)``: fixed -> moving, ``warped(x) = moving(x + u(x))``, in voxels along
the array axes (convert with ``u_mm[:, c] = u[:, c] * spacing[c]``).
"""

from methods.networks.factory import NETWORKS, build_network, network_settings
from methods.networks.poolnet import PoolNet
from methods.networks.unet import UNet

__all__ = ["UNet", "PoolNet", "build_network", "network_settings", "NETWORKS"]
