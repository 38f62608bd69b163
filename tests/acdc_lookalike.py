"""Test helper: write small fake datasets in the real ACDC and DCE layouts.

``make_acdc`` writes ``ROOT/training/patientNNN/`` folders with ``Info.cfg`` files in several
spellings (extra keys, odd spacing around ``:``, lower-case keys), tiny ED/ES frames and ``_gt``
label maps whose shapes, spacings and frame numbers vary per patient, plus the ignored 4D file.
``make_dce`` writes the study-per-folder DCE layout. Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.images import write_displacement, write_image

GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")

#: Info.cfg spellings seen in the wild: the official one and variations a loader must accept.
_INFO_STYLES = (
    "ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 184.0\nNbFrame: {nb}\nWeight: 95.0\n",
    "ED:{ed}\nES :  {es}\nGroup:{group}\nHeight : 160\nNbFrame  : {nb}\nWeight:55.5\n",
    "Group: {group}\nNbFrame: {nb}\nED: {ed}\nES: {es}\nScanner: 1.5T\nComment: a: b\n",
    "\ned: {ed}.0\n\nes:\t{es}\ngroup: {group}\nnbframe: {nb}\n",
)


@dataclass(frozen=True)
class Patient:
    """What :func:`make_acdc` wrote for one patient."""

    case: str
    group: str
    ed: int
    es: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]


def affine_for(spacing, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A diagonal voxel-to-world affine with the given spacing and origin."""
    a = np.diag([*map(float, spacing), 1.0])
    a[:3, 3] = origin
    return a


def label_map(shape, rng: np.random.Generator, values=(1, 2, 3)) -> np.ndarray:
    """A uint8 map with every value in ``values`` present (blocks plus random voxels)."""
    lab = np.zeros(shape, dtype=np.uint8)
    i = shape[0] // 4
    for n, v in enumerate(values):
        lab[i + n, 1 : shape[1] - 1, :] = v
    lab[rng.random(shape) < 0.05] = 0
    lab[i, 1, 0] = values[0]
    return lab


def make_acdc(
    root: str | Path,
    n: int = 8,
    *,
    seed: int = 0,
    subset: str | None = "training",
    groups=GROUPS,
    displacement: bool = False,
) -> Path:
    """Write ``n`` fake ACDC patients under ``root/subset`` (or ``root`` when ``subset`` is None).

    Patient ``k`` (``patient{k+1:03d}``) has group ``groups[k % len(groups)]``, a shape of about
    ``(10..13, 9..11, 3..6)``, spacing ``(1.3..1.7, same, 5..10)`` mm, ED frame 1 (or 2),
    ES frame 5..17 and an Info.cfg in one of four spellings. With ``displacement`` the
    ``patientNNN_disp_ED-ES.nii.gz`` / ``_ES-ED`` ground-truth files are written too.

    Returns
    -------
    Path
        ``root`` (the folder to pass as ``--root``). ``make_acdc.patients`` is not kept; use
        :func:`acdc_patients` for the expected values.
    """
    root = Path(root)
    folder = root / subset if subset else root
    for p in acdc_patients(n, seed=seed, groups=groups):
        rng = np.random.default_rng([seed, int(p.case[-3:])])
        d = folder / p.case
        d.mkdir(parents=True, exist_ok=True)
        style = _INFO_STYLES[int(p.case[-3:]) % len(_INFO_STYLES)]
        nb = p.es + 3
        (d / "Info.cfg").write_text(style.format(ed=p.ed, es=p.es, group=p.group, nb=nb))
        affine = affine_for(p.spacing, origin=(-10.0, 5.0, float(rng.integers(-20, 20))))
        for frame in (p.ed, p.es):
            image = rng.normal(100.0, 20.0, p.shape).astype(np.float32)
            write_image(d / f"{p.case}_frame{frame:02d}.nii.gz", image, affine)
            write_image(d / f"{p.case}_frame{frame:02d}_gt.nii.gz", label_map(p.shape, rng), affine)
        write_image(d / f"{p.case}_4d.nii.gz", np.zeros((*p.shape[:2], 2), np.float32), affine)
        if displacement:
            for pair in ("ED-ES", "ES-ED"):
                disp = rng.normal(0.0, 1.0, (3, *p.shape)).astype(np.float32)
                write_displacement(d / f"{p.case}_disp_{pair}.nii.gz", disp, affine)
    return root


def acdc_patients(n: int = 8, *, seed: int = 0, groups=GROUPS) -> list[Patient]:
    """The patients :func:`make_acdc` writes with the same arguments."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k + 1, 7])
        es = int(rng.integers(5, 18))
        out.append(
            Patient(
                case=f"patient{k + 1:03d}",
                group=groups[k % len(groups)],
                ed=1 + (k % 3 == 2),
                es=es,
                shape=(10 + k % 4, 9 + k % 3, 3 + k % 4),
                spacing=(1.3 + 0.1 * (k % 5), 1.3 + 0.1 * (k % 5), 5.0 + k % 6),
            )
        )
    return out


def make_dce(
    root: str | Path,
    n: int = 5,
    *,
    seed: int = 0,
    phases: int = 5,
    labels: bool = True,
    mask: bool = True,
    displacement: bool = True,
    groups: tuple[str, ...] | None = ("A", "B"),
) -> Path:
    """Write ``n`` fake DCE studies ``ROOT/study_K/phase_NN.nii.gz`` (+ labels, mask, truth).

    Phase files are numbered ``phase_00`` .. (``phases`` of them; with 11 or more phases the
    natural sort matters: ``phase_10`` after ``phase_9``). ``studies.csv`` gets a ``group``
    column when ``groups`` is given.
    """
    root = Path(root)
    rows = ["study,group"]
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        study = f"study_{k + 1}"
        d = root / study
        d.mkdir(parents=True, exist_ok=True)
        shape = (8 + k % 3, 8, 6)
        affine = affine_for((0.8, 0.8, 1.5 + 0.5 * (k % 2)))
        names = [f"phase_{i:02d}" if phases <= 10 else f"phase_{i}" for i in range(phases)]
        for name in names:
            write_image(d / f"{name}.nii.gz", rng.normal(50, 5, shape).astype(np.float32), affine)
            if labels:
                write_image(d / f"{name}_labels.nii.gz", label_map(shape, rng), affine)
        if mask:
            write_image(d / "mask.nii.gz", np.ones(shape, np.uint8), affine)
        if displacement:
            disp = rng.normal(0, 0.5, (3, *shape)).astype(np.float32)
            write_displacement(d / f"disp_{names[0]}-{names[-1]}.nii.gz", disp, affine)
        if groups:
            rows.append(f"{study},{groups[k % len(groups)]}")
    if groups:
        (root / "studies.csv").write_text("\n".join(rows) + "\n")
    return root
