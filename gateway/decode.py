"""Register words to engineering values and qualities (pure). The simulators encode
independently; tests check that the two agree.

Byte and word orders of multi-register values (`LAYOUTS`): ABCD big-endian, CDAB words in reverse
order, BADC bytes swapped in each word, DCBA little-endian. A point with `current` is a 4-20 mA
transmitter judged by NAMUR NE 43.

A float that decodes to a subnormal number (not 0, smaller in magnitude than its type's smallest
normal: float32 1.1754944e-38, float64 2.2250738585072014e-308) is a sensor fault: no transmitter
measures 2.4e-41, but a round reading (0, 25.0, 60.0: its low word is 0) read in the wrong word
order is one, and would otherwise pass `valid` as a good reading near 0.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from gateway.errors import DeviceError
from telemetry.config import CurrentSpec, PointSpec, StatusSpec, register_width
from telemetry.quality import Quality

__all__ = [
    "LAYOUTS",
    "RequestDecoder",
    "apply_status",
    "decode_point",
    "decode_reading",
    "float32_decimal",
    "is_subnormal",
    "namur_quality",
    "word_order_hint",
]

_F32 = struct.Struct(">f")
_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}
# Where a value's bytes lie on the wire, by `word_order` and width in registers: the letters in
# the order the bytes come off the wire (register by register, high byte first), A the value's most
# significant byte. For 64 bits these are the names Telegraf's modbus input and others give the
# orders (ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA): CDAB is "the least significant word first",
# every register in reverse order, not the two 32-bit halves swapped.
LAYOUTS: dict[str, dict[int, str]] = {
    "ABCD": {1: "AB", 2: "ABCD", 4: "ABCDEFGH"},
    "CDAB": {1: "AB", 2: "CDAB", 4: "GHEFCDAB"},
    "BADC": {1: "BA", 2: "BADC", 4: "BADCFEHG"},
    "DCBA": {1: "BA", 2: "DCBA", 4: "HGFEDCBA"},
}
# for each (order, width): the wire position of the value's i-th most significant byte
_GATHER = {
    (order, width): tuple(layout.index(chr(ord("A") + i)) for i in range(2 * width))
    for order, widths in LAYOUTS.items()
    for width, layout in widths.items()
}
_STATUS_QUALITY = {
    "sensor_fault": Quality.SENSOR_FAULT,
    "out_of_range": Quality.OUT_OF_RANGE,
    "calibration": Quality.CALIBRATION,
    "manual": Quality.MANUAL,
}
# the smallest normal number of each float type: a non-zero value below it is subnormal
_TINY = {"float32": 1.1754943508222875e-38, "float64": 2.2250738585072014e-308}
# precedence when several status rules hit one point: the worst wins
_RANK = {
    Quality.GOOD: 0,
    Quality.MANUAL: 1,
    Quality.OUT_OF_RANGE: 2,
    Quality.CALIBRATION: 3,
    Quality.SENSOR_FAULT: 4,
}


def is_subnormal(dtype: str, raw: float) -> bool:
    """Whether a float point's raw value (before scale and offset) is subnormal: not a
    measurement, most likely a value read in the wrong word order. (The shortest decimal of a
    subnormal float32 is below the smallest normal too: it packs back to the subnormal.)"""
    tiny = _TINY.get(dtype)
    return tiny is not None and raw != 0.0 and abs(raw) < tiny


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
    wire = b"".join(r.to_bytes(2, "big") for r in regs)
    data = bytes(wire[i] for i in _GATHER[point.word_order, width])
    x = float(struct.unpack(_FORMATS[point.dtype], data)[0])
    return float32_decimal(x) if point.dtype == "float32" else x


def word_order_hint(point: PointSpec, words: bytes | Sequence[int | bool]) -> str:
    """For a float point that decoded to a subnormal number: what the other word orders read
    from the same registers (those that give a measurement within `valid`), for the log line
    that says so."""
    if isinstance(words, bytes):
        words = [int.from_bytes(words[k : k + 2], "big") for k in range(0, len(words) - 1, 2)]
    readings = []
    for order in LAYOUTS:
        if order == point.word_order:
            continue
        other = point.model_copy(update={"word_order": order})
        value, quality = decode_reading(other, words)
        if quality != Quality.SENSOR_FAULT:
            readings.append(f"{order} reads {value:g}")
    if not readings:
        return "no other word order reads a measurement"
    return "; ".join(readings)


def float32_decimal(x: float) -> float:
    """The shortest decimal that a float32 stands for: a transmitter at 9.2 m sends the float32
    nearest 9.2, 9.19999980926..., which read as is would miss a level at 9.2 (>=); read as the
    9.2 it means, it meets it. Non-finite values are kept."""
    if not math.isfinite(x):
        return x
    packed = _F32.pack(x)
    for digits in range(6, 10):  # 9 significant digits always give the float32 back
        d = float(f"{x:.{digits}g}")
        if _F32.pack(d) == packed:
            return d
    return x


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
    """NAMUR NE 43: 3.6 mA or less and 21 mA or more is a failure signal; between it and
    3.8-20.5 mA the signal is saturated."""
    if ma <= 3.6 or ma >= 21.0:
        return Quality.SENSOR_FAULT
    if ma < 3.8 or ma > 20.5:
        return Quality.OUT_OF_RANGE
    return Quality.GOOD


def decode_reading(point: PointSpec, words: Sequence[int | bool]) -> tuple[float, Quality]:
    """The engineering value of one point and its quality from the transmitter's signal."""
    raw = _raw(point, words)
    x = _scaled(raw, point.scale) + point.offset
    cur = point.current
    if cur is None:
        value, quality = x, _plausible(point, x, Quality.GOOD)
    else:
        value = _engineering(cur, x)
        quality = _plausible(point, value, namur_quality(_milliamps(point, x)))
    if is_subnormal(point.dtype, raw):  # no measurement: a value in the wrong word order
        quality = Quality.SENSOR_FAULT
    return value, quality


def _engineering(cur: CurrentSpec, x: float) -> float:
    """The engineering value of a raw current reading, straight from the raw span, one division
    of exact products: 5600 µA of a 0-100 transmitter reads 10.0, not the 9.999999999999998 of
    a detour through mA (a set point of 10 would be missed); of -40..60 °C, 7856 µA reads -15.9;
    of -0.1..0.9 MPa, 4112 µA reads -0.093."""
    exact = (cur.eng_min * (cur.raw_20ma - x) + cur.eng_max * (x - cur.raw_4ma)) / (
        cur.raw_20ma - cur.raw_4ma
    )
    # a span with decimals (-0.1..0.9 MPa) makes the products inexact: at 1e-9 of the unit no
    # transmitter resolves more, and the set points of a decimal span read as written
    return round(exact, 9)


def _plausible(point: PointSpec, value: float, quality: Quality) -> Quality:
    """A good value outside the point's `valid` range (or not a number) is a sensor fault; one
    within it but outside the instrument's `range` is out of range, as a saturated one (NAMUR)
    is: both stay measurements, judged against the levels."""
    if quality != Quality.GOOD:
        return quality
    if not math.isfinite(value):  # a float32 transmitter's NaN or infinity, `valid` or not
        return Quality.SENSOR_FAULT
    valid = point.valid
    if valid is not None and not valid[0] <= value <= valid[1]:
        return Quality.SENSOR_FAULT
    span = point.range
    if span is not None and not span[0] <= value <= span[1]:
        # infinity is no measurement either: it would be judged by nothing and stored nowhere
        return Quality.OUT_OF_RANGE if math.isfinite(value) else Quality.SENSOR_FAULT
    return quality


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


class RequestDecoder:
    """Decodes every point of one read request at once: the hot path of the gateway.

    Big-endian (ABCD) numeric points are unpacked by one precompiled `struct` format per request,
    scaled with numpy, and judged by NAMUR in numpy; other orders, bits and booleans take the
    per-point path. Gives the same values as `decode_reading` (tests check it).
    """

    def __init__(
        self,
        points: Sequence[PointSpec],
        offsets: Sequence[int],
        count: int,
        *,
        index: Sequence[int] | None = None,
    ) -> None:
        """`index[i]` is where point i goes in the arrays that `decode` fills (default i): a
        poller passes the points' places in its whole cycle and needs no copy afterwards."""
        self.count = count
        self.points = tuple(points)
        self._index = tuple(range(len(points))) if index is None else tuple(index)
        fast = [i for i, p in enumerate(points) if p.word_order == "ABCD" and p.dtype in _FORMATS]
        fast.sort(key=lambda i: offsets[i])
        fmt, pos, chosen = ">", 0, []
        for i in fast:
            start = offsets[i] * 2
            if start < pos:
                continue  # overlaps the previous point: per-point path
            width = register_width(points[i].dtype) * 2
            if start + width > count * 2:
                continue
            fmt += f"{start - pos}x" if start > pos else ""
            fmt += _FORMATS[points[i].dtype][1]
            pos = start + width
            chosen.append(i)
        self._fast = np.array([self._index[i] for i in chosen], dtype=np.intp)
        self._struct = struct.Struct(fmt)
        self._words = struct.Struct(f">{count}H")
        self._slow = [i for i in range(len(points)) if i not in set(chosen)]
        self._offsets = tuple(offsets)
        pts = [points[i] for i in chosen]
        self._f32 = [j for j, i in enumerate(chosen) if points[i].dtype == "float32"]
        self._floats = [j for j, i in enumerate(chosen) if points[i].dtype.startswith("float")]
        self._tiny = {j: _TINY[points[chosen[j]].dtype] for j in self._floats}
        self._coef = []  # (divide, scale, offset): small lists beat numpy at this size
        for p in pts:
            divide = 0.0
            if p.scale not in (0.0, 1.0):
                inverse = 1.0 / p.scale
                if abs(inverse) >= 2 and abs(inverse - round(inverse)) < 1e-9 * abs(inverse):
                    divide = float(round(inverse))
            self._coef.append((divide, p.scale, p.offset))
        self._current = [(j, p.current) for j, p in enumerate(pts) if p.current is not None]
        self._valid = [(j, p.valid) for j, p in enumerate(pts) if p.valid is not None]
        self._range = [(j, p.range) for j, p in enumerate(pts) if p.range is not None]

    def decode(
        self, words: bytes | Sequence[int | bool], value: np.ndarray, quality: np.ndarray
    ) -> tuple[int, ...]:
        """Fill value[i] and quality[i] for every point i of the request. `words` are register
        words or bits, or the registers as big-endian bytes (as they come off the wire).
        Returns the places (as in `index`) of the float points that decoded to a subnormal
        number (given sensor-fault quality: most likely a wrong word order), usually none."""
        subnormal: list[int] = []
        if isinstance(words, bytes):
            if len(words) < 2 * self.count:
                raise DeviceError(
                    f"response has {len(words) // 2} registers, expected {self.count}"
                )
            data = words
            if self._slow:
                words = self._words.unpack_from(data)
        elif len(self._fast):
            if len(words) < self.count:
                raise DeviceError(f"response has {len(words)} registers, expected {self.count}")
            data = self._words.pack(*words[: self.count])
        if len(self._fast):
            raw: list[float] = list(self._struct.unpack_from(data))
            odd = [j for j in self._floats if raw[j] != 0.0 and abs(raw[j]) < self._tiny[j]]
            if self._f32:
                for j in self._f32:
                    raw[j] = float32_decimal(raw[j])
            xs = [
                (r / d if d else r * sc) + off
                for r, (d, sc, off) in zip(raw, self._coef, strict=True)
            ]
            qs = [0] * len(xs)
            for j, cur in self._current:
                ma = 4.0 + (xs[j] - cur.raw_4ma) * 16.0 / (cur.raw_20ma - cur.raw_4ma)
                xs[j] = _engineering(cur, xs[j])
                qs[j] = namur_quality(ma)
            for j in self._floats:  # NaN or infinity (only a float can be one): a fault
                if not math.isfinite(xs[j]):
                    qs[j] = Quality.SENSOR_FAULT
            for j, (lo, hi) in self._valid:
                if qs[j] == Quality.GOOD and not lo <= xs[j] <= hi:
                    qs[j] = Quality.SENSOR_FAULT
            for j, (lo, hi) in self._range:  # over or under the span: still a measurement
                if qs[j] == Quality.GOOD and not lo <= xs[j] <= hi:
                    qs[j] = Quality.OUT_OF_RANGE if math.isfinite(xs[j]) else Quality.SENSOR_FAULT
            for j in odd:
                qs[j] = Quality.SENSOR_FAULT
                subnormal.append(int(self._fast[j]))
            value[self._fast] = xs
            quality[self._fast] = qs
        for i in self._slow:
            point = self.points[i]
            v, qq = decode_reading(point, words[self._offsets[i] :])
            value[self._index[i]] = v
            quality[self._index[i]] = qq
            if (
                qq == Quality.SENSOR_FAULT
                and point.dtype in _TINY
                and is_subnormal(point.dtype, _raw(point, words[self._offsets[i] :]))
            ):
                subnormal.append(self._index[i])
        return tuple(subnormal)
