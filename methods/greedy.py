"""The ``greedy`` method: PICSL Greedy's fast deformable registration through picsl-greedy
(``pip install picsl-greedy``), with local NCC (default) or NMI. Greedy is imported only when a registration runs.

The images go to Greedy as SimpleITK images with their real geometry (LPS spacing, origin and
direction of :func:`methods.elastix.conversion.itk_geometry`). Greedy's deformable output (``-o``)
is a displacement field on the fixed grid whose vectors are physical (LPS, mm) offsets from a
fixed-space point to the moving-space point it samples, i.e. fixed -> moving; it is written at full
precision (``-wp 0``; Greedy rounds to 0.1 voxel by default) and converted by
:func:`~methods.elastix.conversion.field_from_itk` to mm along the array axes.
"""

from __future__ import annotations

import io
import time

import numpy as np

from benchmark.core.checks import check_choice, check_int
from benchmark.core.pairs import RegistrationPair
from methods.base import Method, RegistrationFailed, RegistrationResult
from methods.conventional import (
    captured_output,
    check_levels,
    check_tool_settings,
    optional_module,
    prepare_pair,
)
from methods.elastix.conversion import field_from_itk, itk_geometry

__all__ = ["Greedy", "PRESETS", "METRICS", "MIN_VOXELS", "usable_levels", "greedy_command"]

#: Presets: iterations per level (coarse to fine; each level halves the resolution) and the
#: smoothing of the update and of the total field (Greedy's ``-s``, voxels).
PRESETS: dict[str, dict] = {
    "paper": {"iterations": (200, 100, 50), "sigmas": ("1.732vox", "0.7071vox")},
    "quick": {"iterations": (100, 50, 20), "sigmas": ("1.732vox", "0.7071vox")},
}

#: Metrics: Greedy's local NCC (patch radius ``ncc_radius`` voxels per axis; the default) and its
#: NMI (normalised mutual information, the paper's similarity).
METRICS = ("ncc", "nmi")

#: Greedy's Gaussian filters need at least this many voxels along every axis of every level.
MIN_VOXELS = 4


def usable_levels(shape: tuple[int, ...]) -> int:
    """How many pyramid levels (each halving every axis) keep at least :data:`MIN_VOXELS` voxels
    along the shortest axis: ``1 + floor(log2(min(shape) / MIN_VOXELS))``, at least 1.

    A 10-slice ACDC volume allows 2 levels, so a 3-level preset runs its two finest levels.
    """
    n = 1
    while min(shape) // 2**n >= MIN_VOXELS:
        n += 1
    return n


def greedy_command(
    *,
    ndim: int,
    preset: str,
    metric: str = "ncc",
    iterations: list[int] | None = None,
    shape: tuple[int, ...] | None = None,
    ncc_radius: int = 2,
    mask: bool = False,
    threads: int | None = None,
    seed: int = 0,
) -> str:
    """The Greedy command line of one deformable registration (images named ``fixed``,
    ``moving``, ``mask``; output ``warp``). With the image ``shape``, the coarsest levels that
    would leave fewer than :data:`MIN_VOXELS` voxels along an axis are dropped
    (:func:`usable_levels`)."""
    cfg = PRESETS[check_choice("greedy preset", preset, PRESETS)]
    metric = check_choice("greedy metric", metric, METRICS)
    its = list(cfg["iterations"] if iterations is None else iterations)
    if shape is not None:
        its = its[-usable_levels(shape) :]
    metric_arg = "NMI" if metric == "nmi" else "NCC " + "x".join([str(ncc_radius)] * ndim)
    parts = [
        f"-d {ndim}",
        "-i fixed moving",
        f"-m {metric_arg}",
        "-n " + "x".join(str(i) for i in its),
        "-s " + " ".join(cfg["sigmas"]),
        "-wp 0",
        f"-seed {int(seed) + 1}",  # Greedy's seed 0 means "stochastic"
        "-o warp",
    ]
    if mask:
        parts.append("-gm mask")
    if threads is not None:
        parts.append(f"-threads {int(threads)}")
    return " ".join(parts)


def _sitk_image(array: np.ndarray, geom, sitk):
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.T))  # (i, j, k) -> ITK's (k, j, i)
    img.SetSpacing([float(s) for s in geom.spacing])
    img.SetOrigin([float(o) for o in geom.origin])
    img.SetDirection([float(d) for d in geom.direction.ravel()])
    return img


class Greedy(Method):
    """PICSL Greedy deformable registration (greedy diffeomorphic, Gaussian-smoothed updates).

    Parameters
    ----------
    preset : {"paper", "quick"}
        Iterations per level, coarse to fine (each level halves the resolution): ``paper``
        200, 100, 50; ``quick`` 100, 50, 20. Both smooth the update with 1.732 voxels and the
        total field with 0.7071 voxels (Greedy's defaults).
    metric : {"ncc", "nmi"}
        Greedy's local normalised cross-correlation (``-m NCC 2x2x2``, patch radius
        ``ncc_radius``; default, Greedy's recommended deformable metric) or its normalised mutual
        information (``-m NMI``, the paper's similarity). On two demo-dce pairs NCC lowered the
        mean displacement error from 1.86 mm (identity) to 1.24 mm, NMI only to 1.81 mm (one
        pair got worse; ``perf/README.md``).
    ncc_radius : int
        NCC patch radius in voxels (every axis).
    iterations : list of int, optional
        Override the iterations per level (any number of levels).
    threads : int, optional
        Greedy's ``-threads``; default all cores.
    use_mask : bool
        Use the pair's fixed mask as Greedy's ``-gm`` mask and for the intensity percentiles.
    seed : int
        Greedy's random seed (``-seed seed + 1``: Greedy's 0 means non-deterministic).

    Notes
    -----
    Greedy's NMI is NaN when the (normalised) images are identical; the adapter then returns the
    zero field without running Greedy. Any other non-finite field fails the pair.
    """

    name = "greedy"
    description = "PICSL Greedy deformable registration (picsl-greedy), local NCC or NMI"
    learns = False

    def __init__(
        self,
        *,
        preset: str = "paper",
        metric: str = "ncc",
        ncc_radius: int = 2,
        iterations: list[int] | None = None,
        threads: int | None = None,
        use_mask: bool = True,
        seed: int = 0,
    ):
        super().__init__(
            preset=check_choice("greedy preset", preset, PRESETS),
            metric=check_choice("greedy metric", metric, METRICS),
            ncc_radius=check_int("greedy ncc_radius", ncc_radius, minimum=1),
            iterations=check_levels("greedy", "iterations", iterations),
            **check_tool_settings("greedy", threads=threads, use_mask=use_mask, seed=seed),
        )

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return optional_module("picsl_greedy", "picsl-greedy", "greedy")

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        self.require_available()
        import picsl_greedy
        import SimpleITK as sitk

        p = self._params
        images = prepare_pair(pair, use_mask=p["use_mask"], method="greedy")
        if np.array_equal(images.fixed, images.moving):
            # Greedy's NMI is NaN for identical images (a diagonal joint histogram); the zero
            # field is the optimum of every metric here, so Greedy is not called
            return RegistrationResult(
                displacement=np.zeros((pair.ndim, *pair.fixed.shape), np.float32),
                warped=images.moving.copy(),
                meta={"identical_images": True},
            )
        geom = itk_geometry(pair.fixed.affine, pair.ndim)
        inputs = {
            "fixed": _sitk_image(images.fixed, geom, sitk),
            "moving": _sitk_image(images.moving, geom, sitk),
        }
        if images.mask is not None:
            inputs["mask"] = _sitk_image(images.mask, geom, sitk)
        command = greedy_command(
            ndim=pair.ndim,
            preset=p["preset"],
            metric=p["metric"],
            iterations=p["iterations"],
            shape=pair.fixed.shape,
            ncc_radius=p["ncc_radius"],
            mask=images.mask is not None,
            threads=p["threads"],
            seed=p["seed"],
        )
        g = picsl_greedy.Greedy3D() if pair.ndim == 3 else picsl_greedy.Greedy2D()
        out = io.StringIO()
        start = time.perf_counter()
        try:
            with captured_output() as console:
                g.execute(command, out=out, err=out, warp=None, **inputs)
                field = sitk.GetArrayFromImage(g["warp"])
        except Exception as exc:  # the binding raises RuntimeError with Greedy's message
            text = f"greedy {command}\n{console[0] if console else ''}{out.getvalue()}"
            reason = " ".join(str(exc).split())
            raise RegistrationFailed(
                f"greedy failed on pair {pair.key}: {reason}", log=text
            ) from exc
        runtime = time.perf_counter() - start
        with captured_output() as reslice_log:  # Greedy's own (linear) warp, for the record
            g.execute("-rf fixed -rm moving warped -r warp", out=out, err=out, warped=None)
            warped = sitk.GetArrayFromImage(g["warped"]).T.astype(np.float32)
        displacement = field_from_itk(np.asarray(field), pair.fixed.affine, pair.fixed.shape)
        bad = int(np.count_nonzero(~np.isfinite(displacement)))
        if bad:
            raise RegistrationFailed(
                f"greedy, pair {pair.key}: Greedy returned {bad} NaN or infinite displacement "
                f"values (metric {p['metric']}); try metric='ncc'",
                log=f"greedy {command}\n{console[0]}{out.getvalue()}",
            )
        return RegistrationResult(
            displacement=displacement,
            warped=warped,
            runtime_s=runtime,
            log=f"greedy {command}\n{console[0]}{reslice_log[0]}{out.getvalue()}",
            meta={"command": command},
        )
