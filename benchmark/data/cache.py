"""The MIRBench cache folder (``$MIRBENCH_CACHE``, default ``~/.cache/mirbench``): demo datasets
generated on first use (``CACHE/demo/NAME-seedS-nN``) and, under ``CACHE/checked``, the per-file
results of data validation (:func:`benchmark.data.validate.check_before_run`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.data import demo as demo_module
from benchmark.data.spec import DemoSpec

log = logging.getLogger(__name__)

CACHE_ENV = "MIRBENCH_CACHE"


def cache_dir() -> Path:
    """``$MIRBENCH_CACHE``, or ``~/.cache/mirbench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mirbench"


def demo_cache_path(name: str, demo: DemoSpec) -> Path:
    """Where the demo of manifest ``name`` is generated: ``CACHE/demo/NAME-seedS-nN``."""
    cases = "default" if demo.cases is None else demo.cases
    return cache_dir() / "demo" / f"{name}-seed{demo.seed}-n{cases}"


def _cached_demo(target: Path) -> Path | None:
    """The data folder of a complete, current cached demo in ``target``; None otherwise.

    Complete: the ``.root`` marker (written before the final rename) is there. Current: the
    generator's ``demo.json`` records the installed generator version (when it records one).
    """
    marker = target / ".root"
    if not marker.is_file():
        return None
    data_root = target / marker.read_text(encoding="utf-8").strip()
    try:
        recorded = json.loads((data_root / demo_module.MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return data_root
    version = recorded.get("version") if isinstance(recorded, dict) else None
    if version != demo_module.GENERATOR_VERSION:
        log.warning(
            "cached demo %s was written by generator version %s (now %s): regenerating",
            target,
            version,
            demo_module.GENERATOR_VERSION,
        )
        return None
    return data_root


def ensure_demo(name: str, demo: DemoSpec) -> Path:
    """Generate the demo dataset into the cache unless it is there; return its data folder.

    Generation writes into a temporary folder beside the target that is renamed onto it when
    complete, so a cache folder that exists is always whole (an interrupted generation leaves
    only a ``.tmp-*`` folder, removed on the way out). A cached demo of an older generator
    version is replaced. If another process finishes first, its folder is kept.
    """
    target = demo_cache_path(name, demo)
    cached = _cached_demo(target)
    if cached is not None:
        return cached
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    stale = None
    try:
        log.warning("generating demo dataset %s into %s (first use)", name, target)
        data_root = Path(
            demo_module.generate(demo.generator, tmp, cases=demo.cases, seed=demo.seed)
        )
        try:
            relative = data_root.resolve().relative_to(tmp.resolve())
        except ValueError as exc:
            raise BenchError(
                f"demo generator {demo.generator} returned {data_root}, outside its output "
                f"folder {tmp}"
            ) from exc
        (tmp / ".root").write_text(f"{relative.as_posix() or '.'}\n", encoding="utf-8")
        tmp.chmod(0o755)
        if target.exists():  # incomplete or outdated: move it out of the way first
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{target.name}-", dir=target.parent))
            os.rename(target, stale / "old")
        try:
            os.rename(tmp, target)
        except OSError:
            if _cached_demo(target) is None:  # not a concurrent generation that won the race
                raise
            log.info("demo %s was generated concurrently; using the existing folder", name)
    finally:
        for leftover in (tmp, stale):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    result = _cached_demo(target)
    if result is None:
        raise BenchError(f"demo cache {target} is incomplete after generation")
    return result
