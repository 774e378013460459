"""JT/T 808 message ids: the ones this platform handles (`MsgId`), and the error for one it
does not (`UnsupportedMessageError`, answered with 0x8001 result 3)."""

from __future__ import annotations

import enum

from telemetry.jt808.codec import Jt808Error

__all__ = ["MsgId", "UnsupportedMessageError"]


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
