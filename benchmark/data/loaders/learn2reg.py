"""Learn2Reg loader (``learn2reg``): a downloaded Learn2Reg task folder, read from its
``TASK_dataset.json`` alone (``bench run --dataset PATH/TASK_dataset.json``; no manifest).

The task JSON (keys as in the challenge's downloads, e.g. ``OASIS_dataset.json``)::

    name, description, pairings ("paired" | "unpaired" | "hybrid"), registration_direction
    ({"fixed": 0, "moving": 1}), modality ({"0": "MR", "1": "CT"}), labels ({"0": {"1": "liver",
    ...}} or {"1": "liver", ...}; {} without label maps), tensorImageShape ({"0": [I, J, K]}),
    training / test ([{"image": ./imagesTr/TASK_SSSS_MMMM.nii.gz, "label": ..., "mask": ...,
    "keypoints": ./keypointsTr/TASK_SSSS_MMMM.csv}, ...]), training_paired_images,
    registration_val / registration_test ([{"fixed": ..., "moving": ...}, ...])

- **Evaluated pairs**: ``registration_val`` (default) or ``registration_test``, chosen by the
  dataset option ``split`` (``--set split=test``; manifest key ``task_split``). Case = the fixed
  image's subject ``SSSS``, pair = ``SSSS_MMMM-SSSS_MMMM`` (fixed, moving).
- **Training pairs** (the learned methods' fold 0 training set; the folds are fixed by the task,
  not drawn): the ``training`` images that are not in an evaluated pair. ``paired`` tasks pair a
  subject's fixed-modality image with its moving-modality image (``registration_direction``,
  else the evaluated pairs' modalities), or take ``training_paired_images`` when the JSON lists
  them; ``unpaired`` tasks pair every fixed-modality image with a random moving-modality image of
  another subject (``numpy.random.default_rng(training_seed)``, seed 0; the pairs are recorded in
  the run's ``folds.json``); ``hybrid`` tasks do the first for subjects with both modalities and
  the second for the rest.
- **Files of an image**: its ``label``, ``mask`` and keypoint entries in ``training`` / ``test``;
  an image without an entry, or an entry without the key, uses the file the challenge's
  evaluation derives (``imagesTr`` -> ``labelsTr`` / ``masksTr`` / ``keypointsTr`` and
  ``.nii.gz`` -> ``.csv``) when it exists. The mask of a pair is the fixed image's. Landmarks
  (TRE): ``landmarks`` (manual) before ``keypoints``, with the modality-pair suffix of tasks whose
  keypoints depend on the pair (``keypoints01``); headerless CSVs of ``i,j,k`` voxel coordinates,
  row ``r`` of the fixed file matching row ``r`` of the moving file
  (:mod:`benchmark.core.landmarks`).
- **Modalities**: each pair records its fixed and moving modality names (``meta``); the task's
  ``contrast`` (``same`` | ``different``: do the evaluated pairs' fixed and moving modality names
  differ) is inferred from them and stated as the manifest's ``contrast``, which ``bench data
  check`` prints and ``run.json`` records.

A JSON that is not a task description (unreadable, no ``pairings``, bad ``labels``) is an error
naming the file and key; entries that point nowhere, image names that are not Learn2Reg names, and
images whose shape is not ``tensorImageShape`` are layout problems naming the key and file, listed
together by ``bench data check``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.core.errors import BenchError
from benchmark.core.learn2reg import image_ids, keypoints_csv
from benchmark.core.pairs import PairSpec
from benchmark.data.loaders import Scan
from benchmark.data.spec import DatasetSource

if TYPE_CHECKING:
    from benchmark.data.folds import Fold

#: ``--set`` keys the task takes, each the manifest key it sets.
#: Its manifest keys (written by :func:`manifest_mapping`).
MANIFEST_KEYS = ("task_json", "task_split", "training_seed", "modalities")
SET_OPTIONS = {"split": "task_split"}
#: A task may have no label maps (``labels: {}``: LungCT, NLST).
LABELS_OPTIONAL = True
#: ``split`` value -> the JSON list of evaluated pairs.
SPLITS = {"val": "registration_val", "test": "registration_test"}
#: The JSON list of training images.
TRAINING = "training"
#: Values of the JSON's ``pairings``.
PAIRINGS = ("paired", "unpaired", "hybrid")
#: File roles of an image entry and the folder the evaluation derives them in (``imagesTr`` ->).
DERIVED = {"label": "labels", "mask": "masks"}
#: Landmark keys of an entry, preferred first.
LANDMARK_KEYS = ("landmarks", "keypoints")
SUFFIX = "_dataset.json"


# -- the JSON ----------------------------------------------------------------------------------
def read_task(path: Path) -> dict[str, Any]:
    """The parsed task JSON; BenchError naming the file when it is no JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the task file ({type(exc).__name__}: {exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise BenchError(
            f"{path}: expected a JSON object with the Learn2Reg task keys (name, pairings, "
            f"training, registration_val, ...), got {type(data).__name__}"
        )
    return data


def _label_names(path: Path, data: dict[str, Any]) -> dict[str, int]:
    """The task's structures, name -> value in value order, from ``labels`` (per modality
    ``{"0": {"1": "liver"}}`` merged, or flat ``{"1": "liver"}``); background 0 left out."""
    value = data.get("labels")
    if value is None or value == {} or value == []:
        return {}
    per_modality = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
    flat = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if not (per_modality or flat):
        raise BenchError(
            f"{path}: key 'labels' must map label values to names, per modality "
            '({"0": {"1": "liver", ...}}) or flat ({"1": "liver", ...}), got '
            f"{json.dumps(value)[:120]}"
        )
    names: dict[int, str] = {}
    for where, mapping in ({k: v for k, v in value.items()} if per_modality else {"": value}).items():
        for key, name in mapping.items():
            at = f"labels[{where!r}][{key!r}]" if where else f"labels[{key!r}]"
            try:
                number = int(key)
            except (TypeError, ValueError):
                raise BenchError(f"{path}: {at}: {key!r} is not a label value (an integer)") from None
            if number < 0 or not isinstance(name, str):
                raise BenchError(f"{path}: {at}: expected a value >= 0 and a name, got {name!r}")
            if number and names.setdefault(number, name.strip()) != name.strip():
                raise BenchError(
                    f"{path}: {at}: label {number} is named {name!r} here and "
                    f"{names[number]!r} for another modality"
                )
    out: dict[str, int] = {}
    for number in sorted(names):
        name = names[number] or f"label{number}"
        out[name if name not in out else f"{name}-{number}"] = number
    return out


def _modalities(path: Path, data: dict[str, Any]) -> dict[str, str]:
    """``modality``: index (``"0"``) -> name (``"MR"``); {} when the JSON has none."""
    value = data.get("modality", {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BenchError(
            f'{path}: key \'modality\' must map modality indices to names ({{"0": "MR", '
            f'"1": "CT"}}), got {json.dumps(value)[:120]}'
        )
    try:
        return {str(int(k)): v for k, v in value.items()}
    except ValueError:
        raise BenchError(f"{path}: key 'modality': keys must be modality indices (0, 1, ...)") from None


def _modality_name(modalities: dict[str, str], modality: str) -> str:
    """The name of modality ``MMMM`` (``"0001"`` -> ``modality["1"]``), else the index."""
    return modalities.get(str(int(modality)), str(int(modality)))


def _pair_lists(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(fixed, moving)`` of every well-formed evaluated pair, val and test."""
    out = []
    for key in SPLITS.values():
        items = data.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("fixed"), str):
                if isinstance(item.get("moving"), str):
                    out.append((item["fixed"], item["moving"]))
    return out


def _contrast(data: dict[str, Any], modalities: dict[str, str]) -> str:
    """``different`` when an evaluated pair's fixed and moving modality names differ."""
    for fixed, moving in _pair_lists(data):
        f, m = image_ids(fixed), image_ids(moving)
        if f and m and _modality_name(modalities, f[1]) != _modality_name(modalities, m[1]):
            return "different"
    return "same"


def manifest_mapping(path: Path) -> dict[str, Any]:
    """The manifest mapping of the task JSON ``path`` (what a manifest ``.yaml`` would say):
    loader ``learn2reg``, the data folder beside the JSON, the task's name and labels.

    Raises
    ------
    BenchError
        Unreadable file, invalid JSON, a missing or unknown ``pairings``, bad ``labels`` or
        ``modality`` (naming the file and key).
    """
    path = Path(path)
    data = read_task(path)
    default = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    name = data.get("name", default)
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise BenchError(f"{path}: key 'name' must be the task name, got {name!r}")
    pairings = data.get("pairings")
    if pairings not in PAIRINGS:
        raise BenchError(
            f"{path}: key 'pairings' is {pairings!r}; expected one of {', '.join(PAIRINGS)} "
            "(how the task pairs its training images)"
        )
    for key in (TRAINING, SPLITS["val"]):
        if not isinstance(data.get(key), list):
            raise BenchError(
                f"{path}: key {key!r} is {'missing' if key not in data else 'not a list'}; "
                "expected a list of "
                + ("image entries {image, label, ...}" if key == TRAINING else "{fixed, moving} pairs")
            )
    modalities = _modalities(path, data)
    return {
        "name": name.strip(),
        "description": str(data.get("description", "")).strip(),
        "loader": "learn2reg",
        "root": ".",
        "labels": _label_names(path, data),
        "training_pairs": TRAINING,
        "task_json": path.name,
        "task_split": "val",
        "training_seed": 0,
        "modalities": modalities,
        "contrast": _contrast(data, modalities),
    }


def check_options(raw: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``raw`` after ``--set split=...``; BenchError for a value other than val / test."""
    split = raw.get("task_split")
    if split not in SPLITS:
        raise BenchError(
            f"--set split={options.get('split')!r}: expected one of {', '.join(SPLITS)} (the "
            f"task's {' or '.join(SPLITS.values())} pairs)"
        )
    return raw


def pairing_rule(raw: dict[str, Any]) -> list[str]:
    """``[registration_val]`` / ``[registration_test]`` (by ``task_split``) or ``[training]``."""
    if not isinstance(raw.get("task_json"), str) or not raw["task_json"]:
        raise BenchError("a learn2reg manifest needs task_json: the task's TASK_dataset.json")
    rule = raw.get("pairs")
    if rule is None:
        split = raw.get("task_split", "val")
        if split not in SPLITS:
            raise BenchError(f"task_split must be one of {', '.join(SPLITS)}, got {split!r}")
        return [SPLITS[split]]
    if rule not in (TRAINING, *SPLITS.values()):
        raise BenchError(
            f"pairs must be one of {TRAINING}, {', '.join(SPLITS.values())}, got {rule!r}"
        )
    return [rule]


# -- pairs -------------------------------------------------------------------------------------
def _norm(rel: str) -> str:
    """A JSON path without ``./`` and doubled slashes (``./imagesTr/x`` -> ``imagesTr/x``)."""
    return PurePosixPath(os.path.normpath(rel.replace("\\", "/"))).as_posix()


class _Task:
    """One task JSON and its data folder, with the look-ups of the pair builders."""

    def __init__(self, manifest: DatasetSource, result: Scan):
        raw = manifest.raw
        task = Path(raw["task_json"]).expanduser()
        self.path = task if task.is_absolute() else manifest.path.parent / task
        self.data = read_task(self.path)
        self.manifest, self.result, self.root = manifest, result, manifest.root
        self.modalities = _modalities(self.path, self.data)
        shape = self.data.get("tensorImageShape", {})
        shape = shape.get("0") if isinstance(shape, dict) else None
        self.shape = tuple(shape) if isinstance(shape, list) else None
        self.entries: dict[str, tuple[str, dict[str, Any]]] = {}
        for key in (TRAINING, "test"):
            items = self.data.get(key, [])
            for i, entry in enumerate(items if isinstance(items, list) else []):
                if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                    self.problem(f"{key}[{i}]: expected an entry with an image path, got {entry!r}")
                    continue
                self.entries.setdefault(_norm(entry["image"]), (f"{key}[{i}]", entry))
        self._shapes: dict[Path, tuple[int, ...] | None] = {}

    def problem(self, message: str) -> None:
        self.result.problems.append(f"{self.path}: {message}")

    def file(self, rel: str) -> Path:
        return self.root / _norm(rel)

    def listed(self, image: str, key: str) -> tuple[str, Path] | None:
        """``(where, file)`` of an entry's ``key`` (``training[3].label``), or None."""
        where, entry = self.entries.get(_norm(image), ("", {}))
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            return None
        target = self.file(value)
        return f"{where}.{key}", keypoints_csv(target) if key.startswith(LANDMARK_KEYS) else target

    def derived(self, image: str, folder: str, *, csv: bool = False) -> Path | None:
        """The file the evaluation derives from ``image`` (``imagesTr`` -> ``folderTr``)."""
        rel = _norm(image)
        if "images" not in rel:
            return None
        target = self.file(rel.replace("images", folder))
        target = keypoints_csv(target) if csv else target
        return target if target.is_file() else None

    def image_file(self, image: str, key: str, folder: str, where: str) -> Path | None:
        """An image's ``label`` / ``mask`` (listed, else derived); a listed file that is not
        there is a problem."""
        found = self.listed(image, key)
        if found is not None:
            if found[1].is_file():
                return found[1]
            self.problem(f"{where}: {found[0]} {found[1]} not found")
            return None
        return self.derived(image, folder)

    def landmarks(self, fixed: str, moving: str, ids, where: str) -> tuple[Path, Path] | None:
        """The pair's landmark files: the first key both images have (see the module)."""
        (_, fm), (_, mm) = ids
        suffixes = [""]
        if not (fm == mm or (fm, mm) == ("0000", "0001")):
            lo, hi = sorted((fm, mm))
            suffixes = [f"{int(lo)}{int(hi)}", f"{lo}{hi}", ""]
        for suffix in suffixes:
            for base in LANDMARK_KEYS:
                key = base + suffix
                files = []
                for image in (fixed, moving):
                    found = self.listed(image, key)
                    if found is not None and not found[1].is_file():
                        self.problem(f"{where}: {found[0]} {found[1]} not found")
                        return None
                    files.append(found[1] if found else self.derived(image, key, csv=True))
                if all(f is not None for f in files):
                    return files[0], files[1]
        return None

    def image_shape(self, file: Path) -> tuple[int, ...] | None:
        """The shape in a NIfTI header (no voxels read); None for other files or bad headers
        (``bench data check`` reports those when it reads the file)."""
        if file not in self._shapes:
            shape = None
            if file.name.endswith((".nii", ".nii.gz")):
                try:
                    import nibabel as nib

                    shape = tuple(int(n) for n in nib.load(str(file)).shape)
                except Exception:  # nibabel raises many types for a damaged header
                    shape = None
            self._shapes[file] = shape
        return self._shapes[file]

    def pair(self, fixed: str, moving: str, where: str) -> PairSpec | None:
        """The PairSpec of one (fixed, moving) pair of JSON paths, or None after a problem."""
        ids = (image_ids(fixed), image_ids(moving))
        bad = [p for p, i in zip((fixed, moving), ids, strict=True) if i is None]
        if bad:
            self.problem(
                f"{where}: {bad[0]!r} is not a Learn2Reg image name TASK_SSSS_MMMM.nii.gz "
                "(subject and modality, 4 digits each: the evaluation and the disp_* file names "
                "are made of them)"
            )
            return None
        files = {"fixed": self.file(fixed), "moving": self.file(moving)}
        missing = [f"{role} {files[role]}" for role in files if not files[role].is_file()]
        if missing:
            self.problem(f"{where}: not found: {'; '.join(missing)}")
            return None
        if self.shape is not None:
            for role, file in files.items():
                shape = self.image_shape(file)
                if shape is not None and shape != self.shape:
                    self.problem(
                        f"{where}: {role} image {file} has shape {shape}; the task's "
                        f"tensorImageShape is {list(self.shape)} (the shape of its fields)"
                    )
                    return None
        labels = [self.image_file(p, "label", DERIVED["label"], where) for p in (fixed, moving)]
        if (labels[0] is None) != (labels[1] is None):
            have = "fixed" if labels[0] is not None else "moving"
            self.problem(
                f"{where}: only the {have} image has a label map ({labels[0] or labels[1]}); "
                "Dice needs both or neither"
            )
            return None
        landmarks = self.landmarks(fixed, moving, ids, where)
        (fs, fm), (ms, mm) = ids
        names = (_modality_name(self.modalities, fm), _modality_name(self.modalities, mm))
        return PairSpec(
            dataset=self.manifest.name,
            case=fs,
            pair=f"{fs}_{fm}-{ms}_{mm}",
            fixed=files["fixed"],
            moving=files["moving"],
            fixed_labels=labels[0],
            moving_labels=labels[1],
            mask=self.image_file(fixed, "mask", DERIVED["mask"], where),
            fixed_landmarks=None if landmarks is None else landmarks[0],
            moving_landmarks=None if landmarks is None else landmarks[1],
            meta={
                "fixed_modality": names[0],
                "moving_modality": names[1],
                "contrast": "same" if names[0] == names[1] else "different",
            },
        )

    def evaluated(self, key: str) -> list[PairSpec]:
        """The pairs of ``registration_val`` / ``registration_test``."""
        items = self.data.get(key)
        if not isinstance(items, list) or not items:
            what = "is missing" if key not in self.data else "is empty" if items == [] else "is not a list"
            self.problem(
                f"key {key!r} {what}: no pairs to evaluate (a list of {{fixed, moving}} image "
                "paths; --set split=val or split=test chooses the list)"
            )
            return []
        out = []
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if not (
                isinstance(item, dict)
                and isinstance(item.get("fixed"), str)
                and isinstance(item.get("moving"), str)
            ):
                self.problem(f"{where}: expected {{fixed, moving}} image paths, got {item!r}")
                continue
            spec = self.pair(item["fixed"], item["moving"], where)
            if spec is not None:
                out.append(spec)
        return out

    def direction(self) -> tuple[str, str]:
        """``(fixed, moving)`` modality ``MMMM`` of training pairs: ``registration_direction``,
        else the most common of the evaluated pairs, else ``0000 -> 0001`` (``0000`` twice for
        unpaired tasks)."""
        value = self.data.get("registration_direction")
        if isinstance(value, dict):
            try:
                return f"{int(value['fixed']):04d}", f"{int(value['moving']):04d}"
            except (KeyError, TypeError, ValueError):
                self.problem(
                    f"registration_direction: expected {{fixed: N, moving: N}} modality "
                    f"indices, got {value!r}"
                )
        seen = Counter(
            (f[1], m[1])
            for f, m in ((image_ids(a), image_ids(b)) for a, b in _pair_lists(self.data))
            if f and m
        )
        if seen:
            return seen.most_common(1)[0][0]
        return ("0000", "0000") if self.data.get("pairings") == "unpaired" else ("0000", "0001")

    def training(self) -> list[PairSpec]:
        """The training pairs (see the module docstring)."""
        split = self.manifest.raw.get("task_split", "val")
        held_out = {_norm(p) for pair in self.evaluated_paths(SPLITS[split]) for p in pair}
        images: dict[tuple[str, str], str] = {}  # (subject, modality) -> JSON path
        for rel, (where, _) in sorted(self.entries.items()):
            if not where.startswith(TRAINING) or rel in held_out:
                continue
            ids = image_ids(rel)
            if ids is None:
                self.problem(f"{where}.image: {rel!r} is not a Learn2Reg image name TASK_SSSS_MMMM")
                continue
            images[ids] = rel
        fixed_mod, moving_mod = self.direction()
        pairings = self.data.get("pairings")
        pairs: list[tuple[str, str, str]] = []
        used: set[str] = set()
        if pairings in ("paired", "hybrid"):
            for fixed, moving, where in self.paired(images, fixed_mod, moving_mod, held_out):
                pairs.append((fixed, moving, where))
                used |= {fixed, moving}
        if pairings in ("unpaired", "hybrid"):
            rest = {ids: rel for ids, rel in images.items() if rel not in used}
            pairs += self.random_pairs(rest, fixed_mod, moving_mod)
        out = []
        for fixed, moving, where in pairs:
            spec = self.pair(fixed, moving, where)
            if spec is not None:
                out.append(spec)
        return out

    def evaluated_paths(self, key: str) -> list[tuple[str, str]]:
        items = self.data.get(key)
        return [
            (i["fixed"], i["moving"])
            for i in (items if isinstance(items, list) else [])
            if isinstance(i, dict) and isinstance(i.get("fixed"), str)
            and isinstance(i.get("moving"), str)
        ]

    def paired(self, images, fixed_mod: str, moving_mod: str, held_out: set[str]):
        """Intra-subject pairs: ``training_paired_images`` when listed, else each subject's
        fixed- and moving-modality images."""
        listed = self.evaluated_paths("training_paired_images")
        if listed:
            return [
                (_norm(f), _norm(m), f"training_paired_images[{i}]")
                for i, (f, m) in enumerate(listed)
                if _norm(f) not in held_out and _norm(m) not in held_out
            ]
        subjects = sorted({s for s, _ in images})
        return [
            (images[(s, fixed_mod)], images[(s, moving_mod)], f"training (subject {s})")
            for s in subjects
            if (s, fixed_mod) in images and (s, moving_mod) in images
            and images[(s, fixed_mod)] != images[(s, moving_mod)]
        ]

    def random_pairs(self, images, fixed_mod: str, moving_mod: str):
        """Every fixed-modality image with a random moving-modality image of another subject."""
        rng = np.random.default_rng(int(self.manifest.raw.get("training_seed", 0)))
        moving = sorted((s, rel) for (s, m), rel in images.items() if m == moving_mod)
        out = []
        for (subject, modality), rel in sorted(images.items()):
            if modality != fixed_mod:
                continue
            others = [r for s, r in moving if s != subject]
            if others:
                out.append((rel, others[int(rng.integers(len(others)))], f"training ({rel})"))
        return out


def load(manifest: DatasetSource) -> Scan:
    """The evaluated pairs (``pairs`` rule ``registration_val`` / ``registration_test``) or the
    training pairs (``training``) of the task; layout problems in :attr:`Scan.problems`."""
    result = Scan()
    task = _Task(manifest, result)
    rule = manifest.pairing[0]
    result.pairs = task.training() if rule == TRAINING else task.evaluated(rule)
    result.cases = sorted({p.case for p in result.pairs})
    return result


def folds(pairs: list[PairSpec], training: list[PairSpec]) -> list[Fold]:
    """One fold fixed by the task: its ``training`` pairs and the evaluated ``pairs``."""
    from benchmark.data.folds import Fold

    return [Fold(index=0, train=list(training), test=list(pairs), holdout=True)]
