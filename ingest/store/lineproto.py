"""InfluxDB line protocol, encoded from numpy columns. Pure: no I/O, no clock.

A line is ``measurement,tag=v,... field=v,... timestamp``; here timestamps are epoch milliseconds
(write with ``precision=ms``). Escaping follows the v1 parser:

- measurement: ``,`` and space are escaped with a backslash;
- tag keys, tag values, field keys: ``,``, ``=`` and space are escaped;
- string field values are double-quoted, with ``"`` and ``\\`` escaped;
- integers carry the ``i`` suffix; floats are written with the shortest text that reads back as the
  same double (Python's ``repr``), so a round trip is exact (``-0.0`` included).

The v1 parser does not unescape backslashes in names and tags, so a name with a newline, or with a
backslash at its end or before a character that needs escaping, cannot be written: `escape_key` and
`escape_measurement` raise `ValueError` for those rather than write a different name.

Line protocol has no NaN or infinity. `encode_columns` leaves an *optional* field out of a line
where its value is NaN (a comm-loss reading keeps its other fields), and skips a line, counting it
in `Encoded.skipped`, where a required field is not finite, an optional one is infinite, or the
timestamp is outside InfluxDB's range.

The hot path builds every line in one ``uint8`` matrix, a row per line and a fixed-width slot per
piece (series key, field texts, integer digits), with NUL bytes as padding, then drops the NULs in
one pass. Constant texts are laid out once in a template row; each text matrix is copied in as one
column of fixed-size items (numpy runs those 1-d loops far faster than 2-d copies a few bytes
wide). Number texts come from `ingest.store.numtext` (digits that do not vary are printed once;
short decimals are cut with integer arithmetic). `encode_reference` is the plain-Python definition
it is tested against. ``bench/lineproto.py`` measures it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ingest.store.numtext import as_items, float_text, int_text

__all__ = [
    "MAX_TS_MS",
    "MIN_TS_MS",
    "Encoded",
    "FieldColumn",
    "FieldValue",
    "encode_columns",
    "encode_reference",
    "escape_key",
    "escape_measurement",
    "format_field_value",
    "format_line",
    "quote_string",
    "series_key",
    "series_table",
]

FieldValue = bool | int | float | str

# InfluxDB stores nanoseconds in an int64 and reserves both extremes.
MIN_TS_MS = -9223372036854775806 // 1_000_000 + 1
MAX_TS_MS = 9223372036854775806 // 1_000_000

_MEASUREMENT_SPECIAL = ", "
_KEY_SPECIAL = ", ="


@functools.lru_cache(maxsize=65_536)
def _escape(text: str, special: str, what: str) -> str:
    """Cached: the series keys of a configuration repeat their tenants, sites, kinds and tag
    keys thousands of times (a ValueError is not cached, it is raised every time)."""
    if not text:
        raise ValueError(f"{what} must not be empty")
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ValueError(f"{what} {text!r} contains a newline or NUL")
    if text.endswith("\\") or any(f"\\{c}" in text for c in special):
        raise ValueError(
            f"{what} {text!r}: a backslash at the end or before {special!r} cannot be written in "
            "v1 line protocol"
        )
    for c in special:
        text = text.replace(c, f"\\{c}")
    return text


def escape_measurement(name: str) -> str:
    """A measurement name as written in a line (comma and space escaped)."""
    return _escape(name, _MEASUREMENT_SPECIAL, "measurement")


def escape_key(text: str) -> str:
    """A tag key, tag value or field key as written in a line (comma, equals, space escaped)."""
    return _escape(text, _KEY_SPECIAL, "tag or field name")


def quote_string(value: str) -> str:
    """A string field value: double-quoted, with backslash and double quote escaped."""
    if "\x00" in value:
        raise ValueError(f"string field {value!r} contains NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_field_value(value: FieldValue) -> str:
    """One field value as text; `ValueError` for NaN and infinities, which have no text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"integer field {value} does not fit in int64")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry the float {value!r}")
        return repr(value)
    return quote_string(value)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,...`` with the tags sorted by key (as InfluxDB keeps them); tags with an
    empty value are left out, since line protocol has no empty tag value."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return ",".join(parts)


def format_line(key: str, fields: Mapping[str, FieldValue], ts_ms: int) -> str:
    """One line from a series key (`series_key`), fields and a millisecond timestamp."""
    if not fields:
        raise ValueError("a line needs at least one field")
    body = ",".join(f"{escape_key(k)}={format_field_value(v)}" for k, v in fields.items())
    return f"{key} {body} {ts_ms}"


def series_table(keys: Sequence[str]) -> npt.NDArray[np.bytes_]:
    """Series keys (from `series_key`) as a fixed-width bytes table, indexed by a row's index
    column in `encode_columns`. An empty string marks an index that must not be written."""
    encoded = [k.encode() for k in keys]
    for k in encoded:
        if b"\x00" in k or b"\n" in k:
            raise ValueError(f"series key {k!r} contains NUL or newline")
    width = max((len(k) for k in encoded), default=0) or 1
    return np.array(encoded, dtype=f"S{width}")


@dataclass(frozen=True, slots=True, eq=False)
class FieldColumn:
    """One field for every row: floats, integers (``i`` suffix) or booleans. An optional field is
    left out of the lines where its value is NaN."""

    key: str
    values: npt.NDArray[Any]
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes  # the lines, each ending with "\n"
    lines: int  # lines written
    skipped: int  # lines left out: a value line protocol cannot carry, or a timestamp out of range


def _ts_ok(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    return (ts >= MIN_TS_MS) & (ts <= MAX_TS_MS)


def _as_int64(values: npt.NDArray[Any], key: str) -> npt.NDArray[np.int64]:
    if values.dtype == np.uint64 and values.size and int(values.max()) >= 2**63:
        raise ValueError(f"integer field {key!r} has values beyond int64")
    return values.astype(np.int64, copy=False)


_BOOL_TEXT = np.array([b"false", b"true"], dtype="S5")


def _value_text(col: FieldColumn) -> tuple[npt.NDArray[np.uint8], bytes]:
    """(text matrix, suffix) of one field column."""
    v = col.values
    n = v.shape[0]
    if v.dtype == np.bool_:
        return _BOOL_TEXT[v.astype(np.intp)].view(np.uint8).reshape(n, 5), b""
    if np.issubdtype(v.dtype, np.integer):
        return int_text(v if v.dtype.itemsize == 1 else _as_int64(v, col.key)), b"i"
    if np.issubdtype(v.dtype, np.floating):
        return float_text(v.astype(np.float64, copy=False)), b""
    raise TypeError(f"field {col.key!r}: unsupported dtype {v.dtype}")


def _check(
    table: npt.NDArray[np.bytes_],
    index: npt.NDArray[np.integer[Any]],
    ts_ms: npt.NDArray[np.int64],
    fields: Sequence[FieldColumn],
) -> list[FieldColumn]:
    n = index.shape[0]
    if ts_ms.shape != (n,) or any(f.values.shape != (n,) for f in fields):
        raise ValueError("index, timestamps and fields must be 1-d columns of one length")
    if n and (int(index.min()) < 0 or int(index.max()) >= table.shape[0]):
        raise ValueError("a row's index is outside the series table")
    ordered = [f for f in fields if not f.optional] + [f for f in fields if f.optional]
    if not ordered or ordered[0].optional:
        raise ValueError("a line needs at least one required (non-optional) field")
    keys = [f.key for f in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"field keys repeat: {keys}")
    return ordered


def encode_columns(
    table: npt.NDArray[np.bytes_],
    index: npt.NDArray[np.integer[Any]],
    ts_ms: npt.NDArray[np.int64],
    fields: Sequence[FieldColumn],
) -> Encoded:
    """Lines for rows ``i``: series ``table[index[i]]``, the fields' values at ``i``, time
    ``ts_ms[i]``. Required fields come first in a line, optional ones after them."""
    ordered = _check(table, index, ts_ms, fields)
    n = index.shape[0]
    if n == 0:
        return Encoded(b"", 0, 0)

    skip = ~_ts_ok(ts_ms)
    omit: list[npt.NDArray[np.bool_] | None] = []
    for f in ordered:
        if np.issubdtype(f.values.dtype, np.floating):
            bad = ~np.isfinite(f.values)
            if f.optional:
                nan = np.isnan(f.values)
                skip |= bad & ~nan
                omit.append(nan)
            else:
                skip |= bad
                omit.append(None)
        else:
            omit.append(None)

    key_items = table.view(f"V{table.dtype.itemsize}")
    keys = key_items[index]
    if not keys.view(np.uint8)[:: table.dtype.itemsize].all():
        raise ValueError("a row refers to an empty series key")  # its first byte is NUL
    pieces: list[_Piece] = [(keys.view(np.uint8).reshape(n, -1), None), (b" ", None)]
    for j, (f, o) in enumerate(zip(ordered, omit, strict=True)):
        text, suffix = _value_text(f)
        pieces.append(((b"," if j else b"") + escape_key(f.key).encode() + b"=", o))
        pieces.append((text, o))
        if suffix:
            pieces.append((suffix, o))
    pieces.append((b" ", None))
    pieces.append((int_text(ts_ms.astype(np.int64, copy=False)), None))
    pieces.append((b"\n", None))
    return _assemble(pieces, skip)


_Piece = tuple[npt.NDArray[np.uint8] | bytes, npt.NDArray[np.bool_] | None]
_CHUNK_ROWS = 2048  # rows compacted at a time: the matrix then stays in a core's L2 cache


def _assemble(pieces: list[_Piece], skip: npt.NDArray[np.bool_]) -> Encoded:
    """Lay the pieces side by side in one matrix, a row per line, and drop the NULs.

    The constant texts are laid out once in a template row that fills the matrix; each text
    matrix is then copied in as one column of fixed-size items (a 1-d loop: numpy runs those far
    faster than 2-d copies a few bytes wide). An optional field left out of a row is blanked
    from its ``,key=`` to its suffix."""
    n = skip.shape[0]
    width = sum(len(p) if isinstance(p, bytes) else p.shape[1] for p, _ in pieces)
    template = np.zeros(width, np.uint8)
    at = 0
    spans: list[tuple[int, int, npt.NDArray[np.bool_]]] = []
    for piece, omitted in pieces:
        w = len(piece) if isinstance(piece, bytes) else piece.shape[1]
        if isinstance(piece, bytes):
            template[at : at + w] = np.frombuffer(piece, np.uint8)
        if omitted is not None:
            if spans and spans[-1][2] is omitted and spans[-1][1] == at:
                spans[-1] = (spans[-1][0], at + w, omitted)
            else:
                spans.append((at, at + w, omitted))
        at += w
    buf = np.empty((n, width), np.uint8)
    buf[...] = template
    at = 0
    for piece, _ in pieces:
        if isinstance(piece, bytes):
            at += len(piece)
            continue
        w = piece.shape[1]
        if w:
            _column(buf, at, w)[...] = as_items(piece)
        at += w
    for a, b, omitted in spans:
        if omitted.any():
            _column(buf, a, b - a)[omitted] = np.void(bytes(b - a))
    skipped = int(skip.sum())
    if skipped:
        buf[skip] = 0
    if n <= _CHUNK_ROWS:
        data = buf[buf != 0].tobytes()
    else:
        parts = []
        for a in range(0, n, _CHUNK_ROWS):
            chunk = buf[a : a + _CHUNK_ROWS]
            parts.append(chunk[chunk != 0].tobytes())
        data = b"".join(parts)
    return Encoded(data, n - skipped, skipped)


def _column(buf: npt.NDArray[np.uint8], at: int, w: int) -> npt.NDArray[np.void]:
    """Bytes ``at .. at + w`` of every row of `buf` as n items of w bytes (a view)."""
    return np.ndarray(
        (buf.shape[0],), dtype=f"V{w}", buffer=buf, offset=at, strides=(buf.shape[1],)
    )


def encode_reference(
    keys: Sequence[str],
    index: Sequence[int],
    ts_ms: Sequence[int],
    fields: Sequence[tuple[str, Sequence[FieldValue], bool]],
) -> Encoded:
    """What `encode_columns` does, one Python value at a time: (key, values, optional) fields."""
    ordered = [f for f in fields if not f[2]] + [f for f in fields if f[2]]
    lines: list[str] = []
    skipped = 0
    for i, ix in enumerate(index):
        ts = int(ts_ms[i])
        row: dict[str, FieldValue] = {}
        ok = MIN_TS_MS <= ts <= MAX_TS_MS
        for key, values, optional in ordered:
            v = values[i]
            if isinstance(v, float) and not math.isfinite(v):
                if optional and math.isnan(v):
                    continue
                ok = False
            row[key] = v
        if ok:
            lines.append(format_line(keys[ix], row, ts) + "\n")
        else:
            skipped += 1
    return Encoded("".join(lines).encode(), len(lines), skipped)
