"""JT/T 809 main-link message bodies (pure), 2011 and 2019: login 0x1001 and its answer
0x1002, logout 0x1003 / 0x1004, keep-alive 0x1005 / 0x1006, the disconnect notices 0x1007 and
0x1008; and `decode_body`, `decode_positions` (0x1200 UP_EXG_MSG's 0x1202 and 0x1203, whose
bodies are in `positions`).

Every body is a frozen dataclass with `encode(v2019)` and `decode(body, v2019)`; a body that
cannot be read raises `BadBodyError` (the peer's fault). Text is GBK (read as GB 18030), fixed
width, padded with NULs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt809.downlink import (
    DownCloseNotice,
    DownConnect,
    DownConnectResponse,
    DownDisconnect,
    DownDisconnectNotice,
    DownDisconnectResponse,
    DownLinkTest,
    DownLinkTestResponse,
)
from telemetry.jt809.fields import UnsupportedError, exact, gbk, text
from telemetry.jt809.ids import MsgId, SubId
from telemetry.jt809.positions import ExgMsg, HistoryLocation, RealLocation
from telemetry.jt809.supervision import DownWarnMsg
from telemetry.jt809.warnings import WarnMsg

__all__ = [
    "CloseNotice",
    "DisconnectNotice",
    "KeepAlive",
    "KeepAliveResponse",
    "Login",
    "LoginResponse",
    "Logout",
    "LogoutResponse",
    "Message",
    "decode_body",
    "decode_positions",
]

_LOGIN = struct.Struct(">I8s")


@dataclass(frozen=True, slots=True)
class Login:
    """0x1001 UP_CONNECT_REQ: user id, password (8 bytes), the down link's IP (32) and port;
    2019 adds the platform's access code after the password."""

    msg_id: ClassVar[int] = MsgId.LOGIN
    user_id: int
    password: bytes  # as sent, 8 bytes, padding included
    down_ip: str
    down_port: int
    access_code: int | None = None  # 2019 only

    def encode(self, v2019: bool = False) -> bytes:
        out = _LOGIN.pack(self.user_id, self.password.ljust(8, b"\x00")[:8])
        if v2019:
            out += struct.pack(">I", self.access_code or 0)
        return out + gbk(self.down_ip, 32, "down-link IP") + struct.pack(">H", self.down_port)

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> Login:
        exact(body, 50 if v2019 else 46, "login 0x1001")
        user, password = _LOGIN.unpack_from(body)
        code = None
        p = 12
        if v2019:
            (code,) = struct.unpack_from(">I", body, p)
            p += 4
        ip = text(body[p : p + 32])
        (port,) = struct.unpack_from(">H", body, p + 32)
        return cls(user, password, ip, port, code)


@dataclass(frozen=True, slots=True)
class LoginResponse:
    """0x1002 UP_CONNECT_RSP: the result and a verify code (for the sub link's 0x9001)."""

    msg_id: ClassVar[int] = MsgId.LOGIN_RESPONSE
    result: int
    verify_code: int = 0

    def encode(self, v2019: bool = False) -> bytes:
        return struct.pack(">BI", self.result, self.verify_code)

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> LoginResponse:
        exact(body, 5, "login response 0x1002")
        return cls(*struct.unpack(">BI", body))


@dataclass(frozen=True, slots=True)
class Logout:
    """0x1003 UP_DISCONNECT_REQ: user id and password."""

    msg_id: ClassVar[int] = MsgId.LOGOUT
    user_id: int
    password: bytes

    def encode(self, v2019: bool = False) -> bytes:
        return _LOGIN.pack(self.user_id, self.password.ljust(8, b"\x00")[:8])

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> Logout:
        exact(body, 12, "logout 0x1003")
        return cls(*_LOGIN.unpack(body))


@dataclass(frozen=True, slots=True)
class _Empty:
    def encode(self, v2019: bool = False) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class LogoutResponse(_Empty):
    msg_id: ClassVar[int] = MsgId.LOGOUT_RESPONSE

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> LogoutResponse:
        exact(body, 0, "logout response 0x1004")
        return cls()


@dataclass(frozen=True, slots=True)
class KeepAlive(_Empty):
    msg_id: ClassVar[int] = MsgId.KEEP_ALIVE

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> KeepAlive:
        exact(body, 0, "keep-alive 0x1005")
        return cls()


@dataclass(frozen=True, slots=True)
class KeepAliveResponse(_Empty):
    msg_id: ClassVar[int] = MsgId.KEEP_ALIVE_RESPONSE

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> KeepAliveResponse:
        exact(body, 0, "keep-alive response 0x1006")
        return cls()


@dataclass(frozen=True, slots=True)
class DisconnectNotice:
    """0x1007 UP_DISCONNECT_INFORM (the lower platform says its main link broke; sent on the
    sub link) and 0x1008 UP_CLOSELINK_INFORM (it is closing the links): a reason byte."""

    msg_id: ClassVar[int] = MsgId.DISCONNECT_NOTICE
    reason: int

    def encode(self, v2019: bool = False) -> bytes:
        return bytes((self.reason,))

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DisconnectNotice:
        exact(body, 1, f"notice {cls.msg_id:#06x}")
        return cls(body[0])


@dataclass(frozen=True, slots=True)
class CloseNotice(DisconnectNotice):
    msg_id: ClassVar[int] = MsgId.CLOSE_NOTICE


Message = (
    Login
    | LoginResponse
    | Logout
    | LogoutResponse
    | KeepAlive
    | KeepAliveResponse
    | DisconnectNotice
    | ExgMsg
    | WarnMsg
    | DownWarnMsg
    | DownConnect
    | DownConnectResponse
    | DownDisconnectResponse
    | DownLinkTest
    | DownLinkTestResponse
)
_DECODERS = {
    int(cls.msg_id): cls.decode
    for cls in (
        Login,
        LoginResponse,
        Logout,
        LogoutResponse,
        KeepAlive,
        KeepAliveResponse,
        DisconnectNotice,
        CloseNotice,
        ExgMsg,
        WarnMsg,
        DownWarnMsg,
        DownConnect,
        DownDisconnect,
        DownConnectResponse,
        DownDisconnectNotice,
        DownCloseNotice,
        DownDisconnectResponse,
        DownLinkTest,
        DownLinkTestResponse,
    )
}


def decode_body(msg_id: int, body: bytes, v2019: bool) -> Message:
    """The message of a frame's (decrypted) body: `BadBodyError`, or `UnsupportedError` for an
    id not handled here."""
    decoder = _DECODERS.get(msg_id)
    if decoder is None:
        raise UnsupportedError(f"message {msg_id:#06x} is not supported")
    return decoder(body, v2019)


def decode_positions(exg: ExgMsg, v2019: bool) -> RealLocation | HistoryLocation:
    """The positions of a 0x1200 (0x1202 or 0x1203); `UnsupportedError` for another sub-type."""
    if exg.sub_id == SubId.REAL_LOCATION:
        return RealLocation.decode(exg.data, v2019)
    if exg.sub_id == SubId.HISTORY_LOCATION:
        return HistoryLocation.decode(exg.data, v2019)
    raise UnsupportedError(f"UP_EXG_MSG sub-type {exg.sub_id:#06x} is not supported")
