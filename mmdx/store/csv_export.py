"""CSV writing that is safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheets
skip before reading a formula) is run as a formula by Excel and LibreOffice; free text typed by a user, such
as a verdict comment, must never do that. Such cells are written with a leading ``'``, which spreadsheets
show as text. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from mmdx.owner_only import open_owner_only

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

CsvTarget = str | Path | IO[str]


def neutralise_cell(value: Any) -> Any:
    """The cell as it should be written: strings that a spreadsheet would evaluate get a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(target: CsvTarget, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write ``header`` and ``rows`` to a path (UTF-8, overwritten, mode 0600) or an open text handle;
    return the number of data rows written."""
    if isinstance(target, str | Path):
        with open_owner_only(target, "w", encoding="utf-8", newline="") as fh:
            return _write(fh, header, rows)
    if not hasattr(target, "write"):
        raise TypeError(f"expected a path or a text file handle, got {type(target).__name__}")
    if isinstance(target, io.BufferedIOBase | io.RawIOBase):
        raise TypeError("expected a text file handle, got a binary one; open the file with mode 'w'")
    return _write(target, header, rows)


def _write(fh: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    writer = csv.writer(fh, lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise_cell(value) for value in row])
        count += 1
    return count
