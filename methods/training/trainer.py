"""Patch-based unsupervised training of a registration network, with atomic checkpoints and resume.

The loss is the paper's: ``similarity(fixed, moving warped linearly) + bending_weight * bending
energy`` with similarity = Parzen-window NMI (64 bins, sigma 3e-3) or NCC, optimised with Adam
(lr 1e-3, betas 0.9/0.999). The network predicts voxel displacements; like the paper ("regardless
of voxel spacing") the training works in voxel units, and the bending energy is in voxel units.

A training folder holds ``checkpoint.pt`` (model, optimiser and random states, written atomically
every ``checkpoint_every`` iterations), ``loss.csv`` (the loss curve) and, when finished,
``model.pt`` and ``model.json`` (configuration, digest, training-pair ids, seed). A folder whose
``model.json`` names another configuration or other training pairs is never reused silently.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.atomic import atomic_path, write_text
from benchmark.errors import BenchError
from benchmark.normalize import percentile_normalize
from benchmark.pairs import PairSpec
from methods.training.config import TrainingConfig, config_from_dict

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
MODEL_INFO = "model.json"
LOSS_LOG = "loss.csv"
LOSS_COLUMNS = ("iteration", "loss", "similarity", "bending", "seconds")


def resolve_device(device: str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; otherwise the named device (checked)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device!r}: CUDA is not available on this machine")
    return dev


def build_model(config: TrainingConfig, *, seed: int) -> torch.nn.Module:
    """The network of ``config``, initialised from ``seed``."""
    from methods.networks import build_network

    settings: dict[str, Any] = {"seed": seed}
    if config.network == "unet":
        settings["factors"] = config.unet_factors
        if config.unet_features is not None:
            settings["features"] = config.unet_features
    else:
        settings["grid_spacing"] = config.poolnet_grid
        if config.poolnet_features is not None:
            settings["features"] = config.poolnet_features
    return build_network(config.network, config.ndim, **settings)


def loss_terms(
    config: TrainingConfig, model: torch.nn.Module, fixed: torch.Tensor, moving: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, similarity, bending)`` of one mini-batch (linear interpolation, voxel units)."""
    from methods.losses import bending_energy, ncc_loss, nmi_loss
    from methods.transforms import warp

    disp = model(fixed, moving)
    warped = warp(moving, disp, mode="linear", padding="border")
    if config.similarity == "nmi":
        sim = nmi_loss(warped, fixed, bins=config.nmi_bins, sigma=config.nmi_sigma)
    else:
        sim = ncc_loss(warped, fixed, window=config.ncc_window)
    bend = bending_energy(disp)
    return sim + config.bending_weight * bend, sim, bend


def load_training_volumes(
    pairs: Sequence[PairSpec], config: TrainingConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read and percentile-normalise the fixed and moving image of every training pair."""
    return [normalized_images(spec.load(), config) for spec in pairs]


def normalized_images(pair, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pair's fixed and moving image, percentile-normalised as the network was trained
    (inside ``pair.mask`` when there is one)."""
    lower, upper = config.percentiles
    return tuple(
        percentile_normalize(image.array, mask=pair.mask, lower=lower, upper=upper)
        for image in (pair.fixed, pair.moving)
    )


@dataclass
class TrainingRecord:
    """What identifies a trained model: written to ``model.json`` and checked before reuse."""

    config: dict[str, Any]
    digest: str
    train_pairs: list[str]
    seed: int

    @classmethod
    def of(cls, config: TrainingConfig, pairs: Sequence[PairSpec], seed: int) -> TrainingRecord:
        keys = sorted(f"{p.dataset}:{p.key}" for p in pairs)
        return cls(config.to_dict(), config.digest(), keys, int(seed))

    def mismatch(self, other: dict[str, Any]) -> str | None:
        """Why a stored record ``other`` does not describe this training, or None."""
        if other.get("digest") != self.digest:
            return "it was trained with another configuration"
        if sorted(other.get("train_pairs", [])) != self.train_pairs:
            return "it was trained on other training pairs (another fold or dataset)"
        if other.get("seed") != self.seed:
            return f"it was trained with seed {other.get('seed')}, not {self.seed}"
        return None


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_loss_log(path: Path, history: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LOSS_COLUMNS)
    writer.writerows(history)
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
    stored = json.loads(info_path.read_text())
    why = record.mismatch(stored)
    if why:
        raise BenchError(
            f"{model_path} cannot be used: {why}. Remove {workdir} or choose another output "
            "folder (bench run: another --out, or --force to retrain)"
        )
    return model_path


def train(
    config: TrainingConfig,
    pairs: Sequence[PairSpec],
    workdir: str | Path,
    *,
    seed: int = 0,
    device: str | None = None,
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Train a network on ``pairs`` and return the path of the finished ``model.pt``.

    Parameters
    ----------
    config : TrainingConfig
        Network, loss, optimiser and patch settings.
    pairs : sequence of PairSpec
        The fold's training pairs.
    workdir : path
        Training folder (created). A finished model trained exactly so is returned as it is.
    seed : int
        Seeds the network initialisation and the patch sampler. On the CPU the same seed gives
        the same weights, also across an interruption and resume.
    device : str, optional
        ``cpu``, ``cuda``...; default CUDA when available.
    resume : bool
        Continue from ``checkpoint.pt`` when it exists (and matches); else start over.
    progress : bool
        Show a tqdm progress bar on stderr with the loss terms and speed.
    """
    from tqdm.auto import tqdm

    workdir = Path(workdir)
    if not pairs:
        raise BenchError(
            f"{workdir}: no training pairs for this fold; cannot train {config.network}"
        )
    record = TrainingRecord.of(config, pairs, seed)
    done = trained_model_path(workdir, record)
    if done is not None:
        log.info("reusing trained model %s", done)
        return done
    workdir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)

    torch.manual_seed(seed)
    model = build_model(config, seed=seed).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=config.betas)
    rng = np.random.default_rng(seed)
    history: list[tuple] = []
    start = 0

    checkpoint_path = workdir / CHECKPOINT
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=dev, weights_only=False)
        why = record.mismatch(state["record"])
        if why:
            raise BenchError(
                f"{checkpoint_path} cannot be resumed: {why}. Remove it or use another folder"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = [tuple(row) for row in state["history"]]
        start = int(state["iteration"])
        log.info("resuming %s at iteration %d of %d", workdir, start, config.iterations)

    from methods.training.patches import PatchSampler

    sampler = PatchSampler(
        load_training_volumes(pairs, config),
        config.patch_size,
        rng=rng,
        names=[p.key for p in pairs],
    )

    def save_checkpoint(iteration: int) -> None:
        _save_torch(
            {
                "record": record.__dict__,
                "iteration": iteration,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "history": history,
            },
            checkpoint_path,
        )
        _write_loss_log(workdir / LOSS_LOG, history)

    model.train()
    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc=f"train {config.network}-{config.similarity}",
        disable=not progress,
        unit="it",
        leave=False,
    )
    t0 = time.perf_counter()
    for iteration in range(start, config.iterations):
        fixed_np, moving_np = sampler.sample(config.batch_size)
        fixed = torch.from_numpy(fixed_np).to(dev)
        moving = torch.from_numpy(moving_np).to(dev)
        optimizer.zero_grad(set_to_none=True)
        total, sim, bend = loss_terms(config, model, fixed, moving)
        if not torch.isfinite(total):
            raise BenchError(
                f"{workdir}: the loss became {total.item()} at iteration {iteration + 1}; "
                "training stopped (check the input intensities and learning rate)"
            )
        total.backward()
        optimizer.step()
        history.append(
            (
                iteration + 1,
                float(total.detach()),
                float(sim.detach()),
                float(bend.detach()),
                round(time.perf_counter() - t0, 3),
            )
        )
        bar.update(1)
        bar.set_postfix(
            loss=f"{history[-1][1]:.4f}", sim=f"{history[-1][2]:.4f}", bend=f"{history[-1][3]:.2e}"
        )
        if (iteration + 1) % config.checkpoint_every == 0 or iteration + 1 == config.iterations:
            save_checkpoint(iteration + 1)
    bar.close()

    model_path = workdir / MODEL
    _save_torch({"model": model.state_dict(), "record": record.__dict__}, model_path)
    write_text(workdir / MODEL_INFO, json.dumps(record.__dict__, indent=2))
    return model_path


def load_model(
    path: str | Path, *, device: str | None = None
) -> tuple[torch.nn.Module, TrainingConfig]:
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
