"""Training of the learning methods: settings (:mod:`~methods.training.config`), patch sampling
(:mod:`~methods.training.patches`), the trainer with checkpoints and resume
(:mod:`~methods.training.trainer`) and the fine-tuning of a trained network on the pair it
registers (:mod:`~methods.training.instance`).
"""

from methods.training.config import PRESETS, TrainingConfig, make_config, parse_overrides
from methods.training.trainer import load_model, train

__all__ = ["TrainingConfig", "PRESETS", "make_config", "parse_overrides", "train", "load_model"]
