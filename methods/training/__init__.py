"""Training of the learning methods: settings (:mod:`~methods.training.config`), the loss
(:mod:`~methods.training.loss`), the networks' inputs (:mod:`~methods.training.inputs`), patch
sampling (:mod:`~methods.training.patches`), the trainer with checkpoints and resume
(:mod:`~methods.training.trainer`), validation (:mod:`~methods.training.validation`), the
training curves (:mod:`~methods.training.curves`) and the fine-tuning of a trained network on the
pair it registers (:mod:`~methods.training.instance`).

The package imports nothing itself, so that the settings (``config``) load without torch.
"""
