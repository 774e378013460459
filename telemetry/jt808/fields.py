"""The standard's data types in message bodies (pure): STRING text in GBK (GB 18030 read),
fixed-width NUL-padded fields, GMT+8 BCD time, and the length checks of a body (`Jt808Error`,
the terminal's fault, when it is short or long)."""

from __future__ import annotations

import calendar
import time

from telemetry.jt808.codec import Jt808Error

__all__ = ["bcd_time_to_ms", "ms_to_bcd_time"]

_CST_S = 8 * 3600  # China Standard Time, GMT+8: the clock of every JT/T 808 BCD time
_TEXT = "gb18030"  # a superset of GBK, the standard's STRING encoding


def bcd_time_to_ms(bcd: str) -> int:
    """YYMMDDhhmmss in GMT+8 (years 2000-2099) to epoch ms UTC; Jt808Error if it is no time."""
    if len(bcd) != 12 or not bcd.isdigit():
        raise Jt808Error(f"time {bcd!r} is not BCD YYMMDDhhmmss")
    y, mo, d, h, mi, s = (int(bcd[i : i + 2]) for i in range(0, 12, 2))
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(2000 + y, mo)[1]):
        raise Jt808Error(f"time {bcd!r} has no such date")
    if not (h <= 23 and mi <= 59 and s <= 59):
        raise Jt808Error(f"time {bcd!r} has no such time of day")
    return (calendar.timegm((2000 + y, mo, d, h, mi, s, 0, 0, 0)) - _CST_S) * 1000


def ms_to_bcd_time(ms: int) -> str:
    """Epoch ms UTC to YYMMDDhhmmss in GMT+8 (whole seconds, rounded down)."""
    t = time.gmtime(ms // 1000 + _CST_S)
    if not 2000 <= t.tm_year <= 2099:
        raise ValueError(f"{ms} ms is outside the years 2000-2099 a BCD time can carry")
    fields = (t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    return "".join(f"{f:02d}" for f in fields)


def _text(raw: bytes) -> str:
    return raw.decode(_TEXT, errors="surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode(_TEXT, errors="surrogateescape")


def _fixed(raw: bytes) -> str:
    return _text(raw.rstrip(b"\x00"))


def _pad(text: str, width: int, what: str) -> bytes:
    b = _bytes(text)
    if len(b) > width:
        raise ValueError(f"{what} {text!r} is longer than {width} bytes")
    return b + b"\x00" * (width - len(b))


def _need(body: bytes, n: int, what: str) -> None:
    if len(body) < n:
        raise Jt808Error(f"{what}: body of {len(body)} bytes, at least {n} expected")


def _exact(body: bytes, n: int, what: str) -> None:
    if len(body) != n:
        raise Jt808Error(f"{what}: body of {len(body)} bytes, {n} expected")
