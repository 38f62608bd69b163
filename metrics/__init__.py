"""Evaluation metrics: pure functions on NumPy arrays with voxel spacing.

Dice, Hausdorff distance (max and 95th percentile), histogram NMI, folding (% negative Jacobian
determinant) and displacement error. Each function documents its shapes, units and edge cases.
"""
