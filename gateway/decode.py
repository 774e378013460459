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
        return (1.0 if words[0] else 0.0) * point.scale + point.offset
    width = 2 if point.dtype in ("int32", "uint32", "float32") else 1
    if len(words) < width:
        raise DeviceError(f"point {point.name!r}: response too short")
    regs = [int(w) & 0xFFFF for w in words[:width]]
    if width == 2 and point.word_order == "CDAB":
        regs.reverse()
    raw = struct.unpack(_FORMATS[point.dtype], b"".join(r.to_bytes(2, "big") for r in regs))[0]
    return _scaled(float(raw), point.scale) + point.offset


def _scaled(raw: float, scale: float) -> float:
    """raw * scale, but a decimal scale (0.1, 0.01 ...) divides so that 70 * 0.01 reads 0.7."""
    if scale not in (0.0, 1.0):
        inverse = 1.0 / scale
        if abs(inverse) >= 2 and abs(inverse - round(inverse)) < 1e-9 * abs(inverse):
            return raw / round(inverse)
    return raw * scale
