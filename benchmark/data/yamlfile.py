"""Reading a manifest's YAML strictly: one document holding a mapping whose keys are text and
unique, without anchors, aliases or merge keys, of bounded size and depth.

PyYAML's ``safe_load`` accepts all of these silently: a repeated key keeps its last value (the
field's tools, e.g. ``yamllint``'s ``key-duplicates``, reject it), ``yes``/``no``/``on``/``off``
or ``1`` as a key become booleans or numbers, and nine levels of nine aliases expand to 9**9
values when the document is printed or copied (the "billion laughs"). A manifest has no use for
aliases, so they are refused rather than limited. :func:`load_mapping` turns each of these into a
:class:`~benchmark.core.errors.BenchError` naming the file, the key and the line(s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from benchmark.core.errors import BenchError

#: Largest manifest file read, in bytes: ~30,000 inline pairs; larger lists belong in a
#: ``pairs_csv`` table.
MAX_BYTES = 8 * 2**20
#: Deepest nesting of lists and mappings (a manifest needs 4: top, ``pairs``, a row, a value).
MAX_DEPTH = 20

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
#: How a key of another YAML type reads, for messages.
_KINDS = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false (YAML reads yes, no, on, off as booleans)",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


class _Refused(Exception):
    """A construct the manifest reader does not accept; the message names the line."""


def _line(node_or_event) -> int:
    return node_or_event.start_mark.line + 1


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors and aliases and nesting deeper than MAX_DEPTH while
    composing, before any value is built."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"line {_line(event)}: alias *{event.anchor}: anchors and aliases (&name, *name) "
                "are not allowed in a manifest; write the value out"
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                f"line {_line(event)}: anchor &{event.anchor}: anchors and aliases (&name, *name) "
                "are not allowed in a manifest; write the value out"
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                f"line {_line(event)}: lists and mappings nested more than {MAX_DEPTH} levels "
                "deep; a manifest needs a few"
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _key_problem(key: Node, where: str) -> str | None:
    """Why ``key`` cannot be a manifest key (None when it is plain text)."""
    if isinstance(key, ScalarNode) and key.tag == _STR:
        return None
    if key.tag == _MERGE:
        return f"line {_line(key)}: merge key '<<' in {where}: not allowed; write the keys out"
    if isinstance(key, ScalarNode):
        kind = _KINDS.get(key.tag, f"type {key.tag}")
        return (
            f"line {_line(key)}: key {key.value} in {where} is read as {kind}, not as text; "
            f"quote it: '{key.value}'"
        )
    shape = "a list" if isinstance(key, SequenceNode) else "a mapping"
    return f"line {_line(key)}: {shape} as a key in {where}; keys must be text"


def _check_keys(node: Node, where: str) -> None:
    """Refuse non-text, merge and repeated keys anywhere below ``node`` (``where`` names it)."""
    if isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, f"{where}[{i}]")
    elif isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            problem = _key_problem(key, where)
            if problem:
                raise _Refused(problem)
            name = key.value if where == "the top level" else f"{where}.{key.value}"
            if key.value in seen:
                raise _Refused(
                    f"key {name} appears twice (lines {seen[key.value]} and {_line(key)}); keep one"
                )
            seen[key.value] = _line(key)
            _check_keys(value, name)


def _parse(text: str) -> Any:
    """The document of ``text``, checked; raises _Refused or yaml.YAMLError."""
    loader = _StrictLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.composer.ComposerError as exc:
            if "single document" in (exc.context or "") and exc.problem_mark is not None:
                raise _Refused(
                    f"line {exc.problem_mark.line + 1}: a second YAML document ('---'); a "
                    "manifest is a single mapping"
                ) from exc
            raise
        if node is None:
            raise _Refused("the file holds no YAML (empty, or only comments)")
        if not isinstance(node, MappingNode):
            kind = "a list" if isinstance(node, SequenceNode) else f"the value {node.value!r}"
            raise _Refused(f"expected a YAML mapping (key: value lines) at the top, got {kind}")
        _check_keys(node, "the top level")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_mapping(path: Path) -> tuple[dict[str, Any], bytes]:
    """Read the manifest file ``path``: ``(its mapping, the file's bytes)``.

    Raises
    ------
    BenchError
        ``manifest PATH: ...`` for a file over :data:`MAX_BYTES`, unreadable or not UTF-8, not
        valid YAML, more than one document, an empty document or one that is not a mapping, a
        key that is not text or appears twice in a mapping (naming the key and both lines),
        anchors, aliases and merge keys, nesting deeper than :data:`MAX_DEPTH`.
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise BenchError(f"manifest {path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_BYTES:
        raise BenchError(
            f"manifest {path}: larger than {MAX_BYTES // 2**20} MiB; a manifest is a short "
            "settings file (list many pairs in a pairs_csv table instead)"
        )
    try:
        raw = _parse(data.decode("utf-8"))
    except _Refused as exc:
        raise BenchError(f"manifest {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BenchError(
            f"manifest {path}: not UTF-8 text (byte {data[exc.start]:#04x} at position "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise BenchError(f"manifest {path}: not valid YAML ({exc})") from exc
    except RecursionError:  # MAX_DEPTH stops nesting long before; kept as a last guard
        raise BenchError(f"manifest {path}: nested too deeply to read") from None
    return raw, data
