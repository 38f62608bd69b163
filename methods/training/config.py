"""Training settings of the learning methods: :class:`TrainingConfig`, the presets and overrides.

Values come, in increasing priority, from the dataclass defaults (the paper's optimiser and loss),
the built-in preset (``quick`` or ``paper``), the dataset manifest's ``presets`` section, and
``--set KEY=VALUE`` on the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from benchmark.core.checks import check_bool, check_choice, check_int, check_number
from benchmark.core.errors import BenchError

NETWORKS = ("unet", "poolnet")
SIMILARITIES = ("nmi", "ncc")
#: Fewest voxels of a training patch along any axis (the bending energy's second differences).
MIN_PATCH = 3
#: The per-axis settings that may be left open (``None``) and derived from the training images.
GEOMETRY_SETTINGS = ("patch_size", "unet_factors", "poolnet_grid")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a trained model (with the training pairs and the seed), and how
    it registers (``instance_steps``, outside the model's :meth:`digest`).

    Spatial tuples are per array axis ``(i, j, k)``; a 2-tuple for 2D data. ``patch_size``,
    ``unet_factors`` and ``poolnet_grid`` left at ``None`` are derived from the training images'
    grid when training starts (:mod:`methods.training.geometry`).
    """

    network: str = "unet"
    similarity: str = "nmi"
    iterations: int = 300
    batch_size: int = 4
    patch_size: tuple[int, ...] | None = None
    # the paper: Adam, lr 0.001, betas (0.9, 0.999); bending energy weight 0.05
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    bending_weight: float = 0.05
    # exponential moving average of the weights, spanning this share of the iterations (decay
    # 1 - 1 / (ema_span * iterations)); validation scores and keeps the average. 0: off (the paper)
    ema_span: float = 0.0
    # the paper's NMI: 64 bins, Gaussian Parzen window sigma 3e-3 on [0, 1) intensities
    nmi_bins: int = 64
    nmi_sigma: float = 3e-3
    # NCC: None = global NCC over the patch (DIRNet), an int = local window (VoxelMorph)
    ncc_window: int | None = None
    # down/upsampling factor per axis, applied at every U-Net level (2x2x1 for ACDC, 2x2x2 breast)
    unet_factors: tuple[int, ...] | None = None
    # None: the network's default widths (see methods.networks); else passed on as ``features``
    unet_features: Any = None
    # 0: the field at full resolution (VoxelMorph paper); 1: at the first level, upsampled
    unet_output_level: int = 0
    # B-spline control-point spacing in voxels (8x8x1 for ACDC, 8x8x8 breast)
    poolnet_grid: tuple[int, ...] | None = None
    poolnet_features: Any = None
    # patch sampling (methods.training.patches): share of patches centred on the foreground, and
    # random flips / fixed-moving swaps; both off in the paper's protocol
    foreground_fraction: float = 0.0
    augment: bool = False
    # validation during training (methods.training.validation): scored this many times, evenly
    # spaced; a cross-validation fold sets this share of its training cases aside for it
    validations: int = 10
    validation_fraction: float = 0.15
    checkpoint_every: int = 100
    # registration: Adam steps fine-tuning a copy of the trained network on each pair it registers
    # (VoxelMorph's instance-specific optimisation, methods.training.instance); 0: one pass (the
    # paper). Not part of the trained model (nor of its digest)
    instance_steps: int = 0
    percentiles: tuple[float, float] = (1.0, 99.0)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ("unet_features", "poolnet_features", *_TUPLE_FIELDS):
            object.__setattr__(self, name, _freeze(getattr(self, name)))
        check_choice("network", self.network, NETWORKS)
        check_choice("similarity", self.similarity, SIMILARITIES)
        for name, minimum in (*((n, 1) for n in _POSITIVE_INTEGERS), ("instance_steps", 0)):
            check_int(name, getattr(self, name), minimum=minimum)
        spatial = {name: getattr(self, name) for name in GEOMETRY_SETTINGS}
        for name, value in spatial.items():
            if value is not None and (
                len(value) not in (2, 3)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
            ):
                raise BenchError(
                    f"{name} must be 2 or 3 positive integers (one per axis), or null to derive "
                    f"it from the data; got {value!r}"
                )
        if self.patch_size is not None and min(self.patch_size) < MIN_PATCH:
            raise BenchError(
                f"patch_size must be at least {MIN_PATCH} voxels along every axis (the bending "
                f"energy takes second differences); got {self.patch_size!r}"
            )
        lengths = {name: len(value) for name, value in spatial.items() if value is not None}
        if len(set(lengths.values())) > 1:
            raise BenchError(
                "patch_size, unet_factors and poolnet_grid must have one entry per axis of the "
                f"same data; got {', '.join(f'{n} {spatial[n]}' for n in lengths)}"
            )
        for name in ("foreground_fraction", "validation_fraction", "ema_span"):
            check_number(name, getattr(self, name), minimum=0, maximum=1)
        check_bool("augment", self.augment)
        check_number("learning_rate", self.learning_rate, minimum=0, open_minimum=True)
        check_number("nmi_sigma", self.nmi_sigma, minimum=0, open_minimum=True)
        check_number("bending_weight", self.bending_weight, minimum=0)

    @property
    def ndim(self) -> int:
        """Number of spatial axes, from the first of the spatial settings that is set."""
        for name in GEOMETRY_SETTINGS:
            if getattr(self, name) is not None:
                return len(getattr(self, name))
        raise BenchError(
            "the configuration has no patch_size, unet_factors or poolnet_grid yet: they are "
            "derived from the training data when training starts"
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in dataclasses.asdict(self).items()}

    def digest(self) -> str:
        """A short hash of every setting that changes the trained model."""
        d = self.to_dict()
        for name in _NOT_IN_DIGEST:
            d.pop(name)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _freeze(value: Any) -> Any:
    """Lists (from YAML, JSON, the command line) to tuples, recursively: hashable and comparable."""
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, (list, tuple)) else value


#: Built-in presets, applied before the manifest's own preset values.
#: ``paper`` follows the ACDC protocol (section 3.2: 50,000 iterations, batch 8); the breast
#: manifest overrides it with 3.1's.
#: ``quick`` is for minutes on a CPU; how and why it differs from the paper is in docs/methods.md
#: ("Training presets"): fewer iterations and a U-Net of half the widths, a wider Parzen window
#: with bins to match, the U-Net field at half resolution, a moving average of the weights;
#: dataset manifests add their own (patch size, iterations). Neither sets the patch size, U-Net
#: factors or B-spline grid: a manifest does, or they follow the data
#: (:mod:`methods.training.geometry`).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "iterations": 1000,
        "batch_size": 2,
        # half VoxelMorph's widths (methods.networks.unet.DEFAULT_FEATURES)
        "unet_features": ((8, 16, 16, 16), (16, 16, 16, 16, 8, 8)),
        "checkpoint_every": 100,
        "nmi_sigma": 0.02,
        "nmi_bins": 32,
        "unet_output_level": 1,
        "ema_span": 0.1,
    },
    "paper": {
        "iterations": 50_000,
        "batch_size": 8,
        "checkpoint_every": 1000,
    },
}

#: Settings that change how a trained model registers, not the model: a change re-runs only the
#: registrations (:meth:`methods.learned.LearnedMethod.training_params`).
REGISTRATION_SETTINGS = ("instance_steps",)
#: Settings that do not change the trained model: how often it is saved, how it is applied.
_NOT_IN_DIGEST = ("checkpoint_every", "extra", *REGISTRATION_SETTINGS)
_POSITIVE_INTEGERS = ("iterations", "batch_size", "checkpoint_every", "nmi_bins", "validations")
_TUPLE_FIELDS = {"patch_size", "betas", "unet_factors", "poolnet_grid", "percentiles"}
_FIELDS = {f.name: f for f in dataclasses.fields(TrainingConfig)}
#: The training settings a user may give (``--set KEY=VALUE``, a manifest's presets section).
SETTING_NAMES = tuple(sorted(k for k in _FIELDS if k != "extra"))


def merge_settings(preset_settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A manifest's preset section with command-line ``overrides`` on top.

    A key set on the command line wins everywhere: it also replaces that key in the per-network
    sections (``{"poolnet": {"iterations": 500}}``) of the manifest.
    """
    merged: dict[str, Any] = {}
    for key, value in (preset_settings or {}).items():
        if key in NETWORKS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in overrides}
        merged[key] = value
    merged.update(overrides or {})
    return merged


def make_config(
    network: str,
    similarity: str,
    *,
    preset: str = "quick",
    manifest_presets: dict[str, dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainingConfig:
    """Merge defaults, the built-in preset, the manifest's preset and overrides into a config."""
    check_choice("preset", preset, PRESETS)
    values: dict[str, Any] = dict(PRESETS[preset])
    for layer in ((manifest_presets or {}).get(preset, {}) or {}, overrides or {}):
        layer = dict(layer)
        # settings for one network only: {"poolnet": {"iterations": 500}}
        per_network = {name: layer.pop(name) for name in NETWORKS if name in layer}
        values.update(layer)
        specific = per_network.get(network) or {}
        if not isinstance(specific, dict):
            raise BenchError(f"preset {preset!r}: {network!r} settings must be a mapping")
        values.update(specific)
    values.update(network=network, similarity=similarity)
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise BenchError(
            f"unknown training setting(s) {unknown} in preset {preset!r}; known: "
            f"{', '.join(sorted(_FIELDS))}"
        )
    for key in (*_POSITIVE_INTEGERS, "instance_steps"):  # YAML may give 1000.0
        if key in values and isinstance(values[key], float) and values[key].is_integer():
            values[key] = int(values[key])
    for key in _TUPLE_FIELDS:  # a scalar where a per-axis tuple is expected: one axis
        if key in values and values[key] is not None and not isinstance(values[key], (list, tuple)):
            values[key] = (values[key],)
    return TrainingConfig(**values)


def config_from_dict(d: dict[str, Any]) -> TrainingConfig:
    """Inverse of :meth:`TrainingConfig.to_dict`."""
    return TrainingConfig(**d)


def _config_error(network: str, preset: str, layer: dict[str, Any]) -> str | None:
    """Why ``layer`` on top of the built-in ``preset`` is not a valid training config, or None."""
    try:
        make_config(network, "nmi", preset=preset, overrides=layer)
    except (BenchError, TypeError, ValueError) as exc:  # a wrong type fails inside the checks
        return str(exc) or type(exc).__name__
    return None


def _layer_problems(
    preset: str, base: dict[str, Any], layer: dict[str, Any], where: str
) -> list[str]:
    """Messages for the settings of ``layer`` (on top of ``base`` and the built-in ``preset``)
    that make the training config invalid, each as ``where`` + ``key=value: reason``.

    A setting wrong on its own is named alone; when only a combination fails, the settings whose
    removal fixes it are named together.
    """

    def error(values: dict[str, Any]) -> str | None:
        merged = merge_settings(base, values)
        return next(filter(None, (_config_error(n, preset, merged) for n in NETWORKS)), None)

    why = error(layer)
    if why is None:
        return []
    alone = {k: w for k, v in layer.items() if (w := error({k: v}))}
    if alone:
        return [f"{where}{k}={layer[k]!r}: {w}" for k, w in alone.items()]
    keys = [k for k in layer if error({j: v for j, v in layer.items() if j != k}) is None]
    named = ", ".join(f"{k}={layer[k]!r}" for k in keys or layer)
    return [f"{where}{named}: {why}"]


def settings_problems(
    presets: dict[str, dict[str, Any]],
    overrides: dict[str, Any],
    *,
    preset: str,
    source: str,
) -> list[str]:
    """Every problem of the training settings of a dataset's ``presets`` section (each built-in
    preset it sets, ``source`` naming where it comes from) and of the ``overrides`` (``--set``)
    on top of the run's ``preset``, for every network."""
    problems: list[str] = []
    for name, values in presets.items():
        if name in PRESETS:  # the CLI selects only built-in preset names
            problems += _layer_problems(name, {}, values, f"{source}: presets.{name}.")
    if overrides and not problems:
        problems += _layer_problems(preset, presets.get(preset, {}), overrides, "--set ")
    return problems
