"""JT/T 809 positions (pure): the vehicle dynamic-information exchange 0x1200 (UP_EXG_MSG) and
its real-time location 0x1202 and backfill 0x1203, in the 2011 layout (the 36-byte GNSS_DATA,
China time) and the 2019 one (the JT/T 808 0x0200 body, and three platforms' alarms)."""

from __future__ import annotations

import calendar
import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.location import Location
from telemetry.jt809.fields import BadBodyError, exact, gbk, text
from telemetry.jt809.ids import MsgId, SubId

__all__ = ["ExgMsg", "Gnss2011", "Gnss2019", "HistoryLocation", "RealLocation"]

_CST_S = 8 * 3600  # China Standard Time: the clock of the 2011 position's date and time

_VEHICLE = struct.Struct(">21sBHI")


@dataclass(frozen=True, slots=True)
class ExgMsg:
    """0x1200 UP_EXG_MSG: the vehicle (plate BYTE[21] GBK, plate colour), the sub-business
    type and its data (DATA_LENGTH bytes)."""

    msg_id: ClassVar[int] = MsgId.EXG_MSG
    plate: str
    color: int
    sub_id: int
    data: bytes

    def encode(self, v2019: bool = False) -> bytes:
        head = _VEHICLE.pack(gbk(self.plate, 21, "plate"), self.color, self.sub_id, len(self.data))
        return head + self.data

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> ExgMsg:
        if len(body) < _VEHICLE.size:
            raise BadBodyError(
                f"UP_EXG_MSG 0x1200: body of {len(body)} bytes, {_VEHICLE.size} at least"
            )
        plate, color, sub, n = _VEHICLE.unpack_from(body)
        data = body[_VEHICLE.size :]
        if len(data) != n:
            raise BadBodyError(
                f"UP_EXG_MSG 0x1200 {sub:#06x}: DATA_LENGTH {n}, {len(data)} bytes follow"
            )
        return cls(text(plate), color, sub, data)


_GNSS = struct.Struct(">BBBHBBBIIHHIHHII")  # 36 bytes


@dataclass(frozen=True, slots=True)
class Gnss2011:
    """The 2011 GNSS_DATA (36 bytes): the date and time in China time, lon/lat in 1e-6 degree,
    the satellite speed (VEC1) and the tachograph's (VEC2) in km/h, the mileage (VEC3, km),
    direction, altitude (m), the JT/T 808 status and alarm bits; `encrypt` 1: the place is
    offset by the national map-security plugin (GCJ-02)."""

    encrypt: int
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    lon_e6: int
    lat_e6: int
    vec1: int
    vec2: int
    vec3: int
    direction: int
    altitude_m: int
    state: int
    alarm: int

    SIZE: ClassVar[int] = _GNSS.size

    def encode(self) -> bytes:
        d = self
        return _GNSS.pack(
            d.encrypt, d.day, d.month, d.year, d.hour, d.minute, d.second, d.lon_e6, d.lat_e6,
            d.vec1, d.vec2, d.vec3, d.direction, d.altitude_m, d.state, d.alarm,
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> Gnss2011:
        exact(raw, _GNSS.size, "GNSS_DATA")
        (enc, day, mon, year, h, mi, s, lon, lat, v1, v2, v3, dr, alt, st, al) = _GNSS.unpack(raw)
        return cls(enc, year, mon, day, h, mi, s, lon, lat, v1, v2, v3, dr, alt, st, al)

    @property
    def ts_ms(self) -> int:
        """Event time, epoch ms UTC; `BadBodyError` when the date and time are none."""
        y, mo, d = self.year, self.month, self.day
        if not (1 <= mo <= 12 and 1970 <= y <= 9999 and 1 <= d <= calendar.monthrange(y, mo)[1]):
            raise BadBodyError(f"GNSS_DATA date {y}-{mo:02d}-{d:02d} is no date")
        if not (self.hour <= 23 and self.minute <= 59 and self.second <= 59):
            raise BadBodyError(f"GNSS_DATA time {self.hour}:{self.minute}:{self.second} is no time")
        return (calendar.timegm((y, mo, d, self.hour, self.minute, self.second)) - _CST_S) * 1000

    def location(self) -> Location:
        """As a JT/T 808 location report (the same status and alarm bits; VEC1 the speed)."""
        ok = 2000 <= self.year <= 2099
        t = (self.year % 100, self.month, self.day, self.hour, self.minute, self.second)
        bcd = "".join(f"{min(f, 99):02d}" for f in t) if ok else "000000000000"
        return Location(
            self.alarm,
            self.state,
            self.lat_e6,
            self.lon_e6,
            self.altitude_m,
            min(self.vec1 * 10, 0xFFFF),
            self.direction,
            bcd,
        )


_PLATFORM = struct.Struct(">11sI")


@dataclass(frozen=True, slots=True)
class Gnss2019:
    """The 2019 position: `encrypt`, the JT/T 808 0x0200 body (GNSS_DATA, with its length),
    and three platforms' ids (11 bytes) with the alarm each judged."""

    encrypt: int
    gnss: bytes
    platforms: tuple[tuple[str, int], ...] = (("", 0), ("", 0), ("", 0))

    def encode(self) -> bytes:
        out = struct.pack(">BI", self.encrypt, len(self.gnss)) + self.gnss
        for pid, alarm in self.platforms:
            out += _PLATFORM.pack(gbk(pid, 11, "platform id"), alarm)
        return out

    @classmethod
    def read(cls, raw: bytes, p: int = 0) -> tuple[Gnss2019, int]:
        """One position from `raw` at `p`, and the offset after it."""
        if p + 5 > len(raw):
            raise BadBodyError("2019 position: truncated before GNSS_DATA")
        enc, n = struct.unpack_from(">BI", raw, p)
        p += 5
        end = p + n + 3 * _PLATFORM.size
        if end > len(raw):
            raise BadBodyError(f"2019 position: GNSS_DATA of {n} bytes and its platforms overrun")
        gnss = raw[p : p + n]
        p += n
        plats = []
        for _ in range(3):
            pid, alarm = _PLATFORM.unpack_from(raw, p)
            plats.append((text(pid), alarm))
            p += _PLATFORM.size
        return cls(enc, gnss, tuple(plats)), p

    def location(self) -> Location:
        try:
            return Location.decode(self.gnss, True)
        except Jt808Error as exc:
            raise BadBodyError(f"2019 position: GNSS_DATA: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RealLocation:
    """0x1202 UP_EXG_MSG_REAL_LOCATION: one position."""

    sub_id: ClassVar[int] = SubId.REAL_LOCATION
    position: Gnss2011 | Gnss2019

    def encode(self) -> bytes:
        return self.position.encode()

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> RealLocation:
        if not v2019:
            return cls(Gnss2011.decode(data))
        pos, p = Gnss2019.read(data)
        if p != len(data):
            raise BadBodyError(f"0x1202: {len(data) - p} bytes after the position")
        return cls(pos)


@dataclass(frozen=True, slots=True)
class HistoryLocation:
    """0x1203 UP_EXG_MSG_HISTORY_LOCATION: a count (1..5 by the standard) and the positions."""

    sub_id: ClassVar[int] = SubId.HISTORY_LOCATION
    positions: tuple[Gnss2011 | Gnss2019, ...]

    def encode(self) -> bytes:
        return bytes((len(self.positions),)) + b"".join(p.encode() for p in self.positions)

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> HistoryLocation:
        if not data:
            raise BadBodyError("0x1203: empty")
        n = data[0]
        if n == 0:
            raise BadBodyError("0x1203 of 0 positions (1 to 5 expected)")
        if not v2019:
            exact(data, 1 + n * Gnss2011.SIZE, f"0x1203 of {n} positions")
            size = Gnss2011.SIZE
            return cls(
                tuple(Gnss2011.decode(data[1 + i * size : 1 + (i + 1) * size]) for i in range(n))
            )
        out: list[Gnss2011 | Gnss2019] = []
        p = 1
        for i in range(n):
            try:
                pos, p = Gnss2019.read(data, p)
            except BadBodyError as exc:
                raise BadBodyError(f"0x1203 position {i} of {n}: {exc}") from exc
            out.append(pos)
        if p != len(data):
            raise BadBodyError(f"0x1203: {len(data) - p} bytes after {n} positions")
        return cls(tuple(out))
