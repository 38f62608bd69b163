"""The method registry, plug-in discovery through entry points, the identity method and
``bench methods``."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.images import Image
from benchmark.core.pairs import RegistrationPair
from methods import registry
from methods.base import Method, RegistrationResult, check_result
from methods.registry import available_methods, get_method, register_method, resolve_methods


def _plugin(tmp_path, monkeypatch, module: str, source: str, entry_points: str) -> None:
    """Install a fake distribution (dist-info with entry_points.txt) and its module on sys.path."""
    (tmp_path / f"{module}.py").write_text(source)
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


PLUGIN_SOURCE = textwrap.dedent("""
    import numpy as np
    from methods.base import Method, RegistrationResult

    class HalfVoxel(Method):
        name = "half-voxel"
        description = "test plug-in: half a voxel along axis 0"
        learns = False

        def __init__(self, *, fraction: float = 0.5):
            super().__init__(fraction=fraction)

        def register(self, pair):
            u = np.zeros((pair.ndim, *pair.fixed.shape), dtype=np.float32)
            u[0] = self.params["fraction"] * pair.spacing[0]
            return RegistrationResult(displacement=u, runtime_s=0.0)

    class Misnamed(HalfVoxel):
        name = "other-name"

    NOT_A_METHOD = 42
""")


def _pair(shape=(12, 10, 4), spacing=(1.5, 1.5, 8.0)):
    rng = np.random.default_rng(0)
    aff = np.diag([*spacing, 1.0])
    img = rng.random(shape).astype(np.float32)
    return RegistrationPair(Image(img, aff), Image(img.copy(), aff), case="c", pair="p")


# ------------------------------------------------------------------------------ registry


def test_builtins_come_first_in_their_order():
    names = list(available_methods())
    builtins = list(registry.BUILTINS)
    assert names[: len(builtins)] == builtins  # every built-in is known, in the table's order
    assert {"identity", "elastix"} <= set(names)
    assert resolve_methods("all") == names


def test_the_builtin_table_names_each_class_and_no_method_module_imports_the_registry():
    import ast
    import importlib

    for name, target in registry.BUILTINS.items():
        module, _, qualname = target.partition(":")
        cls = getattr(importlib.import_module(module), qualname)
        assert cls.name == name and available_methods()[name] is cls
        source = Path(importlib.import_module(module).__file__).read_text()
        imported = {
            n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)
        }
        assert "methods.registry" not in imported, module


def test_a_builtin_entry_that_does_not_load_is_an_error(clean_registry, monkeypatch):
    monkeypatch.setattr(registry, "_builtins_loaded", False)
    monkeypatch.setattr(registry, "BUILTINS", {"identity": "methods.identity:Nope"})
    with pytest.raises(AttributeError, match="Nope"):
        available_methods()
    monkeypatch.setattr(registry, "BUILTINS", {"other": "methods.identity:Identity"})
    with pytest.raises(BenchError, match="is called 'identity', not 'other'"):
        available_methods()


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(
        BenchError, match=r"unknown method 'nope'; known methods: identity, elastix"
    ):
        get_method("nope")
    with pytest.raises(BenchError, match="unknown method 'nope'"):
        resolve_methods("identity, nope")


def test_resolve_methods_keeps_order_and_drops_repeats():
    assert resolve_methods(" elastix ,identity,elastix,") == ["elastix", "identity"]
    assert resolve_methods("ALL") == list(available_methods())
    with pytest.raises(BenchError, match="names no method"):
        resolve_methods(" , ")


def test_get_method_rejects_unknown_parameters_and_lists_the_accepted_ones():
    with pytest.raises(BenchError, match=r"does not accept parameters \['bogus'\].*preset, "):
        get_method("elastix", bogus=1)
    with pytest.raises(BenchError, match="its parameters are: [(]none[)]"):
        get_method("identity", x=1)
    assert get_method("elastix", preset="quick").params["preset"] == "quick"


def test_register_method_validates_classes(clean_registry):
    class NoRegister(Method):
        name = "no-register"
        description = "x"

    with pytest.raises(BenchError, match="does not implement register"):
        register_method(NoRegister)

    class BadName(Method):
        name = "Bad Name"
        description = "x"

        def register(self, pair):
            raise NotImplementedError

    with pytest.raises(BenchError, match="not a valid method name"):
        register_method(BadName)

    class Taken(BadName):
        name = "identity"

    with pytest.raises(BenchError, match="already registered by methods.identity.Identity"):
        register_method(Taken)

    with pytest.raises(BenchError, match="expected a subclass of methods.base.Method"):
        register_method(int)


def test_registered_class_is_listed_after_the_builtins(clean_registry):
    @register_method
    class Aaa(Method):
        name = "aaa-test"
        description = "registered by a test"

        def register(self, pair):
            raise NotImplementedError

    assert register_method(Aaa) is Aaa  # registering the same class again is harmless
    names = list(available_methods())
    assert names[-1] == "aaa-test" and names.index("aaa-test") > names.index("elastix")


# ------------------------------------------------------------------------------ plug-ins


def test_entry_point_plugin_is_discovered_and_usable(tmp_path, monkeypatch):
    _plugin(
        tmp_path,
        monkeypatch,
        "mirbench_fake_plugin",
        PLUGIN_SOURCE,
        """
        [mirbench.methods]
        half-voxel = mirbench_fake_plugin:HalfVoxel
        """,
    )
    names = list(available_methods())
    assert "half-voxel" in names and names.index("half-voxel") > names.index("elastix")
    assert resolve_methods("all") == names
    method = get_method("half-voxel", fraction=0.25)
    pair = _pair()
    result = method.register(pair)
    check_result(result, pair, method="half-voxel")
    np.testing.assert_allclose(result.displacement[0], 0.25 * 1.5)
    assert json.loads(json.dumps(method.params)) == {"fraction": 0.25}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("broken = mirbench_fake_plugin_missing:Nope", "ModuleNotFoundError"),
        ("not-a-class = mirbench_fake_plugin:NOT_A_METHOD", "expected a subclass"),
        ("wrong = mirbench_fake_plugin:Misnamed", "must equal the class's name"),
        ("identity = mirbench_fake_plugin:HalfVoxel", "must equal the class's name"),
    ],
)
def test_broken_plugin_warns_naming_it_and_is_skipped(tmp_path, monkeypatch, line, message):
    _plugin(
        tmp_path,
        monkeypatch,
        "mirbench_fake_plugin",
        PLUGIN_SOURCE,
        f"[mirbench.methods]\n{line}\n",
    )
    ep_name = line.split(" = ")[0]
    with pytest.warns(RuntimeWarning, match=rf"method plug-in '{ep_name}'.*{message}"):
        known = available_methods()
    assert list(known)[:2] == ["identity", "elastix"]
    assert known["identity"].__module__ == "methods.identity"
    assert "half-voxel" not in known


def test_plugin_cannot_shadow_a_builtin(tmp_path, monkeypatch):
    source = PLUGIN_SOURCE + '\nclass Shadow(HalfVoxel):\n    name = "identity"\n'
    _plugin(
        tmp_path,
        monkeypatch,
        "mirbench_fake_plugin",
        source,
        "[mirbench.methods]\nidentity = mirbench_fake_plugin:Shadow\n",
    )
    with pytest.warns(RuntimeWarning, match="already used by methods.identity.Identity"):
        known = available_methods()
    assert known["identity"].__module__ == "methods.identity"


# ------------------------------------------------------------------------------ identity, results


def test_identity_gives_zero_field_and_the_moving_image():
    pair = _pair()
    result = get_method("identity").register(pair)
    assert result.displacement.dtype == np.float32
    assert result.displacement.shape == (3, 12, 10, 4)
    assert not result.displacement.any()
    np.testing.assert_array_equal(result.warped, pair.moving.array)
    assert result.warped is not pair.moving.array


def test_registration_result_validates_its_field():
    good = np.zeros((2, 5, 6), np.float32)
    RegistrationResult(displacement=good)
    with pytest.raises(BenchError, match="float32"):
        RegistrationResult(displacement=good.astype(np.float64))
    with pytest.raises(BenchError, match=r"\(ndim, \*spatial\).*\(3, 5, 6\)"):
        RegistrationResult(displacement=np.zeros((3, 5, 6), np.float32))
    with pytest.raises(BenchError, match="warped image shape"):
        RegistrationResult(displacement=good, warped=np.zeros((5, 5)))
    with pytest.raises(BenchError, match="runtime_s"):
        RegistrationResult(displacement=good, runtime_s=-1.0)


def test_check_result_names_the_shapes_and_non_finite_values():
    pair = _pair()
    with pytest.raises(
        BenchError,
        match=r"'m', pair c/p: displacement shape \(3, 12, 10, 5\) != expected \(3, 12, 10, 4\)",
    ):
        check_result(RegistrationResult(np.zeros((3, 12, 10, 5), np.float32)), pair, method="m")
    bad = np.zeros((3, 12, 10, 4), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(BenchError, match="1 NaN or infinite"):
        check_result(RegistrationResult(bad), pair)


def test_method_params_must_be_json_serialisable():
    class P(Method):
        name = "p"
        description = "p"

        def __init__(self, *, x):
            super().__init__(x=x)

        def register(self, pair):
            raise NotImplementedError

    assert P(x=[1, 2.5, "a", None]).params == {"x": [1, 2.5, "a", None]}
    with pytest.raises(BenchError, match="JSON-serialisable"):
        P(x=object())
    with pytest.raises(BenchError, match="JSON-serialisable"):
        P(x=float("nan"))


# ------------------------------------------------------------------------------ bench methods


def test_bench_methods_lists_names_availability_and_descriptions(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "AVAILABLE", "LEARNS", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert rows["identity"].split()[1:3] == ["yes", "no"]
    assert "No registration" in rows["identity"]
    assert rows["elastix"].split()[1] == "yes"


def test_bench_methods_explains_a_missing_elastix(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "itk", None)  # makes `import itk` raise ImportError
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("elastix"))
    assert "no: itk-elastix is not installed (pip install itk-elastix)" in line
    with pytest.raises(BenchError, match="itk-elastix is not installed"):
        get_method("elastix").register(_pair())
