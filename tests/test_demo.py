"""Demo datasets: layout, determinism, ground-truth consistency, motion and contrast plausibility.

The ground-truth checks warp with ``scipy.ndimage.map_coordinates`` (independent of
``methods.transforms``), converting the stored millimetre fields to voxels with the spacing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import map_coordinates

from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement, read_image
from benchmark.data.demo import DEMOS, MARKER, generate
from benchmark.data.demo import acdc as demo_acdc
from benchmark.data.demo import dce as demo_dce
from benchmark.data.demo.deform import GaussianBumps, invert_map
from benchmark.data.demo.phantom import FourierField, grid_points

ACDC_CASES = 2
DCE_CASES = 2


# -- fixtures: each dataset generated twice with the same seed: 2 cases, then 1 case -----------
@pytest.fixture(scope="module")
def acdc_dirs(tmp_path_factory):
    a = generate("demo-acdc", tmp_path_factory.mktemp("acdc_a"), cases=ACDC_CASES, seed=0)
    one = generate("demo-acdc", tmp_path_factory.mktemp("acdc_one"), cases=1, seed=0)
    return a, one


@pytest.fixture(scope="module")
def dce_dirs(tmp_path_factory):
    a = generate("demo-dce", tmp_path_factory.mktemp("dce_a"), cases=DCE_CASES, seed=0)
    one = generate("demo-dce", tmp_path_factory.mktemp("dce_one"), cases=1, seed=0)
    return a, one


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- helpers: independent warping and scores -----------------------------------------------------
def _voxel_grid(shape):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))


def _warp_labels(labels: np.ndarray, disp_mm: np.ndarray, spacing) -> np.ndarray:
    """Pull ``labels`` through ``disp`` (mm, fixed grid): linear interpolation of each one-hot
    channel, then argmax (partial-volume aware, no nearest-neighbour rounding)."""
    coords = _voxel_grid(labels.shape) + disp_mm / np.asarray(spacing)[:, None, None, None]
    values = np.unique(labels)
    stack = [
        map_coordinates(
            (labels == v).astype(np.float32), coords, order=1, mode="constant", cval=float(v == 0)
        )
        for v in values
    ]
    return values[np.argmax(np.stack(stack), axis=0)]


def _warp_image(image: np.ndarray, disp_mm: np.ndarray, spacing) -> np.ndarray:
    coords = _voxel_grid(image.shape) + disp_mm / np.asarray(spacing)[:, None, None, None]
    return map_coordinates(image.astype(np.float64), coords, order=1, mode="nearest")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def _jacobian_det(disp_mm: np.ndarray, spacing) -> np.ndarray:
    """det(I + grad u) with central differences in mm (np.gradient)."""
    grads = np.stack(
        [np.stack(np.gradient(disp_mm[c].astype(np.float64), *spacing)) for c in range(3)]
    )
    jac = grads + np.eye(3)[:, :, None, None, None]
    return np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))


# -- generate(): arguments ----------------------------------------------------------------------
def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(BenchError, match="demo-acdc, demo-dce"):
        generate("demo-nope", tmp_path)
    for cases in (0, -1, 1.5, True):
        with pytest.raises(BenchError, match="--cases"):
            generate("demo-acdc", tmp_path, cases=cases)
    for seed in (-1, 0.5):
        with pytest.raises(BenchError, match="--seed"):
            generate("demo-dce", tmp_path, seed=seed)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BenchError, match="not a folder"):
        generate("demo-acdc", tmp_path / "file", cases=1)
    assert set(DEMOS) == {"demo-acdc", "demo-dce"}
    assert DEMOS["demo-acdc"].default_cases == 8 and DEMOS["demo-dce"].default_cases == 24


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["acdc_dirs", "dce_dirs"])
def test_same_seed_gives_byte_identical_files_whatever_the_case_count(fixture, request):
    # two separate runs (2 cases, then 1 case) into two folders: case 1 must be byte-identical,
    # which checks determinism (gzip without timestamps) and that case k ignores the case count
    a, one = request.getfixturevalue(fixture)
    fa, f1 = _files(a), _files(one)
    case_files = [n for n in f1 if "/" in n]  # inside a case folder
    assert len(case_files) >= 7
    assert all(n in fa for n in case_files)
    different = [n for n in case_files if f1[n] != fa[n]]
    assert not different, f"files differ between two runs with the same seed: {different}"
    assert sum(n.split("/")[-2].endswith("001") for n in fa if "/" in n) == len(case_files)


@given(st.integers(0, 2**20), st.integers(1, 2**20))
@settings(max_examples=20, deadline=None)
def test_different_seeds_give_different_geometry(seed, delta):
    def acdc(s):
        return demo_acdc._patient(np.random.default_rng([s, demo_acdc.DATASET_ID, 1]), "NOR")

    def dce(s):
        return demo_dce._study(np.random.default_rng([s, demo_dce.DATASET_ID, 1]), "fatty")

    p0, p1 = acdc(seed), acdc(seed + delta)
    assert p0[0] != p1[0] or p0[1] != p1[1]  # grid shape or spacing
    assert p0[4].rb != p1[4].rb and not np.allclose(p0[4].apex, p1[4].apex)
    s0, s1 = dce(seed), dce(seed + delta)
    assert s0[0] != s1[0] or s0[1] != s1[1]
    assert not np.allclose(s0[3].lesion_c, s1[3].lesion_c)


# -- demo-acdc layout -----------------------------------------------------------------------------
def test_acdc_layout_follows_real_acdc(acdc_dirs):
    root = acdc_dirs[0]
    patients = sorted(p.name for p in (root / "training").iterdir())
    assert patients == [f"patient{k:03d}" for k in range(1, ACDC_CASES + 1)]
    for k, name in enumerate(patients, start=1):
        folder = root / "training" / name
        text = (folder / "Info.cfg").read_text()
        lines = text.splitlines()
        assert [ln.split(":")[0] for ln in lines] == [
            "ED",
            "ES",
            "Group",
            "Height",
            "NbFrame",
            "Weight",
        ]
        assert all(re.fullmatch(r"[A-Za-z]+: \S+", ln) for ln in lines), text
        info = dict(ln.split(": ") for ln in lines)
        ed, es, nb = int(info["ED"]), int(info["ES"]), int(info["NbFrame"])
        assert ed == 1 and ed < es < nb
        assert info["Group"] == demo_acdc.GROUPS[(k - 1) % 5]
        float(info["Height"]), float(info["Weight"])
        expected = {
            "Info.cfg",
            f"{name}_frame{ed:02d}.nii.gz",
            f"{name}_frame{ed:02d}_gt.nii.gz",
            f"{name}_frame{es:02d}.nii.gz",
            f"{name}_frame{es:02d}_gt.nii.gz",
            f"{name}_disp_ED-ES.nii.gz",
            f"{name}_disp_ES-ED.nii.gz",
        }
        landmarks = {f"{name}_frame{ed:02d}_landmarks.csv", f"{name}_frame{es:02d}_landmarks.csv"}
        assert {p.name for p in folder.iterdir()} == expected | landmarks
        images = [
            read_image(folder / f)
            for f in sorted(expected)
            if f.endswith(".nii.gz") and "disp" not in f
        ]
        ref = images[0]
        assert all(im.same_grid(ref, atol=1e-6) for im in images)
        si, sj, sk = ref.spacing
        assert 1.3 <= si <= 1.7 and abs(si - sj) < 1e-6 and 6.5 <= sk <= 10.0
        assert 112 <= ref.shape[0] <= 144 and 112 <= ref.shape[1] <= 144 and 8 <= ref.shape[2] <= 12
        for frame in (ed, es):
            gt = read_image(folder / f"{name}_frame{frame:02d}_gt.nii.gz").array
            assert gt.dtype == np.uint8
            assert set(np.unique(gt)) == {0, 1, 2, 3}
        for pair in ("ED-ES", "ES-ED"):
            disp, aff = read_displacement(folder / f"{name}_disp_{pair}.nii.gz")
            assert disp.shape == (3, *ref.shape) and disp.dtype == np.float32
            np.testing.assert_allclose(aff, ref.affine, atol=1e-6)
    assert (root / MARKER).is_file()


def _acdc_patient(root: Path, name: str):
    folder = root / "training" / name
    info = dict(ln.split(": ") for ln in (folder / "Info.cfg").read_text().splitlines())
    ed, es = int(info["ED"]), int(info["ES"])
    img = {
        "ED": read_image(folder / f"{name}_frame{ed:02d}.nii.gz"),
        "ES": read_image(folder / f"{name}_frame{es:02d}.nii.gz"),
    }
    gt = {
        "ED": read_image(folder / f"{name}_frame{ed:02d}_gt.nii.gz").array,
        "ES": read_image(folder / f"{name}_frame{es:02d}_gt.nii.gz").array,
    }
    disp = {p: read_displacement(folder / f"{name}_disp_{p}.nii.gz")[0] for p in ("ED-ES", "ES-ED")}
    return img, gt, disp


@pytest.mark.parametrize("pair", ["ED-ES", "ES-ED"])
def test_acdc_ground_truth_maps_moving_onto_fixed(acdc_dirs, pair):
    fixed_name, moving_name = pair.split("-")
    for name in ("patient001", "patient002"):
        img, gt, disp = _acdc_patient(acdc_dirs[0], name)
        spacing = img["ED"].spacing
        warped = _warp_labels(gt[moving_name], disp[pair], spacing)
        for label in (1, 2, 3):
            fixed_l = gt[fixed_name] == label
            d_gt = _dice(warped == label, fixed_l)
            d_id = _dice(gt[moving_name] == label, fixed_l)
            assert d_gt > 0.88, (name, pair, label, d_gt)
            assert d_gt > d_id + 0.05, (name, pair, label, d_gt, d_id)
        w = _warp_image(img[moving_name].array, disp[pair], spacing)
        c_gt = _corr(w, img[fixed_name].array)
        c_id = _corr(img[moving_name].array, img[fixed_name].array)
        assert c_gt > 0.97 and c_gt > c_id, (name, pair, c_gt, c_id)


def test_acdc_fields_are_inverse_of_each_other(acdc_dirs):
    img, _, disp = _acdc_patient(acdc_dirs[0], "patient001")
    spacing = np.asarray(img["ED"].spacing)
    v = disp["ED-ES"].astype(np.float64)
    coords = _voxel_grid(v.shape[1:]) + v / spacing[:, None, None, None]
    w_at = np.stack(
        [
            map_coordinates(disp["ES-ED"][c].astype(np.float64), coords, order=3, mode="nearest")
            for c in range(3)
        ]
    )
    residual_vox = np.abs(v + w_at) / spacing[:, None, None, None]
    # up to interpolating w between voxels (it has kinks at the LV boundaries): v = -w(x + v)
    assert np.percentile(residual_vox, 99) < 0.05
    assert np.median(residual_vox) < 0.005
    # exactly, with the generator's analytic motion: the written field is the converged inverse
    heart = demo_acdc._patient(np.random.default_rng([0, demo_acdc.DATASET_ID, 1]), "NOR")[4]
    points = grid_points(v.shape[1:], tuple(spacing))
    exact = np.abs(v + heart.motion(points + v)) / spacing[:, None, None, None]
    assert exact.max() < 0.011  # invert_map tolerance (0.01 voxel) + rounding to 1/1024 mm
    np.testing.assert_allclose(heart.motion(points), disp["ES-ED"], rtol=0, atol=2.0**-11 + 1e-5)


def test_acdc_motion_is_invertible_and_large(acdc_dirs):
    for name in ("patient001", "patient002"):
        img, gt, disp = _acdc_patient(acdc_dirs[0], name)
        for pair in ("ED-ES", "ES-ED"):
            det = _jacobian_det(disp[pair], img["ED"].spacing)
            assert det.min() > 0.1, (name, pair, det.min())
            # clearly larger than a voxel
            assert np.abs(disp[pair]).max() > 2 * img["ED"].spacing[0]


def test_acdc_contraction_is_plausible():
    for case in range(1, 6):  # one patient per group, labels only (no rendering)
        rng = np.random.default_rng([3, demo_acdc.DATASET_ID, case])
        shape, spacing, _, _, heart = demo_acdc._patient(rng, demo_acdc.GROUPS[case - 1])
        points = grid_points(shape, spacing)
        ed, es = heart.labels(points), heart.labels(points + heart.motion(points))
        ratio = {lab: (es == lab).sum() / (ed == lab).sum() for lab in (1, 2, 3)}
        assert 0.3 < ratio[3] < 0.75, (case, ratio)  # LV blood pool shrinks by 25-70 %
        assert 0.8 < ratio[2] < 1.15, (case, ratio)  # myocardium volume roughly preserved
        assert ratio[1] < 0.97, (case, ratio)  # RV shrinks
        assert 0.3 < _dice(ed == 3, es == 3) < 0.9  # identity leaves room for registration


# -- demo-dce ---------------------------------------------------------------------------------------
def test_dce_layout(dce_dirs):
    root = dce_dirs[0]
    studies = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert studies == [f"study{k:03d}" for k in range(1, DCE_CASES + 1)]
    csv = (root / "studies.csv").read_text().splitlines()
    assert csv == ["study,group", "study001,fatty", "study002,dense"]
    for name in studies:
        folder = root / name
        expected = {f"phase_{k:02d}.nii.gz" for k in range(5)}
        expected |= {f"phase_{k:02d}_labels.nii.gz" for k in range(5)}
        disps = {f"disp_phase_00-phase_{k:02d}.nii.gz" for k in range(1, 5)}
        expected |= {"mask.nii.gz"} | disps
        landmarks = {f"phase_{k:02d}_landmarks.csv" for k in range(5)}
        assert {p.name for p in folder.iterdir()} == expected | landmarks
        ref = read_image(folder / "phase_00.nii.gz")
        assert 88 <= min(ref.shape[:2]) and max(ref.shape[:2]) <= 104 and 28 <= ref.shape[2] <= 36
        assert all(1.4 <= s <= 2.0 for s in ref.spacing)
        for f in expected - disps:
            im = read_image(folder / f)
            assert im.same_grid(ref, atol=1e-6), f
            if "labels" in f:
                assert im.array.dtype == np.uint8 and set(np.unique(im.array)) == {0, 1, 2, 3}
        mask = read_image(folder / "mask.nii.gz").array
        labels0 = read_image(folder / "phase_00_labels.nii.gz").array
        assert set(np.unique(mask)) == {0, 1} and np.all(mask[labels0 > 0] == 1)
        disp, aff = read_displacement(folder / "disp_phase_00-phase_04.nii.gz")
        assert disp.shape == (3, *ref.shape)
        np.testing.assert_allclose(aff, ref.affine, atol=1e-6)


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_dce_ground_truth_maps_post_contrast_onto_pre_contrast(dce_dirs, phase):
    for name in ("study001", "study002"):
        folder = dce_dirs[0] / name
        pre = read_image(folder / "phase_00_labels.nii.gz")
        post = read_image(folder / f"phase_{phase:02d}_labels.nii.gz").array
        disp, _ = read_displacement(folder / f"disp_phase_00-phase_{phase:02d}.nii.gz")
        warped = _warp_labels(post, disp, pre.spacing)
        for label in (1, 2, 3):
            d_gt = _dice(warped == label, pre.array == label)
            d_id = _dice(post == label, pre.array == label)
            assert d_gt > 0.9, (name, phase, label, d_gt, d_id)
            if phase == 4:  # the largest motion: worse without registration
                assert d_gt > d_id, (name, label, d_gt, d_id)
            else:
                assert d_gt > d_id - 0.01, (name, phase, label, d_gt, d_id)
        det = _jacobian_det(disp, pre.spacing)
        assert det.min() > 0.5
        assert 0.5 < np.abs(disp).max() < 15.0  # a few mm


def test_dce_tissues_enhance_non_linearly(dce_dirs):
    for name in ("study001", "study002"):
        folder = dce_dirs[0] / name
        means = {1: [], 2: [], 3: []}
        fat_median = []
        for k in range(5):
            im = read_image(folder / f"phase_{k:02d}.nii.gz").array.astype(np.float64)
            lab = read_image(folder / f"phase_{k:02d}_labels.nii.gz").array
            for label in means:
                means[label].append(im[lab == label].mean())
            fat_median.append(np.median(im[lab == 1]))
        fat, gland, lesion = (np.array(means[i]) for i in (1, 2, 3))
        # fat does not enhance; its label's median still rises by a few % because the soft
        # fat/gland transition gives voxels labelled fat part of the enhancing gland's signal
        fat_median = np.array(fat_median)
        assert np.all(np.abs(fat_median / fat_median[0] - 1) < 0.08), fat_median
        assert np.all(np.abs(fat_median / fat_median[0] - 1) < 0.3 * (gland / gland[0] - 1)[-1])
        assert np.all(np.diff(gland) > 0) and gland[-1] > 1.2 * gland[0], gland  # slow, monotonic
        peak = int(np.argmax(lesion))
        assert peak in (1, 2) and lesion[peak] > 2 * lesion[0], lesion  # fast uptake
        assert lesion[4] < 0.95 * lesion[peak], lesion  # wash-out
        # the fat/gland ordering flips: no monotonic intensity map relates the phases
        assert gland[0] < fat[0] and gland[4] > fat[4], (fat, gland)
        assert lesion[0] < fat[0]


# -- building blocks: properties ------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-0.35, 0.35), min_size=9, max_size=9),
    st.lists(st.floats(-5, 5), min_size=3, max_size=3),
)
def test_invert_map_matches_analytic_inverse_of_affine_map(entries, shift):
    a = np.array(entries).reshape(3, 3) / 1.5  # spectral norm < 0.7: contraction
    t = np.array(shift)

    def w(p):
        return np.einsum("ab,b...->a...", a, p) + t.reshape(3, *([1] * (p.ndim - 1)))

    points = grid_points((5, 4, 3), (1.0, 1.5, 4.0)) - 3.0
    v = invert_map(w, points, (1.0, 1.5, 4.0), tol_voxels=1e-6, max_iterations=500)
    # x + v = y with y + A y + t = x  =>  y = (I + A)^-1 (x - t)
    y = np.einsum("ab,b...->a...", np.linalg.inv(np.eye(3) + a), points - t[:, None, None, None])
    np.testing.assert_allclose(points + v, y, atol=1e-4)


def test_invert_map_reports_non_invertible_map():
    def fold(p):
        return -2.5 * p  # x -> -1.5 x is invertible but the iteration diverges: reported, not wrong

    with pytest.raises(BenchError, match="did not converge"):
        invert_map(
            fold, grid_points((3, 3, 3), (1.0, 1.0, 1.0)), (1.0, 1.0, 1.0), max_iterations=20
        )


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_gaussian_bumps_inverse_residual(seed):
    rng = np.random.default_rng(seed)
    w = GaussianBumps.random(
        rng, np.array([40.0, 40.0, 40.0]), bumps=4, amplitude_mm=2.0, sigma_mm=(10.0, 15.0)
    )
    points = grid_points((8, 8, 8), (5.0, 5.0, 5.0))
    v = invert_map(w, points, (5.0, 5.0, 5.0), tol_voxels=1e-3)
    assert np.abs(v + w(points + v)).max() <= 5.0 * 1e-3 + 1e-12


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 5))
def test_acdc_motion_invertible_for_any_seed(seed, case):
    rng = np.random.default_rng([seed, demo_acdc.DATASET_ID, case])
    shape, spacing, _, _, heart = demo_acdc._patient(rng, demo_acdc.GROUPS[case - 1])
    points = grid_points(shape, spacing)
    v = invert_map(heart.motion, points, spacing)  # raises if it does not converge
    assert _jacobian_det(heart.motion(points), spacing).min() > 0.1
    assert _jacobian_det(v, spacing).min() > 0.1


def test_fourier_field_statistics():
    f = FourierField.random(np.random.default_rng(0), wavelength_mm=10.0, terms=64)
    values = f(grid_points((40, 40, 40), (2.0, 2.0, 2.0)))
    assert values.dtype == np.float32
    assert abs(values.mean()) < 0.15 and 0.8 < values.std() < 1.2


# -- the real loaders read the demos without special cases --------------------------------------
@pytest.mark.parametrize(
    ("fixture", "manifest", "pairs"),
    [
        ("acdc_dirs", "demo-acdc", {"ED-ES", "ES-ED"}),
        ("dce_dirs", "demo-dce", None),
    ],
)
def test_demo_loads_through_the_manifest(fixture, manifest, pairs, request):
    loaders = pytest.importorskip("benchmark.data.loaders")
    mf = pytest.importorskip("benchmark.data.manifest")
    root = request.getfixturevalue(fixture)[0]
    m = mf.load_manifest(manifest, root=root)
    scan = loaders.scan(m)
    assert not scan.problems, scan.problems
    validate = pytest.importorskip("benchmark.data.validate")
    report = validate.validate(m)  # raises on any problem (grids, label values, NaN, folds)
    assert not report.problems
    n_cases = ACDC_CASES if manifest == "demo-acdc" else DCE_CASES
    assert len({p.case for p in scan.pairs}) == n_cases
    for p in scan.pairs:
        assert p.displacement is not None and p.displacement.is_file()
        assert p.fixed_labels is not None and p.moving_labels is not None
        if pairs is not None:
            assert p.pair in pairs
            assert p.group == demo_acdc.GROUPS[int(p.case[-3:]) - 1]
