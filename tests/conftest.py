"""Shared pytest fixtures. Test data is generated here or in the tests; nothing is downloaded."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import sys
from pathlib import Path

import pytest

# test helpers importable as plain modules (from acdc_lookalike import make_acdc)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def acdc_lookalike_root(tmp_path):
    """A fake ACDC data folder (``ROOT/training/patientNNN``, 8 patients with varying shapes,
    spacings and frame numbers, ground-truth displacements); pass it as ``--root``."""
    from acdc_lookalike import make_acdc

    return make_acdc(tmp_path / "acdc", 8, displacement=True)
