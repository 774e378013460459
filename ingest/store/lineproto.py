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
one pass. Floats are formatted once per distinct value; integers are cut into digits with vectorized
arithmetic. `encode_reference` is the plain-Python definition it is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

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


def _escape(text: str, special: str, what: str) -> str:
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


_POW10 = np.array([10**k for k in range(20)], dtype=np.uint64)


def _int_text(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Decimal text of each value as an (n, width) matrix, NUL where a row is shorter."""
    n = values.shape[0]
    if n > 16:
        # Message numbers and epochs repeat in runs: format each run once.
        starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
        if starts.shape[0] * 4 <= n:
            lengths = np.diff(np.append(starts, n))
            return np.repeat(_int_text_direct(values[starts]), lengths, axis=0)
    return _int_text_direct(values)


def _int_text_direct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    n = values.shape[0]
    neg = values < 0
    mag: npt.NDArray[np.int64] | npt.NDArray[np.uint64]
    if n and int(values.min()) == -(2**63):  # |v| does not fit in int64
        mag = np.where(neg, -(values + 1), values).astype(np.uint64) + neg.astype(np.uint64)
    else:
        mag = np.abs(values)
    width = len(str(int(mag.max()))) if n else 1
    digits = np.empty((width, n), np.uint8)  # a row per digit: contiguous writes
    rest = mag
    for j in range(width - 1, -1, -1):
        quotient = rest // 10
        digits[j] = rest - quotient * 10
        rest = quotient
    # Row j is a leading zero where |v| < 10**(width-1-j); the last row always shows (0 is "0").
    lead = mag[None, :] < _POW10[width - 1 : 0 : -1, None].astype(mag.dtype)
    text = digits + np.uint8(ord("0"))
    text[:-1] *= ~lead
    if neg.any():
        sign = np.where(neg, np.uint8(ord("-")), np.uint8(0)).astype(np.uint8)
        text = np.concatenate([sign[None, :], text], axis=0)
    return text.T


def _float_text(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """repr() of each (finite) value as an (n, width) matrix; each distinct value formatted once."""
    n = values.shape[0]
    finite = np.where(np.isfinite(values), values, 0.0).astype(np.float64)
    bits, inverse = np.unique(finite.view(np.int64), return_inverse=True)
    text = bits.view(np.float64).astype("S32")
    width = int(np.strings.str_len(text).max())
    matrix = text.view(np.uint8).reshape(-1, 32)[:, :width]
    return matrix[inverse.reshape(n)]


_BOOL_TEXT = np.array([b"false", b"true"], dtype="S5")


def _value_text(col: FieldColumn) -> tuple[npt.NDArray[np.uint8], bytes]:
    """(text matrix, suffix) of one field column."""
    v = col.values
    n = v.shape[0]
    if v.dtype == np.bool_:
        return _BOOL_TEXT[v.astype(np.intp)].view(np.uint8).reshape(n, 5), b""
    if np.issubdtype(v.dtype, np.integer):
        return _int_text(_as_int64(v, col.key)), b"i"
    if np.issubdtype(v.dtype, np.floating):
        return _float_text(v.astype(np.float64, copy=False)), b""
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
    if n and (np.strings.str_len(table[index]) == 0).any():
        raise ValueError("a row refers to an empty series key")
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

    keys = table[index]
    pieces: list[tuple[npt.NDArray[np.uint8] | bytes, npt.NDArray[np.bool_] | None]] = [
        (keys.view(np.uint8).reshape(n, table.dtype.itemsize), None),
        (b" ", None),
    ]
    for j, (f, o) in enumerate(zip(ordered, omit, strict=True)):
        text, suffix = _value_text(f)
        pieces.append(((b"," if j else b"") + escape_key(f.key).encode() + b"=", o))
        pieces.append((text, o))
        if suffix:
            pieces.append((suffix, o))
    pieces.append((b" ", None))
    pieces.append((_int_text(ts_ms.astype(np.int64, copy=False)), None))
    pieces.append((b"\n", None))

    width = sum(len(p) if isinstance(p, bytes) else p.shape[1] for p, _ in pieces)
    buf = np.zeros((n, width), np.uint8)
    at = 0
    for piece, omitted in pieces:
        if isinstance(piece, bytes):
            w = len(piece)
            buf[:, at : at + w] = np.frombuffer(piece, np.uint8)
        else:
            w = piece.shape[1]
            buf[:, at : at + w] = piece
        if omitted is not None:
            buf[omitted, at : at + w] = 0
        at += w
    buf[skip] = 0
    skipped = int(skip.sum())
    return Encoded(buf[buf != 0].tobytes(), n - skipped, skipped)


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
