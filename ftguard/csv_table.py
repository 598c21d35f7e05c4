"""Tables as CSV (RFC 4180, written by the ``csv`` module), for spreadsheets and scripts.

One header row, then one row per table row, CRLF line ends. Cells keep full precision: a
float is written as its ``repr`` (it reads back to the same number), an integer as its
digits, a boolean as ``true``/``false`` (as in the JSON output), None as an empty cell and a
list as its items joined by ``"; "``.

Text cells hold what others wrote (suite, task and metric names; the reasons quoting model
outputs), so a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
gets a leading ``'``: a spreadsheet then shows it as text instead of running it as a formula
(OWASP's advice on CSV injection). Numbers are never prefixed, so a negative delta stays a
number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula."""


def csv_table(fields: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """``rows`` (field -> value) as CSV text with ``fields`` as the header, in that order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(name) for name in fields])
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in fields])
    return buffer.getvalue()


def csv_cell(value: object) -> str:
    """One cell: see the module docstring."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value))
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
