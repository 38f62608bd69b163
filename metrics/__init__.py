"""Evaluation metrics: pure functions on NumPy arrays with voxel spacing.

Dice, Hausdorff distance (max and 95th percentile), histogram NMI, folding (% negative Jacobian
determinant, central and forward differences; the Jacobian determinant itself), displacement
error and landmark TRE. Each function documents its shapes, units and edge cases. Importing the
package loads no torch.
"""

from metrics._common import (
    STATUS_ABSENT_BOTH,
    STATUS_ABSENT_FIXED,
    STATUS_ABSENT_MOVING,
    STATUS_CONSTANT_IMAGE,
    STATUS_EMPTY_MASK,
    STATUS_LOST,
    STATUS_NO_FOREGROUND,
    STATUS_NO_GROUND_TRUTH,
    STATUS_NO_LANDMARKS,
    STATUS_OK,
    MetricValue,
)
from metrics.dice import dice
from metrics.displacement import (
    FOREGROUND_MARGIN_MM,
    DisplacementErrorResult,
    displacement_error,
    foreground_mask,
    mean_displacement_length,
)
from metrics.folding import (
    FoldingResult,
    folding_forward_percentage,
    folding_percentage,
    sdlogj,
)
from metrics.hausdorff import (
    HausdorffResult,
    directed_surface_distances,
    hausdorff_distance,
    surface,
)
from metrics.histogram_nmi import histogram_nmi
from metrics.jacobian import jacobian_determinant
from metrics.label_metrics import label_metrics
from metrics.landmarks import target_registration_error

__all__ = [
    "MetricValue",
    "HausdorffResult",
    "FoldingResult",
    "DisplacementErrorResult",
    "dice",
    "hausdorff_distance",
    "directed_surface_distances",
    "surface",
    "histogram_nmi",
    "folding_percentage",
    "folding_forward_percentage",
    "target_registration_error",
    "sdlogj",
    "jacobian_determinant",
    "displacement_error",
    "foreground_mask",
    "mean_displacement_length",
    "FOREGROUND_MARGIN_MM",
    "label_metrics",
    "STATUS_OK",
    "STATUS_ABSENT_FIXED",
    "STATUS_ABSENT_MOVING",
    "STATUS_ABSENT_BOTH",
    "STATUS_CONSTANT_IMAGE",
    "STATUS_EMPTY_MASK",
    "STATUS_NO_GROUND_TRUTH",
    "STATUS_LOST",
    "STATUS_NO_FOREGROUND",
    "STATUS_NO_LANDMARKS",
]
