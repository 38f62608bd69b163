"""Datasets: YAML manifests, loaders (ACDC, breast DCE, explicit pair lists), cross-validation
folds, validation and the ``bench data`` commands. Demo data generators live in ``demo/``.

The public entry points are re-exported here lazily (``from benchmark.data import load_manifest``)
so that importing the package stays cheap.
"""

from __future__ import annotations

__all__ = ["Fold", "Manifest", "Report", "load_manifest", "known_manifests", "validate"]

_EXPORTS = {
    "Fold": "benchmark.data.folds",
    "Manifest": "benchmark.data.manifest",
    "load_manifest": "benchmark.data.manifest",
    "known_manifests": "benchmark.data.parse",
    "Report": "benchmark.data.validate",
    "validate": "benchmark.data.validate",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'benchmark.data' has no attribute {name!r}")
