"""``demo-acdc``: a cardiac cine MRI phantom (end-diastole and end-systole) in the real ACDC layout.

Method (ground truth exact by construction)
-------------------------------------------
* The anatomy is analytic: a function of continuous position in the ED frame (mm along the array
  axes). It has a torso (subcutaneous fat, textured soft tissue), two dark lungs, a descending aorta,
  an unlabelled left atrium above the base, the LV as a truncated ellipsoidal shell (myocardium)
  around an ellipsoidal blood pool, and the RV as a crescent (elliptic cavity minus the LV, with a
  thin wall) on the septum. Bright blood, dark myocardium (bSSFP-like contrast).
* The systolic motion is an analytic map ``psi(y) = y + w(y)`` from ES positions ``y`` to ED
  positions: a radial map about the LV long axis (in-plane area of the blood pool scaled by
  ``1/kappa``; myocardial area scaled by ``lambda`` so that, with the longitudinal stretch
  ``1 + beta ~ 1/lambda``, myocardial volume is preserved: the wall thickens at ES), an extra RV
  free-wall motion, a twist varying from base to apex, a longitudinal shortening towards the apex,
  all fading away from the heart, plus small smooth random bumps.
* ``ED(x) = anatomy(x)`` and ``ES(y) = anatomy(psi(y))`` (rendered at 3 sub-slice positions and
  averaged for through-plane partial volume); labels are the anatomy's labels at the voxel centre
  (``ES_gt(y) = labels(psi(y))``), so they are exactly consistent with the motion.
* Ground truth: pair ES-ED (fixed = ES, moving = ED) is ``w`` itself; pair ED-ES (fixed = ED,
  moving = ES) is the inverse ``v(x) = -w(x + v(x))``, solved by fixed-point iteration on the
  analytic ``w`` to 0.01 voxel (see :func:`~benchmark.data.demo.deform.invert_map`). Both are
  stored rounded to 1/1024 mm (:func:`~benchmark.data.demo.deform.quantize`).
* Then a smooth multiplicative bias field (the same for both frames: it belongs to the scanner),
  a global gain change and an RV blood intensity change between frames, Rician noise, and int16
  rounding, as scanners store them.

Randomness: patient ``k`` (1-based) uses ``numpy.random.default_rng([seed, 1, k])``, so a patient
does not depend on how many are generated. Groups cycle NOR, MINF, DCM, HCM, RV and set the
geometry and contraction ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.atomic import write_text
from benchmark.core.images import write_displacement, write_image
from benchmark.data.demo.deform import GaussianBumps, invert_map, quantize
from benchmark.data.demo.landmarks import write_landmarks_from_displacement
from benchmark.data.demo.phantom import (
    FourierField,
    ellipsoid_distance,
    grid_points,
    random_affine,
    rician,
    soft_inside,
    soft_sqrt,
    to_int16,
)

log = logging.getLogger(__name__)

DATASET_ID = 1
GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
DEFAULT_CASES = 8
LABELS = {"RV": 1, "LVm": 2, "LVb": 3}

# intensities relative to blood (bSSFP-like), scaled to int16 by SCALE
_AIR, _TISSUE, _FAT, _LUNG, _MYO, _BLOOD = 0.0, 0.36, 0.75, 0.05, 0.24, 0.9
_SCALE = 800.0
_SUBSLICES = (-1.0 / 3.0, 0.0, 1.0 / 3.0)

# group -> (LV radius mm, wall mm, kappa = ES/ED in-plane blood area, beta = longitudinal stretch,
#           RV size factor, RV free-wall motion mm)
_GROUP_RANGES = {
    "NOR": ((22, 27), (7, 10), (0.45, 0.55), (0.10, 0.16), (1.0, 1.0), (10, 14)),
    "MINF": ((25, 30), (6, 9), (0.58, 0.68), (0.06, 0.10), (1.0, 1.0), (8, 11)),
    "DCM": ((29, 34), (5, 7), (0.66, 0.76), (0.04, 0.08), (1.0, 1.05), (8, 11)),
    "HCM": ((18, 22), (12, 16), (0.35, 0.45), (0.10, 0.15), (0.9, 0.95), (9, 12)),
    "RV": ((22, 26), (7, 9), (0.48, 0.58), (0.08, 0.12), (1.25, 1.35), (7, 10)),
}


@dataclass(frozen=True)
class Heart:
    """Geometry and motion parameters of one phantom patient (mm, rad)."""

    apex: np.ndarray  # (3,) apex point of the epicardium
    n: np.ndarray  # (3,) unit long axis, apex -> base
    e1: np.ndarray  # (3,) in-plane unit axis pointing to the RV
    e2: np.ndarray  # (3,)
    ecc: float  # in-plane ellipticity of the LV (metric x1/ecc, x2*ecc)
    length: float  # apex to base plane
    centre_a: float  # height of the LV ellipsoids' centre (above the base plane)
    rb: float  # blood-pool radius
    wall: float  # wall thickness
    rv_d: float  # RV ellipse centre distance from the LV axis
    rv_ar: float  # RV ellipse radial semi-axis
    rv_at: float  # RV ellipse tangential semi-axis
    rv_len: float  # RV half length along the axis
    kappa: float
    lam: float
    beta: float
    twist: float
    rv_motion: float
    falloff: float
    r_fade: float
    bumps: GaussianBumps
    torso_c: np.ndarray  # (2,) torso centre in (i, j) mm
    torso_ab: np.ndarray  # (2,) torso semi-axes
    torso_angle: float
    fat: float
    lungs: tuple  # ((centre (3,), semi-axes (3,)), ...)
    aorta: tuple  # (centre (2,), radius)
    texture: FourierField
    rv_gain: float

    def frame(self, p: np.ndarray) -> tuple[np.ndarray, ...]:
        """Heart-frame coordinates ``(a, x1, x2)`` of points ``p`` (3, ...)."""
        rel = p - self.apex.reshape(3, *([1] * (p.ndim - 1)))
        dots = [np.tensordot(v, rel, axes=(0, 0)) for v in (self.n, self.e1, self.e2)]
        return tuple(dots)

    def from_frame(self, a, x1, x2) -> np.ndarray:
        shape = (3, *([1] * np.ndim(a)))
        return (
            self.apex.reshape(shape)
            + self.n.reshape(shape) * a
            + self.e1.reshape(shape) * x1
            + self.e2.reshape(shape) * x2
        )

    # -- radii of the ED anatomy at height a ---------------------------------------------------
    def blood_radius(self, a):
        lb = self.centre_a - 0.8 * self.wall
        return self.rb * soft_sqrt(1.0 - ((a - self.centre_a) / lb) ** 2)

    def epi_radius(self, a):
        return (self.rb + self.wall) * soft_sqrt(1.0 - ((a - self.centre_a) / self.centre_a) ** 2)

    def rv_scale(self, a):
        return soft_sqrt(1.0 - ((a - self.centre_a) / self.rv_len) ** 2)

    # -- motion: ES position -> displacement to the ED position ---------------------------------
    def motion(self, y: np.ndarray) -> np.ndarray:
        """``w(y)``: displacement (mm, array axes) from ES positions ``y`` (3, ...) to ED."""
        a, x1, x2 = self.frame(y)
        r_e = np.hypot(x1, x2)
        fade = 1.0 / (1.0 + (r_e / self.r_fade) ** 6)
        half = 0.5 * self.length
        # longitudinal: ED is the ES heart stretched away from the apex by (1 + beta)
        a_ed = a + self.beta * self.length * 0.5 * (1.0 + np.tanh((a - half) / half)) * fade
        # radial map in the elliptic metric, radii taken at the ED height
        r = np.hypot(x1 / self.ecc, x2 * self.ecc)
        rb_ed, re_ed = self.blood_radius(a_ed), self.epi_radius(a_ed)
        sk = np.sqrt(self.kappa)
        rb_es = sk * rb_ed
        re_es = np.sqrt(self.kappa * rb_ed**2 + (re_ed**2 - rb_ed**2) / self.lam)
        inner = r / sk
        myo = np.sqrt(np.maximum(rb_ed**2 + self.lam * (r**2 - rb_es**2), 0.0))
        outer = r + (re_ed - re_es) * np.exp(-(((r - re_es) / self.falloff) ** 2))
        big_r = np.where(r <= rb_es, inner, np.where(r <= re_es, myo, outer))
        scale = np.where(r > 1e-9, big_r / np.maximum(r, 1e-9), 1.0 / sk)
        x1s, x2s = x1 * scale, x2 * scale
        # RV free wall moves in at ES, i.e. out from ES to ED
        s_rv = self.rv_scale(a)
        r_fw = (self.rv_d + self.rv_ar) * s_rv
        cos_t = np.where(r_e > 1e-9, x1 / np.maximum(r_e, 1e-9), 1.0)
        ang = np.exp(2.0 * (cos_t - 1.0))
        bump = np.exp(-(((r_e - r_fw) / (0.7 * self.rv_ar)) ** 2)) * s_rv
        bump = bump * (r_e / self.rb) ** 4 / (1.0 + (r_e / self.rb) ** 4)  # 0 on the LV axis
        rv = self.rv_motion * ang * bump / np.maximum(r_e, 1e-9)
        x1s = x1s + rv * x1
        x2s = x2s + rv * x2
        # twist (ES -> ED untwists): opposite rotations at base and apex
        theta = self.twist * np.tanh((a - half) / half) * fade
        c, s = np.cos(theta), np.sin(theta)
        x1t, x2t = c * x1s - s * x2s, s * x1s + c * x2s
        return self.from_frame(a_ed, x1t, x2t) - y + self.bumps(y)

    # -- anatomy ---------------------------------------------------------------------------------
    def quadrics(self, p: np.ndarray):
        """``(a, q_blood, q_epi, q_rv, q_rv_wall)`` for ED positions ``p``."""
        a, x1, x2 = self.frame(p)
        r2 = (x1 / self.ecc) ** 2 + (x2 * self.ecc) ** 2
        lb = self.centre_a - 0.8 * self.wall
        q_b = r2 / self.rb**2 + ((a - self.centre_a) / lb) ** 2
        q_e = r2 / (self.rb + self.wall) ** 2 + ((a - self.centre_a) / self.centre_a) ** 2
        s = np.maximum(self.rv_scale(a), 1e-3)
        q_rv = ((x1 - self.rv_d * s) / (self.rv_ar * s)) ** 2 + (x2 / (self.rv_at * s)) ** 2
        q_rvw = ((x1 - self.rv_d * s) / (self.rv_ar * s + 3.0)) ** 2 + (
            x2 / (self.rv_at * s + 3.0)
        ) ** 2
        return a, q_b, q_e, q_rv, q_rvw

    def labels(self, p: np.ndarray) -> np.ndarray:
        """Label map (0 bg, 1 RV, 2 LVm, 3 LVb) at ED positions ``p`` (3, ...)."""
        a, q_b, q_e, q_rv, _ = self.quadrics(p)
        below_base = a <= self.length
        out = np.zeros(p.shape[1:], dtype=np.uint8)
        out[(q_rv < 1) & below_base] = LABELS["RV"]
        out[(q_e < 1) & below_base] = LABELS["LVm"]
        out[(q_b < 1) & below_base] = LABELS["LVb"]
        return out

    def render(self, p: np.ndarray, *, rv_gain: float = 1.0) -> np.ndarray:
        """Noise-free intensity (blood ~0.9) at ED positions ``p`` (3, ...)."""
        tex = self.texture(p)
        img = np.zeros(p.shape[1:])
        # torso: fat shell around textured soft tissue
        ca, sa = np.cos(self.torso_angle), np.sin(self.torso_angle)
        di, dj = p[0] - self.torso_c[0], p[1] - self.torso_c[1]
        u, v = ca * di + sa * dj, -sa * di + ca * dj
        ab = self.torso_ab
        body = soft_inside(ellipsoid_distance((u / ab[0]) ** 2 + (v / ab[1]) ** 2, ab.mean()), 1.0)
        inner = soft_inside(
            ellipsoid_distance(
                (u / (ab[0] - self.fat)) ** 2 + (v / (ab[1] - self.fat)) ** 2, ab.mean() - self.fat
            ),
            1.0,
        )
        img = _paint(img, body, _FAT * (1 + 0.05 * tex))
        img = _paint(img, inner, _TISSUE * (1 + 0.15 * tex))
        for centre, axes in self.lungs:
            q = sum(((p[c] - centre[c]) / axes[c]) ** 2 for c in range(3))
            img = _paint(
                img,
                soft_inside(ellipsoid_distance(q, axes[:2].mean()), 1.5),
                _LUNG * (1 + 0.3 * tex),
            )
        (ac, ar) = self.aorta
        d_ao = np.hypot(p[0] - ac[0], p[1] - ac[1]) - ar
        img = _paint(img, soft_inside(d_ao, 0.8), 0.8 * _BLOOD)
        a, q_b, q_e, q_rv, q_rvw = self.quadrics(p)
        # left atrium above the base (unlabelled blood)
        a0, x1, x2 = self.frame(p)
        la_r = 0.8 * self.rb
        q_la = (x1 / la_r) ** 2 + (x2 / la_r) ** 2 + ((a0 - self.length - 0.9 * la_r) / la_r) ** 2
        img = _paint(img, soft_inside(ellipsoid_distance(q_la, la_r), 1.0), 0.95 * _BLOOD)
        base = soft_inside(a - self.length, 1.5)
        s = np.maximum(self.rv_scale(a), 1e-3)
        rv_size = (self.rv_ar + self.rv_at) * 0.5 * s + 1.0
        img = _paint(img, base * soft_inside(ellipsoid_distance(q_rvw, rv_size + 3), 0.8), _MYO)
        img = _paint(
            img, base * soft_inside(ellipsoid_distance(q_rv, rv_size), 0.8), 0.95 * _BLOOD * rv_gain
        )
        img = _paint(
            img,
            base * soft_inside(ellipsoid_distance(q_e, self.rb + self.wall), 0.8),
            _MYO * (1 + 0.04 * tex),
        )
        img = _paint(img, base * soft_inside(ellipsoid_distance(q_b, self.rb), 0.8), _BLOOD)
        return img


def _paint(img: np.ndarray, mask: np.ndarray, value) -> np.ndarray:
    return img * (1.0 - mask) + value * mask


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _patient(rng: np.random.Generator, group: str):
    """Draw one patient: grid (shape, spacing, affine), Info.cfg values and a :class:`Heart`.

    Long because every random parameter is drawn here in one fixed order: the order is part of
    what a seed means, so splitting the draws would change every generated patient.
    """
    sp = float(rng.uniform(1.3, 1.7))
    sk = float(rng.uniform(6.5, 10.0))
    ni, nj = (int(n) for n in rng.integers(112, 145, size=2))
    nk = int(np.clip(round(rng.uniform(85, 105) / sk), 8, 12))
    spacing = (round(sp, 4), round(sp, 4), round(sk, 4))
    shape = (ni, nj, nk)
    extent = np.array(shape) * np.array(spacing)
    (r_rng, t_rng, k_rng, b_rng, rv_f, rvm_rng) = _GROUP_RANGES[group]
    rb, wall = rng.uniform(*r_rng), rng.uniform(*t_rng)
    kappa, beta = rng.uniform(*k_rng), rng.uniform(*b_rng)
    rvf, rv_motion = rng.uniform(*rv_f), rng.uniform(*rvm_rng)
    # long axis: mostly along -k (base at low k), tilted up to 12 degrees
    tilt = np.deg2rad(rng.uniform(0, 12))
    tilt_dir = rng.uniform(0, 2 * np.pi)
    n = _unit(
        np.array([np.sin(tilt) * np.cos(tilt_dir), np.sin(tilt) * np.sin(tilt_dir), -np.cos(tilt)])
    )
    base_k = rng.uniform(0.6, 1.3) * sk
    length = float(np.clip(extent[2] - base_k - rng.uniform(0.4, 1.2) * sk, 55, 105))
    centre_ij = extent[:2] / 2 + rng.uniform(-10, 10, size=2)
    base_point = np.array([centre_ij[0], centre_ij[1], base_k])
    apex = base_point - length * n
    ref = _unit(np.cross(n, [0.0, 1.0, 0.0]))
    ref2 = np.cross(n, ref)
    phi = np.pi * 1.1 + rng.uniform(-0.4, 0.4)
    e1 = np.cos(phi) * ref + np.sin(phi) * ref2
    e2 = np.cross(n, e1)
    ecc = rng.uniform(0.92, 1.1)
    centre_a = length + rng.uniform(0.1, 0.25) * length
    r_epi = rb + wall
    lam = 1.0 / (1.0 + beta)
    heart = dict(
        apex=apex,
        n=n,
        e1=e1,
        e2=e2,
        ecc=float(ecc),
        length=length,
        centre_a=float(centre_a),
        rb=float(rb),
        wall=float(wall),
        rv_d=float(r_epi * rng.uniform(0.55, 0.75)),
        rv_ar=float(r_epi * rng.uniform(0.85, 1.0) * rvf),
        rv_at=float(r_epi * rng.uniform(1.25, 1.5) * rvf),
        rv_len=float(centre_a * rng.uniform(0.78, 0.9)),
        kappa=float(kappa),
        lam=float(lam),
        beta=float(beta),
        twist=float(np.deg2rad(rng.uniform(3, 7))),
        rv_motion=float(rv_motion),
        falloff=float(rng.uniform(12, 18)),
        r_fade=float(r_epi + rng.uniform(20, 30)),
    )
    heart["bumps"] = GaussianBumps.random(
        rng, extent, bumps=5, amplitude_mm=0.8, sigma_mm=(25.0, 45.0)
    )
    torso_c = extent[:2] / 2 + rng.uniform(-8, 8, size=2)
    torso_ab = np.array([rng.uniform(80, 95), rng.uniform(62, 75)])
    side = e2[:2] / max(np.linalg.norm(e2[:2]), 1e-9)
    lungs = []
    for sign in (-1.0, 1.0):
        off = rng.uniform(48, 62)
        c = np.array([*(base_point[:2] + sign * off * side), base_k + 0.4 * length])
        lungs.append((c, np.array([rng.uniform(26, 34), rng.uniform(38, 48), 140.0])))
    back = -e1[:2] / max(np.linalg.norm(e1[:2]), 1e-9)
    aorta = (base_point[:2] + rng.uniform(45, 55) * back + 25 * side, float(rng.uniform(9, 12.5)))
    heart.update(
        torso_c=torso_c,
        torso_ab=torso_ab,
        torso_angle=float(rng.uniform(-0.2, 0.2)),
        fat=float(rng.uniform(6, 12)),
        lungs=tuple(lungs),
        aorta=aorta,
        texture=FourierField.random(rng, wavelength_mm=25.0, terms=16),
        rv_gain=float(rng.uniform(0.88, 1.05)),
    )
    es = int(rng.integers(9, 17))
    info = {
        "ED": 1,
        "ES": es,
        "Group": group,
        "Height": round(float(rng.uniform(150, 195)), 1),
        "NbFrame": int(rng.integers(max(es + 6, 20), 36)),
        "Weight": round(float(rng.uniform(50, 110)), 1),
    }
    affine = random_affine(rng, spacing, max_angle_deg=30.0 if rng.uniform() < 0.4 else 0.0)
    return shape, spacing, affine, info, Heart(**heart)


def _render_frame(heart: Heart, points: np.ndarray, spacing, motion, *, rv_gain: float):
    """Average the anatomy over sub-slice positions (through-plane partial volume)."""
    acc = np.zeros(points.shape[1:])
    for off in _SUBSLICES:
        q = points.copy()
        q[2] += off * spacing[2]
        if motion is not None:
            q = q + motion(q)
        acc += heart.render(q, rv_gain=rv_gain)
    return acc / len(_SUBSLICES)


def make_patient(case: int, *, seed: int = 0) -> dict:
    """Generate patient ``case`` (1-based) in memory.

    Returns
    -------
    dict
        ``info`` (Info.cfg values), ``affine`` (4, 4), ``spacing``, ``ed``/``es`` (int16 images
        (I, J, K)), ``ed_gt``/``es_gt`` (uint8 labels), ``disp_ed_es`` (3, I, J, K) float32 field on
        the ED grid (fixed = ED, moving = ES) and ``disp_es_ed`` on the ES grid, both in mm along the
        array axes, and ``heart`` (the :class:`Heart` parameters).
    """
    rng = np.random.default_rng([seed, DATASET_ID, case])
    group = GROUPS[(case - 1) % len(GROUPS)]
    shape, spacing, affine, info, heart = _patient(rng, group)
    points = grid_points(shape, spacing)
    w = heart.motion
    disp_es_ed = w(points)
    disp_ed_es = invert_map(w, points, spacing, tol_voxels=0.01)
    ed_clean = _render_frame(heart, points, spacing, None, rv_gain=1.0)
    es_clean = _render_frame(heart, points, spacing, w, rv_gain=heart.rv_gain)
    bias = np.exp(0.15 * FourierField.random(rng, wavelength_mm=300.0, terms=6)(points))
    gain_ed = rng.uniform(0.9, 1.1)
    gain_es = gain_ed * rng.uniform(0.95, 1.05)
    sigma = 0.02 * _SCALE
    ed = to_int16(rician(rng, ed_clean * bias * gain_ed * _SCALE, sigma))
    es = to_int16(rician(rng, es_clean * bias * gain_es * _SCALE, sigma))
    return {
        "info": info,
        "affine": affine,
        "spacing": spacing,
        "ed": ed,
        "es": es,
        "ed_gt": heart.labels(points),
        "es_gt": heart.labels(points + disp_es_ed),
        "disp_ed_es": quantize(disp_ed_es),
        "disp_es_ed": quantize(disp_es_ed),
        "heart": heart,
    }


def info_cfg(info: dict) -> str:
    """Info.cfg text in ACDC's format (``Key: value`` lines, ACDC's key order)."""
    return "".join(
        f"{k}: {info[k]}\n" for k in ("ED", "ES", "Group", "Height", "NbFrame", "Weight")
    )


def write_patient(root: Path, case: int, *, seed: int = 0) -> Path:
    """Write patient ``case`` under ``root/training/patientNNN/`` and return that folder."""
    p = make_patient(case, seed=seed)
    name = f"patient{case:03d}"
    folder = Path(root) / "training" / name
    folder.mkdir(parents=True, exist_ok=True)
    ed_f, es_f = p["info"]["ED"], p["info"]["ES"]
    aff = p["affine"]
    write_image(folder / f"{name}_frame{ed_f:02d}.nii.gz", p["ed"], aff)
    write_image(folder / f"{name}_frame{ed_f:02d}_gt.nii.gz", p["ed_gt"], aff)
    write_image(folder / f"{name}_frame{es_f:02d}.nii.gz", p["es"], aff)
    write_image(folder / f"{name}_frame{es_f:02d}_gt.nii.gz", p["es_gt"], aff)
    write_displacement(folder / f"{name}_disp_ED-ES.nii.gz", p["disp_ed_es"], aff)
    write_displacement(folder / f"{name}_disp_ES-ED.nii.gz", p["disp_es_ed"], aff)
    write_landmarks_from_displacement(
        folder / f"{name}_frame{ed_f:02d}_landmarks.csv",
        [folder / f"{name}_frame{es_f:02d}_landmarks.csv"],
        p["ed_gt"],
        [p["disp_ed_es"]],
        np.linalg.norm(np.asarray(aff)[:3, :3], axis=0),
    )
    write_text(folder / "Info.cfg", info_cfg(p["info"]))
    log.info("demo-acdc: wrote %s (%s)", folder, p["info"]["Group"])
    return folder
