"""JT/T 808 positions (pure): location report 0x0200 and batch upload 0x0704; the alarm and
status bits and the additional items of a report."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.fields import _need, bcd_time_to_ms
from telemetry.jt808.ids import MsgId
from telemetry.jt808.safety import ADAS, DSM, SafetyBlock

__all__ = ["Alarm", "BatchLocation", "Extra", "Location", "Status"]


class Alarm(enum.IntFlag):
    """Alarm flag bits of 0x0200 (2013 names; 2019 differences in the comments)."""

    EMERGENCY = 1 << 0
    OVERSPEED = 1 << 1
    FATIGUE = 1 << 2
    DANGER = 1 << 3  # 2019: dangerous driving behaviour
    GNSS_FAULT = 1 << 4
    GNSS_ANTENNA_OPEN = 1 << 5
    GNSS_ANTENNA_SHORT = 1 << 6
    POWER_LOW = 1 << 7
    POWER_CUT = 1 << 8
    LCD_FAULT = 1 << 9
    TTS_FAULT = 1 << 10
    CAMERA_FAULT = 1 << 11
    IC_CARD_FAULT = 1 << 12
    OVERSPEED_WARNING = 1 << 13
    FATIGUE_WARNING = 1 << 14
    ILLEGAL_DRIVING = 1 << 15  # 2019
    TYRE_PRESSURE = 1 << 16  # 2019
    RIGHT_TURN_BLIND_ZONE = 1 << 17  # 2019
    DAILY_DRIVING_OVERTIME = 1 << 18
    PARKING_OVERTIME = 1 << 19
    AREA = 1 << 20
    ROUTE = 1 << 21
    SEGMENT_TIME = 1 << 22
    ROUTE_DEVIATION = 1 << 23
    VSS_FAULT = 1 << 24
    FUEL_ABNORMAL = 1 << 25
    STOLEN = 1 << 26
    ILLEGAL_IGNITION = 1 << 27
    ILLEGAL_DISPLACEMENT = 1 << 28
    COLLISION = 1 << 29
    ROLLOVER = 1 << 30
    ILLEGAL_DOOR_OPEN = 1 << 31  # 2019: reserved

    # bits cleared only when the platform confirms them (0x8203's alarm types; bit 31, which a
    # 2013 terminal also holds, is reserved there: it cannot be confirmed)
    ACK_CLEAR = (
        EMERGENCY | DANGER | AREA | ROUTE | SEGMENT_TIME | ILLEGAL_IGNITION | ILLEGAL_DISPLACEMENT
    )
    # the bits of the 2019 standard that are reserved in 2013's (a vendor's own there), and
    # the other way round
    ONLY_2019 = ILLEGAL_DRIVING | TYRE_PRESSURE | RIGHT_TURN_BLIND_ZONE
    ONLY_2013 = ILLEGAL_DOOR_OPEN


class Status(enum.IntFlag):
    ACC_ON = 1 << 0
    POSITIONED = 1 << 1
    SOUTH = 1 << 2
    WEST = 1 << 3
    OUT_OF_SERVICE = 1 << 4
    ENCRYPTED = 1 << 5
    AEB_WARNING = 1 << 6  # 2019
    LANE_DEPARTURE = 1 << 7  # 2019
    LOAD_HALF = 1 << 8
    LOAD_FULL = 3 << 8
    FUEL_CUT = 1 << 10
    CIRCUIT_CUT = 1 << 11
    DOORS_LOCKED = 1 << 12
    DOOR1_OPEN = 1 << 13
    DOOR2_OPEN = 1 << 14
    DOOR3_OPEN = 1 << 15
    DOOR4_OPEN = 1 << 16
    DOOR5_OPEN = 1 << 17
    GPS = 1 << 18
    BEIDOU = 1 << 19
    GLONASS = 1 << 20
    GALILEO = 1 << 21
    MOVING = 1 << 22  # 2019


class Extra(enum.IntEnum):
    """Additional-item ids of 0x0200."""

    MILEAGE = 0x01  # DWORD, 1/10 km
    FUEL = 0x02  # WORD, 1/10 L
    RECORDER_SPEED = 0x03  # WORD, 1/10 km/h
    ALARM_EVENT_ID = 0x04  # WORD
    SIGNAL_EXT = 0x25  # DWORD
    IO_STATUS = 0x2A  # WORD
    ANALOG = 0x2B  # DWORD
    SIGNAL = 0x30  # BYTE, network signal strength
    SATELLITES = 0x31  # BYTE, GNSS satellites in use
    ADAS = ADAS  # 苏标 active safety: driver assistance (`telemetry.jt808.safety`)
    DSM = DSM  # ... driver monitoring


_BASIC = struct.Struct(">IIIIHHH6s")


@dataclass(frozen=True, slots=True)
class Location:
    """0x0200 as sent: raw integer fields, BCD time as its 12 digits, additional items in order."""

    msg_id: ClassVar[int] = MsgId.LOCATION
    alarm: int
    status: int
    lat_e6: int  # unsigned; south is status bit 2
    lon_e6: int  # unsigned; west is status bit 3
    altitude_m: int
    speed_dkmh: int  # 1/10 km/h
    direction: int  # degrees, 0 = north, clockwise
    time: str  # YYMMDDhhmmss, GMT+8
    extras: tuple[tuple[int, bytes], ...] = ()
    # why the additional items stop short ("" when they do not): a vendor's item of a wrong
    # length loses what follows it, not the position (the basic block is whole)
    bad_extras: str = ""

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> Location:
        _need(body, 28, "location 0x0200")
        alarm, status, lat, lon, alt, speed, direction, t = _BASIC.unpack_from(body)
        extras: list[tuple[int, bytes]] = []
        p = 28
        n = len(body)
        bad = ""
        while p < n:
            if p + 2 > n:
                bad = f"additional item at byte {p} is truncated"
                break
            ident, length = body[p], body[p + 1]
            if p + 2 + length > n:
                bad = f"additional item {ident:#04x} of {length} bytes overruns the body"
                break
            extras.append((ident, body[p + 2 : p + 2 + length]))
            p += 2 + length
        return cls(alarm, status, lat, lon, alt, speed, direction, t.hex(), tuple(extras), bad)

    def encode(self, v2019: bool = False) -> bytes:
        out = bytearray(
            _BASIC.pack(
                self.alarm,
                self.status,
                self.lat_e6,
                self.lon_e6,
                self.altitude_m,
                self.speed_dkmh,
                self.direction,
                bytes.fromhex(self.time),
            )
        )
        for ident, value in self.extras:
            out += bytes((ident, len(value))) + value
        return bytes(out)

    @property
    def lat(self) -> float:
        return -self.lat_e6 / 1e6 if self.status & Status.SOUTH else self.lat_e6 / 1e6

    @property
    def lon(self) -> float:
        return -self.lon_e6 / 1e6 if self.status & Status.WEST else self.lon_e6 / 1e6

    @property
    def speed_kmh(self) -> float:
        return self.speed_dkmh / 10

    @property
    def ts_ms(self) -> int:
        """Event time, epoch ms UTC (Jt808Error when the BCD time is not a time)."""
        return bcd_time_to_ms(self.time)

    def extra_values(self) -> dict[str, float]:
        """The known additional items in their units; items of an unexpected size are skipped."""
        out: dict[str, float] = {}
        for ident, raw in self.extras:
            conv = _EXTRAS.get((ident, len(raw)))
            if conv is not None:
                name, scale = conv
                out[name] = int.from_bytes(raw, "big") * scale
        return out

    def safety_blocks(self) -> tuple[tuple[SafetyBlock, ...], tuple[str, ...]]:
        """The ADAS (0x64) and DSM (0x65) blocks that read, in order, and why each of the
        others does not (its length is neither layout's: a vendor's own)."""
        blocks: list[SafetyBlock] = []
        bad: list[str] = []
        for ident, raw in self.extras:
            if ident in (ADAS, DSM):
                try:
                    blocks.append(SafetyBlock.decode(ident, raw))
                except Jt808Error as exc:
                    bad.append(str(exc))
        return tuple(blocks), tuple(bad)


_EXTRAS: dict[tuple[int, int], tuple[str, float]] = {
    (Extra.MILEAGE, 4): ("mileage_km", 0.1),
    (Extra.FUEL, 2): ("fuel_l", 0.1),
    (Extra.RECORDER_SPEED, 2): ("recorder_speed_kmh", 0.1),
    (Extra.ALARM_EVENT_ID, 2): ("alarm_event_id", 1),
    (Extra.SIGNAL, 1): ("signal", 1),
    (Extra.SATELLITES, 1): ("satellites", 1),
    (Extra.IO_STATUS, 2): ("io_status", 1),
    (Extra.SIGNAL_EXT, 4): ("signal_ext", 1),
    (Extra.ANALOG, 4): ("analog", 1),
}


@dataclass(frozen=True, slots=True)
class BatchLocation:
    """0x0704: location bodies uploaded together; type 0 normal, 1 blind-area backfill."""

    msg_id: ClassVar[int] = MsgId.BATCH_LOCATION
    kind: int
    items: tuple[Location, ...]

    NORMAL: ClassVar[int] = 0
    BACKFILL: ClassVar[int] = 1

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> BatchLocation:
        _need(body, 3, "batch location 0x0704")
        count, kind = struct.unpack_from(">HB", body)
        items: list[Location] = []
        p = 3
        for i in range(count):
            if p + 2 > len(body):
                raise Jt808Error(f"batch location 0x0704: item {i} of {count} is missing")
            (n,) = struct.unpack_from(">H", body, p)
            if p + 2 + n > len(body):
                raise Jt808Error(f"batch location 0x0704: item {i} of {n} bytes is truncated")
            try:
                items.append(Location.decode(body[p + 2 : p + 2 + n]))
            except Jt808Error as exc:
                raise Jt808Error(f"batch location 0x0704: item {i}: {exc}") from exc
            p += 2 + n
        if p != len(body):
            raise Jt808Error(f"batch location 0x0704: {len(body) - p} bytes after {count} items")
        return cls(kind, tuple(items))

    def encode(self, v2019: bool = False) -> bytes:
        out = bytearray(struct.pack(">HB", len(self.items), self.kind))
        for item in self.items:
            b = item.encode()
            out += struct.pack(">H", len(b)) + b
        return bytes(out)
