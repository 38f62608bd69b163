"""The paper's four learning methods: U-Net and PoolNet, each trained with NMI or NCC.

``unet-nmi``, ``unet-ncc``, ``poolnet-nmi`` and ``poolnet-ncc`` share one adapter,
:class:`LearnedMethod`: :meth:`~LearnedMethod.fit` trains (or reuses) a network on a fold's
training pairs, :meth:`~LearnedMethod.register` predicts the field of a whole volume in one pass
(or after fine-tuning a copy of the network on the pair: ``instance_steps``,
:mod:`methods.training.instance`) and returns it in millimetres (``docs/conventions.md``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec, RegistrationPair
from methods.base import Method, RegistrationResult
from methods.registry import register_method


class LearnedMethod(Method):
    """A registration network trained without supervision on patch pairs.

    Parameters
    ----------
    preset : {"quick", "paper"}
        Built-in training preset (``methods.training.config.PRESETS``).
    settings : dict, optional
        Training settings that override the preset: the dataset manifest's preset section merged
        with ``--set`` overrides (see :class:`~methods.training.config.TrainingConfig`).
    model_path : str, optional
        A trained ``model.pt`` to use instead of training (``fit`` then only checks it exists).
    """

    learns = True
    registration_settings = ("instance_steps",)
    network: ClassVar[str] = ""
    similarity: ClassVar[str] = ""

    def __init__(
        self,
        *,
        preset: str = "quick",
        settings: dict[str, Any] | None = None,
        model_path: str | None = None,
    ):
        from methods.training.config import make_config

        # settings: the manifest preset merged with --set (config.merge_settings); may hold
        # per-network sections such as {"poolnet": {"iterations": 500}}
        self.config = make_config(self.network, self.similarity, preset=preset, overrides=settings)
        super().__init__(preset=preset, settings=settings or {}, model_path=model_path)
        self.model_path = Path(model_path) if model_path else None
        self._model = None
        self._trained_config = None
        self._device: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "config": self.config.to_dict()}

    def fit(
        self,
        train_pairs: Sequence[PairSpec],
        *,
        workdir: Path,
        seed: int,
        val_pairs: Sequence[PairSpec] = (),
        device: str | None = None,
        progress: bool = False,
    ) -> None:
        from methods.training.trainer import train

        self._device = device
        if self.model_path is not None:
            if not self.model_path.is_file():
                raise BenchError(f"{self.name}: model_path {self.model_path} does not exist")
            return
        self.model_path = train(
            self.config,
            train_pairs,
            workdir,
            val_pairs=val_pairs,
            seed=seed,
            device=device,
            resume=True,
            progress=progress,
        )
        self._model = None

    def _network(self):
        """The trained network and its configuration as trained (the patch size, U-Net factors
        and B-spline grid resolved from the training data where the preset left them open)."""
        if self._model is None:
            from methods.training.trainer import load_model

            if self.model_path is None:
                raise BenchError(f"{self.name}: not trained; call fit() or pass model_path")
            self._model, self._trained_config = load_model(self.model_path, device=self._device)
        return self._model, self._trained_config

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        import torch

        model, config = self._network()
        if pair.ndim != config.ndim:
            raise BenchError(
                f"{self.name}: trained on {config.ndim}D patches, pair {pair.key} is {pair.ndim}D"
            )
        device = next(model.parameters()).device
        from methods.training.instance import fine_tune
        from methods.training.trainer import pair_inputs

        f, m, mask = pair_inputs(pair, config, device)
        start = time.perf_counter()
        # the number of steps is this method's setting; the loss is the one the model learnt with
        model, meta = fine_tune(
            model, f, m, config=config, steps=self.config.instance_steps, mask=mask
        )
        with torch.no_grad():
            disp = model(f, m)[0]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        runtime = time.perf_counter() - start
        spacing = np.asarray(pair.spacing, dtype=np.float32).reshape(-1, *([1] * pair.ndim))
        field = (disp.cpu().numpy().astype(np.float32) * spacing).astype(np.float32)
        return RegistrationResult(displacement=field, runtime_s=runtime, meta=meta)


def _make(network: str, similarity: str, description: str) -> type[LearnedMethod]:
    cls = type(
        f"{network.capitalize()}{similarity.upper()}",
        (LearnedMethod,),
        {
            "name": f"{network}-{similarity}",
            "description": description,
            "network": network,
            "similarity": similarity,
            "__module__": __name__,
        },
    )
    return register_method(cls)


UNetNMI = _make("unet", "nmi", "U-Net (dense field, VoxelMorph design) trained with Parzen NMI")
UNetNCC = _make(
    "unet",
    "ncc",
    "U-Net (dense field, VoxelMorph design) trained with NCC (global per patch, not VoxelMorph's "
    "local window)",
)
PoolNetNMI = _make(
    "poolnet", "nmi", "PoolNet (B-spline control points, DIRNet design) trained with Parzen NMI"
)
PoolNetNCC = _make(
    "poolnet",
    "ncc",
    "PoolNet (B-spline control points, DIRNet design) trained with NCC (global per patch)",
)
