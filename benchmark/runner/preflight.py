"""Checks of ``bench run`` before any work: options, settings and the data it is about to use.

:func:`preflight` refuses, before the run folder is touched, a ``--jobs`` below 1, a run folder
that is a file, lies below one or cannot be written, a ``--device`` this machine does not have, a
``--scheduler`` where no scheduler answers, a setting that the manifest's presets or ``--set`` give
a wrong value (naming which of them), an unknown fold, and every problem of the files of the
selected pairs that ``bench data check`` would report (with the same messages; per-file results
are cached by content, so a re-run reads nothing again).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError

log = logging.getLogger(__name__)


def check_jobs(jobs: Any) -> None:
    """``--jobs`` must be an integer >= 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"--jobs must be a positive integer (1 = no parallel jobs), got {jobs!r}")


def check_out(out: Path) -> None:
    """The run folder must be a folder, or creatable: no file at its place or above it, and the
    folder (or its nearest existing parent) writable. Nothing is left behind by the check."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file; expected a run folder (new or existing)")
    existing = out if out.exists() else None
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BenchError(
                    f"--out {out}: {parent} is a file, so no run folder can be created below it"
                )
            existing = existing or parent
            break
    if existing is not None:
        _check_writable(existing, out)


def _check_writable(folder: Path, out: Path) -> None:
    """BenchError unless a file can be created in ``folder`` (tried, then removed: permission
    bits do not tell for root or a read-only file system)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BenchError(
            f"--out {out}: cannot write in {folder} ({exc.strerror or exc}); choose another folder"
        ) from exc


def check_device(device: str | None) -> None:
    """``--device`` names a device this machine has (:func:`methods.base.resolve_device`)."""
    if device is not None:
        from methods.base import resolve_device

        resolve_device(device)


def check_scheduler(address: str | None, *, timeout_s: float = 5.0) -> None:
    """An existing Dask scheduler (``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``) answers on
    its address before any work starts; BenchError naming the address otherwise."""
    if address is None:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise BenchError(f"--scheduler {address!r}: not an address like tcp://HOST:8786") from exc
    if parts.scheme not in ("tcp", "tls") or not host or port is None:
        raise BenchError(f"--scheduler {address!r}: not an address like tcp://HOST:8786")
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise BenchError(
            f"--scheduler {address}: no Dask scheduler answers there ({exc.strerror or exc}); "
            "start one (dask scheduler) or leave --scheduler out to use local workers"
        ) from exc


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


def method_settings(manifest, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--set`` values left to the methods: all but the keys the dataset takes itself
    (:attr:`benchmark.data.manifest.Manifest.option_keys`, applied when it was loaded with
    ``load_manifest(..., options=settings)``). A key neither owns stays, so
    :func:`check_settings` names it."""
    owned = set(manifest.option_keys)
    return {k: v for k, v in settings.items() if k not in owned}


def check_settings(manifest, preset: str, overrides: Mapping[str, Any] | None) -> None:
    """Every setting of the manifest's presets and of ``--set``, checked by the methods that own
    them (:func:`methods.registry.setting_problems`), whether or not they run, so that a typo
    never waits for a method to start. Messages name the manifest key or ``--set``."""
    from benchmark.core.errors import ValidationError
    from methods.base import RunContext
    from methods.registry import setting_problems

    context = RunContext(
        preset=preset, presets=manifest.presets, overrides=dict(overrides or {}),
        source=f"manifest {manifest.path}", contrast=manifest.contrast,
    )
    problems = setting_problems(context)
    if problems:
        raise ValidationError("settings", problems)


def check_options(
    manifest,
    method_names: Sequence[str],
    *,
    preset: str,
    folds: Sequence[int] | int | None,
    overrides: Mapping[str, Any] | None,
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
    overrides: Mapping[str, Any] | None,
    device: str | None = None,
    scheduler: str | None = None,
) -> tuple[list, dict[str, type]]:
    """Check everything ``run_benchmark`` is about to use; return the selected folds and the
    method classes by name.

    Order: options (``--jobs``, ``--out``, ``--device``, ``--scheduler``), methods, settings,
    folds (:func:`check_options`),
    then the files of the pairs the run uses (test pairs of the selected folds, and their
    training/validation pairs when a learning method runs). Raises :class:`BenchError` / :class:`ValidationError` before any work.
    """
    from benchmark.data.validate import check_before_run

    check_jobs(jobs)
    check_out(Path(out))
    check_device(device)
    check_scheduler(scheduler)
    chosen, classes = check_options(
        manifest, method_names, preset=preset, folds=folds, overrides=overrides
    )
    learns = any(cls.learns for cls in classes.values())
    pairs = {}
    for fold in chosen:
        for spec in fold.test + (fold.train + fold.val if learns else []):
            pairs.setdefault(spec.key, spec)
    check_before_run(manifest, list(pairs.values()))
    return chosen, classes
