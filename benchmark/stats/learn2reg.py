"""Scores both ways (``bench stats l2r RUN_DIR``): every method's results in MIRBench's
conventions beside Learn2Reg's, and Learn2Reg's ranking beside MIRBench's, for any run folder.

- **Per pair** (:func:`scores_table`, written to ``RUN_DIR/l2r_scores.csv``; columns ``method,
  case, pair, metric, convention, value, unit``): ``mirbench`` values come from the run's
  ``results.csv`` (mean over seeds; label metrics averaged over the structures), ``l2r`` values
  are recomputed from the run's ``displacement.nii.gz`` and the pair's label, mask and landmark
  files by :mod:`metrics.learn2reg` (Learn2Reg's evaluation, re-implemented from its code).
  Metrics: ``dsc``, ``hd95`` (mm / voxels), ``sdlogj`` (log J / log(J + 3)), ``folding`` (% of
  ``J <= 0`` / ``num_foldings``), ``tre``, ``runtime`` (measured / what Learn2Reg's ranking uses).
- **Per method** (:func:`method_table`): the means over pairs, plus DSC30 three ways: MIRBench's
  (:func:`benchmark.stats.metric_ranking.dsc30`), the evaluator's ``np.quantile`` of the
  per-case means (``evaluation.py`` L212-214) and the ranking's mean over the 30 % of case x
  label entries hardest before registration (``Ranking_OASIS.ipynb`` cell 3).
- **Ranking** (:func:`ranking_table`): Learn2Reg's scheme as its ranking notebooks compute it
  (:func:`l2r_ranking`) beside :func:`benchmark.stats.metric_ranking.rank_methods`, each method's
  two ranks and whether they differ.

Learn2Reg code cited: github.com/MDL-UzL/L2R at commit 88475095 (``evaluation/``, ``ranking/``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.core.atomic import atomic_path
from benchmark.core.checks import check_choice
from benchmark.core.errors import BenchError
from benchmark.core.images import Image, read_displacement, read_image
from benchmark.core.landmarks import corresponding_landmarks, landmark_path
from benchmark.core.layout import RESULT_FILE, RunLayout
from benchmark.core.learn2reg import to_l2r
from benchmark.core.numbers import json_value
from benchmark.core.pairs import DISPLACEMENT_FILE, read_labels, read_pairs_table
from benchmark.stats.results import SEED, mean_over_seeds, ordered, read_results
from metrics.learn2reg import JACOBIAN_CROP, L2RPairScores, l2r_pair_scores

__all__ = [
    "MASKED_EVALUATION",
    "SCORES_COLUMNS",
    "L2RRun",
    "read_run",
    "scores_table",
    "method_table",
    "l2r_ranking",
    "ranking_table",
    "l2r_report_tables",
    "NOTES",
    "L2RStats",
    "stats_l2r",
]

#: ``masked_evaluation`` of the challenge's evaluation configs
#: (``evaluation/evaluation_configs/*_evaluation_config.json``); other tasks: masked when the
#: pair has a mask.
MASKED_EVALUATION = {
    "AbdomenCTCT": False,
    "AbdomenMRCT": True,
    "CuRIOUS": False,
    "HippocampusMR": False,
    "LungCT": True,
    "NLST": True,
    "OASIS": False,
    "ThoraxCBCT": False,
}
MASKED = ("auto", "yes", "no")
#: The method that plays Learn2Reg's "Initial" team (the zero field).
INITIAL = "identity"
#: Significance level of ``scores_better`` (``ranking_utils.py`` L25).
P_THRESHOLD = 0.05
#: Share of the DSC30 / TRE30 entries (``Ranking_OASIS.ipynb`` cell 3).
SHARE_30 = 0.3
#: Ranking fallbacks of tasks with labels (``Ranking_OASIS.ipynb`` / ``Ranking_AbdomenMRCT.ipynb``
#: cell 2) and of landmark tasks (``Ranking_LungCT.ipynb`` cell 1): NaN Dice, NaN or infinite
#: HD95, NaN TRE, and SDlogJ / runtime of the Initial team or a team without them.
FALLBACK_LABELS = {"dice": 0.0, "hd95": 10.0, "sdlogj": 1.5, "runtime": 5000.0, "tre": 0.0}
FALLBACK_LANDMARKS = {"dice": 0.0, "hd95": 10.0, "sdlogj": 5.0, "runtime": 3500.0, "tre": 0.0}
SCORES_COLUMNS = ["method", "case", "pair", "metric", "convention", "value", "unit"]


@dataclass
class L2RRun:
    """A run folder read for the two conventions (:func:`read_run`).

    ``pairs`` are the test pairs of ``pairs.csv`` (``fold, case, pair``); ``l2r[method]`` holds
    per pair the method's :class:`~metrics.learn2reg.L2RPairScores` (mean over seeds) or None
    where it has no field; ``initial`` the scores of the zero field (Learn2Reg's "Initial",
    DSC and TRE only); ``results`` the results table, mean over seeds.
    """

    run_dir: Path
    task: str
    labels: dict[str, int]
    methods: list[str]
    pairs: list[tuple[int, str, str]]
    masked: bool
    results: pd.DataFrame
    l2r: dict[str, list[L2RPairScores | None]] = field(default_factory=dict)
    initial: list[L2RPairScores] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        return bool(self.labels) and any(len(s.dice) for s in self.initial)

    @property
    def has_landmarks(self) -> bool:
        return any(s.tre.size for s in self.initial)


# -- reading ------------------------------------------------------------------------------------
def _moving_spacing(path: Path) -> tuple[float, ...]:
    """The moving image's spacing as Learn2Reg's evaluation takes it: the NIfTI ``pixdim``
    (``header.get_zooms()[:3]``); the affine's column norms for other formats."""
    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return tuple(float(z) for z in nib.load(str(path)).header.get_zooms()[:3])
    return read_image(path).spacing


def _landmark_files(row: Any, pattern: str | None) -> tuple[Path, Path] | None:
    if row.fixed_landmarks and row.moving_landmarks:
        return Path(row.fixed_landmarks), Path(row.moving_landmarks)
    if pattern:  # run folders written before pairs.csv listed landmark files
        files = (landmark_path(row.fixed, pattern), landmark_path(row.moving, pattern))
        if all(f.is_file() for f in files):
            return files
    return None


@dataclass
class _PairInputs:
    """A pair's files loaded once for all methods."""

    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    mask: np.ndarray | None
    landmarks: tuple[np.ndarray, np.ndarray] | None
    spacing_moving: tuple[float, ...]
    shape: tuple[int, ...]

    def scores(self, disp: np.ndarray, labels: dict[str, int]) -> L2RPairScores:
        return l2r_pair_scores(
            disp,
            labels=labels,
            fixed_labels=self.fixed_labels,
            moving_labels=self.moving_labels,
            mask=self.mask,
            landmarks=self.landmarks,
            spacing_moving=self.spacing_moving,
        )


def _pair_inputs(row: Any, *, masked: bool, pattern: str | None) -> _PairInputs:
    fixed = read_image(Path(row.fixed))
    labels = [read_labels(Path(p)).array if p else None for p in (row.fixed_labels, row.moving_labels)]
    if labels[0] is None or labels[1] is None:
        labels = [None, None]
    files = _landmark_files(row, pattern)
    return _PairInputs(
        fixed_labels=labels[0],
        moving_labels=labels[1],
        mask=read_image(Path(row.mask)).array if masked and row.mask else None,
        landmarks=None if files is None else corresponding_landmarks(*files),
        spacing_moving=_moving_spacing(Path(row.moving)),
        shape=fixed.shape,
    )


def _mean_scores(scores: list[L2RPairScores]) -> L2RPairScores:
    """The seeds' scores of one pair averaged element by element."""
    if len(scores) == 1:
        return scores[0]
    return L2RPairScores(
        dice=list(np.mean([s.dice for s in scores], axis=0)) if scores[0].dice else [],
        hd95=list(np.mean([s.hd95 for s in scores], axis=0)) if scores[0].hd95 else [],
        sdlogj=float(np.mean([s.sdlogj for s in scores])),
        num_foldings=float(np.mean([s.num_foldings for s in scores])),
        tre=np.mean([s.tre for s in scores], axis=0) if scores[0].tre.size else np.zeros(0),
    )


def _method_scores(
    layout: RunLayout, method: str, seeds: list[int], row: Any, inputs: _PairInputs,
    labels: dict[str, int],
) -> L2RPairScores | None:
    """The method's Learn2Reg scores of one pair (mean over seeds); None when a seed has no
    finished field."""
    per_seed = []
    for seed in seeds:
        folder = layout.pair_dir(method, int(row.fold), row.case, row.pair, seed)
        if not ((folder / RESULT_FILE).is_file() and (folder / DISPLACEMENT_FILE).is_file()):
            return None
        u, affine = read_displacement(folder / DISPLACEMENT_FILE)
        spacing = Image(np.empty((1,) * u.shape[0]), affine).spacing
        per_seed.append(inputs.scores(to_l2r(u, spacing), labels))
    return _mean_scores(per_seed) if per_seed else None


def read_run(run_dir: str | Path, *, masked: str = "auto") -> L2RRun:
    """Read a run folder and compute every method's Learn2Reg numbers from its fields.

    Parameters
    ----------
    run_dir : path
        A run folder of ``bench run`` (``run.json``, ``pairs.csv``, ``results.csv``).
    masked : {"auto", "yes", "no"}
        Learn2Reg's masked SDlogJ: ``auto`` as its configs for the task (:data:`MASKED_EVALUATION`;
        another task: when the pairs have masks).

    Raises
    ------
    BenchError
        Not a run folder, a 2D run (Learn2Reg's evaluation is 3D), unreadable files.
    """
    check_choice("--masked", masked, MASKED)
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    for path in (layout.run_json, layout.pairs_csv, layout.results_csv):
        if not path.is_file():
            raise BenchError(f"{run_dir}: not a run folder ({path.name} is missing)")
    dataset = json.loads(layout.run_json.read_text()).get("dataset", {})
    task = str(dataset.get("name", ""))
    raw = read_results(run_dir)
    table = read_pairs_table(layout.pairs_csv)
    has_mask = bool((table["mask"] != "").any())
    use_mask = {"yes": True, "no": False}.get(masked, MASKED_EVALUATION.get(task, has_mask))
    run = L2RRun(
        run_dir=run_dir, task=task, labels=dict(dataset.get("labels") or {}),
        methods=ordered(raw["method"]), pairs=[], masked=use_mask, results=mean_over_seeds(raw),
    )
    seeds = {
        m: sorted(int(s) for s in raw.loc[raw["method"] == m, SEED].unique())
        if SEED in raw.columns else [0]
        for m in run.methods
    }
    run.l2r = {m: [] for m in run.methods}
    for row in table.itertuples(index=False):
        inputs = _pair_inputs(row, masked=use_mask, pattern=dataset.get("landmarks"))
        if len(inputs.shape) != 3 or min(inputs.shape) <= 2 * JACOBIAN_CROP:
            raise BenchError(
                f"{row.fixed}: image shape {inputs.shape}; Learn2Reg's evaluation needs 3D grids "
                f"larger than {2 * JACOBIAN_CROP} voxels along every axis"
            )
        run.pairs.append((int(row.fold), row.case, row.pair))
        run.initial.append(inputs.scores(np.zeros((*inputs.shape, 3)), run.labels))
        for m in run.methods:
            run.l2r[m].append(_method_scores(layout, m, seeds[m], row, inputs, run.labels))
    return run


# -- tables -------------------------------------------------------------------------------------
def _mirbench_pair_values(run: L2RRun) -> pd.DataFrame:
    """Per method, fold, case, pair: MIRBench's dsc / hd95 (mean over structures), sdlogj,
    folding_pct, tre_mm, runtime_s."""
    r = run.results
    keys = ["method", "fold", "case", "pair"]
    out = r[r["metric"].isin(["dice", "hd95"])].groupby(keys + ["metric"])["value"].mean()
    image = r[r["metric"].isin(["sdlogj", "folding_pct", "tre_mm", "runtime_s"])]
    out = pd.concat([out, image.groupby(keys + ["metric"])["value"].mean()])
    return out.unstack("metric")


def _runtime_for_ranking(run: L2RRun, method: str, measured: float) -> float:
    """The runtime Learn2Reg's ranking takes: the measured one, the fallback for the Initial
    team (the zero field) and for runtimes not measured."""
    fallback = _fallbacks(run)["runtime"]
    return fallback if method == INITIAL or not math.isfinite(measured) else measured


def _fallbacks(run: L2RRun) -> dict[str, float]:
    return FALLBACK_LABELS if run.has_labels or not run.has_landmarks else FALLBACK_LANDMARKS


def _pair_rows(run: L2RRun, method: str, case: str, pair: str, mine: pd.Series,
               l2r: L2RPairScores | None) -> list[list[Any]]:
    """The rows of one method and pair in :func:`scores_table`."""
    nan = float("nan")
    measured = float(mine.get("runtime_s", nan))
    values: list[tuple[str, str, float, str]] = []
    if run.has_labels:
        values += [
            ("dsc", "mirbench", mine.get("dice", nan), "1"),
            ("dsc", "l2r", l2r.dice_mean if l2r else nan, "1"),
            ("hd95", "mirbench", mine.get("hd95", nan), "mm"),
            ("hd95", "l2r", l2r.hd95_mean if l2r else nan, "voxel"),
        ]
    values += [
        ("sdlogj", "mirbench", mine.get("sdlogj", nan), "1"),
        ("sdlogj", "l2r", l2r.sdlogj if l2r else nan, "1"),
        ("folding", "mirbench", mine.get("folding_pct", nan), "%"),
        ("folding", "l2r", l2r.num_foldings if l2r else nan, "voxels"),
    ]
    if run.has_landmarks:
        values += [
            ("tre", "mirbench", mine.get("tre_mm", nan), "mm"),
            ("tre", "l2r", l2r.tre_mean if l2r else nan, "mm"),
        ]
    values += [
        ("runtime", "mirbench", measured, "s"),
        ("runtime", "l2r", _runtime_for_ranking(run, method, measured), "s"),
    ]
    return [[method, case, pair, m, c, float(v), u] for m, c, v, u in values]


def scores_table(run: L2RRun) -> pd.DataFrame:
    """The long table of ``l2r_scores.csv`` (:data:`SCORES_COLUMNS`), pairs in ``pairs.csv``
    order, methods in results order."""
    ours = _mirbench_pair_values(run)
    rows = []
    for m in run.methods:
        for (fold, case, pair), l2r in zip(run.pairs, run.l2r[m], strict=True):
            key = (m, fold, case, pair)
            mine = ours.loc[key] if key in ours.index else pd.Series(dtype=float)
            rows += _pair_rows(run, m, case, pair, mine, l2r)
    return pd.DataFrame(rows, columns=SCORES_COLUMNS)


def write_scores(run: L2RRun, table: pd.DataFrame | None = None) -> Path:
    """Write ``RUN_DIR/l2r_scores.csv`` atomically; return its path."""
    path = RunLayout(run.run_dir).l2r_scores_csv
    with atomic_path(path) as tmp:
        (scores_table(run) if table is None else table).to_csv(tmp, index=False)
    return path


def _matrix(run: L2RRun, method: str, what: str) -> np.ndarray:
    """Pairs x labels of ``dice`` / ``hd95`` (NaN for a pair without a field)."""
    n = len(run.labels)
    return np.array(
        [getattr(s, what) if s is not None else [np.nan] * n for s in run.l2r[method]],
        dtype=np.float64,
    ).reshape(len(run.pairs), n)


def _hardest(initial: np.ndarray) -> np.ndarray:
    """Indices of the ``round(0.3 n)`` smallest entries of the flattened ``initial`` (NaN -> 0),
    as ``np.argsort(dice0.reshape(-1))[:round(num_cases * num_labels * .3)]``."""
    flat = np.nan_to_num(np.asarray(initial, dtype=np.float64).reshape(-1), nan=0.0)
    return np.argsort(flat)[: round(flat.size * SHARE_30)]


def _quantile(values: np.ndarray, q: float) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(np.quantile(v, q)) if v.size and not np.isnan(v).any() else float("nan")


def _plain_mean(values) -> float:
    """The evaluator's aggregate: ``np.mean`` (NaN or inf when a case is)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return float(v.mean()) if v.size else float("nan")


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def method_table(run: L2RRun) -> pd.DataFrame:
    """One row per method: both conventions side by side (means over pairs; MIRBench's leave
    undefined pairs out as its summaries do, Learn2Reg's are its evaluator's plain means)."""
    from benchmark.stats.metric_ranking import dsc30

    scores = scores_table(run)
    mine = dsc30(run.results, methods=run.methods).set_index("method")["dsc30"]
    hardest = _hardest([s.dice for s in run.initial]) if run.has_labels else None
    rows = []
    for m in run.methods:
        own = scores[scores["method"] == m]

        def col(metric, convention, own=own):
            return own[(own["metric"] == metric) & (own["convention"] == convention)]["value"]

        row: dict[str, Any] = {"method": m}
        if run.has_labels:
            dice = np.nan_to_num(_matrix(run, m, "dice"), nan=FALLBACK_LABELS["dice"])
            row |= {
                "DSC (MIRBench)": _nanmean(col("dsc", "mirbench")),
                "DSC (L2R)": _plain_mean(col("dsc", "l2r")),
                "DSC30 (MIRBench)": float(mine.get(m, np.nan)),
                "DSC30 (L2R evaluator)": _quantile(col("dsc", "l2r"), SHARE_30),
                "DSC30 (L2R ranking)": float(dice.reshape(-1)[hardest].mean()),
                "HD95 mm (MIRBench)": _nanmean(col("hd95", "mirbench")),
                "HD95 voxels (L2R)": _plain_mean(col("hd95", "l2r")),
            }
        row |= {
            "SDlogJ log J (MIRBench)": _nanmean(col("sdlogj", "mirbench")),
            "SDlogJ log(J+3) (L2R)": _plain_mean(col("sdlogj", "l2r")),
            "folding % J<=0 (MIRBench)": _nanmean(col("folding", "mirbench")),
            "num_foldings (L2R)": _plain_mean(col("folding", "l2r")),
        }
        if run.has_landmarks:
            row |= {
                "TRE mm (MIRBench)": _nanmean(col("tre", "mirbench")),
                "TRE mm (L2R)": _plain_mean(col("tre", "l2r")),
            }
        row |= {
            "runtime s (MIRBench)": _nanmean(col("runtime", "mirbench")),
            "runtime s (L2R ranking)": _plain_mean(col("runtime", "l2r")),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def evaluator_aggregates(run: L2RRun) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and metric the evaluator's ``mean``, ``std`` and ``30`` over the per-case
    values (``evaluation.py`` L203-214: the 0.7-quantile for sdlogj and tre, else 0.3)."""
    scores = scores_table(run)
    l2r = scores[(scores["convention"] == "l2r") & (scores["metric"] != "runtime")]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (m, metric), block in l2r.groupby(["method", "metric"], sort=False):
        v = block["value"].to_numpy()
        q = 0.7 if metric in ("sdlogj", "tre") else 0.3
        with np.errstate(invalid="ignore"):
            out.setdefault(m, {})[metric] = {
                "mean": _plain_mean(v), "std": float(v.std()) if v.size else float("nan"),
                "30": _quantile(v, q),
            }
    return out


# -- Learn2Reg's ranking ------------------------------------------------------------------------
def beaten_by(values: np.ndarray, *, p_threshold: float = P_THRESHOLD) -> np.ndarray:
    """Per method (row of ``values``, higher is better) the number of methods whose values are
    significantly higher: unpaired Wilcoxon rank-sum test, statistic > 0 and P < ``p_threshold``
    (``ranking_utils.py`` L26-34, ``scores_better``)."""
    from scipy import stats

    n = len(values)
    better = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            statistic, p = stats.ranksums(values[i], values[j])
            if statistic > 0 and p < p_threshold:
                better[i, j] = 1
    return better.sum(axis=0)


def rank_scores(beaten: Sequence[float]) -> np.ndarray:
    """Learn2Reg's rank score in ``[0.1, 1]`` (``ranking_utils.py`` L36-52, ``rankscore_avgtie``
    applied to ``-beaten``): ``linspace(0.1, 1, N)`` in ascending order of ``-beaten`` (the most
    beaten method gets 0.1), tied methods the mean of their places' scores."""
    keys = -np.asarray(beaten).astype(np.int64)
    n = len(keys)
    scale = np.linspace(0.1, 1, n)
    place = np.zeros(n, dtype=np.int32)
    place[np.argsort(keys)] = np.arange(n)
    out = np.zeros(n)
    for k in set(keys.tolist()):
        members = [i for i in range(n) if keys[i] == k]
        total = 0.0
        for i in members:
            total += scale[place[i]]
        out[members] = total / max(len(members), 1e-6)
    return out


def _ranking_inputs(run: L2RRun) -> list[tuple[str, np.ndarray, float]]:
    """``(name, methods x values, sign)`` of every metric Learn2Reg's notebooks rank (see
    :func:`l2r_ranking`); ``sign`` -1 for lower-is-better metrics (ranked negated)."""
    fb = _fallbacks(run)
    columns: list[tuple[str, np.ndarray, float]] = []
    ms = run.methods
    if run.has_labels:
        dice = np.stack([np.nan_to_num(_matrix(run, m, "dice"), nan=fb["dice"]) for m in ms])
        hd = np.stack([_matrix(run, m, "hd95") for m in ms])
        hd[~np.isfinite(hd)] = fb["hd95"]
        hardest = _hardest([s.dice for s in run.initial])
        columns += [
            ("DSC", dice.reshape(len(ms), -1), 1.0),
            ("DSC30", dice.reshape(len(ms), -1)[:, hardest], 1.0),
            ("HD95", hd.reshape(len(ms), -1), -1.0),
        ]
    if run.has_landmarks:
        sizes = [s.tre.size for s in run.initial]
        tre = np.stack([
            np.concatenate([s.tre if s is not None else np.full(k, np.nan)
                            for s, k in zip(run.l2r[m], sizes, strict=True)])
            for m in ms
        ])
        tre = np.nan_to_num(tre, nan=fb["tre"])
        easiest = _hardest(np.concatenate([s.tre for s in run.initial]))
        tre_columns = [("TRE", tre, -1.0)]
        if not run.has_labels:  # Ranking_LungCT.ipynb cell 3 ranks TRE twice
            tre_columns.append(("TRE (again)", tre, -1.0))
        columns += tre_columns + [("TRE30", tre[:, easiest], -1.0)]
    sdlogj = np.array([
        [fb["sdlogj"] if m == INITIAL or s is None or not math.isfinite(s.sdlogj) else s.sdlogj
         for s in run.l2r[m]]
        for m in ms
    ])
    scores = scores_table(run)
    runtime = np.stack([
        scores[(scores["method"] == m) & (scores["metric"] == "runtime")
               & (scores["convention"] == "l2r")]["value"].to_numpy()
        for m in ms
    ])
    return columns + [("SDlogJ", sdlogj, -1.0), ("runtime", runtime, -1.0)]


def l2r_ranking(run: L2RRun) -> pd.DataFrame:
    """Learn2Reg's ranking of the run's methods, as its notebooks compute it.

    Per metric: every method's values flattened (case x label for DSC and HD95, case for SDlogJ
    and runtime, landmark for TRE) after the fallbacks (:data:`FALLBACK_LABELS` /
    :data:`FALLBACK_LANDMARKS`), lower-is-better metrics negated; :func:`beaten_by` and
    :func:`rank_scores`; the score is the geometric mean of the metric scores
    (``Ranking_OASIS.ipynb`` cells 5-8), with and without runtime; rank = 1 + methods with a
    higher score. Metrics: tasks with labels DSC, DSC30, HD95, SDlogJ, runtime (OASIS,
    AbdomenMRCT); landmark tasks TRE twice, TRE30, SDlogJ, runtime (LungCT; TRE30 as the NLST
    snapshot takes it, the 30 % of landmarks with the smallest TRE before registration, since
    LungCT's ``ordered_difficulty.csv`` is not public); both: the label metrics, TRE, TRE30.
    The method ``identity`` is the "Initial" team.

    Returns
    -------
    DataFrame
        ``method``, one ``score <metric>`` column per metric, ``L2R score``, ``L2R rank``,
        ``L2R score without runtime``, ``L2R rank without runtime``.
    """
    columns = _ranking_inputs(run)
    out = pd.DataFrame({"method": run.methods})
    for name, values, sign in columns:
        out[f"score {name}"] = rank_scores(beaten_by(sign * values))
    parts = out[[f"score {name}" for name, *_ in columns]].to_numpy()
    for label, block in (("", parts), (" without runtime", parts[:, :-1])):
        geo = np.power(np.prod(block, axis=1), 1 / block.shape[1])
        out[f"L2R score{label}"] = geo
        out[f"L2R rank{label}"] = [1 + int((geo > g).sum()) for g in geo]
    return out


def ranking_table(run: L2RRun) -> pd.DataFrame:
    """Learn2Reg's ranking (:func:`l2r_ranking`) beside MIRBench's case-level paired ranking
    (:func:`~benchmark.stats.metric_ranking.rank_methods`, no bootstrap), with ``rank differs``
    (``yes`` when the two ranks differ), sorted by Learn2Reg's rank."""
    from benchmark.stats.metric_ranking import rank_methods

    table = l2r_ranking(run)
    try:
        ours = rank_methods(run.results, methods=run.methods, n_boot=0).ranks.set_index("method")
        table["MIRBench geo mean"] = [float(ours.loc[m, "geo_mean"]) for m in run.methods]
        table["MIRBench rank"] = [int(ours.loc[m, "rank"]) for m in run.methods]
    except BenchError:  # one method, or no rankable metric
        table["MIRBench geo mean"] = np.nan
        table["MIRBench rank"] = np.nan
    table["rank differs"] = np.where(table["MIRBench rank"] == table["L2R rank"], "no", "yes")
    return table.sort_values(["L2R rank", "method"], kind="stable").reset_index(drop=True)


# -- notes ---------------------------------------------------------------------------------------
#: One note per difference between the conventions, citing the Learn2Reg code (commit 88475095).
NOTES: tuple[tuple[str, str], ...] = (
    ("DSC", "Same overlap formula. Learn2Reg warps the labels with map_coordinates(order=0) "
     "(evaluation.py L117-120) and leaves a structure out when it is absent from the fixed or "
     "the moving labels (utils.py L55-56, nanmean over the rest); MIRBench warps with its own "
     "nearest-neighbour warp and counts a structure the registration lost as 0 (label-lost)."),
    ("DSC30", "Three definitions. Learn2Reg's evaluator: np.quantile of the per-case mean DSC at "
     "0.3 (evaluation.py L212-214), a single case's value, not a mean; its ranking: the mean over "
     "the round(0.3 x cases x labels) case x label entries with the lowest DSC before "
     "registration (Ranking_OASIS.ipynb cell 3, ranking_utils.rubustify); MIRBench: the mean "
     "case DSC over the ceil(0.3 n) cases with the lowest DSC before registration "
     "(metric_ranking.dsc30)."),
    ("HD95", "Learn2Reg computes it with spacing np.ones(3) (utils.py L68): voxels, whatever the "
     "voxel size, as a surface-area-weighted 95th percentile of distances between surface "
     "elements on the 2x2x2-neighbourhood grid (surface_distance/metrics.py L324-362), inf when "
     "a structure was warped away; MIRBench: millimetres, between boundary voxel centres, the "
     "larger directed 95th percentile (metrics/hausdorff.py). The evaluator's '30' of HD95 is "
     "the 0.3-quantile, i.e. the best 30 % (evaluation.py L214)."),
    ("SDlogJ", "Learn2Reg: std(log(clip(J + 3, 1e-9, 1e9))) over the grid cropped by 2 voxels "
     "(evaluation.py L139-146, utils.py L33). The +3 (issues #7, #8) compresses the logarithm: "
     "near J = 1, log(J + 3) ~ log 4 + (J - 1)/4, so its SD is about a quarter of the SD of "
     "log J, and folds (J <= 0) are no longer penalised by the clip. MIRBench: "
     "std(log(clip(J, 1e-9, 1e9))) over the whole grid, central differences with the spacing "
     "(metrics/folding.py)."),
    ("folding", "Learn2Reg's num_foldings counts clip(J + 3, 1e-9, 1e9) <= 0 after the clip "
     "(evaluation.py L147), which is 0 for every field (issues #6, #8); MIRBench reports the "
     "share of voxels with J <= 0 (folding_pct; folding_fwd_pct with forward differences)."),
    ("TRE", "Learn2Reg interpolates the voxel field at the fixed landmarks with cubic B-splines "
     "(map_coordinates' default order 3, 0 outside) and scales with the moving image's pixdim "
     "(utils.py L40-49); MIRBench interpolates linearly and scales with the fixed grid's spacing "
     "(metrics/landmarks.py)."),
    ("ranking", "Learn2Reg ranks with the unpaired Wilcoxon rank-sum test "
     "(scipy.stats.ranksums, ranking_utils.py L26-34) on every case x label value pooled as "
     "independent samples, although its readme describes a Wilcoxon signed-rank test; a "
     "method's score is linspace(0.1, 1, N) by the number of methods significantly better, ties "
     "averaged (L36-52), combined by the geometric mean over DSC, DSC30, HD95, SDlogJ and "
     "runtime (Ranking_OASIS.ipynb cells 5-8) after replacing NaN DSC by 0, NaN or infinite "
     "HD95 by 10, NaN TRE by 0 (a failed pair scores as perfect), and giving the zero field "
     "('Initial') and unmeasured runtimes SDlogJ 1.5 and 5000 s (LungCT: 5 and 3500 s). "
     "MIRBench: paired Wilcoxon signed-rank tests over cases with Holm correction, rank = 1 + "
     "methods with more wins, geometric mean of the ranks (metric_ranking.py)."),
)


def _notes_for(run: L2RRun) -> list[str]:
    topics = {"SDlogJ", "folding", "ranking"}
    topics |= {"DSC", "DSC30", "HD95"} if run.has_labels else set()
    topics |= {"TRE"} if run.has_landmarks else set()
    notes = [f"{topic}: {text}" for topic, text in NOTES if topic in topics]
    notes.append(
        f"SDlogJ of Learn2Reg is {'masked by the fixed mask' if run.masked else 'unmasked'} "
        f"(its config for {run.task or 'this task'}: masked_evaluation "
        f"{MASKED_EVALUATION.get(run.task, 'not known; masked when the pairs have masks')})."
    )
    return notes


def l2r_report_tables(
    run_dir: str | Path, *, masked: str = "auto"
) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """The tables and notes of a report section on the two conventions: ``[("Scores both ways",
    method_table), ("Ranking: Learn2Reg and MIRBench", ranking_table)]`` and one note per
    difference (citing Learn2Reg's code). Writes nothing."""
    run = read_run(run_dir, masked=masked)
    tables = [
        ("Scores both ways (means over pairs)", method_table(run)),
        ("Ranking: Learn2Reg and MIRBench", ranking_table(run)),
    ]
    return tables, _notes_for(run)


# -- the command --------------------------------------------------------------------------------
def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


@dataclass
class L2RStats:
    """What ``bench stats l2r`` computes (:func:`stats_l2r`); :meth:`to_dict` is its ``--json``
    object, :meth:`to_text` its plain text."""

    run: L2RRun
    scores_csv: Path
    methods: pd.DataFrame
    ranking: pd.DataFrame
    evaluator: dict[str, dict[str, dict[str, float]]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run.run_dir),
            "task": self.run.task,
            "masked_sdlogj": self.run.masked,
            "scores_csv": str(self.scores_csv),
            "methods": _records(self.methods),
            "ranking": _records(self.ranking),
            "evaluator": {
                m: {k: {s: json_value(v) for s, v in d.items()} for k, d in per.items()}
                for m, per in self.evaluator.items()
            },
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        def shown(frame: pd.DataFrame) -> str:
            cells = frame.set_index("method").T.astype(object)
            return cells.map(
                lambda v: f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)
            ).to_string()

        lines = [
            f"Scores both ways, {self.run.task or self.run.run_dir} (means over pairs; per "
            f"pair: {self.scores_csv})",
            shown(self.methods),
            "",
            "Ranking: Learn2Reg's scheme beside MIRBench's (rank 1 = best)",
            shown(self.ranking),
            "",
            "Differences:",
        ]
        return "\n".join(lines + [f"- {note}" for note in self.notes])


def stats_l2r(run_dir: str | Path, *, masked: str = "auto") -> L2RStats:
    """Compute everything of ``bench stats l2r`` and write ``RUN_DIR/l2r_scores.csv``."""
    run = read_run(run_dir, masked=masked)
    table = scores_table(run)
    path = write_scores(run, table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return L2RStats(
            run=run, scores_csv=path, methods=method_table(run), ranking=ranking_table(run),
            evaluator=evaluator_aggregates(run), notes=_notes_for(run),
        )
