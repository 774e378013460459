"""JT/T 808 message bodies (pure): terminal registration 0x0100 and its answer 0x8100,
authentication 0x0102, heartbeat 0x0002, logout 0x0003, terminal general response 0x0001,
location report 0x0200, batch upload 0x0704, driver identity 0x0702 and its request 0x8702,
platform general response 0x8001, manual alarm confirmation 0x8203 and text message 0x8300
(a reminder the terminal shows and reads to the driver); alarm and status bits;
additional items; GMT+8 BCD time.

`decode_body(msg_id, body, v2019)` raises `Jt808Error` (the terminal's fault), or its subclass
`UnsupportedMessageError` for a message id we do not handle. Each message has `encode(v2019)`;
decoding then encoding gives back the same bytes (additional items keep order and raw values).
"""

from __future__ import annotations

import calendar
import enum
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.codec import Jt808Error

__all__ = [
    "Alarm",
    "AlarmConfirm",
    "Authenticate",
    "BatchLocation",
    "DriverIdentity",
    "DriverRequest",
    "Extra",
    "Heartbeat",
    "Location",
    "Logout",
    "Message",
    "MsgId",
    "PlatformResponse",
    "Register",
    "RegisterResponse",
    "Status",
    "TerminalResponse",
    "TextMessage",
    "UnsupportedMessageError",
    "bcd_time_to_ms",
    "decode_body",
    "ms_to_bcd_time",
]

_CST_S = 8 * 3600  # China Standard Time, GMT+8: the clock of every JT/T 808 BCD time
_TEXT = "gb18030"  # a superset of GBK, the standard's STRING encoding


class UnsupportedMessageError(Jt808Error):
    """A message id this platform does not handle (answered with 0x8001 result 3)."""


class MsgId(enum.IntEnum):
    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    LOGOUT = 0x0003
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    LOCATION = 0x0200
    BATCH_LOCATION = 0x0704
    DRIVER_IDENTITY = 0x0702
    DRIVER_REQUEST = 0x8702
    PLATFORM_RESPONSE = 0x8001
    REGISTER_RESPONSE = 0x8100
    ALARM_CONFIRM = 0x8203
    TEXT_MESSAGE = 0x8300


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


@dataclass(frozen=True, slots=True)
class Heartbeat:
    msg_id: ClassVar[int] = MsgId.HEARTBEAT

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Heartbeat:
        _exact(body, 0, "heartbeat 0x0002")
        return cls()

    def encode(self, v2019: bool) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Logout:
    msg_id: ClassVar[int] = MsgId.LOGOUT

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Logout:
        _exact(body, 0, "logout 0x0003")
        return cls()

    def encode(self, v2019: bool) -> bytes:
        return b""


_WWB = struct.Struct(">HHB")


@dataclass(frozen=True, slots=True)
class TerminalResponse:
    msg_id: ClassVar[int] = MsgId.TERMINAL_RESPONSE
    ack_serial: int
    ack_msg_id: int
    result: int  # 0 ok, 1 failed, 2 message error, 3 unsupported

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> TerminalResponse:
        _exact(body, 5, "terminal response 0x0001")
        return cls(*_WWB.unpack(body))

    def encode(self, v2019: bool) -> bytes:
        return _WWB.pack(self.ack_serial, self.ack_msg_id, self.result)


@dataclass(frozen=True, slots=True)
class PlatformResponse:
    msg_id: ClassVar[int] = MsgId.PLATFORM_RESPONSE
    ack_serial: int
    ack_msg_id: int
    result: int  # 0 ok, 1 failed, 2 message error, 3 unsupported, 4 alarm confirmed

    OK: ClassVar[int] = 0
    FAILED: ClassVar[int] = 1
    MESSAGE_ERROR: ClassVar[int] = 2
    UNSUPPORTED: ClassVar[int] = 3
    ALARM_CONFIRMED: ClassVar[int] = 4

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> PlatformResponse:
        _exact(body, 5, "platform response 0x8001")
        return cls(*_WWB.unpack(body))

    def encode(self, v2019: bool) -> bytes:
        return _WWB.pack(self.ack_serial, self.ack_msg_id, self.result)


@dataclass(frozen=True, slots=True)
class Register:
    """0x0100. Fixed-width text fields lose their trailing NUL padding when decoded."""

    msg_id: ClassVar[int] = MsgId.REGISTER
    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int  # 0: no plate (the VIN is sent), 1 blue, 2 yellow, 3 black, 4 white, 5 green
    plate: str

    @staticmethod
    def _widths(v2019: bool) -> tuple[int, int, int]:
        return (11, 30, 30) if v2019 else (5, 20, 7)

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Register:
        wm, wmod, wid = cls._widths(v2019)
        fixed = 4 + wm + wmod + wid + 1
        _need(body, fixed, "register 0x0100")
        province, city = struct.unpack_from(">HH", body)
        p = 4
        maker = _fixed(body[p : p + wm])
        model = _fixed(body[p + wm : p + wm + wmod])
        tid = _fixed(body[p + wm + wmod : p + wm + wmod + wid])
        return cls(province, city, maker, model, tid, body[fixed - 1], _text(body[fixed:]))

    def encode(self, v2019: bool) -> bytes:
        wm, wmod, wid = self._widths(v2019)
        return (
            struct.pack(">HH", self.province, self.city)
            + _pad(self.maker, wm, "maker id")
            + _pad(self.model, wmod, "model")
            + _pad(self.terminal_id, wid, "terminal id")
            + bytes((self.plate_color,))
            + _bytes(self.plate)
        )


@dataclass(frozen=True, slots=True)
class RegisterResponse:
    msg_id: ClassVar[int] = MsgId.REGISTER_RESPONSE
    ack_serial: int
    result: int  # 0 ok, 1 vehicle registered, 2 no such vehicle, 3 terminal registered, 4 no such
    auth_code: str = ""  # only with result 0

    OK: ClassVar[int] = 0
    VEHICLE_REGISTERED: ClassVar[int] = 1
    NO_VEHICLE: ClassVar[int] = 2
    TERMINAL_REGISTERED: ClassVar[int] = 3
    NO_TERMINAL: ClassVar[int] = 4

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> RegisterResponse:
        _need(body, 3, "register response 0x8100")
        serial, result = struct.unpack_from(">HB", body)
        return cls(serial, result, _text(body[3:]))

    def encode(self, v2019: bool) -> bytes:
        code = _bytes(self.auth_code) if self.result == 0 else b""
        return struct.pack(">HB", self.ack_serial, self.result) + code


@dataclass(frozen=True, slots=True)
class Authenticate:
    """0x0102: the auth code; 2019 adds a length byte, the IMEI and the software version."""

    msg_id: ClassVar[int] = MsgId.AUTHENTICATE
    auth_code: str
    imei: str = ""
    software: str = ""

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Authenticate:
        if not v2019:
            return cls(_text(body))
        _need(body, 1, "authenticate 0x0102")
        n = body[0]
        _exact(body, 1 + n + 15 + 20, "authenticate 0x0102 (2019)")
        return cls(_text(body[1 : 1 + n]), _fixed(body[1 + n : 16 + n]), _fixed(body[16 + n :]))

    def encode(self, v2019: bool) -> bytes:
        code = _bytes(self.auth_code)
        if not v2019:
            return code
        if len(code) > 255:
            raise ValueError("an auth code is at most 255 bytes")
        return (
            bytes((len(code),))
            + code
            + _pad(self.imei, 15, "IMEI")
            + _pad(self.software, 20, "software version")
        )


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


@dataclass(frozen=True, slots=True)
class AlarmConfirm:
    """0x8203: the platform confirms alarms; `alarm_serial` 0 confirms all of `alarm_type`."""

    msg_id: ClassVar[int] = MsgId.ALARM_CONFIRM
    alarm_serial: int
    alarm_type: int  # mask of Alarm bits (those in Alarm.ACK_CLEAR)

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> AlarmConfirm:
        _exact(body, 6, "alarm confirmation 0x8203")
        return cls(*struct.unpack(">HI", body))

    def encode(self, v2019: bool) -> bytes:
        return struct.pack(">HI", self.alarm_serial, self.alarm_type)


@dataclass(frozen=True, slots=True)
class TextMessage:
    """0x8300 文本信息下发: text for the driver, shown on the terminal's display (`DISPLAY`)
    and read aloud by its TTS (`TTS`). 2013: the flag BYTE, then the text (STRING, GBK, the rest
    of the body); 2019 puts a text type BYTE (1 notification, 2 service) between them. The
    flag's bits 0-1 are the emergency bit in 2013 (bit 1 reserved) and, in 2019, the kind: 01
    service, 10 emergency, 11 notification."""

    msg_id: ClassVar[int] = MsgId.TEXT_MESSAGE
    flag: int
    text: str
    text_type: int = 1  # 2019 only: 1 notification (通知), 2 service (服务)

    EMERGENCY: ClassVar[int] = 0x01  # 2013
    DISPLAY: ClassVar[int] = 0x04
    TTS: ClassVar[int] = 0x08
    NOTIFICATION: ClassVar[int] = 0x03  # 2019: bits 0-1 = 11
    # the longest text a body of 1023 bytes (10 bits of length, no sub-packages) carries
    MAX_TEXT_BYTES: ClassVar[int] = 1021

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> TextMessage:
        _need(body, 2 if v2019 else 1, "text message 0x8300")
        at = 2 if v2019 else 1
        text = body[at:].decode("gbk", errors="surrogateescape")  # GBK, as it is sent
        return cls(body[0], text, body[1]) if v2019 else cls(body[0], text)

    def encode(self, v2019: bool) -> bytes:
        """The body; ValueError for text GBK cannot encode, or too long for one body."""
        try:
            text = self.text.encode("gbk")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text {self.text!r} is not GBK: {exc.reason}") from None
        if len(text) > self.MAX_TEXT_BYTES:
            raise ValueError(f"text of {len(text)} bytes: at most {self.MAX_TEXT_BYTES}")
        head = bytes((self.flag, self.text_type)) if v2019 else bytes((self.flag,))
        return head + text


@dataclass(frozen=True, slots=True)
class DriverIdentity:
    """0x0702 (2013, 2019): the IC card of a driver put in (status 1: on duty) or taken out (2).
    With the card in and read (result 0): his name, qualification certificate (从业资格证) code,
    its issuing authority and validity; 2019 adds his ID card number."""

    msg_id: ClassVar[int] = MsgId.DRIVER_IDENTITY
    status: int  # 1 card in, 2 card out
    time: str  # YYMMDDhhmmss, GMT+8
    result: int = 0  # card in: 0 read, 1 key refused, 2 card locked, 3 card out, 4 bad checksum
    name: str = ""
    certificate: str = ""  # STRING[20]
    authority: str = ""
    valid_until: str = ""  # YYYYMMDD
    id_card: str = ""  # 2019: STRING[20]

    IN: ClassVar[int] = 1
    OUT: ClassVar[int] = 2

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> DriverIdentity:
        _need(body, 7, "driver identity 0x0702")
        status, time_ = body[0], body[1:7].hex()
        if status not in (cls.IN, cls.OUT):
            raise Jt808Error(f"driver identity 0x0702: status {status} is neither 1 (in) nor 2")
        if status == cls.OUT:
            return cls(status, time_)
        _need(body, 8, "driver identity 0x0702")
        result = body[7]
        if result != 0:
            return cls(status, time_, result)
        p = 8
        _need(body, p + 1, "driver identity 0x0702 name")
        n = body[p]
        _need(body, p + 1 + n + 20 + 1, "driver identity 0x0702")
        name = _text(body[p + 1 : p + 1 + n])
        p += 1 + n
        certificate = _fixed(body[p : p + 20]).strip()
        p += 20
        m = body[p]
        _need(body, p + 1 + m + 4, "driver identity 0x0702 authority")
        authority = _text(body[p + 1 : p + 1 + m])
        p += 1 + m
        valid = body[p : p + 4].hex()
        p += 4
        id_card = _fixed(body[p : p + 20]).strip() if v2019 and len(body) >= p + 20 else ""
        return cls(status, time_, 0, name, certificate, authority, valid, id_card)

    def encode(self, v2019: bool) -> bytes:
        out = bytes((self.status,)) + bytes.fromhex(self.time)
        if self.status != self.IN:
            return out
        out += bytes((self.result,))
        if self.result != 0:
            return out
        name, authority = _bytes(self.name), _bytes(self.authority)
        out += bytes((len(name),)) + name + _pad(self.certificate, 20, "certificate")
        out += bytes((len(authority),)) + authority + bytes.fromhex(self.valid_until)
        if v2019:
            out += _pad(self.id_card, 20, "ID card number")
        return out

    @property
    def driver_id(self) -> str:
        """Who drives, as the hub keys his fatigue: the certificate code, else the ID card
        number ("" when the card was not read, or says neither: a name is no identity, two
        drivers may share it). Padding (NUL, 0xFF, spaces, on either side) and bytes that are
        not GBK text are left out."""
        for field in (self.certificate, self.id_card):
            said = "".join(c for c in field if c.isprintable() and not "\udc80" <= c <= "\udcff")
            if said.strip():
                return said.strip()[:64]
        return ""


@dataclass(frozen=True, slots=True)
class DriverRequest:
    """0x8702: the platform asks the terminal for its driver's identity (answered by 0x0702)."""

    msg_id: ClassVar[int] = MsgId.DRIVER_REQUEST

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> DriverRequest:
        _exact(body, 0, "driver identity request 0x8702")
        return cls()

    def encode(self, v2019: bool) -> bytes:
        return b""


Message = (
    Heartbeat
    | Logout
    | TerminalResponse
    | PlatformResponse
    | Register
    | RegisterResponse
    | Authenticate
    | Location
    | BatchLocation
    | AlarmConfirm
    | DriverIdentity
    | DriverRequest
    | TextMessage
)

_DECODERS: dict[int, Callable[[bytes, bool], Message]] = {
    int(cls.msg_id): cls.decode
    for cls in (
        Heartbeat,
        Logout,
        TerminalResponse,
        PlatformResponse,
        Register,
        RegisterResponse,
        Authenticate,
        Location,
        BatchLocation,
        AlarmConfirm,
        DriverIdentity,
        DriverRequest,
        TextMessage,
    )
}


def decode_body(msg_id: int, body: bytes, v2019: bool) -> Message:
    """The message of a (reassembled) frame body."""
    decoder = _DECODERS.get(msg_id)
    if decoder is None:
        raise UnsupportedMessageError(f"message {msg_id:#06x} is not supported")
    return decoder(body, v2019)
