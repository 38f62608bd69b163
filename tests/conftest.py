"""Shared pytest fixtures. Test data is generated here or in the tests; nothing is downloaded."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# as in benchmark.cli.main: sleeping OpenMP waits keep torch fast when processes share the cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI included), so that a failure is
# reproducible and a landing never depends on a lucky draw; HYPOTHESIS_PROFILE=explore draws new
# ones (run it now and then to look for counterexamples).
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))

# test helpers importable as plain modules (from acdc_lookalike import make_acdc)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def acdc_lookalike_root(tmp_path):
    """A fake ACDC data folder (``ROOT/training/patientNNN``, 8 patients with varying shapes,
    spacings and frame numbers, ground-truth displacements); pass it as ``--root``."""
    from acdc_lookalike import make_acdc

    return make_acdc(tmp_path / "acdc", 8, displacement=True)


@pytest.fixture(scope="session")
def fake_run_dir(tmp_path_factory):
    """A small synthetic run folder (``run.json``, ``folds.json``, ``pairs.csv``, ``results.csv``,
    ``pairs/METHOD/foldK/CASE/PAIR/...`` for six methods, 4 cases of 32x32x6); read-only: copy it
    before changing anything. See ``tests/fake_run.py``."""
    from fake_run import make_fake_run

    return make_fake_run(tmp_path_factory.mktemp("fake_run"))


@pytest.fixture
def clean_registry(monkeypatch):
    """Methods registered by a test (fields, test doubles) do not leak into other tests."""
    from methods import registry

    registry.available_methods()
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    return registry
