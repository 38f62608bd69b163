"""Test helper: write small Learn2Reg look-alike task folders (nothing is downloaded).

Each generator writes ``ROOT/TASK_dataset.json`` with the keys of the challenge's downloads
(``name``, ``pairings``, ``registration_direction``, ``modality``, ``labels``,
``tensorImageShape``, ``training`` / ``test`` entries with ``image``, ``label``, ``mask``,
``keypoints``, ``training_paired_images``, ``registration_val`` / ``registration_test``, the
``num*`` counts) and the images in ``imagesTr`` / ``imagesTs``, ``labelsTr``, ``masksTr``,
``keypointsTr`` named ``TASK_SSSS_MMMM``:

- :func:`make_oasis`: unpaired inter-subject brain MR with labels (and brain masks), val pairs of
  consecutive subjects, test pairs without labels (``imagesTs``);
- :func:`make_lungct`: paired inspiration (``_0000``) / expiration (``_0001``) CT with lung masks
  and headerless keypoint CSVs (the moving points are the fixed ones plus the known shift);
- :func:`make_abdomen_mrct`: multi-modal MR (``0``) -> CT (``1``) with labels and masks, hybrid
  (paired subjects plus MR-only and CT-only ones) or paired.

Images share one grid per task; the moving image of a pair is its fixed image's anatomy moved by
a known integer shift (within a subject) or another subject's jittered anatomy. Everything is
deterministic for a seed; sizes default to a few thousand voxels so elastix takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from benchmark.core.images import write_image

#: A few FreeSurfer names (OASIS labels) for the first structures of the brain look-alike.
BRAIN_NAMES = (
    "Left-Cerebral-White-Matter",
    "Left-Cerebral-Cortex",
    "Left-Lateral-Ventricle",
    "Left-Thalamus",
    "Left-Caudate",
    "Left-Putamen",
)
ABDOMEN_NAMES = ("liver", "spleen", "right kidney", "left kidney")
#: Shift (voxels) of a paired task's moving image: moving(x) = fixed(x - SHIFT).
SHIFT = (1, 0, 1)


def _affine(spacing) -> np.ndarray:
    return np.diag([*map(float, spacing), 1.0])


def _seeds(shape, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` structure centres inside the central ellipsoid."""
    c = (np.asarray(shape) - 1) / 2.0
    out = []
    while len(out) < n:
        p = rng.uniform(-0.55, 0.55, size=3)
        if (p**2).sum() < 0.3:
            out.append(c + p * np.asarray(shape) / 1.0)
    return np.asarray(out)


def anatomy(shape, seeds: np.ndarray, rng: np.random.Generator, *, modality: int = 0):
    """``(image float32, labels uint8)``: nearest-centre cells inside an ellipsoid, each with its
    own intensity (CT-like intensities for ``modality`` 1) plus smooth noise."""
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    c = (np.asarray(shape, dtype=np.float32) - 1) / 2.0
    inside = (((grid - c) / (0.45 * np.asarray(shape))) ** 2).sum(axis=1) < 1.0
    labels = np.zeros(len(grid), dtype=np.uint8)
    labels[inside] = cKDTree(seeds).query(grid[inside], k=1)[1].astype(np.uint8) + 1
    labels = labels.reshape(shape)
    levels = np.linspace(0.25, 1.0, len(seeds) + 1)
    if modality == 1:  # another contrast: the order of the structures' intensities changes
        levels = 1.25 - levels[::-1]
    image = levels[labels] * 400.0 + ndimage.gaussian_filter(rng.normal(0, 40, shape), 1.0)
    return image.astype(np.float32), labels


def _shifted(a: np.ndarray, shift) -> np.ndarray:
    """``a`` moved by ``shift`` voxels (zeros / edge values come in): out(x) = a(x - shift)."""
    return ndimage.shift(a, shift, order=0, mode="nearest")


def _write_json(root: Path, task: dict) -> Path:
    path = root / f"{task['name']}_dataset.json"
    path.write_text(json.dumps(task, indent=4))
    return path


def _header(name: str, shape, *, pairings: str, modality: dict, labels: dict, provided: dict,
            direction: dict) -> dict:
    return {
        "name": name,
        "release": "1.1",
        "description": f"{name} look-alike of a Learn2Reg task (generated for tests)",
        "licence": "generated test data",
        "reference": "",
        "pairings": pairings,
        "provided_data": provided,
        "registration_direction": direction,
        "modality": modality,
        "img_shift": {"fixed": "Patient A", "moving": "Patient B"},
        "labels": labels,
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(shape)},
    }


def _finish(task: dict, training: list, test: list, paired: list, val: list, test_pairs: list):
    task.update(
        numTraining=len(training),
        numTest=len(test),
        training=training,
        test=test,
        numPairedTraining=len(paired),
        training_paired_images=paired,
        numPairedTest=0,
        test_paired_images=[],
        numRegistration_val=len(val),
        registration_val=val,
        numRegistration_test=len(test_pairs),
        registration_test=test_pairs,
    )
    return task


def make_oasis(
    root: str | Path,
    *,
    shape=(20, 24, 16),
    n_labels: int = 4,
    n_train: int = 4,
    n_val: int = 3,
    n_test: int = 2,
    spacing=(1.0, 1.0, 1.0),
    masks: bool = True,
    seed: int = 0,
) -> Path:
    """An OASIS-like unpaired brain task; returns the JSON path. Subjects ``0001..`` train,
    the next ``n_val`` are the validation subjects (pairs ``k -> k + 1``), the last ``n_test``
    are test images without labels."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = _seeds(shape, n_labels, rng)
    names = {str(v): (BRAIN_NAMES[v - 1] if v <= len(BRAIN_NAMES) else f"Structure-{v:02d}")
             for v in range(1, n_labels + 1)}
    task = _header(
        "OASIS", shape, pairings="unpaired", modality={"0": "MR"},
        labels={"0": {"0": "background", **names}},
        provided={"0": ["image", "label", "mask"] if masks else ["image", "label"]},
        direction={"fixed": 0, "moving": 0},
    )
    training, test = [], []
    n = n_train + n_val + n_test
    for s in range(1, n + 1):
        seeds = base + rng.normal(0, 0.6, base.shape)
        image, labels = anatomy(shape, seeds, rng)
        name = f"OASIS_{s:04d}_0000.nii.gz"
        if s <= n_train + n_val:
            write_image(root / "imagesTr" / name, image, _affine(spacing))
            write_image(root / "labelsTr" / name, labels, _affine(spacing))
            entry = {"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"}
            if masks:
                write_image(root / "masksTr" / name, (labels > 0).astype(np.uint8), _affine(spacing))
                entry["mask"] = f"./masksTr/{name}"
            training.append(entry)
        else:
            write_image(root / "imagesTs" / name, image, _affine(spacing))
            test.append({"image": f"./imagesTs/{name}"})
    first_val = n_train + 1
    val = [
        {"fixed": f"./imagesTr/OASIS_{s:04d}_0000.nii.gz",
         "moving": f"./imagesTr/OASIS_{s + 1:04d}_0000.nii.gz"}
        for s in range(first_val, first_val + n_val - 1)
    ]
    test_pairs = [
        {"fixed": f"./imagesTs/OASIS_{s:04d}_0000.nii.gz",
         "moving": f"./imagesTs/OASIS_{s + 1:04d}_0000.nii.gz"}
        for s in range(n_train + n_val + 1, n)
    ]
    return _write_json(root, _finish(task, training, test, [], val, test_pairs))


def _keypoints(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{v:.3f}" for v in p) + "\n" for p in points))


def make_lungct(
    root: str | Path,
    *,
    shape=(20, 18, 16),
    n_train: int = 3,
    n_val: int = 2,
    n_keypoints: int = 12,
    spacing=(1.5, 1.5, 2.0),
    seed: int = 0,
) -> Path:
    """A LungCT-like paired task (inspiration ``_0000`` fixed, expiration ``_0001`` moving) with
    masks and keypoints, no labels; returns the JSON path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    task = _header(
        "LungCT", shape, pairings="paired", modality={"0": "CT", "1": "CT"}, labels={},
        provided={"0": ["image", "mask", "keypoints"], "1": ["image", "mask", "keypoints"]},
        direction={"fixed": 0, "moving": 1},
    )
    task["img_shift"] = {"fixed": "Insp", "moving": "Exp"}
    training, paired = [], []
    for s in range(1, n_train + n_val + 1):
        image, labels = anatomy(shape, _seeds(shape, 2, rng), rng)
        mask = (labels > 0).astype(np.uint8)
        inner = np.argwhere(ndimage.binary_erosion(mask, iterations=2))
        fixed_points = inner[rng.choice(len(inner), n_keypoints, replace=False)].astype(float)
        fixed_points += rng.uniform(-0.3, 0.3, fixed_points.shape)
        moved = [
            (image, mask, fixed_points),
            (_shifted(image, SHIFT), _shifted(mask, SHIFT), fixed_points + np.asarray(SHIFT)),
        ]
        for m, (img, msk, pts) in enumerate(moved):
            name = f"LungCT_{s:04d}_{m:04d}"
            write_image(root / "imagesTr" / f"{name}.nii.gz", img, _affine(spacing))
            write_image(root / "masksTr" / f"{name}.nii.gz", msk, _affine(spacing))
            _keypoints(root / "keypointsTr" / f"{name}.csv", pts)
            training.append({
                "image": f"./imagesTr/{name}.nii.gz",
                "mask": f"./masksTr/{name}.nii.gz",
                "keypoints": f"./keypointsTr/{name}.csv",
            })
        pair = {"fixed": f"./imagesTr/LungCT_{s:04d}_0000.nii.gz",
                "moving": f"./imagesTr/LungCT_{s:04d}_0001.nii.gz"}
        (paired if s <= n_train else []).append(pair)
    val = [
        {"fixed": f"./imagesTr/LungCT_{s:04d}_0000.nii.gz",
         "moving": f"./imagesTr/LungCT_{s:04d}_0001.nii.gz"}
        for s in range(n_train + 1, n_train + n_val + 1)
    ]
    return _write_json(root, _finish(task, training, [], paired, val, []))


def make_abdomen_mrct(
    root: str | Path,
    *,
    shape=(20, 18, 16),
    pairings: str = "hybrid",
    n_paired: int = 3,
    n_single: int = 2,
    n_val: int = 2,
    list_paired: bool = True,
    spacing=(2.0, 2.0, 2.0),
    seed: int = 0,
) -> Path:
    """An AbdomenMRCT-like multi-modal task, MR (``_0000``, fixed) -> CT (``_0001``, moving),
    with labels and masks. ``hybrid``: ``n_paired`` subjects with both modalities plus
    ``n_single`` MR-only and ``n_single`` CT-only subjects; ``paired``: the paired subjects only.
    ``list_paired`` writes ``training_paired_images``. Returns the JSON path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = {str(v): n for v, n in enumerate(ABDOMEN_NAMES, start=1)}
    labels_json = {m: {"0": "background", **names} for m in ("0", "1")}
    task = _header(
        "AbdomenMRCT", shape, pairings=pairings, modality={"0": "MR", "1": "CT"},
        labels=labels_json,
        provided={m: ["image", "label", "mask"] for m in ("0", "1")},
        direction={"fixed": 0, "moving": 1},
    )
    base = _seeds(shape, len(ABDOMEN_NAMES), rng)
    subjects: list[tuple[int, tuple[int, ...]]] = []
    s = 0
    for _ in range(n_paired):
        s += 1
        subjects.append((s, (0, 1)))
    if pairings == "hybrid":
        for modality in (0, 1):
            for _ in range(n_single):
                s += 1
                subjects.append((s, (modality,)))
    val_subjects = list(range(s + 1, s + n_val + 1))
    subjects += [(v, (0, 1)) for v in val_subjects]
    training, paired = [], []
    for subject, modalities in subjects:
        seeds = base + rng.normal(0, 0.5, base.shape)
        for m in modalities:
            image, labels = anatomy(shape, seeds, rng, modality=m)
            if m == 1:
                image, labels = _shifted(image, SHIFT), _shifted(labels, SHIFT)
            name = f"AbdomenMRCT_{subject:04d}_{m:04d}.nii.gz"
            write_image(root / "imagesTr" / name, image, _affine(spacing))
            write_image(root / "labelsTr" / name, labels, _affine(spacing))
            write_image(root / "masksTr" / name, (labels > 0).astype(np.uint8), _affine(spacing))
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}",
                             "mask": f"./masksTr/{name}"})
        if modalities == (0, 1) and subject not in val_subjects and list_paired:
            paired.append({"fixed": f"./imagesTr/AbdomenMRCT_{subject:04d}_0000.nii.gz",
                           "moving": f"./imagesTr/AbdomenMRCT_{subject:04d}_0001.nii.gz"})
    val = [
        {"fixed": f"./imagesTr/AbdomenMRCT_{v:04d}_0000.nii.gz",
         "moving": f"./imagesTr/AbdomenMRCT_{v:04d}_0001.nii.gz"}
        for v in val_subjects
    ]
    return _write_json(root, _finish(task, training, [], paired, val, []))


LAYOUTS = {"oasis": make_oasis, "lungct": make_lungct, "abdomen_mrct": make_abdomen_mrct}
