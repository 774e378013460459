"""Engineering values to the register words a simulated device holds, and back.

Pure. The device side of a `PointSpec`: engineering value = raw * scale + offset, so the device
holds raw = (value - offset) / scale, rounded for integer dtypes and saturated at the dtype's range
(a real transmitter pins at full scale rather than wrapping). Bytes inside a register are
big-endian; ABCD puts the high word first, CDAB the low word first. The gateway has its own,
independent decoder; `decode_words` exists so the simulator can be tested against itself.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final

from telemetry.config import PointSpec

__all__ = [
    "FLOAT32_MAX",
    "decode_words",
    "encode_nan",
    "encode_point",
    "order_words",
    "register_width",
]

FLOAT32_MAX: Final = 3.4028234663852886e38

_INT_RANGE: Final[dict[str, tuple[int, int]]] = {
    "bool": (0, 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_STRUCT: Final[dict[str, str]] = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}
_FLOATS: Final = ("float32", "float64")


def register_width(dtype: str) -> int:
    """Number of 16-bit registers (or bits, for bool) a value of `dtype` occupies."""
    return {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}.get(dtype, 1)


def order_words(words: list[int], order: str) -> list[int]:
    """Big-endian words (ABCD) into the device's byte and word order, or back (its own
    inverse): CDAB swaps words, BADC swaps the bytes of each word, DCBA does both."""
    if order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    return words


def _current_raw(point: PointSpec, value: float) -> float:
    """Engineering value -> mA -> the transmitter's raw value (NAMUR NE 43 scaling)."""
    cur = point.current
    assert cur is not None
    ma = 4.0 + (value - cur.eng_min) / (cur.eng_max - cur.eng_min) * 16.0
    return cur.raw_4ma + (ma - 4.0) * (cur.raw_20ma - cur.raw_4ma) / 16.0


def encode_point(point: PointSpec, value: float) -> list[int]:
    """The words a device holds for engineering `value`: `[0|1]` for bool, else 16-bit registers.

    Out-of-range values saturate (float32 at +-FLOAT32_MAX). NaN has no raw form: ValueError.
    """
    if math.isnan(value):
        raise ValueError(f"point {point.name!r}: NaN cannot be encoded")
    if point.scale == 0:
        raise ValueError(f"point {point.name!r}: scale 0 cannot be inverted")
    if point.current is not None:
        value = _current_raw(point, value)
    raw = (value - point.offset) / point.scale
    if math.isnan(raw):
        raise ValueError(f"point {point.name!r}: value {value} gives no raw value")
    if point.dtype == "float32":
        data = struct.pack(">f", min(max(raw, -FLOAT32_MAX), FLOAT32_MAX))
    elif point.dtype == "float64":
        data = struct.pack(">d", min(max(raw, -1.7976931348623157e308), 1.7976931348623157e308))
    else:
        lo, hi = _INT_RANGE["bool" if point.dtype == "bit" else point.dtype]
        raw_int = round(min(max(raw, lo), hi))
        if point.dtype in ("bool", "bit"):
            return [raw_int]
        data = struct.pack(_STRUCT[point.dtype], raw_int)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return order_words(words, point.word_order)


def encode_nan(point: PointSpec) -> list[int]:
    """The words of a float point's quiet NaN (0x7FC00000, 0x7FF8000000000000), the fault signal
    of a float transmitter, in the point's word order; ValueError for any other dtype."""
    if point.dtype not in _FLOATS:
        raise ValueError(f"point {point.name!r}: a {point.dtype} has no NaN")
    data = struct.pack(_STRUCT[point.dtype], math.nan)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return order_words(words, point.word_order)


def decode_words(point: PointSpec, words: Sequence[int]) -> float:
    """The engineering value for the words `encode_point` produces (raw * scale + offset)."""
    width = register_width(point.dtype)
    if len(words) != width:
        raise ValueError(f"point {point.name!r}: {point.dtype} is {width} words, not {len(words)}")
    if point.dtype in ("bool", "bit"):
        if words[0] not in (0, 1):
            raise ValueError(f"point {point.name!r}: bool word must be 0 or 1, got {words[0]}")
        return words[0] * point.scale + point.offset
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"point {point.name!r}: words must be 16-bit, got {list(words)}")
    ordered = order_words(list(words), point.word_order)
    data = b"".join(w.to_bytes(2, "big") for w in ordered)
    (raw,) = struct.unpack(_STRUCT[point.dtype], data)
    x = float(raw) * point.scale + point.offset
    cur = point.current
    if cur is None:
        return x
    ma = 4.0 + (x - cur.raw_4ma) * 16.0 / (cur.raw_20ma - cur.raw_4ma)
    return cur.eng_min + (ma - 4.0) / 16.0 * (cur.eng_max - cur.eng_min)
