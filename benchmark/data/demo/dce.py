"""``demo-dce``: a breast DCE-MRI phantom (pre-contrast + 4 post-contrast phases, 90 s apart).

Method (ground truth exact by construction)
-------------------------------------------
* The anatomy is analytic in the pre-contrast frame (mm along the array axes; ``i`` left-right,
  ``j`` anterior-posterior, ``k`` superior-inferior): a half-ellipsoidal breast in front of the
  chest wall (pectoral muscle, then dark thorax), a 2 mm skin shell, fibroglandular tissue where a
  smooth random field (biased towards the centre of the breast) exceeds a threshold that sets the
  breast density, fat elsewhere, and a lobulated lesion.
* Contrast uptake (``t`` in s): fat constant; gland ``1 + A_g (1 - exp(-t / tau_g))`` (slow,
  monotonic, strong parenchymal enhancement); lesion ``1 + A_l (1 - exp(-t / tau_in))
  exp(-t / tau_out)`` (fast uptake, peak at phase 1 or 2, then wash-out); muscle and skin enhance
  slightly. Before contrast the gland and the lesion are darker than fat; in the last phase the
  gland is brighter than fat and the lesion brighter than the gland was: the intensity relation
  between phases is not monotonic (fat/gland edges invert their contrast), so a linear relation
  (NCC) is the wrong assumption while mutual information holds, as in the paper.
* Motion: phase ``k >= 1`` is rendered as ``phase_k(y) = anatomy_k(y + w_k(y))`` where ``w_k`` is a
  small rigid motion (about 1-2 mm, up to 1 degree about the breast centre) plus a sum of Gaussian
  bumps of a few mm, growing with ``k``. Labels of phase ``k`` are the anatomy's labels at
  ``y + w_k(y)``.
* Ground truth of the pair (fixed = phase_00, moving = phase_k) is the inverse of ``w_k``:
  ``v(x) = -w_k(x + v(x))``, solved by fixed-point iteration to 0.01 voxel, written as
  ``disp_phase_00-phase_0k.nii.gz`` for every k (the evaluated pair of the paper is k = 4),
  rounded to 1/1024 mm.
* A smooth multiplicative coil bias (same for all phases), Rician noise, int16 rounding.

Randomness: study ``k`` (1-based) uses ``numpy.random.default_rng([seed, 2, k])``, so a study does
not depend on how many are generated. Groups (breast density) alternate ``fatty``, ``dense``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.atomic import write_text
from benchmark.core.images import write_displacement, write_image
from benchmark.data.demo.deform import GaussianBumps, Rigid, compose_sum, invert_map, quantize
from benchmark.data.demo.landmarks import write_landmarks_from_displacement
from benchmark.data.demo.phantom import (
    FourierField,
    ellipsoid_distance,
    grid_points,
    random_affine,
    rician,
    rotation_matrix,
    soft_inside,
    to_int16,
)

log = logging.getLogger(__name__)

DATASET_ID = 2
GROUPS = ("fatty", "dense")
DEFAULT_CASES = 24
PHASES = 5
PHASE_INTERVAL_S = 90.0
LABELS = {"fat": 1, "gland": 2, "lesion": 3}
_SCALE = 1000.0


@dataclass(frozen=True)
class Breast:
    """Geometry and contrast-uptake parameters of one phantom study (mm, s)."""

    centre: np.ndarray  # (3,) breast ellipsoid centre (on the chest wall plane)
    axes: np.ndarray  # (3,) semi-axes (lr, ap, si)
    chest_j: float  # chest wall plane (j coordinate)
    muscle: float  # pectoral muscle thickness
    gland_field: FourierField
    gland_threshold: float
    lesion_c: np.ndarray
    lesion_r: float
    lobes: FourierField
    texture: FourierField
    a_gland: float
    tau_gland: float
    a_lesion: float
    tau_in: float
    tau_out: float

    def _parts(self, p: np.ndarray):
        rel = [(p[c] - self.centre[c]) / self.axes[c] for c in range(3)]
        q = rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2
        front = self.chest_j - p[1]  # > 0 in front of the chest wall
        rho = np.sqrt(q)
        mean_r = float(self.axes.mean())
        breast_d = np.maximum(ellipsoid_distance(q, mean_r), -front)  # signed distance, < 0 inside
        gland_v = self.gland_field(p) + 1.6 * (1.0 - rho) - self.gland_threshold
        d_les = np.sqrt(sum((p[c] - self.lesion_c[c]) ** 2 for c in range(3)))
        les_v = d_les - self.lesion_r
        near = (
            d_les < 1.5 * self.lesion_r + 5.0
        )  # |0.12 * lobes| < 0.5 (|lobes| < 4): far is outside
        les_v[near] -= self.lesion_r * 0.12 * self.lobes(p[:, near])
        return breast_d, front, gland_v, les_v

    def labels(self, p: np.ndarray, parts=None) -> np.ndarray:
        """Labels (0 bg, 1 fat, 2 gland, 3 lesion) at pre-contrast positions ``p`` (3, ...).

        ``parts`` reuses ``self._parts(p)`` when already computed.
        """
        breast_d, _, gland_v, les_v = self._parts(p) if parts is None else parts
        inside = breast_d < -2.0  # inside the skin
        out = np.zeros(p.shape[1:], dtype=np.uint8)
        out[inside] = LABELS["fat"]
        out[inside & (gland_v > 0)] = LABELS["gland"]
        out[inside & (les_v < 0)] = LABELS["lesion"]
        return out

    def mask(self, p: np.ndarray, parts=None) -> np.ndarray:
        """Breast mask (skin included) at positions ``p``."""
        return ((self._parts(p) if parts is None else parts)[0] < 0).astype(np.uint8)

    def enhancement(self, t: float) -> dict[str, float]:
        """Relative signal ``S(t) / S(0)`` of each tissue at ``t`` seconds after injection."""
        return {
            "fat": 1.0,
            "gland": 1.0 + self.a_gland * (1.0 - np.exp(-t / self.tau_gland)),
            "lesion": 1.0
            + self.a_lesion * (1.0 - np.exp(-t / self.tau_in)) * np.exp(-t / self.tau_out),
            "muscle": 1.0 + 0.2 * (1.0 - np.exp(-t / 300.0)),
            "skin": 1.0 + 0.1 * (1.0 - np.exp(-t / 200.0)),
        }

    def render(self, p: np.ndarray, t: float, parts=None) -> np.ndarray:
        """Noise-free intensity at positions ``p`` (3, ...) and time ``t`` (s)."""
        e = self.enhancement(t)
        tex = self.texture(p)
        breast_d, front, gland_v, les_v = self._parts(p) if parts is None else parts
        img = np.zeros(p.shape[1:])
        # thorax behind the chest wall (dark), pectoral muscle band
        thorax = soft_inside(front, 0.8)
        muscle = thorax * soft_inside(-(front + self.muscle), 0.8)
        img = img * (1 - thorax) + 0.08 * thorax
        img = img * (1 - muscle) + 0.35 * e["muscle"] * (1 + 0.08 * tex) * muscle
        skin = soft_inside(breast_d, 0.7)
        img = img * (1 - skin) + 0.45 * e["skin"] * skin
        inner = soft_inside(breast_d + 2.0, 0.7)
        img = img * (1 - inner) + 0.85 * e["fat"] * (1 + 0.04 * tex) * inner
        gland = inner * soft_inside(-gland_v / 0.25, 1.0)  # field units -> roughly mm
        img = img * (1 - gland) + 0.40 * e["gland"] * (1 + 0.08 * tex) * gland
        les = inner * soft_inside(les_v, 0.7)
        img = img * (1 - les) + 0.33 * e["lesion"] * (1 + 0.05 * tex) * les
        return img


def _study(rng: np.random.Generator, group: str):
    """Draw one study: grid (shape, spacing, affine), a :class:`Breast` and the phase motions."""
    sp = float(rng.uniform(1.4, 1.6))
    sk = float(rng.uniform(1.5, 2.0))
    ni, nj = (int(n) for n in rng.integers(88, 105, size=2))
    nk = int(rng.integers(28, 37))
    spacing = (round(sp, 4), round(sp, 4), round(sk, 4))
    shape = (ni, nj, nk)
    extent = np.array(shape) * np.array(spacing)
    chest_j = float(extent[1] * rng.uniform(0.72, 0.82))
    centre = np.array([extent[0] * rng.uniform(0.45, 0.55), chest_j, extent[2] * 0.5])
    axes = np.array(
        [
            extent[0] * rng.uniform(0.36, 0.44),
            chest_j * rng.uniform(0.72, 0.86),
            extent[2] * rng.uniform(0.6, 0.75),
        ]
    )
    # lesion inside the breast, away from the skin
    direction = rng.normal(size=3)
    direction[1] = -abs(direction[1])
    direction /= np.linalg.norm(direction)
    lesion_c = centre + direction * axes * rng.uniform(0.2, 0.4)
    breast = Breast(
        centre=centre,
        axes=axes,
        chest_j=chest_j,
        muscle=float(rng.uniform(8, 14)),
        gland_field=FourierField.random(rng, wavelength_mm=30.0, terms=12),
        gland_threshold=float(rng.uniform(1.2, 1.5) if group == "fatty" else rng.uniform(0.6, 0.9)),
        lesion_c=lesion_c,
        lesion_r=float(rng.uniform(7.0, 10.0)),
        lobes=FourierField.random(rng, wavelength_mm=12.0, terms=8),
        texture=FourierField.random(rng, wavelength_mm=15.0, terms=8),
        a_gland=float(rng.uniform(1.8, 2.6)),
        tau_gland=float(rng.uniform(150, 250)),
        a_lesion=float(rng.uniform(1.8, 2.6)),
        tau_in=float(rng.uniform(25, 45)),
        tau_out=float(rng.uniform(500, 900)),
    )
    motions = []
    for k in range(1, PHASES):
        angle = np.deg2rad(rng.uniform(-1.0, 1.0))
        axis = rng.normal(size=3)
        rigid = Rigid(rotation_matrix(axis, angle), rng.normal(0.0, 1.2, size=3), centre.copy())
        bumps = GaussianBumps.random(
            rng, extent, bumps=6, amplitude_mm=0.6 + 0.4 * k, sigma_mm=(18.0, 30.0)
        )
        motions.append(compose_sum(rigid, bumps))
    affine = random_affine(rng, spacing, max_angle_deg=20.0 if rng.uniform() < 0.3 else 0.0)
    return shape, spacing, affine, breast, motions


def make_study(case: int, *, seed: int = 0) -> dict:
    """Generate study ``case`` (1-based) in memory.

    Returns
    -------
    dict
        ``group``, ``affine`` (4, 4), ``spacing``, ``phases`` (list of 5 int16 images (I, J, K)),
        ``labels`` (list of 5 uint8 label maps), ``mask`` (uint8, phase 0 grid), ``disps`` (list of
        4 float32 fields (3, I, J, K) on the phase_00 grid, mm along the array axes: entry ``k - 1``
        is the pair fixed = phase_00, moving = phase_k), ``motions`` (the analytic maps ``w_k`` of
        phases 1..4) and ``breast``.
    """
    rng = np.random.default_rng([seed, DATASET_ID, case])
    group = GROUPS[(case - 1) % len(GROUPS)]
    shape, spacing, affine, breast, motions = _study(rng, group)
    points = grid_points(shape, spacing)
    bias = np.exp(0.2 * FourierField.random(rng, wavelength_mm=250.0, terms=6)(points))
    sigma = 0.012 * _SCALE
    phases, labels = [], []
    for k in range(PHASES):
        q = points if k == 0 else points + motions[k - 1](points)
        parts = breast._parts(q)
        clean = breast.render(q, k * PHASE_INTERVAL_S, parts)
        phases.append(to_int16(rician(rng, clean * bias * _SCALE, sigma)))
        labels.append(breast.labels(q, parts))
        if k == 0:
            mask = breast.mask(q, parts)
    disps = [quantize(invert_map(m, points, spacing, tol_voxels=0.01)) for m in motions]
    return {
        "group": group,
        "affine": affine,
        "spacing": spacing,
        "phases": phases,
        "labels": labels,
        "mask": mask,
        "disps": disps,
        "motions": motions,
        "breast": breast,
    }


def write_study(root: Path, case: int, *, seed: int = 0) -> tuple[Path, str]:
    """Write study ``case`` under ``root/studyNNN/``; returns the folder and the study's group."""
    s = make_study(case, seed=seed)
    folder = Path(root) / f"study{case:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    aff = s["affine"]
    for k in range(PHASES):
        write_image(folder / f"phase_{k:02d}.nii.gz", s["phases"][k], aff)
        write_image(folder / f"phase_{k:02d}_labels.nii.gz", s["labels"][k], aff)
    write_image(folder / "mask.nii.gz", s["mask"], aff)
    for k in range(1, PHASES):
        write_displacement(folder / f"disp_phase_00-phase_{k:02d}.nii.gz", s["disps"][k - 1], aff)
    write_landmarks_from_displacement(
        folder / "phase_00_landmarks.csv",
        [folder / f"phase_{k:02d}_landmarks.csv" for k in range(1, PHASES)],
        s["labels"][0],
        s["disps"],
        np.linalg.norm(np.asarray(aff)[:3, :3], axis=0),
    )
    log.info("demo-dce: wrote %s (%s)", folder, s["group"])
    return folder, s["group"]


def write_studies_csv(root: Path, groups: dict[str, str]) -> None:
    """``root/studies.csv`` with columns ``study,group``."""
    lines = ["study,group"] + [f"{k},{g}" for k, g in sorted(groups.items())]
    write_text(Path(root) / "studies.csv", "\n".join(lines) + "\n")
