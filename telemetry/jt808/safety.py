"""The active-safety additional items of a JT/T 808 location report (pure): the ADAS block
0x64 (高级驾驶辅助系统报警) and the DSM block 0x65 (驾驶员状态监测) of T/JSATL 12-2017 (苏标),
and their variant with a 30-byte terminal id of the 2019 terminals (粤标).

A block is, big-endian (docs/jt808.md "Active safety"):

    alarm id DWORD, flag BYTE (0 unavailable, 1 start, 2 end), type BYTE, level BYTE,
    5 type-specific bytes (ADAS: front vehicle speed, front distance (100 ms), deviation type,
    road sign type, road sign value; DSM: fatigue level, 4 reserved),
    speed BYTE, altitude WORD, latitude DWORD, longitude DWORD, time BCD[6], vehicle status WORD,
    alarm identification: terminal id BYTE[7], time BCD[6], sequence BYTE, attachments BYTE,
    reserved BYTE                                                             (苏标: 47 bytes)
    ... terminal id BYTE[30], ..., reserved BYTE[2]                          (粤标: 71 bytes)

The two layouts are told by their length (the only difference); a block of any other length,
or of an id that is neither, is refused with `Jt808Error`: the caller counts it and keeps the
position. Times stay as their 12 digits (`time`, `ident_time`), decoded on demand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt808.codec import Jt808Error
from telemetry.jt808.fields import bcd_time_to_ms

__all__ = ["ADAS", "DSM", "SafetyBlock"]

ADAS = 0x64
DSM = 0x65

_HEAD = struct.Struct(">IBBB5sBHII6sH")  # alarm id ... vehicle status: 31 bytes
_SU_ID = 7  # terminal id of the alarm identification, 苏标
_YUE_ID = 30  # ... 粤标
_TAIL = struct.Struct(">6sBB")  # time, sequence, attachments
SU_SIZE = _HEAD.size + _SU_ID + _TAIL.size + 1  # 47
YUE_SIZE = _HEAD.size + _YUE_ID + _TAIL.size + 2  # 71


@dataclass(frozen=True, slots=True)
class SafetyBlock:
    """One ADAS (0x64) or DSM (0x65) block as sent: integers raw, times as their BCD digits."""

    START: ClassVar[int] = 1
    END: ClassVar[int] = 2

    ident: int  # ADAS or DSM, the additional item's id
    alarm_id: int  # DWORD, the terminal's count of its alarms (wraps; not per type)
    flag: int  # 0 unavailable (an event without duration), 1 start, 2 end
    type: int  # alarm or event type (ADAS 1 forward collision ...; DSM 1 fatigue ...)
    level: int  # 1 first level, 2 second level
    specific: bytes  # the 5 type-specific bytes
    speed_kmh: int  # BYTE, km/h
    altitude_m: int
    lat_e6: int  # unsigned; the hemisphere is the vehicle status's (bit ... as 0x0200's)
    lon_e6: int
    time: str  # YYMMDDhhmmss, GMT+8: when the event happened
    vehicle_status: int  # WORD
    terminal_id: bytes  # 7 bytes (苏标) or 30 (粤标), as sent
    ident_time: str  # the identification's time, BCD digits
    ident_seq: int  # the number of the alarm within that second
    attachments: int  # files the terminal holds for it (photos, video)
    reserved: bytes = b"\x00"  # 1 byte (苏标) or 2 (粤标)

    @property
    def yue(self) -> bool:
        """The 粤标 layout (a 30-byte terminal id)."""
        return len(self.terminal_id) == _YUE_ID

    @property
    def source(self) -> str:
        return "adas" if self.ident == ADAS else "dsm"

    @property
    def ts_ms(self) -> int:
        """The event's time, epoch ms UTC (Jt808Error when the BCD time is not a time)."""
        return bcd_time_to_ms(self.time)

    @property
    def terminal(self) -> str:
        """The identification's terminal id as text (ASCII; padding dropped)."""
        return self.terminal_id.rstrip(b"\x00 ").decode("ascii", errors="replace")

    @property
    def reference(self) -> str:
        """The alarm identification number (报警标识号) an enterprise finds the alarm's files
        by: terminal id, time, sequence, as `T0000001/261129220500/0`."""
        return f"{self.terminal}/{self.ident_time}/{self.ident_seq}"

    @property
    def fatigue(self) -> int | None:
        """DSM: the fatigue level (疲劳程度) the terminal judged; None for ADAS."""
        return self.specific[0] if self.ident == DSM else None

    @classmethod
    def decode(cls, ident: int, raw: bytes) -> SafetyBlock:
        if ident not in (ADAS, DSM):
            raise Jt808Error(f"additional item {ident:#04x} is no active-safety block")
        if len(raw) == SU_SIZE:
            width, spare = _SU_ID, 1
        elif len(raw) == YUE_SIZE:
            width, spare = _YUE_ID, 2
        else:
            raise Jt808Error(
                f"active-safety block {ident:#04x} of {len(raw)} bytes "
                f"({SU_SIZE} in T/JSATL 12-2017, {YUE_SIZE} with a 30-byte terminal id)"
            )
        head = _HEAD.unpack_from(raw)
        p = _HEAD.size
        terminal_id = raw[p : p + width]
        itime, seq, files = _TAIL.unpack_from(raw, p + width)
        return cls(
            ident,
            head[0],
            head[1],
            head[2],
            head[3],
            head[4],
            head[5],
            head[6],
            head[7],
            head[8],
            head[9].hex(),
            head[10],
            terminal_id,
            itime.hex(),
            seq,
            files,
            raw[len(raw) - spare :],
        )

    def encode(self) -> bytes:
        """The block's value (without its id and length byte)."""
        if len(self.terminal_id) not in (_SU_ID, _YUE_ID):
            raise ValueError(
                f"a terminal id of {_SU_ID} or {_YUE_ID} bytes, not {self.terminal_id!r}"
            )
        if len(self.reserved) != (2 if self.yue else 1) or len(self.specific) != 5:
            raise ValueError("5 type-specific bytes and 1 reserved (2 with a 30-byte id)")
        head = _HEAD.pack(
            self.alarm_id,
            self.flag,
            self.type,
            self.level,
            self.specific,
            self.speed_kmh,
            self.altitude_m,
            self.lat_e6,
            self.lon_e6,
            bytes.fromhex(self.time),
            self.vehicle_status,
        )
        tail = _TAIL.pack(bytes.fromhex(self.ident_time), self.ident_seq, self.attachments)
        return head + self.terminal_id + tail + self.reserved

    def item(self) -> tuple[int, bytes]:
        """The additional item of a `Location`: (id, value)."""
        return self.ident, self.encode()
