"""JT/T 808 registration and its phases (pure): terminal registration 0x0100 and its answer
0x8100, authentication 0x0102, logout 0x0003."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.fields import _bytes, _exact, _fixed, _need, _pad, _text
from telemetry.jt808.ids import MsgId

__all__ = ["Authenticate", "Logout", "Register", "RegisterResponse"]


@dataclass(frozen=True, slots=True)
class Logout:
    msg_id: ClassVar[int] = MsgId.LOGOUT

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Logout:
        _exact(body, 0, "logout 0x0003")
        return cls()

    def encode(self, v2019: bool) -> bytes:
        return b""


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
