"""Shared pytest fixtures. Test data is generated here or in the tests; nothing is downloaded."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
