"""Precomputed displacement fields as a method (``--methods fields:NAME=DIR``).

A field computed elsewhere (another framework, another lab, a challenge submission) is evaluated by
the harness like any method: :func:`fields_class` makes a :class:`FieldsMethod` called ``NAME``
that reads one field per test pair from ``DIR``. For the pair ``CASE/PAIR`` of fold ``K`` it takes
the first file that exists of

1. ``DIR/CASE/PAIR/displacement.nii.gz`` and 2. ``DIR/foldK/CASE/PAIR/displacement.nii.gz``:
   the harness's own layout and convention (a run folder's ``pairs/METHOD/foldK`` or
   ``pairs/METHOD``; NIfTI vector field, mm along the array axes, fixed -> moving);
3. ``DIR/disp_FIXED_MOVING.nii.gz`` (or ``.npz``): the Learn2Reg name and convention
   (:func:`benchmark.core.learn2reg.l2r_names`: the name ``bench export-fields`` writes, and the
   short name of equal modalities that earlier Learn2Reg evaluations required;
   :func:`~benchmark.core.learn2reg.from_l2r`).

A pair without a file becomes a failed row (``failed: missing field ...``); a file with the wrong
shape or grid stops the run with :class:`FieldFileError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.errors import BenchError, FieldFileError
from benchmark.core.images import read_displacement
from benchmark.core.learn2reg import l2r_names, read_l2r_field
from benchmark.core.pairs import DISPLACEMENT_FILE, RegistrationPair
from methods.base import Method, RegistrationFailed, RegistrationResult, method_summary

__all__ = ["FieldsMethod", "fields_class", "parse_fields_spec"]


def parse_fields_spec(item: str) -> tuple[str, Path]:
    """``"fields:NAME=DIR"`` -> ``(NAME, DIR)``; BenchError naming the item otherwise."""
    body = item[len("fields:") :] if item.startswith("fields:") else ""
    name, sep, directory = body.partition("=")
    if not sep or not name.strip() or not directory.strip():
        raise BenchError(
            f"--methods item {item!r}: expected fields:NAME=DIR (a method name and the folder "
            "of its precomputed displacement fields)"
        )
    return name.strip(), Path(directory.strip()).expanduser()


class FieldsMethod(Method):
    """Reads precomputed displacement fields from :attr:`directory` (see the module docstring).

    Subclasses made by :func:`fields_class` set ``name``, ``description`` and ``directory``.
    ``runtime_s`` is NaN (status ``not-measured``): the registration ran elsewhere.
    """

    name = "fields"
    description = "precomputed displacement fields read from a folder"
    learns = False
    directory: str = ""

    def __init__(self):
        super().__init__(directory=self.directory)

    @classmethod
    def summary(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Fields computed elsewhere: metric, transform and who chose them are not known."""
        return method_summary(
            metric="unknown",
            transform="unknown (fields computed elsewhere)",
            settings={"directory": cls.directory},
            chosen_by="unknown",
            assumes_one_contrast=None,
        )

    def __reduce__(self):  # the class is made at run time: rebuild it in worker processes
        return (_rebuild, (self.name, self.directory))

    def candidates(self, pair: RegistrationPair) -> list[Path]:
        """The files looked for, in order (see the module docstring)."""
        root = Path(self.directory)
        out = [root / pair.case / pair.pair / DISPLACEMENT_FILE]
        if pair.fold is not None:
            out.append(root / f"fold{pair.fold}" / pair.case / pair.pair / DISPLACEMENT_FILE)
        if pair.fixed.path is not None and pair.moving.path is not None:
            for stem in l2r_names(pair.fixed.path, pair.moving.path, pair.case):
                out += [root / f"{stem}.nii.gz", root / f"{stem}.npz"]
        return out

    def register(self, pair: RegistrationPair) -> RegistrationResult:
        candidates = self.candidates(pair)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            tried = ", ".join(str(p.relative_to(self.directory)) for p in candidates)
            raise RegistrationFailed(f"missing field: none of {tried} in {self.directory}")
        if found.name == DISPLACEMENT_FILE:
            try:
                u, affine = read_displacement(found)
            except BenchError as exc:
                raise FieldFileError(str(exc)) from exc
            expected = (pair.ndim, *pair.fixed.shape)
            if u.shape != expected:
                raise FieldFileError(
                    f"{found}: displacement shape {u.shape} != expected {expected} (the fixed "
                    f"image {pair.key} is {pair.fixed.shape})"
                )
            if not np.allclose(affine, pair.fixed.affine, atol=1e-3):
                raise FieldFileError(
                    f"{found}: the field's affine differs from the fixed image's of {pair.key} "
                    f"(field {affine.round(4).tolist()}, image "
                    f"{pair.fixed.affine.round(4).tolist()})"
                )
            if not np.isfinite(u).all():
                raise FieldFileError(f"{found}: field has NaN or infinite values")
            u = u.astype(np.float32)
        else:
            u = read_l2r_field(found, shape=pair.fixed.shape, spacing=pair.spacing)
        return RegistrationResult(
            displacement=np.ascontiguousarray(u),
            runtime_s=float("nan"),
            meta={"file": str(found)},
        )


def _make_class(name: str, directory: str) -> type[FieldsMethod]:
    return type(
        f"FieldsMethod[{name}]",
        (FieldsMethod,),
        {
            "name": name,
            "description": f"precomputed displacement fields from {directory}",
            "directory": directory,
            "__module__": __name__,
            "__qualname__": f"FieldsMethod[{name}]",
        },
    )


def _rebuild(name: str, directory: str) -> FieldsMethod:
    return _make_class(name, directory)()


def fields_class(name: str, directory: str | Path) -> type[FieldsMethod]:
    """The method class ``name`` that reads fields from ``directory`` (not yet registered:
    :func:`methods.registry.resolve_methods` registers it).

    Raises
    ------
    BenchError
        If ``directory`` is not a folder or ``name`` is not a valid method name.
    """
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise BenchError(f"fields:{name}={directory}: {str(path)!r} is not a folder")
    return _make_class(name, str(path.resolve()))
