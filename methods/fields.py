"""Precomputed displacement fields as a method (``--methods fields:NAME=DIR``) and the Learn2Reg
field convention.

A field computed elsewhere (another framework, another lab, a challenge submission) is evaluated by
the harness like any method: :func:`fields_method` registers a :class:`FieldsMethod` called ``NAME``
that reads one field per test pair from ``DIR``. For the pair ``CASE/PAIR`` of fold ``K`` it takes
the first file that exists of

1. ``DIR/CASE/PAIR/displacement.nii.gz`` and 2. ``DIR/foldK/CASE/PAIR/displacement.nii.gz``:
   the harness's own layout and convention (a run folder's ``pairs/METHOD/foldK`` or
   ``pairs/METHOD``; NIfTI vector field, mm along the array axes, fixed -> moving);
3. ``DIR/disp_FIXED_MOVING.nii.gz`` (or ``.npz``): the Learn2Reg name and convention
   (:func:`l2r_name`, :func:`from_l2r`).

A pair without a file becomes a failed row (``failed: missing field ...``); a file with the wrong
shape or grid stops the run with :class:`FieldFileError` naming the file.

**Learn2Reg convention** (the challenge's ``evaluation.py``: ``map_coordinates(moving,
identity + disp.transpose(3, 0, 1, 2))``): a NIfTI (or ``.npz`` with ``arr_0``) array of shape
``(I, J, K, 3)`` on the fixed grid, component ``c`` along array axis ``c`` in **voxels**, fixed ->
moving. The harness's field is the same in mm: ``u_mm[c] = disp[..., c] * spacing[c]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement
from benchmark.core.pairs import DISPLACEMENT_FILE, RegistrationPair
from methods.base import Method, RegistrationFailed, RegistrationResult

__all__ = [
    "FieldsMethod",
    "FieldFileError",
    "fields_method",
    "parse_fields_spec",
    "l2r_name",
    "to_l2r",
    "from_l2r",
    "write_l2r_field",
    "read_l2r_field",
    "L2R_DTYPES",
]

#: The ``--methods`` prefix of precomputed fields.
FIELDS_PREFIX = "fields:"

#: dtypes a Learn2Reg field may be written with (float64: the round trip is exact).
L2R_DTYPES = ("float64", "float32", "float16")

#: Learn2Reg image names: ``TASK_SUBJECT_MODALITY.nii.gz`` with 4-digit subject and modality.
_L2R_IMAGE = re.compile(r"^.+_(?P<subject>\d{4})_(?P<modality>\d{4})\.nii(\.gz)?$")


class FieldFileError(ValueError):
    """A precomputed field file exists but does not fit its pair (shape, grid, content).

    Not a :class:`~benchmark.core.errors.BenchError` on purpose: the runner records a BenchError as the
    method's failed (and finished) result, while a wrong file fails its task without a result:
    the other tasks finish, ``bench run`` names it and exits with 1, and the next run tries
    the pair again.
    """


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def l2r_name(fixed: str | Path, moving: str | Path, case: str) -> str:
    """The Learn2Reg file name (without suffix) of a pair's field: ``disp_FIXED_MOVING``.

    - Images named as in Learn2Reg (``TASK_SSSS_MMMM.nii.gz``, subject ``SSSS``, modality
      ``MMMM``) give Learn2Reg's own names: ``disp_SSSS_SSSS`` (fixed, moving subject) when both
      modalities are equal or fixed ``0000`` and moving ``0001``, else
      ``disp_SSSS_MMMM_SSSS_MMMM``.
    - Other images are named by their file names without suffix, prefixed with the case unless
      the file name starts with it: ACDC ``patient001_frame01`` / ``patient001_frame12`` give
      ``disp_patient001_frame01_patient001_frame12``, demo-dce ``phase_00`` / ``phase_04`` of
      ``study001`` give ``disp_study001_phase_00_study001_phase_04``.
    """
    fixed, moving = Path(fixed), Path(moving)
    fm, mm = _L2R_IMAGE.match(fixed.name), _L2R_IMAGE.match(moving.name)
    if fm and mm:
        fs, fmod, ms, mmod = fm["subject"], fm["modality"], mm["subject"], mm["modality"]
        if fmod == mmod or (fmod, mmod) == ("0000", "0001"):
            return f"disp_{fs}_{ms}"
        return f"disp_{fs}_{fmod}_{ms}_{mmod}"

    def image_id(path: Path) -> str:
        stem = _stem(path)
        return stem if stem.startswith(case) else f"{case}_{stem}"

    return f"disp_{image_id(fixed)}_{image_id(moving)}"


def _spacing_column(spacing, ndim: int) -> np.ndarray:
    return np.asarray(spacing, dtype=np.float64).reshape((ndim,) + (1,) * ndim)


def to_l2r(u_mm: np.ndarray, spacing) -> np.ndarray:
    """The harness's field ``(ndim, *spatial)`` in mm -> Learn2Reg's ``(*spatial, ndim)`` in
    voxels (float64)."""
    u = np.asarray(u_mm, dtype=np.float64)
    return np.moveaxis(u / _spacing_column(spacing, u.shape[0]), 0, -1)


def from_l2r(disp_vox: np.ndarray, spacing) -> np.ndarray:
    """Learn2Reg's ``(*spatial, ndim)`` in voxels -> the harness's ``(ndim, *spatial)`` float32
    in mm."""
    d = np.moveaxis(np.asarray(disp_vox, dtype=np.float64), -1, 0)
    return (d * _spacing_column(spacing, d.shape[0])).astype(np.float32)


def write_l2r_field(
    path: str | Path, u_mm: np.ndarray, affine: np.ndarray, *, dtype: str = "float64"
) -> Path:
    """Write the harness's field ``u_mm`` (mm) as a Learn2Reg NIfTI field (voxels), atomically.

    ``float64`` (default) keeps the round trip :func:`write_l2r_field` -> :func:`read_l2r_field`
    exact (the float32 field comes back bit for bit); ``float32`` and ``float16`` are smaller.
    """
    import nibabel as nib

    if dtype not in L2R_DTYPES:
        raise BenchError(f"dtype must be one of {', '.join(L2R_DTYPES)}, got {dtype!r}")
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))[: u_mm.shape[0]]
    data = to_l2r(u_mm, spacing).astype(dtype)
    path = Path(path)
    with atomic_path(path) as tmp:
        nii = nib.Nifti1Image(data, affine)
        nii.header.set_xyzt_units("mm", "sec")
        nib.save(nii, str(tmp))
    return path


def read_l2r_field(path: str | Path, *, shape: tuple[int, ...], spacing) -> np.ndarray:
    """Read a Learn2Reg field (``.nii.gz`` / ``.nii`` / ``.npz`` with ``arr_0``) of a pair with
    image ``shape`` and ``spacing``; return the harness's field ``(ndim, *shape)`` in mm.

    Raises
    ------
    FieldFileError
        If the file cannot be read, or its array is not ``(*shape, ndim)`` (both shapes named),
        or holds NaN / infinite values.
    """
    path = Path(path)
    ndim = len(shape)
    try:
        if path.name.endswith(".npz"):
            with np.load(path) as npz:
                data = np.asarray(npz["arr_0"], dtype=np.float64)
        else:
            import nibabel as nib

            data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)
    except Exception as exc:  # nibabel / numpy / zlib raise many types
        raise FieldFileError(f"{path}: cannot read field ({type(exc).__name__}: {exc})") from exc
    expected = (*shape, ndim)
    if data.shape != expected:
        raise FieldFileError(
            f"{path}: Learn2Reg field shape {data.shape} != expected {expected} "
            "(fixed image shape + one voxel-unit component per axis)"
        )
    if not np.isfinite(data).all():
        raise FieldFileError(f"{path}: field has NaN or infinite values")
    return from_l2r(data, spacing)


def parse_fields_spec(item: str) -> tuple[str, Path]:
    """``"fields:NAME=DIR"`` -> ``(NAME, DIR)``; BenchError naming the item otherwise."""
    body = item[len(FIELDS_PREFIX) :] if item.startswith(FIELDS_PREFIX) else ""
    name, sep, directory = body.partition("=")
    if not sep or not name.strip() or not directory.strip():
        raise BenchError(
            f"--methods item {item!r}: expected fields:NAME=DIR (a method name and the folder "
            "of its precomputed displacement fields)"
        )
    return name.strip(), Path(directory.strip()).expanduser()


class FieldsMethod(Method):
    """Reads precomputed displacement fields from :attr:`directory` (see the module docstring).

    Subclasses made by :func:`fields_method` set ``name``, ``description`` and ``directory``.
    ``runtime_s`` is NaN (status ``not-measured``): the registration ran elsewhere.
    """

    name = "fields"
    description = "precomputed displacement fields read from a folder"
    learns = False
    directory: str = ""

    def __init__(self):
        super().__init__(directory=self.directory)

    def __reduce__(self):  # the class is made at run time: rebuild it in worker processes
        return (_rebuild, (self.name, self.directory))

    def candidates(self, pair: RegistrationPair) -> list[Path]:
        """The files looked for, in order (see the module docstring)."""
        root = Path(self.directory)
        out = [root / pair.case / pair.pair / DISPLACEMENT_FILE]
        if pair.fold is not None:
            out.append(root / f"fold{pair.fold}" / pair.case / pair.pair / DISPLACEMENT_FILE)
        if pair.fixed.path is not None and pair.moving.path is not None:
            stem = l2r_name(pair.fixed.path, pair.moving.path, pair.case)
            out += [root / f"{stem}.nii.gz", root / f"{stem}.npz"]
        return out

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        candidates = self.candidates(pair)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            tried = ", ".join(str(p.relative_to(self.directory)) for p in candidates)
            raise RegistrationFailed(f"missing field: none of {tried} in {self.directory}")
        if found.name == DISPLACEMENT_FILE:
            try:
                u, affine = read_displacement(found)
            except BenchError as exc:
                raise FieldFileError(str(exc)) from exc
            expected = (pair.ndim, *pair.fixed.shape)
            if u.shape != expected:
                raise FieldFileError(
                    f"{found}: displacement shape {u.shape} != expected {expected} (the fixed "
                    f"image {pair.key} is {pair.fixed.shape})"
                )
            if not np.allclose(affine, pair.fixed.affine, atol=1e-3):
                raise FieldFileError(
                    f"{found}: the field's affine differs from the fixed image's of {pair.key} "
                    f"(field {affine.round(4).tolist()}, image "
                    f"{pair.fixed.affine.round(4).tolist()})"
                )
            if not np.isfinite(u).all():
                raise FieldFileError(f"{found}: field has NaN or infinite values")
            u = u.astype(np.float32)
        else:
            u = read_l2r_field(found, shape=pair.fixed.shape, spacing=pair.spacing)
        return RegistrationResult(
            displacement=np.ascontiguousarray(u),
            runtime_s=float("nan"),
            meta={"file": str(found)},
        )


def _make_class(name: str, directory: str) -> type[FieldsMethod]:
    return type(
        f"FieldsMethod[{name}]",
        (FieldsMethod,),
        {
            "name": name,
            "description": f"precomputed displacement fields from {directory}",
            "directory": directory,
            "__module__": __name__,
            "__qualname__": f"FieldsMethod[{name}]",
        },
    )


def _rebuild(name: str, directory: str) -> FieldsMethod:
    return _make_class(name, directory)()


def fields_method(name: str, directory: str | Path) -> type[FieldsMethod]:
    """Register (or re-point) the method ``name`` that reads fields from ``directory``.

    Raises
    ------
    BenchError
        If ``directory`` is not a folder, ``name`` is not a valid method name, or ``name`` is
        taken by a method that is not a precomputed-fields method.
    """
    from methods.registry import available_methods, register_method

    path = Path(directory).expanduser()
    if not path.is_dir():
        raise BenchError(f"fields:{name}={directory}: {str(path)!r} is not a folder")
    taken = available_methods().get(name)
    if taken is not None and not issubclass(taken, FieldsMethod):
        raise BenchError(
            f"fields:{name}={directory}: the name {name!r} is taken by "
            f"{taken.__module__}.{taken.__qualname__}; choose another NAME"
        )
    return register_method(_make_class(name, str(path.resolve())))
