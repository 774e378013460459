"""Decimal text of numpy columns, as NUL-padded byte matrices. Pure: no I/O, no clock.

Each function returns an ``(n, width)`` ``uint8`` matrix whose row ``i`` holds the text of value
``i``, with NUL bytes where a row is shorter than ``width`` (the leading positions of an integer,
unused decimals of a float). `ingest.store.lineproto` lays these matrices side by side and drops
every NUL in one pass, so NULs may sit anywhere in a row.

The cost is a few vectorized passes per *varying* digit, so the functions look for digits that
do not vary:

- integers: a column whose values share their leading digits (event times in one batch, message
  numbers) prints the shared digits once and cuts only the rest; a column made of runs of one
  value is formatted once per run; ``uint8``/``int8`` columns are looked up in a table.
- floats print as Python's ``repr`` does (the shortest text that reads back as the same double).
  Values with ``D`` decimals or fewer (``D`` the smallest of 1, 2, 3, 6 that serves the whole
  column; what a register scaled by 0.1 or 0.01 gives) and ``1e-4 <= |v| < 4e9`` are cut into
  digits with integer arithmetic; any other value goes through numpy's shortest repr, once per
  distinct value. Why the fast path is exact: with ``m = rint(|v| * 10**D)``,
  ``m / 10**D == |v|`` means the decimal ``m * 10**-D`` reads back as ``v`` (division and parsing
  both round correctly); below ``4e9`` the spacing of doubles is under ``1e-6``, so no other
  text with ``D`` decimals or fewer reads back as ``v`` and, trailing zeros dropped, it is the
  shortest; inside ``[1e-4, 1e16)`` repr uses plain notation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["as_items", "float_text", "int_text"]

_ZERO = np.uint8(ord("0"))
_MINUS = np.uint8(ord("-"))
_DOT = np.uint8(ord("."))
_SMALL = np.array([str(i).encode() for i in range(-128, 256)], dtype="S4")
_SMALL_MATRIX = _SMALL.view(np.uint8).reshape(-1, 4)
_FAST_MAX = 4e9
_FAST_MIN = 1e-4
_DECIMALS = (1, 2, 3, 6)
_U32_MAX = 2**32 - 1

U8Matrix = npt.NDArray[np.uint8]


def _digits(
    mag: npt.NDArray[Any],
    width: int,
    *,
    blank: bool,
    out: U8Matrix | None = None,
    at: int = 0,
) -> U8Matrix:
    """The last `width` digits of non-negative `mag` in columns ``at .. at + width`` of `out`
    (a new (n, width) matrix by default); with `blank`, leading zeros are NUL (the last digit
    always shows, so 0 is "0"). Columns are written one at a time: 1-d strided loops, which
    numpy runs far faster than 2-d ones a few bytes wide."""
    n = mag.shape[0]
    if out is None:
        out = np.empty((n, width), dtype=np.uint8)
    small = n == 0 or int(mag.max()) <= _U32_MAX
    rest: npt.NDArray[Any] = mag.astype(np.uint32 if small else np.uint64)
    ten: Any = rest.dtype.type(10)
    for j in range(width - 1, -1, -1):
        quotient = rest // ten
        digit = (rest - quotient * ten).astype(np.uint8)
        digit += _ZERO
        if blank and j < width - 1:
            digit *= mag >= 10 ** (width - 1 - j)
        out[:, at + j] = digit
        rest = quotient
    return out


def as_items(matrix: U8Matrix) -> npt.NDArray[np.void]:
    """An (n, w) byte matrix as n items of w bytes (a view when it is contiguous)."""
    n, w = matrix.shape
    return np.ascontiguousarray(matrix).view(f"V{w}").reshape(n)


def _constant(text: bytes, n: int) -> U8Matrix:
    out = np.empty((n, len(text)), dtype=np.uint8)
    out[...] = np.frombuffer(text, np.uint8)
    return out


def _int_direct(values: npt.NDArray[np.int64]) -> U8Matrix:
    n = values.shape[0]
    if n == 0:
        return np.zeros((0, 1), np.uint8)
    lo, hi = int(values.min()), int(values.max())
    if lo < 0:
        neg = values < 0
        with np.errstate(over="ignore"):  # |v| as uint64, also for -2**63
            mag = np.where(
                neg, (-(values + 1)).astype(np.uint64) + np.uint64(1), values.astype(np.uint64)
            )
        width = len(str(max(hi, -lo)))
        out = np.empty((n, 1 + width), dtype=np.uint8)
        out[:, 0] = neg
        out[:, 0] *= _MINUS
        return _digits(mag, width, blank=True, out=out, at=1)
    width = len(str(hi))
    if lo == hi:
        return _constant(str(hi).encode(), n)
    if len(str(lo)) == width:
        # same length: no leading zeros to blank, and the shared leading digits print once
        k = 1
        while lo // 10**k != hi // 10**k:
            k += 1
        if k >= width:
            return _digits(values, width, blank=False)
        head = str(hi // 10**k).encode()
        out = _constant(head + bytes(k), n)
        return _digits(values - (hi // 10**k) * 10**k, k, blank=False, out=out, at=len(head))
    return _digits(values, width, blank=True)


def int_text(values: npt.NDArray[Any]) -> U8Matrix:
    """Decimal text of each integer (int64 range), an (n, width) matrix, NUL where shorter."""
    n = values.shape[0]
    if values.dtype in (np.uint8, np.int8):
        width = 1 if n == 0 else max(len(str(int(values.max()))), len(str(int(values.min()))))
        items = _SMALL_MATRIX[:, :width].copy().view(f"V{width}").reshape(-1)
        return items[values.astype(np.intp) + 128].view(np.uint8).reshape(n, width)
    v = values.astype(np.int64, copy=False)
    if n > 16:
        # Values that repeat in runs (message numbers, epochs): format each run once.
        change = np.empty(n, dtype=np.bool_)
        change[0] = True
        np.not_equal(v[1:], v[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        if starts.shape[0] > 1 and starts.shape[0] * 4 <= n:
            lengths = np.diff(np.append(starts, n))
            text = _int_direct(v[starts])
            return np.repeat(as_items(text), lengths).view(np.uint8).reshape(n, text.shape[1])
    return _int_direct(v)


def _repr_text(values: npt.NDArray[np.float64]) -> U8Matrix:
    """The shortest repr of each finite value, each distinct value formatted once."""
    n = values.shape[0]
    bits, inverse = np.unique(values.view(np.int64), return_inverse=True)
    # Python's repr (David Gay's shortest round trip) is the definition, and faster here than
    # numpy's conversion of floats to bytes
    text = np.array(list(map(repr, bits.view(np.float64).tolist())), dtype="S32")
    width = max(1, int(np.strings.str_len(text).max()))
    items = text.view(np.uint8).reshape(-1, 32)[:, :width].copy().view(f"V{width}").reshape(-1)
    return items[inverse.reshape(n)].view(np.uint8).reshape(n, width)


def _decimal_text(neg: npt.NDArray[np.bool_], m: npt.NDArray[np.int64], d: int) -> U8Matrix:
    """Plain-notation text of |v| = m / 10**d, trailing zeros of the decimals dropped."""
    n = m.shape[0]
    scale = 10**d
    whole = m // scale
    frac = m - whole * scale
    whole_text = _int_direct(whole)
    signed = bool(neg.any())
    wi = whole_text.shape[1]
    width = int(signed) + wi + 1 + d
    out = np.empty((n, width), dtype=np.uint8)
    at = 0
    if signed:
        out[:, 0] = neg
        out[:, 0] *= _MINUS
        at = 1
    column = np.ndarray((n,), dtype=f"V{wi}", buffer=out, offset=at, strides=(width,))
    column[...] = as_items(whole_text)
    out[:, at + wi] = _DOT
    _digits(frac, d, blank=False, out=out, at=at + wi + 1)
    # keep the decimals up to the last non-zero one, and at least one ("20.0")
    for k in range(1, d):
        out[:, width - k] *= frac % 10**k != 0
    return out


def float_text(values: npt.NDArray[np.float64]) -> U8Matrix:
    """repr() of each value as an (n, width) matrix. Non-finite values come out as ``0.0``:
    line protocol cannot carry them and the caller leaves those rows out."""
    n = values.shape[0]
    if n == 0:
        return np.zeros((0, 1), np.uint8)
    finite = np.isfinite(values)
    v = values if finite.all() else np.where(finite, values, 0.0)
    a = np.abs(v)
    plain = (a < _FAST_MAX) & ((a >= _FAST_MIN) | (a == 0.0))
    if not plain.any():
        return _repr_text(v)
    all_plain = bool(plain.all())
    for d in _DECIMALS:
        scale = float(10**d)
        with np.errstate(over="ignore"):
            scaled = np.rint(a * scale)
        exact = scaled / scale == a
        if not all_plain:
            exact &= plain
        if d == _DECIMALS[-1] or (exact.all() if all_plain else exact[plain].all()):
            break
    if not exact.any():
        return _repr_text(v)
    all_exact = bool(exact.all())
    m = (scaled if all_exact else np.where(exact, scaled, 0.0)).astype(np.int64)
    out = _decimal_text(np.signbit(v), m, d)
    if all_exact:
        return out
    slow = np.flatnonzero(~exact)
    slow_text = _repr_text(v[slow])
    width = max(out.shape[1], slow_text.shape[1])
    if width > out.shape[1]:
        out = np.concatenate([out, np.zeros((n, width - out.shape[1]), np.uint8)], axis=1)
    out[slow] = 0
    out[slow, : slow_text.shape[1]] = slow_text
    return out
