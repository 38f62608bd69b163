"""Training of the learning methods: settings (:mod:`~methods.training.config`), patch sampling
(:mod:`~methods.training.patches`) and the trainer with checkpoints and resume
(:mod:`~methods.training.trainer`).
"""

from methods.training.config import PRESETS, TrainingConfig, make_config, parse_overrides
from methods.training.trainer import load_model, train

__all__ = ["TrainingConfig", "PRESETS", "make_config", "parse_overrides", "train", "load_model"]
