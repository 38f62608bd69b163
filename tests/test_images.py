"""Image I/O: NIfTI/NRRD/MHA round trips keep array, axis order and affine; ITK and nibabel agree;
displacement fields round trip; damaged files raise BenchError naming the file."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from benchmark.core.errors import BenchError
from benchmark.core.images import (
    Image,
    _read_itk,
    read_displacement,
    read_image,
    write_displacement,
    write_image,
)


def oblique_affine(spacing=(1.4, 0.9, 6.5), origin=(-30.0, 12.5, 4.0), angle=0.3) -> np.ndarray:
    """A rotated, anisotropic voxel-to-world affine (not diagonal, so axis mix-ups show)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    a = np.eye(4)
    a[:3, :3] = rot * np.asarray(spacing)[None, :]
    a[:3, 3] = origin
    return a


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 5, 3)).astype(np.float32)  # distinct extents per axis


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_array_axes_affine(tmp_path, volume, suffix):
    affine = oblique_affine()
    path = write_image(tmp_path / f"img{suffix}", volume, affine)
    image = read_image(path)
    assert image.shape == (7, 5, 3) and image.path == path
    np.testing.assert_array_equal(image.array, volume)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)
    np.testing.assert_allclose(image.spacing, (1.4, 0.9, 6.5), atol=1e-6)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_round_trip_2d_and_labels(tmp_path, suffix):
    labels = np.arange(12, dtype=np.uint8).reshape(4, 3) % 4
    affine = np.diag([0.7, 1.9, 1.0, 1.0])
    image = read_image(write_image(tmp_path / f"lab{suffix}", labels, affine))
    assert image.ndim == 2 and image.shape == (4, 3)
    np.testing.assert_array_equal(image.array, labels)
    np.testing.assert_allclose(image.spacing, (0.7, 1.9), atol=1e-6)


def test_itk_and_nibabel_read_the_same_nifti(tmp_path, volume):
    """The ITK path (transpose + LPS->RAS) must agree with nibabel on one file."""
    affine = oblique_affine()
    path = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(path))
    array, itk_affine = _read_itk(path)
    np.testing.assert_array_equal(array, volume)
    np.testing.assert_allclose(itk_affine, affine, atol=1e-5)


def test_itk_axis_order_against_itk_itself(tmp_path):
    """An image built with ITK's own API: array (k, j, i), spacing (x, y, z) in LPS."""
    import itk

    kji = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # ITK: (k, j, i)
    img = itk.image_from_array(kji)
    img.SetSpacing([0.5, 2.0, 5.0])  # along i, j, k
    img.SetOrigin([10.0, -4.0, 3.0])  # LPS
    itk.imwrite(img, str(tmp_path / "x.mha"))
    image = read_image(tmp_path / "x.mha")
    assert image.shape == (4, 3, 2)
    np.testing.assert_array_equal(image.array, kji.T)
    assert image.array[3, 1, 0] == kji[0, 1, 3]
    np.testing.assert_allclose(image.spacing, (0.5, 2.0, 5.0))
    # RAS = diag(-1, -1, 1) LPS
    expected = np.diag([-0.5, -2.0, 5.0, 1.0])
    expected[:3, 3] = (-10.0, 4.0, 3.0)
    np.testing.assert_allclose(image.affine, expected)


def test_cross_format_keeps_world_positions(tmp_path, volume):
    affine = oblique_affine(angle=-0.7)
    nii = read_image(write_image(tmp_path / "a.nii.gz", volume, affine))
    nrrd = read_image(write_image(tmp_path / "a.nrrd", nii))
    np.testing.assert_array_equal(nrrd.array, nii.array)
    np.testing.assert_allclose(nrrd.affine, nii.affine, atol=1e-5)
    assert nii.same_grid(nrrd)


def test_dtype_and_bool(tmp_path):
    mask = np.zeros((3, 4, 5), bool)
    mask[1, 2, 3] = True
    image = read_image(write_image(tmp_path / "m.nii.gz", mask), dtype=np.int16)
    assert image.array.dtype == np.int16 and image.array.sum() == 1 and image.array[1, 2, 3] == 1
    f64 = read_image(write_image(tmp_path / "d.nii.gz", np.ones((2, 2, 2))))
    assert f64.array.dtype == np.float32  # float64 is stored as float32


@pytest.mark.parametrize("ndim", [2, 3])
def test_displacement_round_trip(tmp_path, ndim):
    rng = np.random.default_rng(ndim)
    spatial = (5, 4, 3)[:ndim]
    disp = rng.normal(size=(ndim, *spatial)).astype(np.float32)
    affine = oblique_affine()
    path = write_displacement(tmp_path / "u.nii.gz", disp, affine)
    raw = nib.load(str(path))
    assert raw.shape == ((5, 4, 3, 1, 3) if ndim == 3 else (5, 4, 1, 1, 2))
    assert raw.header.get_intent()[0] == "vector"
    # component c of the field is the last axis entry c on disk, at the same voxel
    on_disk = np.asarray(raw.dataobj)
    vector = disp[:, 1, 2, 0] if ndim == 3 else disp[:, 1, 2]
    np.testing.assert_array_equal(on_disk[1, 2, 0, 0, :], vector)
    back, back_affine = read_displacement(path)
    np.testing.assert_array_equal(back, disp)
    np.testing.assert_allclose(back_affine, affine)


def test_displacement_bad_input(tmp_path):
    with pytest.raises(BenchError, match=r"u.nii.gz: displacement must be \(ndim, \*spatial\)"):
        write_displacement(tmp_path / "u.nii.gz", np.zeros((2, 4, 4, 4)), np.eye(4))
    write_image(tmp_path / "scalar.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(BenchError, match=r"scalar.nii.gz: expected a NIfTI vector field"):
        read_displacement(tmp_path / "scalar.nii.gz")
    with pytest.raises(BenchError, match="missing.nii.gz: displacement file not found"):
        read_displacement(tmp_path / "missing.nii.gz")


@pytest.mark.parametrize("keep", [0.95, 0.6, 0.2])
def test_truncated_gz_names_the_file(tmp_path, keep):
    rng = np.random.default_rng(0)
    path = write_image(tmp_path / "vol.nii.gz", rng.normal(size=(20, 20, 10)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BenchError, match=r"vol\.nii\.gz: cannot read image") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_displacement_names_the_file(tmp_path):
    path = write_displacement(tmp_path / "u.nii.gz", np.ones((3, 10, 10, 10)), np.eye(4))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(BenchError, match=r"u\.nii\.gz: cannot read displacement"):
        read_displacement(path)


def test_unreadable_and_unsupported(tmp_path):
    with pytest.raises(BenchError, match="nope.nii.gz: file not found"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(BenchError, match=r"x.png: unsupported image suffix '.png'"):
        read_image(tmp_path / "x.png")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"\x00" * 10))
    with pytest.raises(BenchError, match="junk.nii.gz: cannot read image"):
        read_image(tmp_path / "junk.nii.gz")
    with pytest.raises(BenchError, match="cannot write suffix '.png'"):
        write_image(tmp_path / "y.png", np.zeros((2, 2)))


def test_write_is_atomic_no_stray_files(tmp_path, volume):
    write_image(tmp_path / "a.nii.gz", volume)
    write_image(tmp_path / "a.nii.gz", volume * 2)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]
    np.testing.assert_array_equal(read_image(tmp_path / "a.nii.gz").array, volume * 2)


def test_image_object():
    a = Image(np.zeros((4, 3, 2)), oblique_affine())
    np.testing.assert_allclose(a.spacing, (1.4, 0.9, 6.5))
    assert a.same_grid(Image(np.ones((4, 3, 2)), oblique_affine() + 5e-5))
    assert not a.same_grid(Image(np.ones((4, 3, 2)), oblique_affine(origin=(0, 0, 0))))
    assert not a.same_grid(Image(np.ones((4, 3, 3)), oblique_affine()))
    b = a.with_array(np.ones((4, 3, 2), np.float32))
    np.testing.assert_array_equal(b.affine, a.affine)
    with pytest.raises(
        BenchError, match=r"new array shape \(4, 3\) does not match grid \(4, 3, 2\)"
    ):
        a.with_array(np.ones((4, 3)))
    with pytest.raises(BenchError, match=r"affine must be 4x4, got shape \(3, 3\)"):
        Image(np.zeros((2, 2)), np.eye(3))
    with pytest.raises(BenchError, match=r"expected a 2D or 3D image, got shape \(2, 2, 2, 2\)"):
        Image(np.zeros((2, 2, 2, 2)))


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.ones((4, 4, 2), np.complex64), "complex-valued voxels (dtype complex64)"),
        (np.ones((4, 4, 2), np.complex128), "complex-valued voxels (dtype complex128)"),
        (np.zeros((4, 4, 2), [("R", "u1"), ("G", "u1"), ("B", "u1")]), "fields R, G, B"),
    ],
)
def test_voxels_that_are_not_real_numbers_name_the_file_and_dtype(tmp_path, array, expected):
    path = tmp_path / "x.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_dtype(array.dtype)
    nib.save(nib.Nifti1Image(array, np.eye(4), header), str(path))
    with pytest.raises(BenchError) as err:
        read_image(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_real_voxel_types_are_read(tmp_path):
    for dtype in (np.uint8, np.int16, np.int32, np.float32):  # write_image stores float64 as 32
        write_image(tmp_path / "x.nii.gz", np.ones((4, 4, 2), dtype))
        assert read_image(tmp_path / "x.nii.gz").array.dtype == dtype


@pytest.mark.parametrize(
    ("shape", "small"),
    [
        ((1, 1, 1), True), ((3, 3, 3), True), ((12, 1, 1), True), ((4, 3), True),
        ((12, 3, 3), True), ((4, 4), False), ((4, 4, 1), False), ((12, 10, 1), False),
        ((4, 1, 4), False), ((1, 4, 4), False), ((64, 64, 2), False),
    ],
)  # fmt: skip
def test_images_too_small_to_register(shape, small):
    from benchmark.core.images import size_problem

    message = size_problem(Image(np.zeros(shape), path="im.nii.gz"))
    assert (message is not None) == small
    if small:
        assert message.startswith(f"im.nii.gz: image of shape {shape} is too small to register")


@pytest.mark.parametrize(
    ("spacing", "refused", "warned"),
    [
        ((1.0, 1.0, 1.0), False, False), ((0.01, 0.5, 30.0), False, False),
        ((1.5, 1.5, 30.1), False, True), ((0.0099, 1.0, 1.0), False, True),
        ((1e-4, 1.0, 1.0), False, True), ((9e-5, 1.0, 1.0), True, False),
        ((1.0, 1000.0, 1.0), False, True), ((1.0, 1.5e6, 1.0), True, False),
    ],
)  # fmt: skip
def test_spacing_outside_the_plausible_range(spacing, refused, warned):
    from benchmark.core.images import spacing_check

    problem, warning = spacing_check(Image(np.zeros((4, 4, 4)), np.diag([*spacing, 1.0]), "f"))
    assert (problem is not None, warning is not None) == (refused, warned)
    message = problem or warning or ""
    assert not message or (message.startswith("f: voxel spacing") and " mm is outside " in message)
