"""Register words to engineering values and qualities (pure). The simulators encode
independently; tests check that the two agree.

Byte and word orders of multi-register values: ABCD big-endian, CDAB words swapped, BADC bytes
swapped in each word, DCBA little-endian. A point with `current` is a 4-20 mA transmitter judged
by NAMUR NE 43.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gateway.errors import DeviceError
from telemetry.config import PointSpec, StatusSpec, register_width
from telemetry.quality import Quality

__all__ = ["apply_status", "decode_point", "decode_reading", "namur_quality"]

_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}
_STATUS_QUALITY = {
    "sensor_fault": Quality.SENSOR_FAULT,
    "out_of_range": Quality.OUT_OF_RANGE,
    "calibration": Quality.CALIBRATION,
    "manual": Quality.MANUAL,
}
# precedence when several status rules hit one point: the worst wins
_RANK = {
    Quality.GOOD: 0,
    Quality.MANUAL: 1,
    Quality.OUT_OF_RANGE: 2,
    Quality.CALIBRATION: 3,
    Quality.SENSOR_FAULT: 4,
}


def _raw(point: PointSpec, words: Sequence[int | bool]) -> float:
    if point.dtype == "bool":
        if len(words) < 1:
            raise DeviceError(f"point {point.name!r}: no bit in the response")
        return 1.0 if words[0] else 0.0
    width = register_width(point.dtype)
    if len(words) < width:
        raise DeviceError(f"point {point.name!r}: response too short")
    regs = [int(w) & 0xFFFF for w in words[:width]]
    if point.dtype == "bit":
        return float((regs[0] >> (point.bit or 0)) & 1)
    if point.word_order in ("CDAB", "DCBA"):
        regs.reverse()
    if point.word_order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return float(
        struct.unpack(_FORMATS[point.dtype], b"".join(r.to_bytes(2, "big") for r in regs))[0]
    )


def _scaled(raw: float, scale: float) -> float:
    """raw * scale, but a decimal scale (0.1, 0.01 ...) divides so that 70 * 0.01 reads 0.7."""
    if scale not in (0.0, 1.0):
        inverse = 1.0 / scale
        if abs(inverse) >= 2 and abs(inverse - round(inverse)) < 1e-9 * abs(inverse):
            return raw / round(inverse)
    return raw * scale


def _milliamps(point: PointSpec, x: float) -> float:
    cur = point.current
    assert cur is not None
    return 4.0 + (x - cur.raw_4ma) * 16.0 / (cur.raw_20ma - cur.raw_4ma)


def namur_quality(ma: float) -> Quality:
    """NAMUR NE 43: < 3.6 or > 21 mA is a device fault; 3.6-3.8 and 20.5-21 mA saturated."""
    if ma < 3.6 or ma > 21.0:
        return Quality.SENSOR_FAULT
    if ma < 3.8 or ma > 20.5:
        return Quality.OUT_OF_RANGE
    return Quality.GOOD


def decode_reading(point: PointSpec, words: Sequence[int | bool]) -> tuple[float, Quality]:
    """The engineering value of one point and its quality from the transmitter's signal."""
    x = _scaled(_raw(point, words), point.scale) + point.offset
    cur = point.current
    if cur is None:
        return x, Quality.GOOD
    ma = _milliamps(point, x)
    value = cur.eng_min + (ma - 4.0) / 16.0 * (cur.eng_max - cur.eng_min)
    return value, namur_quality(ma)


def decode_point(point: PointSpec, words: Sequence[int | bool]) -> float:
    """Decode the words (or bits) of one point into its engineering value."""
    return decode_reading(point, words)[0]


def apply_status(
    status: Sequence[StatusSpec],
    raw_status: dict[str, int],
    names: Sequence[str],
    quality: list[Quality],
) -> None:
    """Set the quality of the points named in `names` from status registers (in place); a point
    that is already worse keeps its quality."""
    for st in status:
        word = raw_status.get(st.point)
        if word is None:
            continue
        field = (word >> st.bit) & 1 if st.bit is not None else word
        hit = field == st.equals if st.equals is not None else field != 0
        if not hit:
            continue
        q = _STATUS_QUALITY[st.quality]
        for i, name in enumerate(names):
            if (not st.applies_to or name in st.applies_to) and _RANK[q] > _RANK.get(quality[i], 0):
                quality[i] = q
