"""Synthetic test inputs for the statistics and report tests.

:func:`make_fake_run` writes a small but complete run folder in the layout of
``docs/conventions.md`` ("Run folder"): cardiac-like ED/ES phantoms (RV, LVm, LVb labels) as NIfTI
in a data folder, and for every method a smooth displacement field on the fixed grid (fixed ->
moving, mm), the warped image and labels (``moving(x + u(x))``), and metric rows computed from them
(Dice, Hausdorff from the label maps, histogram NMI before/after, folding % from the Jacobian).
:func:`paper_table1_rankings` builds 50 rankings with the paper's Table 1 margins and elastix above
U-Net in 32 cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from benchmark.core.images import write_displacement, write_image

METHODS = ("identity", "elastix", "unet-nmi", "unet-ncc", "poolnet-nmi", "poolnet-ncc")
LABELS = {"RV": 1, "LVm": 2, "LVb": 3}
SPACING = (1.5, 1.5, 5.0)
RUN_DATE = "2026-11-20T09:30:00+00:00"
# (fraction of the true motion recovered, amplitude (mm) and in-plane smoothness (voxels) of the
# method's own noise): the U-Nets are less smooth and fold, as in the paper
QUALITY = {
    "identity": (0.0, 0.0, 3.0),
    "elastix": (0.85, 0.3, 3.0),
    "unet-nmi": (0.95, 2.0, 1.2),
    "unet-ncc": (0.95, 3.0, 1.0),
    "poolnet-nmi": (0.9, 0.5, 3.0),
    "poolnet-ncc": (0.9, 1.5, 2.0),
}

# Orders (best to worst) and counts reproducing Table 1 (elastix 17/18/15, U-Net 13/12/25, PoolNet
# 20/20/10 for ranks 1/2/3) with elastix above U-Net in 7 + 10 + 15 = 32 of 50 cases.
TABLE1_ORDERS = {
    ("elastix", "U-Net", "PoolNet"): 7,
    ("elastix", "PoolNet", "U-Net"): 10,
    ("U-Net", "elastix", "PoolNet"): 3,
    ("U-Net", "PoolNet", "elastix"): 10,
    ("PoolNet", "elastix", "U-Net"): 15,
    ("PoolNet", "U-Net", "elastix"): 5,
}


#: The paper's method names as the run names them (its U-Net and PoolNet are NMI-trained).
RUN_NAMES = {"elastix": "elastix", "U-Net": "unet-nmi", "PoolNet": "poolnet-nmi"}


def paper_table1_rankings(*, seed: int = 0, names: dict[str, str] | None = None) -> pd.DataFrame:
    """50 forced rankings of elastix, U-Net and PoolNet consistent with the paper's Table 1 and
    with elastix ranked above U-Net in 32 cases (case order shuffled with ``seed``).

    Returns a long table with columns ``case, method, rank``, methods listed in the paper's order
    (elastix, U-Net, PoolNet) within each case, named as the paper names them or by ``names``
    (e.g. :data:`RUN_NAMES`, the names of a run's methods).
    """
    orders = [order for order, count in TABLE1_ORDERS.items() for _ in range(count)]
    rng = np.random.default_rng(seed)
    rng.shuffle(orders)
    rows = []
    for i, order in enumerate(orders):
        for method in ("elastix", "U-Net", "PoolNet"):
            rows.append(
                {
                    "case": f"study{i + 1:03d}",
                    "method": (names or {}).get(method, method),
                    "rank": order.index(method) + 1,
                }
            )
    return pd.DataFrame(rows)


def _phantom(shape, spacing, *, lv_radius, rv_shift, rng) -> tuple[np.ndarray, np.ndarray]:
    """A short-axis-like volume: bright LV blood pool, dark myocardium ring, RV crescent."""
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    ci, cj = shape[0] / 2 + 1.0, shape[1] / 2
    x, y = (ii - ci) * spacing[0], (jj - cj) * spacing[1]
    zfac = 1.0 - 0.35 * np.abs(kk - (shape[2] - 1) / 2) / max((shape[2] - 1) / 2, 1)
    r = np.sqrt(x**2 + y**2)
    labels = np.zeros(shape, np.int16)
    lv = lv_radius * zfac
    labels[(r < lv + 4.0) & (r >= lv)] = LABELS["LVm"]
    labels[r < lv] = LABELS["LVb"]
    rv = np.sqrt((x + rv_shift) ** 2 + (0.7 * y) ** 2)
    labels[(rv < lv + 3.0) & (labels == 0) & (x < -lv)] = LABELS["RV"]
    image = np.choose(labels, [40.0, 160.0, 70.0, 200.0]).astype(np.float64)
    image += 25.0 * np.exp(-((r / 30.0) ** 2))  # smooth background structure
    image = ndimage.gaussian_filter(image, (0.7, 0.7, 0.3))
    image += rng.normal(0.0, 4.0, shape)
    return image.astype(np.float32), labels


def _smooth_noise(shape, amplitude, sigma, rng) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, (3, *shape))
    noise = np.stack([ndimage.gaussian_filter(c, (sigma, sigma, 1.0)) for c in noise])
    scale = np.abs(noise).max()
    return amplitude * noise / scale if scale > 0 else noise


def _warp(array: np.ndarray, disp_mm: np.ndarray, spacing, *, order: int) -> np.ndarray:
    """``array(x + u(x))`` with ``u`` in mm along the array axes (border padding for images,
    background 0 for labels)."""
    grid = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in array.shape), indexing="ij")
    coords = [g + disp_mm[c] / spacing[c] for c, g in enumerate(grid)]
    if order == 0:
        return ndimage.map_coordinates(array, coords, order=0, mode="constant", cval=0)
    return ndimage.map_coordinates(array, coords, order=order, mode="nearest")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else float("nan")


def _hausdorff(a: np.ndarray, b: np.ndarray, spacing) -> float:
    if not a.any() or not b.any():
        return float("nan")
    da = ndimage.distance_transform_edt(~a, sampling=spacing)
    db = ndimage.distance_transform_edt(~b, sampling=spacing)
    return float(max(da[b].max(), db[a].max()))


def _hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    if not a.any() or not b.any():
        return float("nan")
    da = ndimage.distance_transform_edt(~a, sampling=spacing)
    db = ndimage.distance_transform_edt(~b, sampling=spacing)
    return float(np.percentile(np.concatenate([da[b], db[a]]), 95))


def _nmi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Histogram NMI ``(H(A) + H(B)) / H(A, B)`` (Studholme), in [1, 2]."""
    joint, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)

    def h(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    return (h(pa) + h(pb)) / h(p.ravel())


def _folding_pct(disp_mm: np.ndarray, spacing) -> tuple[float, float]:
    """Folding % (det J <= 0) and SD of log det J over positive determinants."""
    grads = [np.gradient(disp_mm[c], *spacing) for c in range(3)]
    jac = np.empty(disp_mm.shape[1:] + (3, 3))
    for c in range(3):
        for d in range(3):
            jac[..., c, d] = grads[c][d] + (1.0 if c == d else 0.0)
    det = np.linalg.det(jac)
    pos = det[det > 0]
    return float(100.0 * (det <= 0).mean()), float(np.log(pos).std()) if pos.size else float("nan")


def make_fake_run(
    root: str | Path,
    *,
    methods: tuple[str, ...] = METHODS,
    n_cases: int = 4,
    n_folds: int = 2,
    shape: tuple[int, int, int] = (32, 32, 6),
    seed: int = 0,
    missing_method: str | None = None,
    nan_metric: tuple[str, str, str] | None = None,
) -> Path:
    """Write a synthetic data folder ``root/data`` and run folder ``root/run``; return the latter.

    Parameters
    ----------
    methods : tuple of str
        Methods recorded in ``run.json``.
    n_cases, n_folds : int
        Cases ``patient001...`` with one ``ED-ES`` pair each, assigned round-robin to folds.
    shape : tuple of int
        Image shape ``(I, J, K)``; spacing :data:`SPACING`.
    seed : int
        Seed of every random choice (same seed -> identical files).
    missing_method : str, optional
        A method listed in ``run.json`` that has no results rows and no ``pairs/METHOD`` folder.
    nan_metric : (method, structure, metric), optional
        Set this metric to NaN (status ``failed: synthetic``) for the first case.
    """
    root = Path(root)
    data, run_dir = root / "data", root / "run"
    rng = np.random.default_rng(seed)
    affine = np.diag([*SPACING, 1.0])
    cases = [f"patient{i + 1:03d}" for i in range(n_cases)]
    fold_of = {c: i % n_folds for i, c in enumerate(cases)}
    pair_rows, result_rows = [], []
    for case in cases:
        lv_ed = rng.uniform(9.0, 12.0)
        lv_es = lv_ed * rng.uniform(0.6, 0.8)
        rv_shift = rng.uniform(14.0, 18.0)
        fixed, fixed_lab = _phantom(shape, SPACING, lv_radius=lv_ed, rv_shift=rv_shift, rng=rng)
        moving, moving_lab = _phantom(
            shape, SPACING, lv_radius=lv_es, rv_shift=rv_shift - 2, rng=rng
        )
        paths = {}
        for role, arr in (
            ("fixed", fixed),
            ("moving", moving),
            ("fixed_labels", fixed_lab),
            ("moving_labels", moving_lab),
        ):
            paths[role] = write_image(data / case / f"{role}.nii.gz", arr, affine).resolve()
        fold = fold_of[case]
        pair_rows.append(
            {
                "fold": fold,
                "case": case,
                "pair": "ED-ES",
                **{k: str(v) for k, v in paths.items()},
                "displacement": "",
            }
        )
        # true motion: radial contraction towards the LV centre, in-plane, fixed -> moving
        ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        x = (ii - (shape[0] / 2 + 1.0)) * SPACING[0]
        y = (jj - shape[1] / 2) * SPACING[1]
        s = lv_es / lv_ed - 1.0
        fall = np.exp(-(x**2 + y**2) / (2 * 14.0**2))
        true = np.zeros((3, *shape))
        true[0] = (s * x * fall)[..., None]
        true[1] = (s * y * fall)[..., None]
        nmi_before = _nmi(fixed, moving)
        for method in methods:
            if method == missing_method:
                continue
            frac, amp, sigma = QUALITY.get(method, (0.8, 0.5, 3.0))
            disp = frac * true + (_smooth_noise(shape, amp, sigma, rng) if amp else 0.0)
            warped = _warp(moving.astype(np.float64), disp, SPACING, order=1).astype(np.float32)
            warped_lab = _warp(moving_lab, disp, SPACING, order=0).astype(np.int16)
            out = run_dir / "pairs" / method / f"fold{fold}" / case / "ED-ES"
            write_displacement(out / "displacement.nii.gz", disp, affine)
            write_image(out / "warped.nii.gz", warped, affine)
            write_image(out / "warped_labels.nii.gz", warped_lab, affine)
            base = {"method": method, "fold": fold, "case": case, "pair": "ED-ES"}
            rows = []
            for name, value in LABELS.items():
                a, b = fixed_lab == value, warped_lab == value
                rows += [
                    {
                        **base,
                        "structure": name,
                        "metric": "dice",
                        "value": _dice(a, b),
                        "unit": "1",
                    },
                    {
                        **base,
                        "structure": name,
                        "metric": "hd",
                        "value": _hausdorff(a, b, SPACING),
                        "unit": "mm",
                    },
                    {
                        **base,
                        "structure": name,
                        "metric": "hd95",
                        "value": _hd95(a, b, SPACING),
                        "unit": "mm",
                    },
                ]
            fold_pct, sdlogj = _folding_pct(disp, SPACING)
            rows += [
                {
                    **base,
                    "structure": "image",
                    "metric": "nmi_before",
                    "value": nmi_before,
                    "unit": "1",
                },
                {
                    **base,
                    "structure": "image",
                    "metric": "nmi",
                    "value": _nmi(fixed, warped),
                    "unit": "1",
                },
                {
                    **base,
                    "structure": "image",
                    "metric": "folding_pct",
                    "value": fold_pct,
                    "unit": "%",
                },
                {**base, "structure": "image", "metric": "sdlogj", "value": sdlogj, "unit": "1"},
                {
                    **base,
                    "structure": "image",
                    "metric": "runtime_s",
                    "value": float(
                        rng.uniform(0.05, 0.2) if method != "elastix" else rng.uniform(20, 40)
                    ),
                    "unit": "s",
                },
            ]
            for r in rows:
                r["status"] = "ok" if np.isfinite(r["value"]) else "label-absent-moving"
                if nan_metric == (method, r["structure"], r["metric"]) and case == cases[0]:
                    r["value"], r["status"] = float("nan"), "failed: synthetic"
            (out / "result.json").write_text(
                json.dumps({"rows": rows}, indent=1, allow_nan=True), encoding="utf-8"
            )
            result_rows += rows
    run_dir.mkdir(parents=True, exist_ok=True)
    results = pd.DataFrame(result_rows)
    results.to_csv(run_dir / "results.csv", index=False)
    pd.DataFrame(pair_rows).to_csv(run_dir / "pairs.csv", index=False)
    folds = {
        str(f): {
            "train": [f"{c}/ED-ES" for c in cases if fold_of[c] != f],
            "test": [f"{c}/ED-ES" for c in cases if fold_of[c] == f],
        }
        for f in range(n_folds)
    }
    (run_dir / "folds.json").write_text(json.dumps(folds, indent=1), encoding="utf-8")
    # the keys that benchmark.runner writes
    run = {
        "command": [
            "bench",
            "run",
            "--dataset",
            "demo-acdc",
            "--methods",
            "all",
            "--preset",
            "quick",
            "--seed",
            str(seed),
        ],
        "started": RUN_DATE,
        "versions": {"mirbench": "0.1.0", "python": "3.11", "torch": "2.13.0", "elastix": "5.2"},
        "dataset": {
            "name": "demo-acdc",
            "path": "data_manifests/demo-acdc.yaml",
            "sha256": "0" * 64,
            "labels": LABELS,
            "contrast": "same",
        },
        "methods": {
            m: {
                "class": f"methods.fake.{m}",
                "description": f"synthetic {m}",
                "params": {"iterations": 10, "seed": seed},
            }
            for m in methods
        },
        "preset": "quick",
        "folds": list(range(n_folds)),
        "seed": seed,
        "jobs": 1,
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    _write_trainings(run_dir, [m for m in methods if "-" in m], n_folds, rng)
    return run_dir


def _write_trainings(run_dir: Path, learned: list[str], n_folds: int, rng) -> None:
    """``models/METHOD/foldK/{training.csv, model.json}`` as the trainer writes them, and
    ``validation.csv`` as runs before seeds wrote it (no ``seed`` column: the report reads it as
    seed 0); the first learned method's fold 0 is worse than no registration."""
    from methods.training.trainer import TRAINING_COLUMNS

    rows = []
    for m_index, method in enumerate(learned):
        for fold in range(n_folds):
            worse = m_index == 0 and fold == 0
            iterations = np.arange(1, 21)
            sim = -0.20 - 0.05 * (1 - np.exp(-iterations / 5)) + 0.01 * rng.standard_normal(20)
            history = pd.DataFrame(
                {c: np.nan for c in TRAINING_COLUMNS}, index=range(20)
            ).assign(
                iteration=iterations, loss=sim + 1e-3, similarity=sim, bending=0.02,
                seconds=0.1 * iterations,
            )
            identity = {"loss": -0.22, "similarity": -0.22, "bending": 0.0, "dice": 0.70}
            best = {"loss": -0.21 if worse else -0.24, "similarity": -0.21 if worse else -0.24,
                    "bending": 0.001, "dice": 0.68 if worse else 0.80}
            for it in (10, 20):
                history.loc[it - 1, ["val_loss", "val_similarity", "val_bending", "val_dice"]] = [
                    best["loss"], best["similarity"], best["bending"], best["dice"]
                ]
            reason = "similarity -0.2100 vs -0.2200 without registration" if worse else None
            folder = run_dir / "models" / method / f"fold{fold}"
            folder.mkdir(parents=True, exist_ok=True)
            history.to_csv(folder / "training.csv", index=False)
            (folder / "model.json").write_text(json.dumps({"validation": {
                "pairs": ["patient001/ED-ES"], "held_out": True, "best_iteration": 20,
                "best": best, "identity": identity, "worse_than_identity": reason}}))
            rows.append({
                "method": method, "fold": fold, "best_iteration": 20,
                "val_similarity": best["similarity"], "identity_similarity": -0.22,
                "val_dice": best["dice"], "identity_dice": 0.70, "held_out": True,
                "worse_than_identity": reason or "",
            })
    if rows:
        pd.DataFrame(rows).to_csv(run_dir / "validation.csv", index=False)
