"""Images on disk and in memory: the :class:`Image` type and reading/writing NIfTI, NRRD and MHA.

Arrays keep nibabel's ``(i, j, k)`` voxel order and the file's affine (see ``docs/conventions.md``).
NIfTI goes through nibabel; ``.nrrd``/``.mha``/``.mhd`` go through ITK and are converted to the same
order and a RAS affine on load.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import BenchError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")

# RAS <-> LPS flips the signs of the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: An affine whose array-axis columns have a smallest/largest singular value ratio below this is
#: singular (a zero column, or two axes pointing the same way).
SINGULAR_RTOL = 1e-6

#: The smallest image worth registering has at least ``MIN_EXTENT`` voxels along at least
#: ``MIN_WIDE_AXES`` axes: a 4 x 4 patch is the support of one cubic B-spline (the smallest
#: deformation model of the field) and leaves an interior for finite-difference Jacobians; a
#: thinner axis (even a single slice, a 2D image stored as 3D) is allowed. A 1 x 1 x 1 or 3 x 3 x 3
#: "image" has no structure to align, and scores on it (Dice 1.0) would mean nothing.
MIN_EXTENT = 4
MIN_WIDE_AXES = 2
#: Voxel spacings (mm) outside this range are refused: no medical image has voxels of a metre or
#: of a tenth of a micrometre, so the header is broken or in other units; registration methods
#: that work in millimetres (elastix) silently do nothing on such grids.
SPACING_LIMITS_MM = (1e-4, 1e3)
#: Voxel spacings (mm) outside this range are warned about: from micro-CT (~0.01 mm) to thick
#: slices (~10 mm) and PET (~5 mm); values beyond it usually mean metres or micrometres.
SPACING_PLAUSIBLE_MM = (0.01, 30.0)

log = logging.getLogger(__name__)
#: (file, message) of reader warnings already logged: each is logged once per process.
_WARNED: set[tuple[str, str]] = set()


def warn_once(path: str | os.PathLike, message: str) -> None:
    """Log ``path: message`` as a warning, once per process for each file and message."""
    key = (str(path), message)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s: %s", path, message)


@dataclass(frozen=True, eq=False)
class Image:
    """A voxel array with its voxel-to-world affine.

    Parameters
    ----------
    array : ndarray, shape (I, J[, K])
        Voxel values in nibabel's axis order.
    affine : ndarray, shape (4, 4)
        Voxel-to-world (RAS, mm) transform of the file. Defaults to the identity.
    path : Path, optional
        Where the image was read from, for messages.
    """

    array: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    path: Path | None = None

    def __post_init__(self):
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise BenchError(f"{self._where()}: affine must be 4x4, got shape {affine.shape}")
        object.__setattr__(self, "affine", affine)
        if self.array.ndim not in (2, 3):
            raise BenchError(
                f"{self._where()}: expected a 2D or 3D image, got shape {self.array.shape}"
            )

    def _where(self) -> str:
        return str(self.path) if self.path else "image"

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Millimetres per voxel along the array axes (column norms of the affine)."""
        norms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return tuple(float(s) for s in norms[: self.ndim])

    def with_array(self, array: np.ndarray) -> Image:
        """The same grid (affine) with other voxel values."""
        if array.shape[: self.ndim] != self.shape:
            raise BenchError(
                f"{self._where()}: new array shape {array.shape} does not match grid {self.shape}"
            )
        return Image(array, self.affine, None)

    def same_grid(self, other: Image, *, atol: float = 1e-4) -> bool:
        """True when both images have the same shape and affine (within ``atol`` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in NIFTI_SUFFIXES + ITK_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def read_image(path: str | os.PathLike, *, dtype=None) -> Image:
    """Read a NIfTI (nibabel) or NRRD/MHA/MHD (ITK) image.

    Parameters
    ----------
    path : path-like
        The file. Its suffix picks the reader.
    dtype : numpy dtype, optional
        Cast the voxel values (e.g. ``np.float32`` for intensities, ``np.int16`` for labels).

    Raises
    ------
    BenchError
        If the file is missing, truncated or unreadable, or has an unsupported suffix; the message
        names the file and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise BenchError(f"{path}: is a folder; expected an image file")
    if not path.is_file():
        raise BenchError(f"{path}: file not found")
    suffix = _suffix(path)
    try:
        if suffix in NIFTI_SUFFIXES:
            array, affine = _read_nifti(path)
        elif suffix in ITK_SUFFIXES:
            array, affine = _read_itk(path)
        else:
            raise BenchError(
                f"{path}: unsupported image suffix {suffix!r}; expected one of "
                f"{', '.join(NIFTI_SUFFIXES + ITK_SUFFIXES)}"
            )
    except BenchError:
        raise
    except Exception as exc:  # nibabel/ITK/zlib raise many types for damaged files
        raise BenchError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    check_dtype(array.dtype, where=str(path))
    if array.ndim == 3 and array.shape[2] == 1 and suffix in ITK_SUFFIXES:
        array = array[:, :, 0]
    if array.ndim in (2, 3):  # other shapes are refused by Image, naming the shape
        check_affine(affine, array.ndim, where=str(path))
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Image(array, affine, path)


def check_dtype(dtype: np.dtype, *, where: str = "image") -> None:
    """Raise :class:`BenchError` unless voxels of ``dtype`` are real numbers (bool, integer or
    float): complex, RGB or other compound voxels cannot be registered or scored as intensities."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biuf":
        return
    if dtype.kind == "c":
        what = "complex-valued voxels"
        fix = "store the magnitude (abs) or the real part as a real-valued image"
    elif dtype.fields is not None:
        what = f"compound voxels with fields {', '.join(dtype.fields)} (e.g. RGB)"
        fix = "store one real value per voxel (e.g. a grey-level image)"
    else:
        what = "voxels that are not numbers"
        fix = "store integers or floats"
    raise BenchError(
        f"{where}: {what} (dtype {dtype}); expected real numbers (integers or floats): {fix}"
    )


def size_problem(image: Image) -> str | None:
    """Why ``image`` is too small to register (see :data:`MIN_EXTENT`), or None."""
    wide = sum(n >= MIN_EXTENT for n in image.shape)
    if wide >= MIN_WIDE_AXES:
        return None
    return (
        f"{image._where()}: image of shape {image.shape} is too small to register; expected at "
        f"least {MIN_EXTENT} voxels along at least {MIN_WIDE_AXES} axes"
    )


def spacing_check(image: Image) -> tuple[str | None, str | None]:
    """``(problem, warning)`` about ``image``'s voxel spacing: a problem outside
    :data:`SPACING_LIMITS_MM`, else a warning outside :data:`SPACING_PLAUSIBLE_MM`."""
    spacing = image.spacing
    for (low, high), refuse in ((SPACING_LIMITS_MM, True), (SPACING_PLAUSIBLE_MM, False)):
        outside = [f"{'ijk'[a]} {s:.4g}" for a, s in enumerate(spacing) if not low <= s <= high]
        if not outside:
            continue
        message = (
            f"{image._where()}: voxel spacing {', '.join(outside)} mm is outside "
            f"{low:g}..{high:g} mm"
        )
        if refuse:
            return message + ": no medical image has such voxels (a header in other units?)", None
        return None, message + (
            ", implausible for a medical image (metres or micrometres instead of millimetres?); "
            "registration parameters in mm (elastix's grid spacing) may then not fit"
        )
    return None, None


def check_affine(affine: np.ndarray, ndim: int, *, where: str = "image") -> None:
    """Raise :class:`BenchError` unless ``affine`` maps the ``ndim`` array axes to independent,
    non-zero world directions with finite numbers.

    A zero column (zero voxel spacing) or two parallel axes make every spacing, field and distance
    in millimetres meaningless, so such a file is refused rather than read with a guessed spacing.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise BenchError(f"{where}: the affine has NaN or infinite entries:\n{affine}")
    columns = affine[:3, :ndim]
    norms = np.sqrt((columns**2).sum(axis=0))
    zero = ["ijk"[c] for c in range(ndim) if not norms[c] > 0]
    if zero:
        raise BenchError(
            f"{where}: zero voxel spacing along axis {', '.join(zero)} (affine "
            f"column norms {[round(float(n), 6) for n in norms]}); expected a positive spacing in "
            "mm for every axis"
        )
    sv = np.linalg.svd(columns, compute_uv=False)
    if sv[-1] <= SINGULAR_RTOL * sv[0]:
        raise BenchError(
            f"{where}: singular affine (array axes are not independent; singular values "
            f"{[float(f'{v:.4g}') for v in sv]}):\n{affine}"
        )


def shear_degrees(affine: np.ndarray, ndim: int) -> float:
    """Largest deviation from 90 degrees between two array axes of ``affine`` (0: orthogonal)."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :ndim]
    unit = columns / np.sqrt((columns**2).sum(axis=0))[None, :]
    cosines = np.abs(unit.T @ unit)[np.triu_indices(ndim, 1)]
    return float(np.degrees(np.arcsin(np.clip(cosines.max(initial=0.0), 0.0, 1.0))))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """NIfTI through nibabel, with nibabel's header fixes made visible.

    nibabel "fixes" some headers on load and says so on its own logger (printed twice by a CLI
    that also logs to stderr). Those messages are collected and logged once per file, naming it.
    A zero ``pixdim`` that the affine depends on (no sform) is refused: nibabel silently
    replaces it by 1 mm.
    """
    import nibabel as nib
    from nibabel.openers import ImageOpener

    logger = logging.getLogger("nibabel.global")
    collect = _Collect()
    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [collect], False
    try:
        with np.errstate(all="ignore"):  # a NaN pixdim is refused below, not warned about
            img = nib.load(str(path))
            affine = np.asarray(img.affine, dtype=np.float64)
        array = np.asanyarray(img.dataobj)  # reads (and decompresses) all: catches truncation
        with ImageOpener(str(path)) as f:
            raw = type(img.header).from_fileobj(f, check=False)
    finally:
        logger.handlers, logger.propagate = saved
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    ndim = min(array.ndim, 3)
    pixdim = np.asarray(raw["pixdim"][1 : ndim + 1], dtype=np.float64)
    if int(raw["sform_code"]) == 0 and not (np.isfinite(pixdim).all() and (pixdim != 0).all()):
        frame = "its qform" if int(raw["qform_code"]) else "no qform or sform"
        raise BenchError(
            f"{path}: pixdim[1:{ndim + 1}] = {pixdim.tolist()} has a zero or non-finite voxel "
            f"spacing and the affine depends on it ({frame}); expected positive spacings in mm "
            "(nibabel would replace a 0 by 1 mm without notice)"
        )
    for message in collect.messages:
        warn_once(path, f"{message} (nibabel)")
    return np.asarray(array), affine


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import itk

    img = itk.imread(str(path))
    array = np.asarray(itk.array_view_from_image(img)).T.copy()  # (k, j, i) -> (i, j, k)
    ndim = img.GetImageDimension()
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)
    direction = np.asarray(itk.array_from_matrix(img.GetDirection()), dtype=np.float64)
    affine = np.eye(4)
    affine[:ndim, :ndim] = direction * spacing[None, :]
    affine[:ndim, 3] = origin
    return array, _LPS_TO_RAS @ affine


def write_image(path: str | os.PathLike, image: Image | np.ndarray, affine=None) -> Path:
    """Write an image atomically as NIfTI (``.nii``/``.nii.gz``) or through ITK (other suffixes).

    ``image`` is an :class:`Image`, or an array together with ``affine`` (identity if omitted).
    """
    path = Path(path)
    if isinstance(image, Image):
        array, affine = image.array, image.affine
    else:
        array = np.asarray(image)
        affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    suffix = _suffix(path)
    with atomic_path(path) as tmp:
        if suffix in NIFTI_SUFFIXES:
            import nibabel as nib

            if array.dtype == np.bool_:
                array = array.astype(np.uint8)
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            nii = nib.Nifti1Image(array, affine)
            nii.header.set_xyzt_units("mm", "sec")
            nib.save(nii, str(tmp))
        elif suffix in ITK_SUFFIXES:
            _write_itk(tmp, array, affine)
        else:
            raise BenchError(f"{path}: cannot write suffix {suffix!r}")
    return path


def _write_itk(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import itk

    ndim = array.ndim
    img = itk.image_from_array(np.ascontiguousarray(array.T))
    lps = _LPS_TO_RAS @ affine
    spacing = np.sqrt((lps[:ndim, :ndim] ** 2).sum(axis=0))
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:ndim, 3].tolist())
    img.SetDirection(itk.matrix_from_array(lps[:ndim, :ndim] / spacing[None, :]))
    itk.imwrite(img, str(path), compression=True)


def write_displacement(path: str | os.PathLike, disp: np.ndarray, affine) -> Path:
    """Write a displacement field ``(ndim, *spatial)`` (mm along array axes) as a NIfTI vector image.

    On disk it follows the NIfTI vector-field layout, shape ``(I, J, K, 1, ndim)`` (2D:
    ``(I, J, 1, 1, 2)``) with intent ``vector``; the vectors stay in mm along the array axes
    (ITK/ANTs would read them as physical LPS vectors: see ``docs/conventions.md``).
    """
    import nibabel as nib

    disp = np.asarray(disp, dtype=np.float32)
    if disp.ndim < 3 or disp.shape[0] != disp.ndim - 1:
        raise BenchError(f"{path}: displacement must be (ndim, *spatial), got shape {disp.shape}")
    data = np.moveaxis(disp, 0, -1)
    if disp.shape[0] == 2:
        data = data[:, :, None]
    data = data[:, :, :, None, :]
    path = Path(path)
    with atomic_path(path) as tmp:
        nii = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
        nii.header.set_intent("vector")
        nii.header.set_xyzt_units("mm", "sec")
        nib.save(nii, str(tmp))
    return path


def read_displacement(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a field written by :func:`write_displacement`: ``(disp (ndim, *spatial), affine)``."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: displacement file not found")
    import nibabel as nib

    try:
        nii = nib.load(str(path))
        check_dtype(nii.get_data_dtype(), where=str(path))
        data = np.asarray(nii.dataobj, dtype=np.float32)
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"{path}: cannot read displacement ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 5 or data.shape[3] != 1 or data.shape[4] not in (2, 3):
        raise BenchError(
            f"{path}: expected a NIfTI vector field of shape (I, J, K, 1, ndim), got {data.shape}"
        )
    ndim = data.shape[4]
    data = data[:, :, :, 0, :]
    if ndim == 2:
        data = data[:, :, 0, :]
    return np.moveaxis(data, -1, 0), np.asarray(nii.affine, dtype=np.float64)
