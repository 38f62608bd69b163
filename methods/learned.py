"""The paper's four learning methods: U-Net and PoolNet, each trained with NMI or NCC.

``unet-nmi``, ``unet-ncc``, ``poolnet-nmi`` and ``poolnet-ncc`` share one adapter,
:class:`LearnedMethod`: :meth:`~LearnedMethod.fit` trains (or reuses) a network on a fold's
training pairs, :meth:`~LearnedMethod.register` predicts the field of a whole volume in one pass
(or after fine-tuning a copy of the network on the pair: ``instance_steps``,
:mod:`methods.training.instance`) and returns it in millimetres (``docs/conventions.md``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec, RegistrationPair
from methods.base import (
    Method,
    RegistrationResult,
    RunContext,
    ValidationSummary,
    method_summary,
)

#: The transformation model of each network, for :meth:`LearnedMethod.summary`.
TRANSFORMS = {"unet": "dense field (U-Net)", "poolnet": "B-spline control points (PoolNet)"}


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

    @property
    def training_iterations(self) -> int:
        return self.config.iterations

    # --------------------------------------------------------------- the harness's hooks

    @classmethod
    def setting_keys(cls) -> tuple[str, ...]:
        """The training settings, as plain keys (``--set iterations=500``)."""
        from methods.training.config import SETTING_NAMES

        return SETTING_NAMES

    @classmethod
    def _training_overrides(cls, context: RunContext) -> dict[str, Any]:
        keys = set(cls.setting_keys())
        return {k: v for k, v in context.overrides.items() if k in keys}

    @classmethod
    def configure(cls, context: RunContext) -> dict[str, Any]:
        """The run's preset, and the manifest's settings for it merged with ``--set``."""
        from methods.training.config import merge_settings

        section = context.presets.get(context.preset, {})
        return {
            "preset": context.preset,
            "settings": merge_settings(section, cls._training_overrides(context)),
        }

    @classmethod
    def summary(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The training loss's similarity (the method's: NMI or NCC), the network's transform
        and the key training settings (:func:`methods.base.method_summary`) of the method
        configured with ``params`` (:meth:`configure`'s: preset and merged settings). NCC
        assumes one contrast. ``chosen_by`` names the key settings that differ from the
        built-in preset (set by the manifest's ``presets`` or by ``--set``)."""
        from methods.training.config import make_config

        preset = params.get("preset", "quick")
        config = make_config(
            cls.network, cls.similarity, preset=preset, overrides=params.get("settings")
        )
        if config.similarity == "nmi":
            metric = f"NMI (Parzen, {config.nmi_bins} bins, sigma {config.nmi_sigma:g})"
        elif config.ncc_window is None:
            metric = "NCC (global per patch)"
        else:
            metric = f"NCC (local, window {config.ncc_window} voxels)"
        keys = ("iterations", "batch_size", "bending_weight", "instance_steps")
        built_in = make_config(cls.network, cls.similarity, preset=preset)
        changed = [
            f"{k}={getattr(config, k)}" for k in keys if getattr(config, k) != getattr(built_in, k)
        ]
        chosen_by = "method (the loss); preset"
        if changed:
            chosen_by += f"; the manifest's presets or --set ({', '.join(changed)})"
        return method_summary(
            metric=metric,
            transform=TRANSFORMS[config.network],
            settings={"preset": preset, **{k: getattr(config, k) for k in keys}},
            chosen_by=chosen_by,
            assumes_one_contrast=config.similarity == "ncc",
        )

    @classmethod
    def setting_problems(cls, context: RunContext) -> list[str]:
        """Every training setting of the manifest's presets and of ``--set``, for every
        network (:func:`methods.training.config.settings_problems`)."""
        from methods.training.config import settings_problems

        return settings_problems(
            dict(context.presets), cls._training_overrides(context), preset=context.preset,
            source=context.source,
        )

    @classmethod
    def training_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` without the registration-only settings
        (:data:`~methods.training.config.REGISTRATION_SETTINGS`, also in per-network sections)."""
        from methods.training.config import REGISTRATION_SETTINGS

        def strip(settings: dict[str, Any]) -> dict[str, Any]:
            return {
                k: strip(v) if isinstance(v, dict) else v
                for k, v in settings.items()
                if k not in REGISTRATION_SETTINGS
            }

        settings = params.get("settings")
        return {**params, "settings": strip(settings)} if isinstance(settings, dict) else params

    @classmethod
    def artefact_files(cls, workdir: Path) -> tuple[Path, ...]:
        from methods.training.trainer import MODEL

        return (Path(workdir) / MODEL,)

    @classmethod
    def artefact_problem(cls, workdir: Path) -> str | None:
        """Why ``model.pt`` / ``model.json`` of ``workdir`` cannot be used: missing, or damaged
        (a torch file that is not a complete archive, a ``model.json`` that is no JSON)."""
        from methods.training.trainer import damaged_model_files

        missing = super().artefact_problem(workdir)
        return missing or damaged_model_files(Path(workdir))

    @classmethod
    def resumable(cls, workdir: Path) -> bool:
        from methods.training.trainer import CHECKPOINT, MODEL

        workdir = Path(workdir)
        return (workdir / CHECKPOINT).is_file() and not (workdir / MODEL).is_file()

    @classmethod
    def validation(cls, workdir: Path) -> ValidationSummary | None:
        from methods.training.trainer import read_model_info

        info = read_model_info(workdir)
        if not info or "validation" not in info:
            return None
        v = info["validation"]
        return ValidationSummary(
            best_iteration=v["best_iteration"],
            val_similarity=v["best"]["similarity"],
            identity_similarity=v["identity"]["similarity"],
            val_dice=_number(v["best"]["dice"]),
            identity_dice=_number(v["identity"]["dice"]),
            held_out=v["held_out"],
            worse_than_identity=v["worse_than_identity"] or "",
        )

    @classmethod
    def report_figures(cls, workdir: Path, *, title: str) -> list[tuple[str, Any]]:
        """The training curves of ``training.csv`` (:mod:`methods.training.curves`)."""
        import pandas as pd

        from methods.training.curves import training_curves_figure
        from methods.training.trainer import TRAINING_LOG, read_model_info

        log_path = Path(workdir) / TRAINING_LOG
        if not log_path.is_file():
            return []
        history = pd.read_csv(log_path).to_numpy(dtype=float, na_value=float("nan"))
        identity = (read_model_info(workdir) or {}).get("validation", {}).get("identity")
        return [("training", training_curves_figure(history, identity=identity, title=title))]

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
        from methods.training.inputs import pair_inputs
        from methods.training.instance import fine_tune

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


def _number(value: float | None) -> float:
    """A JSON number of ``model.json``, null (no label maps) as NaN."""
    return math.nan if value is None else float(value)


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
    return cls


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
