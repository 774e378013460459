"""Register words to engineering values (pure). The simulators encode independently; tests check
that the two agree."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gateway.errors import DeviceError
from telemetry.config import PointSpec

__all__ = ["decode_point"]

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def decode_point(point: PointSpec, words: Sequence[int | bool]) -> float:
    """Decode the words (or bits) of one point and apply scale and offset."""
    if point.dtype == "bool":
        if len(words) < 1:
            raise DeviceError(f"point {point.name!r}: no bit in the response")
        return 1.0 if words[0] else 0.0
    width = 2 if point.dtype in ("int32", "uint32", "float32") else 1
    if len(words) < width:
        raise DeviceError(f"point {point.name!r}: response too short")
    regs = [int(w) & 0xFFFF for w in words[:width]]
    if width == 2 and point.word_order == "CDAB":
        regs.reverse()
    raw = struct.unpack(_FORMATS[point.dtype], b"".join(r.to_bytes(2, "big") for r in regs))[0]
    return float(raw) * point.scale + point.offset
