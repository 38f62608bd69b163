"""Architecture checks: imports point down the layers (docs/architecture.md); the CLI's light
commands do not import torch; the registry loads plug-ins once; BenchError is a ValueError.

``LAYERS`` is the one place that states the layer order. A module may import modules of its own
layer and of the layers below; an import of a higher layer is an error that names the importing
file, its line, the imported module and both layers. Imports inside functions count as well: they
delay the cost of an import, not the dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "methods", "metrics", "reports", "data_manifests")

#: Bottom to top: (layer name, module prefixes). A module belongs to the layer of its longest
#: matching prefix; every ``commands`` module (the sub-commands of ``bench``) belongs to the CLI.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # ``benchmark`` alone is the package root, which holds only ``__version__``;
    # ``data_manifests`` holds the shipped YAML manifests.
    ("core", ("benchmark.core", "benchmark", "data_manifests")),
    ("metrics, methods, data", ("metrics", "methods", "benchmark.data")),
    ("stats", ("benchmark.stats",)),
    ("runner, reports, reader study", ("benchmark.runner", "reports", "benchmark.reader_study")),
    ("CLI", ("benchmark.cli",)),
)
CLI_MODULE_NAME = "commands"


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of a project module, ``None`` for a module outside the project."""
    if module.split(".")[0] not in PACKAGES:
        return None
    if CLI_MODULE_NAME in module.split("."):
        return len(LAYERS) - 1
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    if best is None:
        raise AssertionError(f"module {module} is in no layer of LAYERS: add it there")
    return best[1]


def module_name(path: Path) -> str:
    """Dotted name of a source file below ``ROOT``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, relative imports resolved.

    ``from a.b import c`` yields ``a.b.c``, whether ``c`` is a module or a name: it lies in the
    layer of ``a.b`` unless it is a ``commands`` module.
    """
    found: list[tuple[int, str]] = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def upward_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """One message per import of ``module`` that points to a higher layer."""
    own = layer_of(module)
    assert own is not None, module
    messages = []
    for line, target in imported_modules(source, module, is_package=is_package):
        other = layer_of(target)
        if other is not None and other > own:
            messages.append(
                f"{module}:{line} imports {target} "
                f"(layer '{LAYERS[own][0]}' may not import layer '{LAYERS[other][0]}')"
            )
    return messages


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def read(path: Path) -> tuple[str, str, bool]:
    """(source, module name, is a package) of a project file."""
    return path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"


def test_imports_point_down_the_layers():
    offences = []
    for path in project_files():
        source, module, is_package = read(path)
        offences += upward_imports(source, module, is_package=is_package)
    assert not offences, "upward imports:\n" + "\n".join(offences)


def _project_module(target: str, modules: set[str]) -> str | None:
    """The project module an imported name lies in (``a.b.c`` of ``from a.b import c`` is
    ``a.b`` unless ``a.b.c`` is a module itself), or None outside the project."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and inside functions). An import
    of a module's own parent package is left out: importing a module imports its packages
    first, whatever they re-export."""
    sources = {module_name(p): read(p) for p in project_files()}
    modules = set(sources)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, (source, _, is_package) in sources.items():
        for _, target in imported_modules(source, module, is_package=is_package):
            found = _project_module(target, modules)
            if found and found != module and not module.startswith(found + "."):
                graph[module].add(found)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


#: What the harness (``benchmark``, ``reports``) may import of ``methods``: the plug-in interface,
#: the registry, and the transforms that warp images and labels for scoring.
HARNESS_MAY_IMPORT = ("methods.base", "methods.registry", "methods.transforms")


def test_the_harness_speaks_only_the_method_interface():
    graph = import_graph()
    offences = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if module.split(".")[0] in ("benchmark", "reports")
        for target in sorted(targets)
        if (target == "methods" or target.startswith("methods."))
        and not any(target == m or target.startswith(m + ".") for m in HARNESS_MAY_IMPORT)
    ]
    assert not offences, "the harness reaches into method internals:\n" + "\n".join(offences)


def test_core_imports_only_the_core():
    core = [p for p in project_files() if module_name(p).startswith("benchmark.core")]
    assert len(core) >= 8
    outside = []
    for path in core:
        source, module, is_package = read(path)
        outside += [
            f"{module}:{line} imports {target}"
            for line, target in imported_modules(source, module, is_package=is_package)
            if layer_of(target) is not None and not target.startswith("benchmark.core")
        ]
    assert not outside, "\n".join(outside)


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("metrics.dice", "from benchmark.runner.run import run_benchmark\n", True),
        ("benchmark.core.images", "import methods.transforms\n", True),
        ("benchmark.stats.results", "def f():\n    from reports.build import x\n", True),
        ("methods.learned", "from benchmark.data.commands import add_commands\n", True),
        (
            "benchmark.runner.pair_job",
            "from . import scoring\nfrom ..stats import results\n",
            False,
        ),
        ("benchmark.core.pairs", "from .images import read_image\n", False),
        ("benchmark.core.pairs", "from ..runner import run\n", True),
        ("benchmark.runner.commands", "from benchmark.reader_study.app import create_app\n", False),
        ("reports.build", "import numpy\nfrom benchmark import __version__\n", False),
    ],
)
def test_the_check_finds_upward_imports(module, source, bad):
    messages = upward_imports(source, module)
    assert bool(messages) == bad, messages
    if bad:
        assert module in messages[0] and "may not import layer" in messages[0]


# ------------------------------------------------------------------------------ import cost


@pytest.mark.parametrize("argv", [["--help"], ["methods"]])
def test_bench_help_and_methods_do_not_import_torch(argv):
    code = (
        "import sys\n"
        "from benchmark.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'methods.losses', 'methods.networks') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


def test_the_package_face_of_methods_is_lazy():
    import methods

    assert set(methods.__all__) <= set(dir(methods))
    from methods.losses import nmi_loss

    assert methods.nmi_loss is nmi_loss
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        methods.nope  # noqa: B018


def test_bench_error_is_a_value_error():
    from benchmark.core.errors import BenchError, ValidationError
    from metrics import dice

    assert issubclass(ValidationError, BenchError) and issubclass(BenchError, ValueError)
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2), np.int16), np.zeros((3, 3), np.int16), label=1)


def test_the_registry_loads_the_plugins_once(monkeypatch, tmp_path):
    from methods import registry

    (tmp_path / "mirbench_once.py").write_text(
        "from methods.identity import Identity\n\n"
        "class Once(Identity):\n"
        "    name = 'once'\n"
        "    description = 'identity under another name'\n"
    )
    dist = tmp_path / "mirbench_once-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mirbench_once\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mirbench.methods]\nonce = mirbench_once:Once\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    original = registry._load_entry_point
    monkeypatch.setattr(
        registry, "_load_entry_point", lambda ep: calls.append(ep.name) or original(ep)
    )
    assert "once" in registry.available_methods()
    assert calls.count("once") == 1
    assert "once" in registry.available_methods()
    assert calls.count("once") == 1  # not loaded again
    monkeypatch.undo()  # the plug-in is uninstalled: the registry notices
    assert "once" not in registry.available_methods()


# ------------------------------------------------------------------------------ function size

#: Most code lines of a function (its docstring not counted) without a reason in the docstring.
MAX_FUNCTION_LINES = 80


def test_long_functions_say_why():
    offences = []
    for path in project_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            docstring = ast.get_docstring(node) or ""
            lines = node.end_lineno - node.lineno + 1
            if docstring:
                lines -= node.body[0].end_lineno - node.body[0].lineno + 1
            if lines > MAX_FUNCTION_LINES and "long because" not in docstring.lower():
                offences.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines"
                )
    assert not offences, (
        f"functions over {MAX_FUNCTION_LINES} lines without 'long because' in the docstring:\n"
        + "\n".join(offences)
    )
