"""The method registry: built-in methods, third-party plug-ins found through entry points, and
the settings of a run checked against the methods that own them.

The built-in methods are an explicit table (:data:`BUILTINS`, name -> ``module:Class``), imported
lazily on first use; no method module imports the registry. Third-party packages declare an
entry point in the group :data:`ENTRY_POINT_GROUP` (``mirbench.methods``) whose value is their
:class:`~methods.base.Method` subclass (``docs/methods.md``). A plug-in that fails to load gives a
warning naming it, never a crash. :func:`register_method` adds a class at run time (the
``fields:NAME=DIR`` methods of :func:`resolve_methods`, tests).

Settings: :func:`parse_set` reads ``--set KEY=VALUE`` items; :func:`setting_problems` asks every
known method class which keys it takes (:meth:`~methods.base.Method.setting_keys`) and what is
wrong with the values it is given (:meth:`~methods.base.Method.setting_problems`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from benchmark.core.errors import BenchError
from methods.base import Method, RunContext

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "register_method",
    "available_methods",
    "get_method",
    "check_methods",
    "resolve_methods",
    "parse_set",
    "setting_problems",
]

log = logging.getLogger(__name__)

#: The ``--methods`` prefix of precomputed fields (``fields:NAME=DIR``).
FIELDS_PREFIX = "fields:"

#: Entry-point group in which third-party packages declare their methods.
ENTRY_POINT_GROUP = "mirbench.methods"

#: The built-in methods, in the order of listings and of ``all`` (other names follow
#: alphabetically): registry name -> ``module:Class``.
BUILTINS: dict[str, str] = {
    "identity": "methods.identity:Identity",
    "elastix": "methods.elastix:Elastix",
    "ants-syn": "methods.ants_syn:AntsSyN",
    "greedy": "methods.greedy:Greedy",
    "unet-nmi": "methods.learned:UNetNMI",
    "unet-ncc": "methods.learned:UNetNCC",
    "poolnet-nmi": "methods.learned:PoolNetNMI",
    "poolnet-ncc": "methods.learned:PoolNetNCC",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_REGISTERED: dict[str, type[Method]] = {}
_builtins_loaded = False


def _check_class(cls: Any, where: str) -> str:
    """Validate a method class; return its name. Raises BenchError describing the problem."""
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise BenchError(f"{where}: expected a subclass of methods.base.Method, got {cls!r}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise BenchError(f"{where}: {cls.__qualname__} does not implement {missing}")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BenchError(
            f"{where}: {cls.__qualname__}.name = {name!r} is not a valid method name "
            "(lower-case letters, digits, '.', '_', '-'; starting with a letter or digit)"
        )
    if not isinstance(getattr(cls, "description", None), str) or not cls.description.strip():
        raise BenchError(f"{where}: {cls.__qualname__}.description must be a non-empty string")
    if not isinstance(getattr(cls, "learns", None), bool):
        raise BenchError(f"{where}: {cls.__qualname__}.learns must be True or False")
    return name


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add a :class:`~methods.base.Method` subclass to the registry.

    Registering the same class twice (a re-imported module) is harmless; another class under a
    name that is taken raises :class:`BenchError`.
    """
    name = _check_class(cls, "register_method")
    old = _REGISTERED.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise BenchError(
            f"method name {name!r} is already registered by {old.__module__}.{old.__qualname__}"
        )
    _REGISTERED[name] = cls
    return cls


def _load_builtins() -> None:
    """Import the classes of :data:`BUILTINS` (once) and check each one's name."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    for name, target in BUILTINS.items():
        module, _, qualname = target.partition(":")
        cls = getattr(importlib.import_module(module), qualname)
        if _check_class(cls, f"built-in method {target}") != name:
            raise BenchError(f"built-in method {target} is called {cls.name!r}, not {name!r}")
        _REGISTERED.setdefault(name, cls)
    _builtins_loaded = True


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _where(ep: metadata.EntryPoint) -> str:
    where = f"method plug-in {ep.name!r} ({ep.value})"
    dist = getattr(ep, "dist", None)
    if dist is not None:
        where += f" from package {dist.metadata['Name']!r}"
    return where


def _load_entry_point(ep: metadata.EntryPoint) -> type[Method] | None:
    """The method class of one entry point, or None (with a warning naming it) when it is
    broken: fails to import, is no valid method class, or its name differs from the class's."""
    where = _where(ep)
    try:
        cls = ep.load()
    except Exception as exc:  # a plug-in may raise anything on import
        warnings.warn(
            f"{where} cannot be loaded and is skipped: {type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    try:
        name = _check_class(cls, where)
    except BenchError as exc:
        warnings.warn(f"{exc}; skipped", RuntimeWarning, stacklevel=4)
        return None
    if name != ep.name:
        warnings.warn(
            f"{where} is skipped: the entry-point name must equal the class's name "
            f"attribute {name!r}",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    return cls


class _PluginCache:
    """The plug-in classes of the installed entry points, loaded once.

    Listing the entry points is cheap, importing the plug-ins is not: the classes are loaded
    again only when the installed entry points change (a package installed or removed, a
    folder added to ``sys.path``), so every :func:`available_methods` call after the first
    costs one listing and no import, and a broken plug-in warns once.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._loaded: list[tuple[metadata.EntryPoint, type[Method]]] = []

    @staticmethod
    def _location(ep: metadata.EntryPoint) -> str:
        dist = getattr(ep, "dist", None)
        return "" if dist is None else str(dist.locate_file(""))

    def classes(self) -> list[tuple[metadata.EntryPoint, type[Method]]]:
        """(entry point, class) of every plug-in that loads, in entry-point order."""
        eps = _entry_points()
        key = tuple((ep.name, ep.value, self._location(ep)) for ep in eps)
        if key != self._key:
            loaded = [(ep, _load_entry_point(ep)) for ep in eps]
            self._loaded = [(ep, cls) for ep, cls in loaded if cls is not None]
            self._key = key
        return self._loaded


_PLUGINS = _PluginCache()


def _load_plugins(taken: dict[str, type[Method]]) -> dict[str, type[Method]]:
    """The plug-ins of :data:`ENTRY_POINT_GROUP` whose names are free; warn about the others."""
    found: dict[str, type[Method]] = {}
    for ep, cls in _PLUGINS.classes():
        other = taken.get(cls.name) or found.get(cls.name)
        if other is not None and other is not cls:
            warnings.warn(
                f"{_where(ep)} is skipped: the name {cls.name!r} is already used by "
                f"{other.__module__}.{other.__qualname__}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found[cls.name] = cls
    return found


_BUILTIN_ORDER = tuple(BUILTINS)


def _order(name: str) -> tuple[int, str]:
    if name in _BUILTIN_ORDER:
        return _BUILTIN_ORDER.index(name), ""
    return len(_BUILTIN_ORDER), name


def available_methods() -> dict[str, type[Method]]:
    """Every registered method class by name: built-ins first (in :data:`BUILTINS`' order), then
    other registered and plug-in methods alphabetically.

    "Available" means known to the registry; whether a method can run on this machine is
    ``cls.availability()``.
    """
    _load_builtins()
    known = dict(_REGISTERED)
    known.update(_load_plugins(known))
    return {name: known[name] for name in sorted(known, key=_order)}


def _unknown(name: str, known: dict[str, type[Method]]) -> BenchError:
    return BenchError(f"unknown method {name!r}; known methods: {', '.join(known) or '(none)'}")


def check_methods(names: Sequence[str], *, learning: bool = False) -> dict[str, type[Method]]:
    """The classes of ``names``, after checking that each is known and can run here (and learns,
    with ``learning=True``): the method checks ``bench run`` and ``bench train`` share.

    Raises
    ------
    BenchError
        For the first name that is unknown (listing the known ones), cannot run here (saying
        why), or does not learn when ``learning`` (listing the learning methods).
    """
    known = available_methods()
    for name in names:
        if name not in known:
            raise _unknown(name, known)
        ok, why = known[name].availability()
        if not ok:
            raise BenchError(f"method {name!r} is not available here: {why}")
        if learning and not known[name].learns:
            learners = [n for n, c in known.items() if c.learns]
            raise BenchError(
                f"method {name!r} does not learn; the learning methods are: {', '.join(learners)}"
            )
    return {name: known[name] for name in names}


def get_method(name: str, **params: Any) -> Method:
    """An instance of the method ``name`` with the given parameters.

    Raises
    ------
    BenchError
        For an unknown name (listing the known ones), or a parameter the method does not take
        (listing the ones it does).
    """
    known = available_methods()
    if name not in known:
        raise _unknown(name, known)
    cls = known[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        raise BenchError(
            f"method {name!r} does not accept parameters {sorted(params)} ({exc}); "
            f"its parameters are: {', '.join(accepted) or '(none)'}"
        ) from exc
    return cls(**params)


def resolve_methods(spec: str) -> list[str]:
    """Method names from a ``--methods`` value: ``"all"`` or a comma-separated list.

    ``"all"`` gives every registered method that can run here, in registry order (built-ins
    first); a method whose optional package is missing is skipped with a warning giving its
    install command. A list keeps its order, drops repeated names and ignores spaces; an item
    ``fields:NAME=DIR`` registers the method ``NAME`` that reads precomputed displacement fields
    from ``DIR`` (:func:`methods.fields.fields_class`).

    Raises
    ------
    BenchError
        For an empty list, an unknown name (listing the known ones) or a bad ``fields:`` item.
    """
    known = available_methods()
    names: list[str] = []
    if spec.strip().lower() == "all":
        for name, cls in known.items():
            ok, why = cls.availability()
            if ok:
                names.append(name)
            else:
                log.warning("--methods all: %s is skipped (%s)", name, why)
        return names
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.startswith(FIELDS_PREFIX):
            name = _register_fields(name, known)
            known = available_methods()
        if name not in known:
            raise _unknown(name, known)
        if name not in names:
            names.append(name)
    if not names:
        raise BenchError(f"--methods {spec!r} names no method; use 'all' or e.g. identity,elastix")
    return names


def _register_fields(item: str, known: dict[str, type[Method]]) -> str:
    """Register the precomputed-fields method of a ``fields:NAME=DIR`` item; its name.

    Raises BenchError when ``NAME`` is taken by a method that does not read fields."""
    from methods.fields import FieldsMethod, fields_class, parse_fields_spec

    name, directory = parse_fields_spec(item)
    taken = known.get(name)
    if taken is not None and not issubclass(taken, FieldsMethod):
        raise BenchError(
            f"{item}: the name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
            "choose another NAME"
        )
    return register_method(fields_class(name, directory)).name


# ------------------------------------------------------------------------------ settings


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set`` items to a mapping: ``["iterations=500", "patch_size=64,64,8"]`` ->
    ``{"iterations": 500, "patch_size": [64, 64, 8]}``.

    Values are parsed as JSON where possible (numbers, ``true``, ``null``); a comma makes a list.
    Which keys exist is checked by :func:`setting_problems`.

    Raises
    ------
    BenchError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise BenchError(f"--set {item!r}: expected KEY=VALUE")
        out[key] = [_parse_scalar(v) for v in raw.split(",")] if "," in raw else _parse_scalar(raw)
    return out


def _parse_scalar(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def setting_problems(context: RunContext) -> list[str]:
    """Every problem of the settings of ``context`` (the manifest's presets and ``--set``):
    ``--set`` keys that no known method takes (listing the keys there are), then what each
    known method class finds wrong with its own settings, each message once.

    Every known method checks its settings whether or not it is in the run, so that a typo
    never waits for the method to start (or passes unnoticed).
    """
    classes = list(available_methods().values())
    keys = {key for cls in classes for key in cls.setting_keys()}
    unknown = [k for k in context.overrides if k not in keys]
    if unknown:
        return [
            f"--set {k}={context.overrides[k]!r}: unknown setting {k!r}; known settings: "
            f"{', '.join(sorted(keys))}"
            for k in unknown
        ]
    problems: list[str] = []
    for cls in classes:
        problems += [p for p in cls.setting_problems(context) if p not in problems]
    return problems
