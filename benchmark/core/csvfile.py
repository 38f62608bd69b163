"""Strict reading of the project's CSV tables (results, rankings, pairs lists).

pandas pads a short (truncated) row with NaN and may shift a row with an extra field; both would
turn a damaged file into silent numbers. :func:`check_fields` reads the file once with the
standard ``csv`` module and refuses any record whose field count differs from the header's,
naming its line. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is accepted everywhere.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from benchmark.core.errors import BenchError

#: Encoding of every CSV the project reads: UTF-8, with an optional byte-order mark.
ENCODING = "utf-8-sig"


def check_fields(path: str | os.PathLike, *, what: str = "table") -> list[str]:
    """The header of a CSV file, after checking that every record has as many fields.

    Blank lines are skipped. Raises :class:`BenchError` naming the file, the first bad line, its
    field count and the header's (and how many other lines are bad), or when the file is not
    UTF-8 text.
    """
    path = Path(path)
    bad: list[tuple[int, int]] = []
    try:
        with path.open(newline="", encoding=ENCODING) as f:
            reader = csv.reader(f)
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    bad.append((reader.line_num, len(row)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if bad:
        line, n = bad[0]
        kind = "truncated or missing field(s)" if n < len(header) else "extra field(s)"
        more = f" ({len(bad) - 1} more bad line(s))" if len(bad) > 1 else ""
        raise BenchError(
            f"{path}: line {line} has {n} field(s), the header has {len(header)} "
            f"({', '.join(header)}): {kind}{more}"
        )
    return header
