"""The plug-in interface every registration method implements: :class:`Method`,
:class:`RegistrationResult`, and what the harness hands a method (:class:`RunContext`) and asks
back of a trained one (:class:`ValidationSummary`).

A method turns a loaded :class:`~benchmark.core.pairs.RegistrationPair` into a dense displacement field
on the fixed grid, fixed -> moving, in millimetres along the array axes (``docs/conventions.md``).
Methods never compute metrics: the harness warps images and labels with one shared function and
scores every method the same way. Learning methods train in :meth:`Method.fit`; the others inherit
its no-op.

The harness (runner, reports, CLI) knows a method only through this interface: it asks the class
for its settings (:meth:`Method.setting_keys`, :meth:`Method.configure`,
:meth:`Method.setting_problems`), for the settings that determine a trained artefact
(:meth:`Method.training_params`), whether the artefacts of a training folder are usable
(:meth:`Method.artefact_problem`), for a trained model's validation
(:meth:`Method.validation`), for the figures it adds to the report
(:meth:`Method.report_figures`) and for what the report's methods table says of it
(:meth:`Method.summary`, built with :func:`method_summary`). Every hook has a default that suits a
method which does not learn.
"""

from __future__ import annotations

import abc
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.pairs import PairSpec, RegistrationPair

__all__ = [
    "Method",
    "RegistrationResult",
    "RegistrationFailed",
    "RunContext",
    "ValidationSummary",
    "check_result",
    "fit_method",
    "method_summary",
    "contrast_label",
    "user_choice",
    "preset_or_user",
    "resolve_device",
    "HARNESS_PARAMS",
    "SUMMARY_KEYS",
]

#: ``__init__`` keywords the harness fills from the run itself (:meth:`Method.configure`):
#: the preset, the seed, the worker's thread count, the dataset's contrast
#: (:attr:`RunContext.contrast`), a learned method's merged training settings, and a method's
#: record of who chose its settings (``chosen_by``, written by its own ``configure``). Every other
#: keyword-only parameter of ``__init__`` is a setting of the method.
HARNESS_PARAMS = ("preset", "seed", "threads", "contrast", "settings", "chosen_by")

#: The keys of :meth:`Method.summary`'s answer (:func:`method_summary`).
SUMMARY_KEYS = ("metric", "transform", "settings", "chosen_by", "assumes_one_contrast")


class RegistrationFailed(BenchError):
    """A method could not register one pair (e.g. elastix stopped with an error).

    The runner records the pair as ``failed: <message>`` and goes on with the next pair.

    Attributes
    ----------
    log : str or None
        The method's own log up to the failure (kept as ``method.log`` in the pair folder).
    """

    def __init__(self, message: str, *, log: str | None = None):
        super().__init__(message)
        self.log = log


@dataclass(eq=False)
class RegistrationResult:
    """What :meth:`Method.register` returns for one pair.

    Attributes
    ----------
    displacement : ndarray of float32, shape (ndim, *spatial)
        The field ``u`` on the fixed grid, fixed -> moving, millimetres along the array axes:
        ``warped(x) = moving(x + u(x))``. Component ``c`` is along array axis ``c``.
    warped : ndarray, shape (*spatial), optional
        The method's own warped moving image (its intensities, e.g. normalised). Informative only:
        the harness re-warps the original moving image with the shared warp.
    runtime_s : float
        Seconds spent on the registration itself (optimisation or network inference, and the
        computation of the dense field), excluding file I/O and model loading. ``>= 0``, or NaN
        when it was not measured (fields computed elsewhere: status ``not-measured``).
    log : str, optional
        The method's own log text for this pair (e.g. elastix's log); saved, never printed.
    meta : dict
        Anything else worth keeping (JSON-able values: iterations, final metric value, ...).

    Raises
    ------
    BenchError
        If ``displacement`` is not a float32 array of shape ``(ndim, *spatial)`` with ``ndim`` 2
        or 3, or ``runtime_s`` is negative or infinite.
    """

    displacement: np.ndarray
    warped: np.ndarray | None = None
    runtime_s: float = 0.0
    log: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        d = self.displacement
        if not isinstance(d, np.ndarray):
            raise BenchError(f"displacement must be a numpy array, got {type(d).__name__}")
        if d.dtype != np.float32:
            raise BenchError(f"displacement must be float32, got {d.dtype}")
        if d.ndim not in (3, 4) or d.shape[0] != d.ndim - 1:
            raise BenchError(
                f"displacement must have shape (ndim, *spatial) with ndim 2 or 3, got {d.shape}"
            )
        if self.warped is not None and tuple(self.warped.shape) != tuple(d.shape[1:]):
            raise BenchError(
                f"warped image shape {self.warped.shape} != displacement grid {d.shape[1:]}"
            )
        runtime = float(self.runtime_s)
        if not (math.isnan(runtime) or (math.isfinite(runtime) and runtime >= 0.0)):
            raise BenchError(
                f"runtime_s must be a finite number >= 0 (or NaN: not measured), "
                f"got {self.runtime_s!r}"
            )
        self.runtime_s = runtime


def check_result(result: RegistrationResult, pair: RegistrationPair, *, method: str = "") -> None:
    """Check that ``result`` fits ``pair``: field shape ``(ndim, *fixed.shape)`` and finite values.

    Raises
    ------
    BenchError
        Naming the method, the pair, the shape found and the shape expected, or the number of
        non-finite values.
    """
    who = f"method {method!r}, pair {pair.key}" if method else f"pair {pair.key}"
    expected = (pair.ndim, *pair.fixed.shape)
    if tuple(result.displacement.shape) != expected:
        raise BenchError(
            f"{who}: displacement shape {tuple(result.displacement.shape)} != expected {expected}"
        )
    bad = int(np.count_nonzero(~np.isfinite(result.displacement)))
    if bad:
        raise BenchError(f"{who}: displacement has {bad} NaN or infinite values")


@dataclass(frozen=True)
class RunContext:
    """What the harness offers a method class to configure itself for one run.

    Attributes
    ----------
    preset : str
        The run's preset (``quick`` or ``paper``).
    seed : int
        The run's first seed (a seeded task gets its own, :meth:`Method.configure`'s caller sets
        it per task).
    threads : int or None
        Threads per worker process; None: the tool's default.
    presets : mapping
        The dataset manifest's ``presets`` section: preset name -> settings.
    overrides : mapping
        ``--set KEY=VALUE`` settings (parsed: :func:`methods.registry.parse_set`). A plain key
        is a learned method's training setting; ``METHOD.KEY`` is a setting of ``METHOD``.
    source : str
        Where ``presets`` come from, for messages (``manifest PATH``).
    contrast : {"same", "different"} or None
        Whether the dataset's fixed and moving images share a contrast (the manifest's
        ``contrast``): a method picks the similarity its authors recommend for it. None: not
        stated (a method keeps its single-contrast default).
    """

    preset: str = "quick"
    seed: int = 0
    threads: int | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    source: str = "the dataset manifest"
    contrast: str | None = None


@dataclass(frozen=True)
class ValidationSummary:
    """A trained model's validation beside no registration (one row of ``validation.csv``).

    ``val_similarity`` and ``identity_similarity`` are the training loss's similarity term on
    whole validation pairs (lower is better); the Dice values are NaN without label maps;
    ``worse_than_identity`` is the reason the model is worse than no registration ("" when it is
    not); ``held_out`` says whether the validation pairs were kept out of training.
    """

    best_iteration: int
    val_similarity: float
    identity_similarity: float
    val_dice: float
    identity_dice: float
    held_out: bool
    worse_than_identity: str = ""


class Method(abc.ABC):
    """Base class of a registration method (built-in or plug-in).

    Subclasses set the class attributes, take their settings as keyword-only arguments of
    ``__init__`` (and pass them on to ``super().__init__(**settings)`` so that they are recorded
    in :attr:`params`), and implement :meth:`register`. Learning methods override :meth:`fit`.

    Class attributes
    ----------------
    name : str
        Registry name, lower case, e.g. ``"elastix"``; used on the command line and in results.
    description : str
        One line for ``bench methods``.
    learns : bool
        True when :meth:`fit` trains something on the training pairs of a fold.
    threads_change_results : bool
        True when the result depends on the number of threads (elastix's multi-threaded
        sampling): the thread count is then part of each registration's key, so a folder resumed
        with another ``--jobs`` re-runs the method instead of mixing both.

    Settings
    --------
    A setting is a keyword-only parameter of ``__init__`` other than :data:`HARNESS_PARAMS`; the
    user sets it with ``--set NAME.KEY=VALUE`` (``--set elastix.iterations=500``). Learned
    methods take their training settings as plain keys instead (:mod:`methods.learned`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    learns: ClassVar[bool] = False
    threads_change_results: ClassVar[bool] = False

    def __init__(self, **params: Any):
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BenchError(
                f"method {self.name!r}: parameters must be JSON-serialisable, got {params!r} ({exc})"
            ) from exc
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """The method's settings (JSON-able), recorded per method in ``run.json``."""
        return dict(self._params)

    # ------------------------------------------------------------------ settings (class hooks)

    @classmethod
    def _setting_params(cls) -> list[str]:
        """The keyword-only ``__init__`` parameters that are the method's own settings."""
        return [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in HARNESS_PARAMS
        ]

    @classmethod
    def setting_keys(cls) -> tuple[str, ...]:
        """The ``--set`` keys this method takes: ``NAME.KEY`` for each of its settings."""
        return tuple(f"{cls.name}.{p}" for p in cls._setting_params())

    @classmethod
    def configure(cls, context: RunContext) -> dict[str, Any]:
        """The keyword arguments of ``__init__`` for a run: the run's preset, seed, threads and
        the dataset's contrast where ``__init__`` takes them, and this method's
        ``--set NAME.KEY`` settings."""
        accepted = inspect.signature(cls).parameters
        offered: dict[str, Any] = {
            "preset": context.preset,
            "seed": context.seed,
            "contrast": context.contrast,
        }
        if context.threads is not None:
            offered["threads"] = context.threads
        params = {k: v for k, v in offered.items() if k in accepted}
        prefix = f"{cls.name}."
        params.update(
            {k[len(prefix):]: v for k, v in context.overrides.items() if k.startswith(prefix)}
        )
        return params

    @classmethod
    def setting_problems(cls, context: RunContext) -> list[str]:
        """Why the settings ``context`` gives this method are wrong (empty when they are not).

        The default builds the method with :meth:`configure`'s arguments when the user set one
        of its settings, and reports the error it raises.
        """
        prefix = f"{cls.name}."
        if not any(k.startswith(prefix) for k in context.overrides):
            return []
        try:
            cls(**cls.configure(context))
        except (BenchError, TypeError, ValueError) as exc:
            return [f"--set {prefix}*: {exc}"]
        return []

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the report's methods table and ``run.json`` say of this method configured with
        ``params`` (:meth:`configure`'s answer): a dict with the keys of :func:`method_summary`
        (similarity metric, transformation model, key settings, who chose them, whether the
        metric assumes one contrast), or None when the method does not say (the default, e.g.
        a plug-in)."""
        return None

    @classmethod
    def training_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The part of ``params`` (:attr:`params` of an instance) that determines what
        :meth:`fit` produces; a change of the rest (how a trained model registers) re-runs only
        the registrations. The default: all of them."""
        return dict(params)

    # ------------------------------------------------------------ artefacts (class hooks)

    @classmethod
    def artefact_files(cls, workdir: Path) -> tuple[Path, ...]:
        """The files :meth:`fit` leaves in ``workdir`` that :meth:`register` needs (none for a
        method that does not learn)."""
        return ()

    @classmethod
    def artefact_problem(cls, workdir: Path) -> str | None:
        """Why the artefacts in ``workdir`` cannot be used (missing, damaged), naming the file;
        None when they can. The default checks that :meth:`artefact_files` exist."""
        missing = [str(p) for p in cls.artefact_files(Path(workdir)) if not p.is_file()]
        return f"missing {', '.join(missing)}" if missing else None

    @classmethod
    def resumable(cls, workdir: Path) -> bool:
        """Whether ``workdir`` holds an unfinished training that :meth:`fit` would continue."""
        return False

    @classmethod
    def validation(cls, workdir: Path) -> ValidationSummary | None:
        """The validation of the model trained in ``workdir``; None when there is none."""
        return None

    @classmethod
    def report_figures(cls, workdir: Path, *, title: str) -> list[tuple[str, Any]]:
        """``(name, matplotlib Figure)`` of what the training in ``workdir`` adds to the report
        (a learned method: its training curves); none by default."""
        return []

    @property
    def training_iterations(self) -> int | None:
        """Iterations of the training :meth:`fit` ran (recorded in ``costs.csv``), or None."""
        return None

    # ------------------------------------------------------------------------ availability

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Whether the method can run here, and why not (empty string when it can).

        Override to check optional dependencies without raising, e.g.
        ``(False, "itk-elastix is not installed (pip install itk-elastix)")``.
        """
        return True, ""

    @classmethod
    def require_available(cls) -> None:
        """BenchError naming the method and the reason unless :meth:`availability` says it can
        run here."""
        ok, reason = cls.availability()
        if not ok:
            raise BenchError(f"{cls.name}: {reason}")

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
        """Train on the training pairs of one fold. The default does nothing.

        Parameters
        ----------
        train_pairs : sequence of PairSpec
            The fold's training pairs (files, not loaded).
        val_pairs : sequence of PairSpec
            The fold's validation pairs (a hold-out split's); empty for cross-validation, where a
            method may set some training cases aside itself. A ``fit`` without this parameter
            is called without it.
        workdir : Path
            A folder owned by this method and fold (``models/METHOD/foldK``): checkpoints, logs.
        seed : int
            Seed of every random choice of the training.
        device : str, optional
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``; None: CUDA when available, else CPU.
        progress : bool
            Show a progress bar.
        """
        return None  # methods that do not learn need no training

    @abc.abstractmethod
    def register(self, pair: RegistrationPair) -> RegistrationResult:
        """Register ``pair.moving`` to ``pair.fixed``.

        Returns
        -------
        RegistrationResult
            The field on the fixed grid, fixed -> moving, mm along array axes.

        Raises
        ------
        RegistrationFailed
            When the method fails on this pair (the run records it and goes on).
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


def method_summary(
    *,
    metric: str,
    transform: str,
    settings: Mapping[str, Any],
    chosen_by: str,
    assumes_one_contrast: bool | None,
) -> dict[str, Any]:
    """The answer of :meth:`Method.summary`, checked: keys :data:`SUMMARY_KEYS`.

    Parameters
    ----------
    metric : str
        The similarity the method optimises (or was trained with), e.g. ``"NMI"``,
        ``"local NCC (radius 2 voxels)"``; ``"none"`` or ``"unknown"`` where there is none or it
        is not known.
    transform : str
        The transformation model, e.g. ``"B-spline"``, ``"rigid (-dof 6) + greedy dense field"``.
    settings : mapping
        The key settings (JSON-able values).
    chosen_by : str
        Who chose the metric and settings: ``"preset"`` (the method's own default for the
        run's preset), ``"contrast (same)"`` / ``"contrast (different)"`` (the dataset's
        contrast), ``"user (--set NAME.KEY=VALUE)"``, ``"method"`` (fixed by the method, e.g.
        ``unet-ncc``) or ``"unknown"``; several joined by ``"; "``.
    assumes_one_contrast : bool or None
        True when the metric assumes that fixed and moving share a contrast (NCC, SSD: run on a
        ``different`` dataset the report labels it); None: not known.

    Raises
    ------
    BenchError
        When ``settings`` is not JSON-able, or a text is empty.
    """
    for name, text in (("metric", metric), ("transform", transform), ("chosen_by", chosen_by)):
        if not isinstance(text, str) or not text:
            raise BenchError(f"method summary: {name} must be a non-empty string, got {text!r}")
    if assumes_one_contrast is not None and not isinstance(assumes_one_contrast, bool):
        raise BenchError(
            f"method summary: assumes_one_contrast must be true, false or null, got "
            f"{assumes_one_contrast!r}"
        )
    try:
        json.dumps(dict(settings), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BenchError(
            f"method summary: settings must be JSON-serialisable, got {settings!r} ({exc})"
        ) from exc
    return {
        "metric": metric,
        "transform": transform,
        "settings": dict(settings),
        "chosen_by": chosen_by,
        "assumes_one_contrast": assumes_one_contrast,
    }


def user_choice(method: str, key: str, value: Any) -> str:
    """How a summary's ``chosen_by`` names a setting the user gave: ``"user (--set
    METHOD.KEY=VALUE)"``, the value written as ``--set`` reads it (a string as is, a list comma
    separated, anything else as JSON).

    >>> user_choice("greedy", "metric", "ncc"), user_choice("greedy", "rigid_init", False)
    ('user (--set greedy.metric=ncc)', 'user (--set greedy.rigid_init=false)')
    >>> user_choice("ants-syn", "iterations", [5, 4, 3])
    'user (--set ants-syn.iterations=5,4,3)'
    """

    def text(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    shown = ",".join(map(text, value)) if isinstance(value, (list, tuple)) else text(value)
    return f"user (--set {method}.{key}={shown})"


def preset_or_user(method: str, params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A summary's ``chosen_by`` for a method whose settings come from its preset unless the user
    gave one of ``keys`` (a value other than None in ``params``): ``"preset"``, then
    :func:`user_choice` of each one given, joined by ``"; "``.

    >>> preset_or_user("elastix", {"iterations": 7, "grid_spacing": None}, ["grid_spacing"])
    'preset'
    >>> preset_or_user("elastix", {"iterations": 7}, ["grid_spacing", "iterations"])
    'preset; user (--set elastix.iterations=7)'
    """
    given = [user_choice(method, k, params[k]) for k in keys if params.get(k) is not None]
    return "; ".join(["preset", *given])


def contrast_label(summary: Mapping[str, Any] | None, contrast: str | None) -> str | None:
    """The label of a method whose similarity assumes one contrast (``summary``'s
    ``assumes_one_contrast``, :meth:`Method.summary`) run on a dataset whose ``contrast`` is
    ``different``: ``"METRIC on a multi-contrast dataset"`` (the metric's name without its
    details); None otherwise, also when the method does not say.

    >>> s = method_summary(metric="NCC (local, window 9 voxels)", transform="dense field",
    ...                    settings={}, chosen_by="method", assumes_one_contrast=True)
    >>> contrast_label(s, "different"), contrast_label(s, "same"), contrast_label(None, "different")
    ('NCC on a multi-contrast dataset', None, None)
    """
    if contrast != "different" or not summary or summary.get("assumes_one_contrast") is not True:
        return None
    return f"{str(summary['metric']).split(' (')[0]} on a multi-contrast dataset"


def resolve_device(device: str | None):
    """The torch device a method should use: ``None`` -> CUDA when available, else the CPU;
    otherwise the named device (``cpu``, ``cuda``, ``cuda:1``), checked.

    Raises
    ------
    BenchError
        For a name torch does not know, a device that is neither CPU nor CUDA, or a CUDA device
        this machine does not have (naming how many it has).
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BenchError(
            f"--device {device!r}: not a device; expected cpu, cuda or cuda:N"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"--device {device!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BenchError(f"--device {device!r}: this machine has {count} CUDA device(s)")
    return dev


def fit_method(
    method: Method,
    train_pairs: Sequence[PairSpec],
    *,
    val_pairs: Sequence[PairSpec] = (),
    **kwargs: Any,
) -> None:
    """``method.fit(train_pairs, val_pairs=..., **kwargs)``; a ``fit`` written before
    ``val_pairs`` existed (a plug-in) is called without it."""
    if "val_pairs" in inspect.signature(method.fit).parameters:
        kwargs["val_pairs"] = val_pairs
    method.fit(train_pairs, **kwargs)
