"""Example cases for the Figure 1/3 analogue: choosing the cases to show (largest deformation) and
loading one slice of the fixed, moving and warped images and displacement fields of every method.

Selection: by default the test pairs with the largest *deformation*, measured for each pair as the
mean over methods (all but ``identity``) of the mean displacement length in mm over the fixed grid,
read from each method's ``displacement.nii.gz`` (the paper showed pairs "having maximum deformation
between them"). When no displacement files exist, the largest mean NMI gain (``nmi`` minus
``nmi_before``, over methods) is used instead. Ties are broken by fold, case and pair id.

Slice: the slice along the last array axis ``k`` with the most fixed-label voxels, or the middle
slice when the pair has no fixed labels; a 2D pair is shown whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.core.errors import BenchError
from benchmark.core.images import read_displacement, read_image
from metrics.displacement import mean_displacement_length
from reports.runfolder import RunFolder

log = logging.getLogger(__name__)
NO_IMAGES = ("identity",)  # methods not shown as columns: identical to "no registration"


@dataclass
class CaseView:
    """One slice of one test pair for every method.

    Attributes
    ----------
    fold, case, pair : int, str, str
    slice_index : int or None
        Index along ``k`` (None for 2D pairs).
    spacing : tuple of float
        (mm along ``i``, mm along ``j``) of the slice.
    fixed, moving : ndarray, shape (I, J)
    warped : dict of str -> ndarray (I, J)
        Methods whose ``warped.nii.gz`` exists.
    disp : dict of str -> ndarray (C, I, J)
        Displacement components (mm along the array axes) in the slice.
    missing : dict of str -> str
        Methods without outputs for this pair, with the reason.
    score : float
        The selection score (mm or NMI gain).
    """

    fold: int
    case: str
    pair: str
    slice_index: int | None
    spacing: tuple[float, float]
    fixed: np.ndarray
    moving: np.ndarray
    warped: dict[str, np.ndarray] = field(default_factory=dict)
    disp: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    score: float = float("nan")


def shown_methods(run: RunFolder) -> list[str]:
    """The methods that get a column in the case figures."""
    return [m for m in run.methods if m not in NO_IMAGES]


def select_cases(run: RunFolder, n: int, *, progress: bool = True) -> tuple[pd.DataFrame, str]:
    """Rank the test pairs of ``pairs.csv`` by deformation and return the top ``n``.

    Returns
    -------
    top : DataFrame
        Columns ``fold, case, pair, score`` (the ``n`` largest scores, descending).
    criterion : str
        A sentence saying how the score was computed.
    """
    from tqdm.auto import tqdm

    if n < 0:
        raise BenchError(f"--cases must be >= 0, got {n}")
    pairs = run.pairs
    if n == 0 or pairs.empty:
        return pd.DataFrame(columns=["fold", "case", "pair", "score"]), "no pairs shown"
    methods = shown_methods(run)
    scores = []
    for p in tqdm(
        list(pairs.itertuples(index=False)),
        desc="ranking deformations",
        unit="pair",
        disable=not progress,
        leave=False,
    ):
        lengths = []
        for m in methods:
            f = run.pair_dir(m, p.fold, p.case, p.pair) / "displacement.nii.gz"
            if f.is_file():
                lengths.append(mean_displacement_length(read_displacement(f)[0]))
        scores.append(float(np.mean(lengths)) if lengths else np.nan)
    table = pairs[["fold", "case", "pair"]].copy()
    table["score"] = scores
    criterion = (
        "largest deformation: mean over methods of the mean displacement length (mm) "
        "on the fixed grid"
    )
    if not np.isfinite(table["score"]).any():
        res = run.results[run.results["structure"] == "image"]
        after = res[res["metric"] == "nmi"].groupby(["case", "pair"])["value"].mean()
        before = res[res["metric"] == "nmi_before"].groupby(["case", "pair"])["value"].mean()
        gain = (after - before).rename("score").reset_index()
        table = table.drop(columns="score").merge(gain, on=["case", "pair"], how="left")
        criterion = "largest NMI gain (nmi - nmi_before, mean over methods); no displacement files"
    table = table.sort_values(
        ["score", "fold", "case", "pair"],
        ascending=[False, True, True, True],
        na_position="last",
        kind="mergesort",
    )
    return table.head(n).reset_index(drop=True), criterion


def _slice(array: np.ndarray, k: int | None) -> np.ndarray:
    return array if k is None else array[..., k]


def load_case_view(
    run: RunFolder, fold: int, case: str, pair: str, *, score: float = float("nan")
) -> CaseView:
    """Read the slice to show of one test pair (see the module docstring for the slice)."""
    rows = run.pairs[
        (run.pairs["fold"] == fold) & (run.pairs["case"] == case) & (run.pairs["pair"] == pair)
    ]
    if rows.empty:
        raise BenchError(f"{run.path}/pairs.csv: no row for fold {fold}, {case}/{pair}")
    row = rows.iloc[0]
    fixed = read_image(row["fixed"], dtype=np.float32)
    moving = read_image(row["moving"], dtype=np.float32)
    k = None
    if fixed.ndim == 3:
        k = fixed.shape[2] // 2
        if row.get("fixed_labels"):
            labels = read_image(row["fixed_labels"]).array
            per_slice = (labels > 0).reshape(-1, labels.shape[2]).sum(axis=0)
            if per_slice.max() > 0:
                k = int(np.argmax(per_slice))
    view = CaseView(
        fold=int(fold),
        case=case,
        pair=pair,
        slice_index=k,
        spacing=tuple(fixed.spacing[:2]),
        fixed=_slice(fixed.array, k),
        moving=_slice(moving.array, k),
        score=score,
    )
    for m in shown_methods(run):
        folder = run.pair_dir(m, fold, case, pair)
        warped_path = folder / "warped.nii.gz"
        disp_path = folder / "displacement.nii.gz"
        if not folder.is_dir():
            view.missing[m] = "no output folder"
            continue
        if warped_path.is_file():
            view.warped[m] = _slice(read_image(warped_path, dtype=np.float32).array, k)
        else:
            view.missing[m] = "no warped.nii.gz"
        if disp_path.is_file():
            u, _ = read_displacement(disp_path)
            view.disp[m] = u if k is None else u[:, :, :, k]
        elif m not in view.missing:
            view.missing[m] = "no displacement.nii.gz"
    return view
