"""Checks of ``bench run`` before any work: options, settings and the data it is about to use.

:func:`preflight` refuses, before the run folder is touched, a ``--jobs`` below 1, a run folder
that is a file or lies below one, a training setting that the manifest's presets or ``--set`` give
a wrong value (naming which of them), an unknown fold, and every problem of the files of the
selected pairs that ``bench data check`` would report (with the same messages; per-file results
are cached by content, so a re-run reads nothing again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError

log = logging.getLogger(__name__)


def check_jobs(jobs: Any) -> None:
    """``--jobs`` must be an integer >= 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"--jobs must be a positive integer (1 = no parallel jobs), got {jobs!r}")


def check_out(out: Path) -> None:
    """The run folder must be a folder, or creatable: no file at its place or above it."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file; expected a run folder (new or existing)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BenchError(
                    f"--out {out}: {parent} is a file, so no run folder can be created below it"
                )
            break


def select_folds(
    all_folds: list, folds: Sequence[int] | int | None, *, option: str = "--folds"
) -> list:
    """The folds named by ``option`` (``--folds``: a list, all when None; ``--fold``: one
    index); BenchError naming the value when the dataset lacks a fold."""
    indices = [f.index for f in all_folds]
    if isinstance(folds, int):
        selected, shown = [folds], folds
    else:
        selected = list(indices) if folds is None else list(folds)
        shown = [f for f in selected if f not in indices]
    if any(f not in indices for f in selected):
        raise BenchError(f"{option} {shown}: the dataset has folds {indices}")
    return [f for f in all_folds if f.index in selected]


def _config_error(network: str, preset: str, layer: dict[str, Any]) -> str | None:
    """Why ``layer`` on top of the built-in ``preset`` is not a valid training config, or None."""
    from methods.training.config import make_config

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
    from methods.training.config import NETWORKS, merge_settings

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


def check_settings(manifest, preset: str, overrides: dict[str, Any] | None) -> None:
    """Every training setting of the manifest's presets and of ``--set``, for every network.

    Checked whether or not a learning method runs, so that a typo never waits for the first
    network to train (or passes unnoticed). Messages name the manifest key or ``--set``.
    """
    from benchmark.core.errors import ValidationError
    from methods.training.config import PRESETS

    problems: list[str] = []
    for name, values in manifest.presets.items():
        if name in PRESETS:  # the CLI selects only built-in preset names
            where = f"manifest {manifest.path}: presets.{name}."
            problems += _layer_problems(name, {}, values, where)
    if overrides and not problems:
        problems += _layer_problems(preset, manifest.presets.get(preset, {}), overrides, "--set ")
    if problems:
        raise ValidationError("training settings", problems)


def check_options(
    manifest,
    method_names: Sequence[str],
    *,
    preset: str,
    folds: Sequence[int] | int | None,
    overrides: dict[str, Any] | None,
    fold_option: str = "--folds",
    learning: bool = False,
) -> tuple[list, dict[str, type]]:
    """The checks of methods, settings and folds that ``bench run`` and ``bench train`` share.

    Methods: known and runnable here, and learning ones when ``learning``
    (:func:`methods.registry.check_methods`); settings: :func:`check_settings`; folds:
    :func:`select_folds` with ``fold_option`` in its message. Returns the selected folds and the
    method classes by name.
    """
    from methods.registry import check_methods

    classes = check_methods(method_names, learning=learning)
    check_settings(manifest, preset, overrides)
    return select_folds(manifest.folds(), folds, option=fold_option), classes


def preflight(
    manifest,
    method_names: Sequence[str],
    *,
    out: Path,
    preset: str,
    folds: Sequence[int] | None,
    jobs: Any,
    overrides: dict[str, Any] | None,
) -> list:
    """Check everything ``run_benchmark`` is about to use; return the selected folds.

    Order: options (``--jobs``, ``--out``), methods, settings, folds (:func:`check_options`),
    then the files of the pairs the run uses (test pairs of the selected folds, and their
    training/validation pairs when a learning method runs). Raises :class:`BenchError` / :class:`ValidationError` before any work.
    """
    from benchmark.data.validate import check_before_run

    check_jobs(jobs)
    check_out(Path(out))
    chosen, classes = check_options(
        manifest, method_names, preset=preset, folds=folds, overrides=overrides
    )
    learns = any(cls.learns for cls in classes.values())
    pairs = {}
    for fold in chosen:
        for spec in fold.test + (fold.train + fold.val if learns else []):
            pairs.setdefault(spec.key, spec)
    check_before_run(manifest, list(pairs.values()))
    return chosen
