"""JT/T 808 platform commands to the terminal (pure): manual alarm confirmation 0x8203 and
text message 0x8300 (a reminder the terminal shows and reads to the driver)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.fields import _exact, _need
from telemetry.jt808.ids import MsgId

__all__ = ["AlarmConfirm", "TextMessage"]


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
