"""Learn2Reg's file conventions: the name of a pair's displacement file (``disp_FIXED_MOVING``)
and the field itself (the challenge's ``evaluation.py``: ``map_coordinates(moving, identity +
disp.transpose(3, 0, 1, 2))``): a NIfTI (or ``.npz`` with ``arr_0``) array of shape
``(I, J, K, 3)`` on the fixed grid, component ``c`` along array axis ``c`` in **voxels**, fixed ->
moving. The harness's field is the same in mm: ``u_mm[c] = disp[..., c] * spacing[c]``.

Read by the ``fields:`` method (:mod:`methods.fields`) and written by ``bench export-fields``.
Image names (:func:`image_ids`) and keypoint files (:func:`keypoints_csv`) follow the task
folders the Learn2Reg loader reads (:mod:`benchmark.data.loaders.learn2reg`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from benchmark.core.atomic import atomic_path
from benchmark.core.checks import check_choice
from benchmark.core.errors import FieldFileError

__all__ = [
    "L2R_DTYPES",
    "image_ids",
    "keypoints_csv",
    "l2r_name",
    "l2r_names",
    "to_l2r",
    "from_l2r",
    "write_l2r_field",
    "read_l2r_field",
]

#: dtypes a Learn2Reg field may be written with (float64: the round trip is exact).
L2R_DTYPES = ("float64", "float32", "float16")

#: Learn2Reg image names: ``TASK_SUBJECT_MODALITY.nii.gz`` with 4-digit subject and modality.
_L2R_IMAGE = re.compile(r"^.+_(?P<subject>\d{4})_(?P<modality>\d{4})\.nii(\.gz)?$")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def image_ids(path: str | Path) -> tuple[str, str] | None:
    """``(subject, modality)`` of a Learn2Reg image name ``TASK_SSSS_MMMM.nii.gz`` (both 4
    digits); None for any other name.

    Examples
    --------
    >>> image_ids("imagesTr/AbdomenMRCT_0006_0001.nii.gz"), image_ids("patient001_frame01.nii.gz")
    (('0006', '0001'), None)
    """
    match = _L2R_IMAGE.match(Path(path).name)
    return None if match is None else (match["subject"], match["modality"])


def keypoints_csv(path: str | Path) -> Path:
    """The keypoint CSV a Learn2Reg dataset JSON means by ``path``: the path itself, its
    ``.nii.gz`` suffix replaced by ``.csv`` (some task JSONs list ``keypoints01Tr/X.nii.gz`` for
    the file ``keypoints01Tr/X.csv``; the evaluation's ``get_keypoint_path`` makes the same
    replacement).

    Examples
    --------
    >>> keypoints_csv("keypoints01Tr/ThoraxCBCT_0000_0000.nii.gz").as_posix()
    'keypoints01Tr/ThoraxCBCT_0000_0000.csv'
    """
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".csv")
    return path


def l2r_name(fixed: str | Path, moving: str | Path, case: str) -> str:
    """The Learn2Reg file name (without suffix) of a pair's field: ``disp_FIXED_MOVING``.

    - Images named as in Learn2Reg (``TASK_SSSS_MMMM.nii.gz``, subject ``SSSS``, modality
      ``MMMM``) give the name the challenge's evaluation finds (``evaluation/evaluation.py``
      L42-64 at commit 88475095): ``disp_SSSS_SSSS`` (fixed, moving subject) when fixed is
      ``0000`` and moving ``0001``, else ``disp_SSSS_MMMM_SSSS_MMMM`` (the long name, always
      accepted; the evaluation before February 2025 also took the short name for equal
      modalities, see :func:`l2r_names`).
    - Other images are named by their file names without suffix, prefixed with the case unless
      the file name starts with it: ACDC ``patient001_frame01`` / ``patient001_frame12`` give
      ``disp_patient001_frame01_patient001_frame12``, demo-dce ``phase_00`` / ``phase_04`` of
      ``study001`` give ``disp_study001_phase_00_study001_phase_04``.
    """
    return l2r_names(fixed, moving, case)[0]


def l2r_names(fixed: str | Path, moving: str | Path, case: str) -> list[str]:
    """The names a pair's Learn2Reg field may have, the one :func:`l2r_name` writes first; for
    Learn2Reg images of equal modality also the short ``disp_SSSS_SSSS`` that earlier versions
    of the evaluation required (read by ``fields:``)."""
    fixed, moving = Path(fixed), Path(moving)
    fm, mm = _L2R_IMAGE.match(fixed.name), _L2R_IMAGE.match(moving.name)
    if fm and mm:
        fs, fmod, ms, mmod = fm["subject"], fm["modality"], mm["subject"], mm["modality"]
        short, long = f"disp_{fs}_{ms}", f"disp_{fs}_{fmod}_{ms}_{mmod}"
        if (fmod, mmod) == ("0000", "0001"):
            return [short, long]
        return [long, short] if fmod == mmod else [long]

    def image_id(path: Path) -> str:
        stem = _stem(path)
        return stem if stem.startswith(case) else f"{case}_{stem}"

    return [f"disp_{image_id(fixed)}_{image_id(moving)}"]


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

    check_choice("dtype", dtype, L2R_DTYPES)
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
