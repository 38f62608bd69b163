"""The ``ants-syn`` method: ANTs symmetric normalisation (SyN) with Mattes mutual information,
through antspyx (``pip install antspyx``). ANTs is imported only when a registration runs.

The metric is Mattes mutual information (32 bins) whatever the data's contrast, as ANTs' authors
set SyN up for any pair of images: ANTsPy's ``ants.registration`` (ANTsX) defaults to
``syn_metric="mattes"``, ``syn_sampling=32`` for its SyN stage, and ANTs'
``Scripts/antsRegistrationSyNQuick.sh`` registers its SyN stage with mutual information of 32 bins
(``MI[fixed,moving,1,32]``); ``Scripts/antsRegistrationSyN.sh`` uses the neighbourhood
cross-correlation ``CC[fixed,moving,1,4]`` instead, a metric for one contrast. Mutual information
suits both contrasts, so ``RunContext.contrast`` changes nothing here.

The images go to ``antsRegistration`` as ANTs images with their real geometry (the LPS spacing,
origin and direction of :func:`methods.elastix.conversion.itk_geometry`; ANTs arrays are indexed
``(i, j, k)`` like the project's). ANTs' forward transforms map fixed-space points to moving-space
points; ``antsApplyTransforms`` composes them into one displacement field on the fixed grid
(physical LPS vectors, mm), which :func:`~methods.elastix.conversion.physical_to_array_mm` converts
to mm along the array axes, fixed -> moving (``docs/conventions.md``).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from benchmark.core.pairs import RegistrationPair
from methods.base import (
    Method,
    RegistrationFailed,
    RegistrationResult,
    method_summary,
    preset_or_user,
)
from methods.conventional import (
    captured_output,
    check_levels,
    check_tool_settings,
    error_reason,
    optional_module,
    prepare_pair,
    smoothing_mm,
)
from methods.elastix.conversion import itk_geometry, physical_to_array_mm

__all__ = ["AntsSyN", "PRESETS", "registration_args"]

#: Presets: shrink factors, smoothing sigmas (voxels of the finest axis), iterations per level
#: (coarse to fine), SyN gradient step, and SyN's update / total field smoothing (voxels).
PRESETS: dict[str, dict] = {
    # antsRegistrationSyN.sh's deformable stage with the paper's similarity (mutual information)
    "paper": {
        "shrink": (8, 4, 2, 1),
        "sigmas": (3, 2, 1, 0),
        "iterations": (100, 70, 50, 20),
        "gradient_step": 0.1,
        "flow_sigma": 3.0,
        "total_sigma": 0.0,
    },
    # three levels and a larger step (demo data, tests)
    "quick": {
        "shrink": (4, 2, 1),
        "sigmas": (2, 1, 0),
        "iterations": (100, 70, 20),
        "gradient_step": 0.25,
        "flow_sigma": 3.0,
        "total_sigma": 0.0,
    },
}

#: Mattes mutual information histogram bins.
BINS = 32
#: Convergence: stop a level when the metric's slope over the last ``window`` iterations is below.
CONVERGENCE = (1e-6, 10)


def registration_args(
    fixed: str,
    moving: str,
    *,
    prefix: str,
    ndim: int,
    spacing: tuple[float, ...],
    preset: str,
    iterations: list[int] | None = None,
    mask: str | None = None,
    warped: str | None = None,
    seed: int = 0,
) -> list[str]:
    """The ``antsRegistration`` arguments of one SyN registration.

    Parameters
    ----------
    fixed, moving : str
        ANTs image references (pointer strings of ANTs images, or file names).
    prefix : str
        Output prefix of the transforms (``PREFIX0Warp.nii.gz``).
    ndim : int
        2 or 3.
    spacing : tuple of float
        mm per voxel of the fixed image (the smoothing is given in mm, see below).
    preset : {"paper", "quick"}
        See :data:`PRESETS`.
    iterations : list of int, optional
        Override the iterations per level (same number of levels as the preset).
    mask : str, optional
        Fixed-image mask reference.
    warped : str, optional
        Reference of an image (fixed grid) that receives the moving image warped by ANTs.
    seed : int
        ``--random-seed``.

    Notes
    -----
    The smoothing sigmas are the preset's values in voxels of the *finest* axis, passed in mm,
    so an axis of thick slices is not blurred over several slices (as in the elastix adapter).
    There is no initial transform (``--initial-moving-transform`` is not given): the pair shares
    one grid and the field starts at zero.
    """
    cfg = PRESETS[check_choice("ants-syn preset", preset, PRESETS)]
    its = list(cfg["iterations"]) if iterations is None else list(iterations)
    if len(its) != len(cfg["shrink"]):
        raise BenchError(
            f"ants-syn iterations must have {len(cfg['shrink'])} levels for preset {preset!r} "
            f"(coarse to fine), got {iterations!r}"
        )
    sigmas = smoothing_mm(cfg["sigmas"], spacing)
    x = "x".join
    args = [
        "--dimensionality", str(ndim),
        "--float", "1",
        "--output", f"[{prefix},{warped}]" if warped else f"[{prefix}]",
        "--interpolation", "Linear",
        "--use-histogram-matching", "0",
        "--winsorize-image-intensities", "[0.0,1.0]",
        "--transform", f"SyN[{cfg['gradient_step']},{cfg['flow_sigma']},{cfg['total_sigma']}]",
        "--metric", f"Mattes[{fixed},{moving},1,{BINS}]",
        "--convergence", f"[{x(str(i) for i in its)},{CONVERGENCE[0]},{CONVERGENCE[1]}]",
        "--shrink-factors", x(str(s) for s in cfg["shrink"]),
        "--smoothing-sigmas", x(f"{s:g}" for s in sigmas) + "mm",
        "--random-seed", str(int(seed)),
        "--verbose", "1",
    ]  # fmt: skip
    if mask is not None:
        args += ["--masks", f"[{mask},NULL]"]
    return args


class AntsSyN(Method):
    """ANTs SyN (symmetric diffeomorphic normalisation) with Mattes mutual information (32 bins)
    for every dataset, same or different contrast (the module docstring says why).

    Parameters
    ----------
    preset : {"paper", "quick"}
        ``paper``: 4 levels (shrink 8, 4, 2, 1; smoothing 3, 2, 1, 0 voxels), 100, 70, 50, 20
        iterations, ``SyN[0.1, 3, 0]`` (antsRegistrationSyN.sh's deformable stage, with mutual
        information instead of cross-correlation); ``quick``: 3 levels (4, 2, 1; 2, 1, 0),
        100, 70, 20 iterations, ``SyN[0.25, 3, 0]``. Both: Mattes MI with 32 bins, convergence
        1e-6 over 10 iterations, linear interpolation.
    iterations : list of int, optional
        Override the iterations per level (coarse to fine; as many levels as the preset).
    threads : int, optional
        ITK threads (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``); default: ANTs' default (all
        cores).
    use_mask : bool
        Use the pair's fixed mask as ANTs' fixed mask and for the intensity percentiles.
    seed : int
        ``--random-seed``.
    """

    name = "ants-syn"
    description = "ANTs SyN (antspyx), Mattes mutual information, multi-resolution"
    learns = False

    def __init__(
        self,
        *,
        preset: str = "paper",
        iterations: list[int] | None = None,
        threads: int | None = None,
        use_mask: bool = True,
        seed: int = 0,
    ):
        check_choice("ants-syn preset", preset, PRESETS)
        its = check_levels("ants-syn", "iterations", iterations)
        if its is not None and len(its) != len(PRESETS[preset]["shrink"]):
            raise BenchError(
                f"ants-syn iterations must have {len(PRESETS[preset]['shrink'])} levels for "
                f"preset {preset!r} (coarse to fine), got {iterations!r}"
            )
        super().__init__(
            preset=preset,
            iterations=its,
            **check_tool_settings("ants-syn", threads=threads, use_mask=use_mask, seed=seed),
        )

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Mattes MI, SyN, the preset's levels and iterations
        (:func:`methods.base.method_summary`) of the ANTs SyN configured with ``params``."""
        preset = params.get("preset", "paper")
        cfg = PRESETS[check_choice("ants-syn preset", preset, PRESETS)]
        its = params.get("iterations")
        return method_summary(
            metric=f"Mattes MI ({BINS} bins)",
            transform="SyN (symmetric diffeomorphic)",
            settings={
                "preset": preset,
                "shrink_factors": list(cfg["shrink"]),
                "iterations": list(cfg["iterations"] if its is None else its),
                "syn": [cfg["gradient_step"], cfg["flow_sigma"], cfg["total_sigma"]],
            },
            chosen_by=preset_or_user(cls.name, params, ["iterations"]),
            assumes_one_contrast=False,
        )

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return optional_module("ants", "antspyx", "ants")

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        self.require_available()
        p = self._params
        if p["threads"] is not None:
            os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(p["threads"])
        import ants
        from ants.internal import get_pointer_string

        images = prepare_pair(pair, use_mask=p["use_mask"], method="ants-syn")
        geom = itk_geometry(pair.fixed.affine, pair.ndim)

        def to_ants(array: np.ndarray, dtype=np.float32):
            return ants.from_numpy(
                np.ascontiguousarray(array, dtype=dtype),
                origin=tuple(float(v) for v in geom.origin),
                spacing=tuple(float(v) for v in geom.spacing),
                direction=geom.direction.copy(),
            )

        fixed, moving = to_ants(images.fixed), to_ants(images.moving)
        # antsRegistration reads a mask passed by pointer as an unsigned char image (antspyx
        # passes ``mask != 0``): a float32 image there is read as scrambled bytes
        mask = None if images.mask is None else to_ants(images.mask != 0, np.uint8)
        warped = fixed.clone()
        with tempfile.TemporaryDirectory(prefix="mirbench-ants-") as tmp:
            prefix = str(Path(tmp) / "syn_")
            args = registration_args(
                get_pointer_string(fixed),
                get_pointer_string(moving),
                prefix=prefix,
                ndim=pair.ndim,
                spacing=pair.spacing,
                preset=p["preset"],
                iterations=p["iterations"],
                mask=None if mask is None else get_pointer_string(mask),
                warped=get_pointer_string(warped),
                seed=p["seed"],
            )
            start = time.perf_counter()
            try:
                with captured_output() as out:
                    ants.registration(args, None)
                    # ANTs' forward transform list: the last stage first (as antspyx's
                    # fwdtransforms); antsApplyTransforms composes them on the fixed grid
                    stages = sorted(Path(tmp).glob("syn_[0-9]*"))
                    chain = [str(f) for f in stages[::-1] if "Inverse" not in f.name]
                    composed = ants.apply_transforms(
                        fixed, moving, transformlist=chain, compose=str(Path(tmp) / "field_")
                    )
                    field = ants.image_read(composed).numpy()
            except Exception as exc:  # antspyx raises RuntimeError with ANTs' exit code
                text = out[0] if out else ""
                raise RegistrationFailed(
                    f"ants-syn failed on pair {pair.key}: {error_reason(exc, text)}", log=text
                ) from exc
            runtime = time.perf_counter() - start
        log_text = out[0]
        expected = (*pair.fixed.shape, pair.ndim)
        if field.shape != expected:
            raise RegistrationFailed(
                f"ants-syn, pair {pair.key}: ANTs returned a field of shape {field.shape}, "
                f"expected {expected}",
                log=log_text,
            )
        u = physical_to_array_mm(field, geom)
        return RegistrationResult(
            displacement=np.ascontiguousarray(np.moveaxis(u, -1, 0), dtype=np.float32),
            warped=warped.numpy().astype(np.float32),
            runtime_s=runtime,
            log=log_text,
            meta={"final_metric": _final_metric(log_text)},
        )


def _final_metric(log_text: str) -> float | None:
    """The last metric value of ANTs' ``DIAGNOSTIC`` lines, if any."""
    value = None
    for line in log_text.splitlines():
        if re.match(r"\s*\d*DIAGNOSTIC,", line):
            parts = [x.strip() for x in line.split(",")]
            try:
                value = float(parts[2])
            except (IndexError, ValueError):
                continue
    return value
