"""Deterministic PDF and PNG output with matplotlib: A4 pages, fixed style and metadata, so that the
same inputs give byte-identical files (no creation date, fixed hash salt, embedded TrueType fonts
whose text ``pypdf`` can extract).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from matplotlib.figure import Figure

from benchmark.core.atomic import atomic_path

A4_PORTRAIT = (8.27, 11.69)  # inches
A4_LANDSCAPE = (11.69, 8.27)
PNG_DPI = 150

STYLE = {
    "svg.hashsalt": "mirbench",
    "pdf.fonttype": 42,  # TrueType: text stays extractable and searchable
    "pdf.compression": 6,
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.dpi": 100,
    "image.interpolation": "nearest",
    "path.simplify": True,
}


@contextlib.contextmanager
def report_style() -> Iterator[None]:
    """Apply :data:`STYLE` (matplotlib ``rc_context``) for building one report."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_page(*, landscape: bool = False) -> Figure:
    """An empty A4 page (a pyplot-free :class:`~matplotlib.figure.Figure`)."""
    return Figure(figsize=A4_LANDSCAPE if landscape else A4_PORTRAIT)


def write_pdf(
    path: str | os.PathLike, pages: Iterable[Figure], *, title: str, creator: str
) -> Path:
    """Write ``pages`` as one PDF atomically, without time stamps.

    Parameters
    ----------
    path : path-like
        The PDF file.
    pages : iterable of Figure
        In order; each becomes one page at its own size.
    title, creator : str
        Document metadata. ``CreationDate`` is left out on purpose (determinism); the report's
        date is the run's date, printed on the title page.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    metadata = {"Title": title, "Creator": creator, "Producer": creator, "CreationDate": None}
    with atomic_path(path) as tmp:
        with PdfPages(tmp, metadata=metadata) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    return path


def write_png(path: str | os.PathLike, fig: Figure, *, dpi: int = PNG_DPI) -> Path:
    """Save one figure as PNG atomically, without the matplotlib version stamp."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    return path
