"""The ``elastix`` method: conventional B-spline registration with itk-elastix (the paper's
baseline). ITK is imported only when a registration runs or a parameter file is validated.

The metric depends on the preset, not on the data's contrast (both are mutual information, which
suits one contrast and different ones): ``paper`` registers with elastix's
``NormalizedMutualInformation`` (the paper's), ``quick`` with ``AdvancedMattesMutualInformation``
(:mod:`methods.elastix.parameters` says why); a user's parameter file brings its own.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.checks import check_choice, check_int
from benchmark.core.errors import BenchError
from benchmark.core.pairs import RegistrationPair
from methods.base import (
    Method,
    RegistrationFailed,
    RegistrationResult,
    RunContext,
    method_summary,
    preset_or_user,
    user_choice,
)
from methods.conventional import (
    check_tool_settings,
    error_reason,
    prepare_pair,
)
from methods.elastix.conversion import field_from_itk, to_itk_image
from methods.elastix.parameters import PRESETS, build_map

__all__ = ["Elastix"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "itk-elastix is not installed (pip install itk-elastix)"

#: elastix metrics that assume one contrast, and metrics for different contrasts.
ONE_CONTRAST_METRICS = ("AdvancedMeanSquares", "AdvancedNormalizedCorrelation")
MULTI_CONTRAST_METRICS = ("AdvancedMattesMutualInformation", "NormalizedMutualInformation")


def _elastix_available() -> tuple[bool, str]:
    """Whether ITK with its elastix module is installed.

    The modules are found, not loaded: loading ITK's elastix module takes seconds and imports
    torch, which ``bench methods`` must not. A module that is found but fails to load fails the
    first registration instead, with ITK's message.
    """
    try:
        if importlib.util.find_spec("itk") is None:
            return False, f"{_INSTALL_HINT}: no module named 'itk'"
        found = importlib.util.find_spec("itk.ElastixPython") is not None
    except (ImportError, ValueError) as exc:
        return False, f"{_INSTALL_HINT}: {exc}"
    if not found:
        return False, f"{_INSTALL_HINT}: ITK is installed without elastix"
    return True, ""


def _read_parameter_files(paths: Sequence[str]):
    """An ``itk.ParameterObject`` with the maps of ``paths``; BenchError names a bad file."""
    import itk

    obj = itk.ParameterObject.New()
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise BenchError(f"elastix parameter_file {str(path)!r}: file not found")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchError(f"elastix parameter_file {str(path)!r}: cannot read ({exc})") from exc
        if "(Transform " not in text and '(Transform"' not in text:
            raise BenchError(
                f"elastix parameter_file {str(path)!r}: not an elastix parameter file "
                '(expected a line such as (Transform "BSplineTransform"))'
            )
        try:
            single = itk.ParameterObject.New()
            single.ReadParameterFile(str(path))
        except Exception as exc:  # ITK raises RuntimeError with elastix's message
            raise BenchError(
                f"elastix parameter_file {str(path)!r}: elastix cannot read it ({exc})"
            ) from exc
        for i in range(single.GetNumberOfParameterMaps()):
            obj.AddParameterMap(single.GetParameterMap(i))
    return obj


class Elastix(Method):
    """B-spline registration with elastix (itk-elastix): normalized mutual information with the
    ``paper`` preset, Mattes mutual information with ``quick``.

    Parameters
    ----------
    preset : {"paper", "quick"}
        ``paper``: the paper's map (3 resolutions, 1,000 iterations each, 4,096 random samples per
        iteration in a random region, 64-bin ``NormalizedMutualInformation``); ``quick``: 2
        resolutions of 500 iterations, 2,048 samples, 64-bin
        ``AdvancedMattesMutualInformation`` (demo data). See :mod:`methods.elastix.parameters`.
    parameter_file : str or list of str, optional
        The user's own elastix parameter file(s) (several: applied in sequence, e.g. affine then
        B-spline); replaces the preset's map. Validated when the method is created.
    grid_spacing : float or list of float, optional
        Final B-spline control-point spacing in mm (one value for every axis, or one per array
        axis). Default: 8 voxels per axis, 1 voxel along an anisotropic axis (PoolNet's grid).
    iterations : int, optional
        Override the iterations per resolution of the preset (e.g. for tests).
    threads : int, optional
        Threads elastix may use; default all cores (``os.cpu_count()``).
    use_mask : bool
        Use the pair's fixed-grid mask (when it has one) as elastix's fixed mask and for the
        intensity percentiles. Default True.
    seed : int
        elastix's random seed (sample positions). Default 0.

    Notes
    -----
    Both images are percentile-normalised to ``[0, 1)`` (as the networks see them) and passed as
    float32 ITK images with their spacing, origin and direction (LPS). The deformation field that
    transformix computes on the fixed grid (physical LPS vectors) is converted to the project's
    convention by :func:`methods.elastix.conversion.field_from_itk`. ``runtime_s`` covers
    elastix's registration and transformix's field computation; elastix's log is returned in
    :attr:`RegistrationResult.log`, never printed.
    """

    name = "elastix"
    description = (
        "elastix B-spline registration (paper's map); metric NormalizedMutualInformation with "
        "preset paper, AdvancedMattesMutualInformation with preset quick"
    )
    learns = False
    # its multi-threaded sampling gives other numbers with another thread count (up to 1.4 mm
    # on a demo-acdc pair, threads 1 vs 2): the count is part of each registration's key
    threads_change_results = True

    def __init__(
        self,
        *,
        preset: str = "paper",
        parameter_file: str | Sequence[str] | None = None,
        grid_spacing: float | Sequence[float] | None = None,
        iterations: int | None = None,
        threads: int | None = None,
        use_mask: bool = True,
        seed: int = 0,
    ):
        check_choice("elastix preset", preset, PRESETS)
        files: list[str] | None = None
        if parameter_file is not None:
            files = (
                [parameter_file]
                if isinstance(parameter_file, (str, os.PathLike))
                else list(parameter_file)
            )
            files = [str(Path(f).expanduser().resolve()) for f in files]
            if not files:
                raise BenchError("elastix parameter_file: an empty list was given")
        if grid_spacing is not None:
            gs = [grid_spacing] if np.isscalar(grid_spacing) else list(grid_spacing)
            try:
                gs = [float(g) for g in gs]
            except (TypeError, ValueError) as exc:
                raise BenchError(
                    f"elastix grid_spacing must be numbers in mm, got {grid_spacing!r}"
                ) from exc
            if not gs or not all(np.isfinite(g) and g > 0 for g in gs):
                raise BenchError(f"elastix grid_spacing must be positive mm, got {grid_spacing!r}")
            grid_spacing = gs[0] if len(gs) == 1 else gs
        super().__init__(
            preset=preset,
            parameter_file=files,
            grid_spacing=grid_spacing,
            iterations=check_int("elastix iterations", iterations, minimum=1, allow_none=True),
            **check_tool_settings("elastix", threads=threads, use_mask=use_mask, seed=seed),
        )
        if files is not None:
            self.require_available()
            _read_parameter_files(files)  # validate now, not at the first pair

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return _elastix_available()

    @classmethod
    def configure(cls, context: RunContext) -> dict[str, Any]:
        """The base class's arguments with an explicit thread count (the run's, else this
        machine's cores), so that the count the results depend on is recorded and keyed."""
        params = super().configure(context)
        params.setdefault("threads", os.cpu_count() or 1)
        return params

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The preset's metric and B-spline settings, or those a user's parameter files name
        (:func:`methods.base.method_summary`), of the elastix configured with ``params``."""
        files = params.get("parameter_file")
        if files:
            metrics = _file_entries(files, "Metric")
            transforms = _file_entries(files, "Transform")
            one = [m for m in metrics if m in ONE_CONTRAST_METRICS]
            multi = [m for m in metrics if m in MULTI_CONTRAST_METRICS]
            return method_summary(
                metric=", ".join(metrics) or "unknown (parameter file)",
                transform=", ".join(transforms) or "unknown (parameter file)",
                settings={"parameter_file": list(files)},
                chosen_by=user_choice(cls.name, "parameter_file", list(files)),
                assumes_one_contrast=True if one else (False if multi else None),
            )
        preset = params.get("preset", "paper")
        cfg = PRESETS[check_choice("elastix preset", preset, PRESETS)]
        given = {k: params.get(k) for k in ("grid_spacing", "iterations")}
        return method_summary(
            metric=f"{cfg['metric']} (64 bins)",
            transform="B-spline",
            settings={
                "preset": preset,
                "resolutions": len(cfg["pyramid"]),
                "iterations": given["iterations"] or cfg["iterations"],
                "samples": cfg["samples"],
                "grid_spacing": "auto" if given["grid_spacing"] is None else given["grid_spacing"],
            },
            chosen_by=preset_or_user(cls.name, params, list(given)),
            assumes_one_contrast=cfg["metric"] in ONE_CONTRAST_METRICS,
        )

    def parameter_object(self, shape: Sequence[int], spacing: Sequence[float]):
        """The ``itk.ParameterObject`` used for an image of ``shape`` and ``spacing``."""
        import itk

        p = self._params
        if p["parameter_file"] is not None:
            obj = _read_parameter_files(p["parameter_file"])
            return obj
        grid = p["grid_spacing"]
        if grid is not None and not isinstance(grid, list):
            grid = [grid] * len(shape)
        obj = itk.ParameterObject.New()
        obj.AddParameterMap(
            build_map(
                p["preset"],
                shape=shape,
                spacing=spacing,
                grid_spacing=grid,
                iterations=p["iterations"],
                seed=p["seed"],
            )
        )
        return obj

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        self.require_available()
        import itk

        p = self._params
        threads = p["threads"] or os.cpu_count() or 1
        images = prepare_pair(pair, use_mask=p["use_mask"], method="elastix")
        mask = images.mask
        affine = pair.fixed.affine
        fixed = to_itk_image(images.fixed, affine)
        moving = to_itk_image(images.moving, affine)
        params = self.parameter_object(pair.fixed.shape, pair.spacing)

        with tempfile.TemporaryDirectory(prefix="mirbench-elastix-") as tmp:
            reg = itk.ElastixRegistrationMethod.New(fixed, moving)
            reg.SetParameterObject(params)
            if mask is not None:
                reg.SetFixedMask(to_itk_image(mask, affine, dtype=np.uint8))
            reg.SetNumberOfThreads(int(threads))
            reg.SetOutputDirectory(tmp)
            reg.SetLogToConsole(False)
            reg.SetLogToFile(True)
            reg.SetLogFileName("elastix.log")
            start = time.perf_counter()
            try:
                reg.UpdateLargestPossibleRegion()
                tpo = reg.GetTransformParameterObject()
                trx = itk.TransformixFilter.New(moving)
                trx.SetTransformParameterObject(tpo)
                trx.SetComputeDeformationField(True)
                trx.SetOutputDirectory(tmp)
                trx.SetLogToConsole(False)
                trx.SetLogToFile(True)
                trx.SetLogFileName("transformix.log")
                trx.UpdateLargestPossibleRegion()
                itk_field = trx.GetOutputDeformationField()
                runtime = time.perf_counter() - start
            except Exception as exc:  # ITK wraps elastix's exceptions in RuntimeError
                text = _read_logs(tmp)
                raise RegistrationFailed(
                    f"elastix failed on pair {pair.key}: {error_reason(exc, text)}", log=text
                ) from exc
            text = _read_logs(tmp)
            displacement = field_from_itk(itk_field, affine, pair.fixed.shape)
            warped = np.asarray(itk.array_from_image(reg.GetOutput())).T.astype(np.float32)
        if warped.shape != pair.fixed.shape:
            warped = None
        return RegistrationResult(
            displacement=displacement,
            warped=warped,
            runtime_s=runtime,
            log=text,
            meta={"threads": int(threads), "final_metric": _final_metric(text)},
        )


def _file_entries(paths: Sequence[str], key: str) -> list[str]:
    """The values of ``(KEY "A" "B")`` in elastix parameter files, in order, each once; none
    for a file that cannot be read (it was checked when the method was made)."""
    found: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        for match in re.finditer(rf"^\s*\(\s*{key}\s+([^)]*)\)", text, flags=re.MULTILINE):
            found += re.findall(r'"([^"]*)"', match.group(1))
    return list(dict.fromkeys(found))


def _read_logs(folder: str) -> str | None:
    parts = []
    for name in ("elastix.log", "transformix.log"):
        path = Path(folder) / name
        if path.is_file():
            parts.append(f"===== {name} =====\n" + path.read_text(errors="replace"))
    return "\n".join(parts) if parts else None


def _final_metric(log_text: str | None) -> float | None:
    """The last 'Final metric value' elastix reports, if any."""
    if not log_text:
        return None
    value = None
    for line in log_text.splitlines():
        if "Final metric value" in line:
            try:
                value = float(line.rsplit("=", 1)[1])
            except (IndexError, ValueError):
                continue
    return value
