"""JT/T 808 general messages (pure): heartbeat 0x0002, the terminal's general response 0x0001
and the platform's 0x8001."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.fields import _exact
from telemetry.jt808.ids import MsgId

__all__ = ["Heartbeat", "PlatformResponse", "TerminalResponse"]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    msg_id: ClassVar[int] = MsgId.HEARTBEAT

    @classmethod
    def decode(cls, body: bytes, v2019: bool) -> Heartbeat:
        _exact(body, 0, "heartbeat 0x0002")
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
