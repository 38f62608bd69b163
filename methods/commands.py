"""Handlers of the ``bench`` subcommands about methods: ``bench methods``."""

from __future__ import annotations

import argparse
import sys

from methods.registry import available_methods

__all__ = ["list_methods", "methods_table"]


def methods_table() -> list[dict[str, str]]:
    """One row per registered method: name, available (``yes`` / ``no: reason``), learns,
    description."""
    rows = []
    for name, cls in available_methods().items():
        try:
            ok, reason = cls.availability()
        except Exception as exc:  # a plug-in's availability check must not break the listing
            ok, reason = False, f"availability check failed ({type(exc).__name__}: {exc})"
        rows.append(
            {
                "name": name,
                "available": "yes" if ok else f"no: {reason}" if reason else "no",
                "learns": "yes" if cls.learns else "no",
                "description": cls.description.strip().splitlines()[0],
            }
        )
    return rows


def list_methods(args: argparse.Namespace) -> int:
    """``bench methods``: print the table of methods. Exit status 0."""
    rows = methods_table()
    headers = {
        "name": "NAME",
        "available": "AVAILABLE",
        "learns": "LEARNS",
        "description": "DESCRIPTION",
    }
    widths = {
        k: max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in headers.items()
    }
    keys = list(headers)
    out = sys.stdout

    def line(values: dict[str, str]) -> str:
        return "  ".join(values[k].ljust(widths[k]) for k in keys[:-1]) + "  " + values[keys[-1]]

    out.write(line(headers).rstrip() + "\n")
    for r in rows:
        out.write(line(r).rstrip() + "\n")
    return 0
