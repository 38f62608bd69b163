"""Patch-based unsupervised training of a registration network, with atomic checkpoints and resume.

The loss is the paper's: ``similarity(fixed, moving warped linearly) + bending_weight * bending
energy`` with similarity = Parzen-window NMI (64 bins, sigma 3e-3) or NCC, optimised with Adam
(lr 1e-3, betas 0.9/0.999). The network predicts voxel displacements; like the paper ("regardless
of voxel spacing") the training works in voxel units, and the bending energy is in voxel units.

A training folder holds ``checkpoint.pt`` (model, optimiser, weight average and random states,
the best model so far, written atomically every ``checkpoint_every`` iterations),
``training.csv`` (the training and validation terms per iteration) and, when finished,
``model.pt`` (the model with the lowest validation loss; with ``ema_span`` it is the moving
average of the weights that is validated and kept, :mod:`methods.training.averaging`),
``model.json`` (configuration, digest, training- and validation-pair ids, seed, validation
summary beside no registration) and ``training.png`` (the curves). A folder whose ``model.json``
names another configuration or other pairs is never reused silently.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.core.atomic import atomic_path, write_text
from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec
from methods.base import resolve_device
from methods.training.averaging import WeightAverage, ema_decay
from methods.training.config import GEOMETRY_SETTINGS, TrainingConfig, config_from_dict
from methods.training.geometry import resolve_geometry
from methods.training.inputs import normalized_images
from methods.training.loss import loss_terms

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
MODEL_INFO = "model.json"
TRAINING_LOG = "training.csv"
TRAINING_CURVE = "training.png"
#: ``training.csv``: one row per iteration; the ``val_*`` columns are filled at validations only.
TRAINING_COLUMNS = (
    "iteration", "loss", "similarity", "bending", "seconds",
    "val_loss", "val_similarity", "val_bending", "val_dice",
)


def build_model(config: TrainingConfig, *, seed: int) -> torch.nn.Module:
    """The network of ``config``, initialised from ``seed``."""
    from methods.networks import build_network

    settings: dict[str, Any] = {"seed": seed}
    if config.network == "unet":
        settings["factors"] = config.unet_factors
        settings["output_level"] = config.unet_output_level
        if config.unet_features is not None:
            settings["features"] = config.unet_features
    else:
        settings["grid_spacing"] = config.poolnet_grid
        if config.poolnet_features is not None:
            settings["features"] = config.poolnet_features
    return build_network(config.network, config.ndim, **settings)


@dataclass
class TrainingVolumes:
    """The training pairs as the sampler needs them (:func:`load_training_volumes`)."""

    volumes: list[tuple[np.ndarray, np.ndarray]]  # normalised (fixed, moving) per pair
    foregrounds: list[np.ndarray]  # per pair, on the fixed grid
    spacings: list[tuple[float, ...]]  # mm per voxel of each fixed image


def load_training_volumes(pairs: Sequence[PairSpec], config: TrainingConfig) -> TrainingVolumes:
    """Read and percentile-normalise the fixed and moving image of every training pair.

    Returns the volume pairs, their voxel spacing and, per pair, its foreground on the fixed grid:
    the pair's mask when it has one, else the voxels whose normalised fixed intensity is above 0
    (above the lower percentile). Labels are never used: training stays unsupervised.
    """
    data = TrainingVolumes([], [], [])
    for spec in pairs:
        pair = spec.load()
        fixed, moving = normalized_images(pair, config)
        data.volumes.append((fixed, moving))
        data.foregrounds.append(pair.mask if pair.mask is not None else fixed > 0)
        data.spacings.append(pair.fixed.spacing)
    return data


@dataclass
class TrainingRecord:
    """What identifies a trained model: written to ``model.json`` and checked before reuse."""

    config: dict[str, Any]
    digest: str
    train_pairs: list[str]
    seed: int
    val_pairs: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        config: TrainingConfig,
        pairs: Sequence[PairSpec],
        seed: int,
        val_pairs: Sequence[PairSpec] = (),
    ) -> TrainingRecord:
        return cls(config.to_dict(), config.digest(), _keys(pairs), int(seed), _keys(val_pairs))

    def mismatch(self, other: dict[str, Any]) -> str | None:
        """Why a stored record ``other`` does not describe this training, or None."""
        if other.get("digest") != self.digest:
            return "it was trained with another configuration"
        if sorted(other.get("train_pairs", [])) != self.train_pairs:
            return "it was trained on other training pairs (another fold or dataset)"
        if sorted(other.get("val_pairs", [])) != self.val_pairs:
            return "it was validated on other pairs"
        if other.get("seed") != self.seed:
            return f"it was trained with seed {other.get('seed')}, not {self.seed}"
        return None


def _keys(pairs: Sequence[PairSpec]) -> list[str]:
    return sorted(f"{p.dataset}:{p.key}" for p in pairs)


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_training_log(path: Path, history: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRAINING_COLUMNS)
    writer.writerows(["" if v is None else v for v in row] for row in history)
    write_text(path, buffer.getvalue())


def trained_model_path(workdir: Path, record: TrainingRecord) -> Path | None:
    """``workdir/model.pt`` when it exists and was trained exactly as ``record`` says.

    Raises
    ------
    BenchError
        When a finished model is there but was trained differently (other fold, configuration or
        seed): it is never reused by mistake, nor overwritten silently.
    """
    info_path = workdir / MODEL_INFO
    model_path = workdir / MODEL
    if not (info_path.is_file() and model_path.is_file()):
        return None
    why = damaged_model_files(workdir)
    if why:
        log.warning("%s; training again", why)
        return None
    stored = json.loads(info_path.read_text())
    why = record.mismatch(stored)
    if why:
        raise BenchError(
            f"{model_path} cannot be used: {why}. Remove {workdir} or choose another output "
            "folder (bench run: another --out, or --force to retrain)"
        )
    return model_path


def read_model_info(workdir: str | Path) -> dict[str, Any] | None:
    """The ``model.json`` of a training folder (record and validation summary), or None when
    it is missing or damaged (:func:`damaged_model_files` says which)."""
    path = Path(workdir) / MODEL_INFO
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def damaged_torch_file(path: Path) -> str | None:
    """Why the torch file ``path`` is damaged (not a complete zip archive, a member that fails
    its CRC: a write cut short), or None when it is whole. Reads the file, loads nothing."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"{path} is damaged ({exc}): not a complete torch file"
    return None if bad is None else f"{path} is damaged: {bad} fails its checksum"


def damaged_model_files(workdir: Path) -> str | None:
    """Why the finished model of ``workdir`` is damaged: ``model.pt`` (:func:`damaged_torch_file`)
    or ``model.json`` that is not JSON; None when both are whole (or absent)."""
    model, info = workdir / MODEL, workdir / MODEL_INFO
    if model.is_file() and (why := damaged_torch_file(model)):
        return why
    if info.is_file():
        try:
            json.loads(info.read_text())
        except (OSError, ValueError) as exc:
            return f"{info} is damaged ({exc})"
    return None


def validation_iterations(config: TrainingConfig) -> set[int]:
    """The iterations (1-based) after which the model is validated: ``config.validations``
    evenly spaced ones, the last iteration always among them."""
    count = min(config.validations, config.iterations)
    return {round(config.iterations * (k + 1) / count) for k in range(count)}


@dataclass
class _State:
    """Everything a checkpoint restores besides the model and optimiser."""

    iteration: int = 0
    history: list[tuple] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"iteration", "score", "model"}


def train(
    config: TrainingConfig,
    pairs: Sequence[PairSpec],
    workdir: str | Path,
    *,
    val_pairs: Sequence[PairSpec] | None = None,
    seed: int = 0,
    device: str | None = None,
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Train a network on ``pairs`` and return the path of the finished ``model.pt``.

    The model (with ``config.ema_span``, the moving average of its weights) is validated
    ``config.validations`` times (:mod:`methods.training.validation`); the saved model is the one
    with the lowest validation loss, and ``model.json`` records its
    validation score beside that of no registration. A model worse than no registration on its
    validation pairs is kept, with a warning logged and ``worse_than_identity`` set in
    ``model.json``.

    Parameters
    ----------
    config : TrainingConfig
        Network, loss, optimiser and patch settings. A patch size, U-Net factors or B-spline grid
        left open (``None``) is derived from the training images' grid
        (:mod:`methods.training.geometry`); ``model.json`` records the values used.
    pairs : sequence of PairSpec
        The fold's training pairs.
    workdir : path
        Training folder (created). A finished model trained exactly so is returned as it is.
    val_pairs : sequence of PairSpec, optional
        Validation pairs (a hold-out split's). Without them, ``config.validation_fraction`` of the
        training cases are set aside (:func:`~methods.training.validation.split_validation`).
    seed : int
        Seeds the network initialisation, the validation split and the patch sampler. On the CPU
        the same seed gives the same weights, also across an interruption and resume.
    device : str, optional
        ``cpu``, ``cuda``...; default CUDA when available.
    resume : bool
        Continue from ``checkpoint.pt`` when it exists (and matches); else start over.
    progress : bool
        Show a tqdm progress bar on stderr with the loss terms and speed.
    """
    from methods.training.validation import Validator, split_validation

    workdir = Path(workdir)
    if not pairs:
        raise BenchError(f"{workdir}: no training pairs for this fold; cannot train {config.network}")
    if val_pairs:
        train_pairs = list(pairs)
        val_pairs = list(val_pairs)
    else:
        train_pairs, val_pairs = split_validation(
            pairs, fraction=config.validation_fraction, seed=seed
        )
    config, data = _with_data_geometry(config, train_pairs, workdir)
    record = TrainingRecord.of(config, train_pairs, seed, val_pairs)
    done = trained_model_path(workdir, record)
    if done is not None:
        log.info("reusing trained model %s", done)
        return done
    workdir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)

    model = build_model(config, seed=seed).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=config.betas)
    average = (
        WeightAverage(model, decay=ema_decay(config.ema_span, config.iterations))
        if config.ema_span
        else None
    )
    rng = np.random.default_rng(seed)
    state = _State()
    checkpoint_path = workdir / CHECKPOINT
    if resume and checkpoint_path.is_file() and (why := damaged_torch_file(checkpoint_path)):
        log.warning("%s; training from the start", why)
        checkpoint_path.unlink()
    if resume and checkpoint_path.is_file():
        state = _restore(checkpoint_path, record, model, optimizer, average, rng, dev)
        log.info("resuming %s at iteration %d of %d", workdir, state.iteration, config.iterations)

    if data is None:
        data = load_training_volumes(train_pairs, config)
    sampler = _sampler(data, train_pairs, config, rng)
    validator = Validator(val_pairs, config, dev)

    def save_checkpoint() -> None:
        _save_torch(
            {
                "record": record.__dict__,
                "iteration": state.iteration,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "average": average.model.state_dict() if average else None,
                "rng": rng.bit_generator.state,
                "history": state.history,
                "best": state.best,
            },
            checkpoint_path,
        )
        _write_training_log(workdir / TRAINING_LOG, state.history)

    loop = _Loop(
        config=config, model=model, optimizer=optimizer, average=average, sampler=sampler,
        validator=validator, device=dev, save_checkpoint=save_checkpoint, progress=progress,
    )
    _optimise(loop, state)
    return _finish(workdir, config, record, model, validator, state)


def _with_data_geometry(
    config: TrainingConfig, pairs: Sequence[PairSpec], workdir: Path
) -> tuple[TrainingConfig, TrainingVolumes | None]:
    """``config`` with an open patch size, U-Net factors or B-spline grid taken from the training
    images, and those images when they had to be read for it (else None: read them later)."""
    if all(getattr(config, name) is not None for name in GEOMETRY_SETTINGS):
        return config, None
    data = load_training_volumes(pairs, config)
    config = resolve_geometry(config, [fixed.shape for fixed, _ in data.volumes], data.spacings)
    log.info(
        "%s: patch_size %s, unet_factors %s, poolnet_grid %s (from the training images)",
        workdir,
        config.patch_size,
        config.unet_factors,
        config.poolnet_grid,
    )
    return config, data


def _restore(
    path: Path,
    record: TrainingRecord,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage | None,
    rng: np.random.Generator,
    dev: torch.device,
) -> _State:
    saved = torch.load(path, map_location=dev, weights_only=False)
    why = record.mismatch(saved["record"])
    if why:
        raise BenchError(f"{path} cannot be resumed: {why}. Remove it or use another folder")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if average is not None:
        average.model.load_state_dict(saved["average"])
    rng.bit_generator.state = saved["rng"]
    return _State(
        iteration=int(saved["iteration"]),
        history=[tuple(row) for row in saved["history"]],
        best=saved.get("best"),
    )


def _sampler(
    data: TrainingVolumes,
    pairs: Sequence[PairSpec],
    config: TrainingConfig,
    rng: np.random.Generator,
):
    from methods.training.patches import PatchSampler

    return PatchSampler(
        data.volumes,
        config.patch_size,
        rng=rng,
        names=[p.key for p in pairs],
        foregrounds=data.foregrounds,
        foreground_fraction=config.foreground_fraction,
        augment=config.augment,
    )


@dataclass(frozen=True)
class _Loop:
    """What the training loop works with (:func:`_optimise`); its progress is the
    :class:`_State`."""

    config: TrainingConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None
    sampler: Any  # methods.training.patches.PatchSampler
    validator: Any  # methods.training.validation.Validator
    device: torch.device
    save_checkpoint: Callable[[], None]
    progress: bool


def _optimise(loop: _Loop, state: _State) -> None:
    """The training loop from ``state.iteration`` to ``config.iterations``.

    With a :class:`WeightAverage` the average, not the live network, is validated and kept.
    """
    from tqdm.auto import tqdm

    config, model, optimizer, average = loop.config, loop.model, loop.optimizer, loop.average

    checks = validation_iterations(config)
    model.train()
    bar = tqdm(
        total=config.iterations,
        initial=state.iteration,
        desc=f"train {config.network}-{config.similarity}",
        disable=not loop.progress,
        unit="it",
        leave=False,
    )
    t0 = time.perf_counter() - (state.history[-1][4] if state.history else 0.0)
    for iteration in range(state.iteration + 1, config.iterations + 1):
        fixed_np, moving_np = loop.sampler.sample(config.batch_size)
        fixed = torch.from_numpy(fixed_np).to(loop.device)
        moving = torch.from_numpy(moving_np).to(loop.device)
        optimizer.zero_grad(set_to_none=True)
        total, sim, bend = loss_terms(config, model, fixed, moving)
        if not torch.isfinite(total):
            raise BenchError(
                f"the loss became {total.item()} at iteration {iteration}; training stopped "
                "(check the input intensities and learning rate)"
            )
        total.backward()
        optimizer.step()
        if average is not None:
            average.update(model, iteration)
        row = [iteration, float(total.detach()), float(sim.detach()), float(bend.detach())]
        val = [None] * 4
        if iteration in checks:
            scored = average.model if average is not None else model
            score = loop.validator.score(scored)
            val = [score.loss, score.similarity, score.bending, score.dice]
            if state.best is None or score.loss < state.best["score"]["loss"]:
                weights = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
                state.best = {"iteration": iteration, "score": score.as_dict(), "model": weights}
        state.history.append((*row, round(time.perf_counter() - t0, 3), *val))
        state.iteration = iteration
        bar.update(1)
        bar.set_postfix(loss=f"{row[1]:.4f}", sim=f"{row[2]:.4f}", bend=f"{row[3]:.2e}")
        if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
            loop.save_checkpoint()
    bar.close()


def _finish(
    workdir: Path,
    config: TrainingConfig,
    record: TrainingRecord,
    model: torch.nn.Module,
    validator: Any,
    state: _State,
) -> Path:
    """Write the best model, ``model.json`` with the validation summary, and the curve."""
    from methods.training.curves import plot_training_curves
    from methods.training.validation import ValidationScore, worse_than_identity

    best = state.best
    model.load_state_dict(best["model"])
    score = ValidationScore.from_dict(best["score"])
    why = worse_than_identity(score, validator.identity)
    info = {
        **record.__dict__,
        "validation": {
            "pairs": validator.keys,
            "held_out": not set(record.val_pairs) & set(record.train_pairs),
            "best_iteration": best["iteration"],
            "best": score.as_dict(),
            "identity": validator.identity.as_dict(),
            "worse_than_identity": why,
        },
    }
    if why:
        log.warning(
            "%s-%s (%s): the trained model is worse than no registration on its validation "
            "pairs: %s", config.network, config.similarity, workdir, why,
        )
    model_path = workdir / MODEL
    _save_torch({"model": model.state_dict(), "record": record.__dict__}, model_path)
    plot_training_curves(state.history, workdir / TRAINING_CURVE, identity=validator.identity)
    write_text(workdir / MODEL_INFO, json.dumps(info, indent=2))
    return model_path


def load_model(path: str | Path, *, device: str | None = None) -> tuple[torch.nn.Module, TrainingConfig]:
    """A trained network in eval mode and its configuration, from a ``model.pt``."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: trained model not found")
    dev = resolve_device(device)
    state = torch.load(path, map_location=dev, weights_only=False)
    config = config_from_dict(state["record"]["config"])
    model = build_model(config, seed=state["record"]["seed"]).to(dev)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config
