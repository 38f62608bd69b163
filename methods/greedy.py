"""The ``greedy`` method: PICSL Greedy's fast deformable registration through picsl-greedy
(``pip install picsl-greedy``), set up per contrast as Greedy's authors document it. Greedy is
imported only when a registration runs.

Settings by contrast (:data:`BY_CONTRAST`, from ``RunContext.contrast``; an explicit setting, e.g.
``--set greedy.metric=ncc``, always wins):

- ``same`` (and a dataset that does not say): local NCC (``-m NCC 2x2x2``), one deformable stage,
  as before this choice existed.
- ``different``: NMI, which Greedy's reference manual (``docs/reference.rst`` of
  github.com/pyushkevich/greedy, "Metric Specification") says "should be used when intensity
  spaces of the moving and fixed images are very different, e.g., registering T1-MRI to T2-MRI.
  Does not work very well for deformable registration, better for affine/rigid"; so the pipeline
  of its quick start (``docs/quick_start.rst``): a linear stage first (here rigid, ``-a -dof 6``,
  initialised from the image headers with ``-ia-identity``, the reference's "typical example of
  rigid registration": the pairs are images of one subject in one physical space), with the
  quick start's 100x50x10 iterations and, as there, on the whole image (no ``-gm`` mask: see
  :class:`Greedy`'s ``rigid_mask``), then the deformable stage on top of it (``-it``) in
  stationary velocity mode (``-sv``, log-demons, which the quick start calls "almost always
  worth it"), with Greedy's default smoothing ``-s 1.732vox 0.7071vox``.

The images go to Greedy as SimpleITK images with their real geometry (LPS spacing, origin and
direction of :func:`methods.elastix.conversion.itk_geometry`). The returned field is Greedy's
deformable output, after a rigid stage Greedy's own composition of both stages (reslice mode,
``-r warp rigid -rc field``): a displacement field on
the fixed grid whose vectors are physical (LPS, mm) offsets from a fixed-space point to the
moving-space point it samples, i.e. fixed -> moving (the rigid matrix applied after the warp:
``rigid(x + warp(x)) - x``). The warp is written at full precision (``-wp 0``; Greedy rounds to
0.1 voxel by default) and converted by :func:`~methods.elastix.conversion.field_from_itk` to mm
along the array axes.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark.core.checks import check_bool, check_choice, check_int
from benchmark.core.errors import BenchError
from benchmark.core.pairs import RegistrationPair
from methods.base import (
    Method,
    RegistrationFailed,
    RegistrationResult,
    RunContext,
    method_summary,
    user_choice,
)
from methods.conventional import (
    captured_output,
    check_levels,
    check_tool_settings,
    optional_module,
    prepare_pair,
)
from methods.elastix.conversion import field_from_itk, itk_geometry

__all__ = [
    "Greedy",
    "PRESETS",
    "METRICS",
    "CONTRASTS",
    "BY_CONTRAST",
    "CONTRAST_SETTINGS",
    "MIN_VOXELS",
    "usable_levels",
    "choose_settings",
    "rigid_command",
    "greedy_command",
    "reslice_command",
    "field_name",
]

#: Presets: iterations per level of the deformable stage and of the rigid stage (coarse to fine;
#: each level halves the resolution) and the smoothing of the update and of the total field
#: (Greedy's ``-s``, its defaults). The rigid iterations are those of Greedy's quick start.
PRESETS: dict[str, dict] = {
    "paper": {
        "iterations": (200, 100, 50),
        "rigid_iterations": (100, 50, 10),
        "sigmas": ("1.732vox", "0.7071vox"),
    },
    "quick": {
        "iterations": (100, 50, 20),
        "rigid_iterations": (100, 50, 10),
        "sigmas": ("1.732vox", "0.7071vox"),
    },
}

#: Metrics: Greedy's local NCC (patch radius ``ncc_radius`` voxels per axis), its normalised
#: mutual information and its mutual information.
METRICS = ("ncc", "nmi", "mi")

#: The metrics that assume one contrast (a locally linear intensity relation).
ONE_CONTRAST_METRICS = ("ncc",)

#: The values of ``RunContext.contrast`` (None: the dataset does not say).
CONTRASTS = ("same", "different")

#: The settings Greedy's documentation recommends per contrast (module docstring); a dataset
#: that states no contrast gets ``same``'s.
BY_CONTRAST: dict[str, dict[str, Any]] = {
    "same": {"metric": "ncc", "rigid_init": False, "stationary_velocity": False},
    "different": {"metric": "nmi", "rigid_init": True, "stationary_velocity": True},
}

#: The settings chosen by the contrast unless given.
CONTRAST_SETTINGS = tuple(BY_CONTRAST["same"])

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


def choose_settings(
    contrast: str | None, given: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values of :data:`CONTRAST_SETTINGS` and who chose each.

    Parameters
    ----------
    contrast : {"same", "different"} or None
        The dataset's contrast (None: not stated).
    given : mapping
        The settings given explicitly (a missing or None value: chosen by the contrast).

    Returns
    -------
    values : dict
        Setting -> value.
    chosen_by : dict
        Setting -> ``"user (--set greedy.KEY=VALUE)"``, ``"contrast (same)"``,
        ``"contrast (different)"`` or ``"preset"`` (the contrast is not stated).

    Examples
    --------
    >>> values, chosen = choose_settings("different", {"metric": "mi"})
    >>> values
    {'metric': 'mi', 'rigid_init': True, 'stationary_velocity': True}
    >>> chosen["metric"], chosen["rigid_init"]
    ('user (--set greedy.metric=mi)', 'contrast (different)')
    """
    if contrast is not None:
        check_choice("greedy contrast", contrast, CONTRASTS)
    defaults = BY_CONTRAST[contrast or "same"]
    values: dict[str, Any] = {}
    chosen: dict[str, str] = {}
    for key in CONTRAST_SETTINGS:
        value = given.get(key)
        if value is None:
            values[key] = defaults[key]
            chosen[key] = f"contrast ({contrast})" if contrast else "preset"
        else:
            values[key] = value
            chosen[key] = user_choice("greedy", key, value)
    return values, chosen


def _metric_arg(metric: str, ndim: int, ncc_radius: int) -> str:
    metric = check_choice("greedy metric", metric, METRICS)
    if metric == "ncc":
        return "NCC " + "x".join([str(ncc_radius)] * ndim)
    return metric.upper()


def _levels(iterations, shape: tuple[int, ...] | None) -> str:
    """``-n``'s value; with the image ``shape``, without the levels :func:`usable_levels` drops."""
    its = list(iterations)
    if shape is not None:
        its = its[-usable_levels(shape) :]
    return "x".join(str(i) for i in its)


def _tail(*, mask: bool, threads: int | None) -> list[str]:
    parts = ["-gm mask"] if mask else []
    if threads is not None:
        parts.append(f"-threads {int(threads)}")
    return parts


def rigid_command(
    *,
    ndim: int,
    preset: str,
    metric: str,
    shape: tuple[int, ...] | None = None,
    ncc_radius: int = 2,
    mask: bool = False,
    threads: int | None = None,
    seed: int = 0,
) -> str:
    """The Greedy command line of the rigid stage (``-a -dof 6``, initialised from the image
    headers with ``-ia-identity``; images ``fixed``, ``moving``, ``mask``; output ``rigid``, the
    matrix the deformable stage starts from)."""
    cfg = PRESETS[check_choice("greedy preset", preset, PRESETS)]
    parts = [
        f"-d {ndim}",
        "-a -dof 6 -ia-identity",
        "-i fixed moving",
        f"-m {_metric_arg(metric, ndim, ncc_radius)}",
        "-n " + _levels(cfg["rigid_iterations"], shape),
        f"-seed {int(seed) + 1}",  # Greedy's seed 0 means "stochastic"
        "-o rigid",
    ]
    return " ".join(parts + _tail(mask=mask, threads=threads))


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
    rigid: bool = False,
    stationary_velocity: bool = False,
) -> str:
    """The Greedy command line of one deformable registration (images named ``fixed``,
    ``moving``, ``mask``; output ``warp``), after the rigid stage's matrix ``rigid`` when
    ``rigid`` (``-it rigid``), in stationary velocity mode (``-sv``) when
    ``stationary_velocity``. With the image ``shape``, the coarsest levels that would leave fewer
    than :data:`MIN_VOXELS` voxels along an axis are dropped (:func:`usable_levels`)."""
    cfg = PRESETS[check_choice("greedy preset", preset, PRESETS)]
    parts = [
        f"-d {ndim}",
        "-i fixed moving",
        *(["-it rigid"] if rigid else []),
        f"-m {_metric_arg(metric, ndim, ncc_radius)}",
        "-n " + _levels(cfg["iterations"] if iterations is None else iterations, shape),
        "-s " + " ".join(cfg["sigmas"]),
        *(["-sv"] if stationary_velocity else []),
        "-wp 0",
        f"-seed {int(seed) + 1}",
        "-o warp",
    ]
    return " ".join(parts + _tail(mask=mask, threads=threads))


def reslice_command(*, rigid: bool) -> str:
    """Greedy's reslice mode after the registration: the moving image warped by every stage
    (``warped``, Greedy's own linear interpolation, for the record) and, after a rigid stage,
    both stages composed into one displacement field on the fixed grid (``field``; ``-r`` lists
    the last stage applied to a point first, so ``warp rigid`` maps ``x`` to
    ``rigid(x + warp(x))``). Without one the deformable stage's ``warp`` is the field itself
    (resampling it through ``-rc`` would change its last float digits)."""
    if rigid:
        return "-rf fixed -rm moving warped -r warp rigid -rc field"
    return "-rf fixed -rm moving warped -r warp"


def field_name(*, rigid: bool) -> str:
    """The Greedy object that holds the returned displacement field (:func:`reslice_command`)."""
    return "field" if rigid else "warp"


def _sitk_image(array: np.ndarray, geom, sitk):
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.T))  # (i, j, k) -> ITK's (k, j, i)
    img.SetSpacing([float(s) for s in geom.spacing])
    img.SetOrigin([float(o) for o in geom.origin])
    img.SetDirection([float(d) for d in geom.direction.ravel()])
    return img


def _check_chosen_by(value: Any) -> dict[str, str]:
    if not (
        isinstance(value, dict)
        and set(value) == set(CONTRAST_SETTINGS)
        and all(isinstance(v, str) and v for v in value.values())
    ):
        raise BenchError(
            f"greedy chosen_by must map {', '.join(CONTRAST_SETTINGS)} to who chose them "
            f"(set by Greedy.configure), got {value!r}"
        )
    return {key: value[key] for key in CONTRAST_SETTINGS}


class Greedy(Method):
    """PICSL Greedy deformable registration (greedy diffeomorphic, Gaussian-smoothed updates),
    with the setup Greedy's documentation recommends for the data's contrast (module docstring).

    Parameters
    ----------
    preset : {"paper", "quick"}
        Iterations per level of the deformable stage, coarse to fine (each level halves the
        resolution): ``paper`` 200, 100, 50; ``quick`` 100, 50, 20; of the rigid stage 100, 50,
        10 in both (Greedy's quick start). Both smooth the update with 1.732 voxels and the
        total field with 0.7071 voxels (Greedy's defaults).
    metric : {"ncc", "nmi", "mi"} or None
        Greedy's local normalised cross-correlation (``-m NCC 2x2x2``, patch radius
        ``ncc_radius``), its normalised mutual information (``-m NMI``) or its mutual
        information (``-m MI``), for every stage. None: by contrast (:data:`BY_CONTRAST`: NCC for
        ``same`` or an unstated contrast, NMI for ``different``).
    rigid_init : bool or None
        Run a rigid stage (``-a -dof 6 -ia-identity``) with ``metric`` first and start the
        deformable stage from it (``-it``). None: by contrast (``different``: yes).
    rigid_mask : bool
        Restrict the rigid stage to the pair's fixed mask (``-gm``) too (with ``use_mask``).
        Default no: the rigid motion is one of the whole image, and Greedy's quick start runs
        its linear stage without a mask. With the mask, the rigid NMI stage turned 6 of the 12
        demo-dce test pairs by 24 to 136 degrees (Greedy's line search failed; the error in the
        breast 37 mm against 3.0 mm unregistered), without it none (1.4 mm; ``perf/README.md``).
    stationary_velocity : bool or None
        Deformable stage in stationary velocity mode (``-sv``, log-demons). None: by contrast
        (``different``: yes).
    ncc_radius : int
        NCC patch radius in voxels (every axis).
    iterations : list of int, optional
        Override the iterations per level of the deformable stage (any number of levels).
    threads : int, optional
        Greedy's ``-threads``; default all cores.
    use_mask : bool
        Use the pair's fixed mask as Greedy's ``-gm`` mask and for the intensity percentiles.
    seed : int
        Greedy's random seed (``-seed seed + 1``: Greedy's 0 means non-deterministic).
    contrast : {"same", "different"} or None
        The dataset's contrast (``RunContext.contrast``, passed by :meth:`configure`); None:
        not stated.
    chosen_by : dict, optional
        Who chose each of ``metric``, ``rigid_init``, ``stationary_velocity``
        (:func:`choose_settings`); :meth:`configure` records it, so that a run's ``run.json``
        says it. None: worked out from the arguments (a None setting: the contrast).

    Notes
    -----
    Greedy's NMI is NaN when the (normalised) images are identical; the adapter then returns the
    zero field without running Greedy. Any other non-finite field fails the pair.
    """

    name = "greedy"
    description = (
        "PICSL Greedy deformable registration (picsl-greedy): local NCC for one contrast, "
        "rigid + stationary-velocity NMI for different contrasts"
    )
    learns = False

    def __init__(
        self,
        *,
        preset: str = "paper",
        metric: str | None = None,
        rigid_init: bool | None = None,
        stationary_velocity: bool | None = None,
        rigid_mask: bool = False,
        ncc_radius: int = 2,
        iterations: list[int] | None = None,
        threads: int | None = None,
        use_mask: bool = True,
        seed: int = 0,
        contrast: str | None = None,
        chosen_by: dict[str, str] | None = None,
    ):
        given = {"metric": metric, "rigid_init": rigid_init}
        values, chosen = choose_settings(
            contrast, {**given, "stationary_velocity": stationary_velocity}
        )
        super().__init__(
            preset=check_choice("greedy preset", preset, PRESETS),
            metric=check_choice("greedy metric", values["metric"], METRICS),
            rigid_init=check_bool("greedy rigid_init", values["rigid_init"]),
            stationary_velocity=check_bool(
                "greedy stationary_velocity", values["stationary_velocity"]
            ),
            rigid_mask=check_bool("greedy rigid_mask", rigid_mask),
            ncc_radius=check_int("greedy ncc_radius", ncc_radius, minimum=1),
            iterations=check_levels("greedy", "iterations", iterations),
            **check_tool_settings("greedy", threads=threads, use_mask=use_mask, seed=seed),
            contrast=contrast,
            chosen_by=chosen if chosen_by is None else _check_chosen_by(chosen_by),
        )

    @classmethod
    def configure(cls, context: RunContext) -> dict[str, Any]:
        """The base class's arguments (preset, seed, threads, the dataset's contrast and the
        ``--set greedy.KEY`` settings) with the settings the contrast chooses filled in, and who
        chose them (``chosen_by``): the parameters recorded in ``run.json``."""
        return cls(**super().configure(context)).params

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Metric, transform, key settings and who chose them (:func:`methods.base.method_summary`)
        of the Greedy configured with ``params`` (:meth:`configure`'s)."""
        p = cls(**params).params
        metric = {
            "ncc": f"local NCC (radius {p['ncc_radius']} voxels)",
            "nmi": "NMI",
            "mi": "MI",
        }[p["metric"]]
        deformable = (
            "stationary velocity field (-sv)" if p["stationary_velocity"] else "greedy dense field"
        )
        cfg = PRESETS[p["preset"]]
        settings: dict[str, Any] = {
            "preset": p["preset"],
            "iterations": list(cfg["iterations"] if p["iterations"] is None else p["iterations"]),
            "smoothing": " ".join(cfg["sigmas"]),
        }
        if p["rigid_init"]:
            settings["rigid_iterations"] = list(cfg["rigid_iterations"])
            settings["rigid_mask"] = p["rigid_mask"]
        return method_summary(
            metric=metric,
            transform=("rigid (-dof 6) + " if p["rigid_init"] else "") + deformable,
            settings=settings,
            chosen_by="; ".join(dict.fromkeys(p["chosen_by"].values())),
            assumes_one_contrast=p["metric"] in ONE_CONTRAST_METRICS,
        )

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return optional_module("picsl_greedy", "picsl-greedy", "greedy")

    def stages(self, pair: RegistrationPair, *, mask: bool) -> list[tuple[str, tuple[str, ...]]]:
        """The Greedy command lines run for ``pair``, in order, each with the names of the
        objects it writes: the rigid stage (when ``rigid_init``; ``rigid``), the deformable
        stage (``warp``), the reslice and composition (``warped``, ``field``)."""
        p = self._params
        common = {
            "ndim": pair.ndim,
            "preset": p["preset"],
            "metric": p["metric"],
            "shape": pair.fixed.shape,
            "ncc_radius": p["ncc_radius"],
            "mask": mask,
            "threads": p["threads"],
            "seed": p["seed"],
        }
        rigid = rigid_command(**{**common, "mask": mask and p["rigid_mask"]})
        out = [(rigid, ("rigid",))] if p["rigid_init"] else []
        deformable = greedy_command(
            **common,
            iterations=p["iterations"],
            rigid=p["rigid_init"],
            stationary_velocity=p["stationary_velocity"],
        )
        out.append((deformable, ("warp",)))
        written = ("warped", "field") if p["rigid_init"] else ("warped",)
        out.append((reslice_command(rigid=p["rigid_init"]), written))
        return out

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
        stages = self.stages(pair, mask=images.mask is not None)
        commands = [command for command, _ in stages]
        g = picsl_greedy.Greedy3D() if pair.ndim == 3 else picsl_greedy.Greedy2D()
        out = io.StringIO()
        start = time.perf_counter()
        try:
            with captured_output() as console:
                for command, written in stages:
                    outputs = dict.fromkeys(written)  # None: Greedy keeps the result in memory
                    g.execute(command, out=out, err=out, **inputs, **outputs)
                    inputs = {}  # Greedy keeps the images it was given for the later commands
                field = sitk.GetArrayFromImage(g[field_name(rigid=p["rigid_init"])])
        except Exception as exc:  # the binding raises RuntimeError with Greedy's message
            text = _log(commands, console, out)
            reason = " ".join(str(exc).split())
            raise RegistrationFailed(
                f"greedy failed on pair {pair.key}: {reason}", log=text
            ) from exc
        runtime = time.perf_counter() - start
        warped = sitk.GetArrayFromImage(g["warped"]).T.astype(np.float32)
        displacement = field_from_itk(np.asarray(field), pair.fixed.affine, pair.fixed.shape)
        text = _log(commands, console, out)
        bad = int(np.count_nonzero(~np.isfinite(displacement)))
        if bad:
            raise RegistrationFailed(
                f"greedy, pair {pair.key}: Greedy returned {bad} NaN or infinite displacement "
                f"values (metric {p['metric']}); try another metric (--set greedy.metric=...)",
                log=text,
            )
        meta: dict[str, Any] = {"commands": commands}
        if p["rigid_init"]:
            meta["rigid_matrix_ras"] = np.asarray(g["rigid"], dtype=float).tolist()
        return RegistrationResult(
            displacement=displacement, warped=warped, runtime_s=runtime, log=text, meta=meta
        )


def _log(commands: list[str], console: list[str], out: io.StringIO) -> str:
    """The commands run, then Greedy's console output and its ``out``/``err`` text."""
    lines = "\n".join(f"greedy {c}" for c in commands)
    return f"{lines}\n{console[0] if console else ''}{out.getvalue()}"
