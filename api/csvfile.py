"""The hub's CSV answers (the alarm list's, the hidden-danger statistics'), written one way: UTF-8
with a byte-order mark (Excel opens Chinese names correctly only so), CRLF lines, and every text
cell a spreadsheet would run as a formula quoted (a tenant named "=HYPERLINK(...)" by an admin of
that tenant, a shelve reason typed by anyone with a writer's key)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["FORMULA", "csv_bytes", "safe_cell"]

# what a spreadsheet takes for the start of a formula (OWASP "CSV injection")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(v: Any) -> Any:
    """`v`, or a text a spreadsheet would run as a formula with a leading apostrophe before it,
    as OWASP advises (numbers, negative ones too, are left as they are)."""
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA) else v


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A header row of `columns`, then `rows`, every cell through `safe_cell`."""
    out = io.StringIO()
    out.write("\ufeff")  # the byte-order mark: Excel reads the file as UTF-8 only with it
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([safe_cell(c) for c in columns])
    w.writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8")
