"""JT/T 809 vehicle warnings (pure): 0x1400 UP_WARN_MSG and its 0x1402 UP_WARN_MSG_ADPT_INFO
(上报报警信息), 2011 and 2019.

2011: the 0x1400 body starts with the vehicle (plate BYTE[21], colour), then the sub-type and
DATA_LENGTH; 0x1402 is WARN_SRC, WARN_TYPE, WARN_TIME (UTC seconds, 8 bytes), INFO_ID,
INFO_LENGTH and the text. 2019: 0x1400 has no vehicle header; 0x1402 names the platform that
raised the warning (11 bytes), the type and time, the event's start and end, then the vehicle
(plate BYTE[21] as the 2011 header has it, colour), the platform warned of and the route id
(JT/T 808-2019 0x8606), the length and the text. The upper platform does not answer it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt809.fields import BadBodyError, UnsupportedError, gbk, text
from telemetry.jt809.ids import MsgId, SubId

__all__ = ["WarnInfo", "WarnMsg", "decode_warning"]

_VEHICLE = struct.Struct(">21sBHI")
_SUB = struct.Struct(">HI")


@dataclass(frozen=True, slots=True)
class WarnMsg:
    """0x1400: the vehicle (2011; empty in 2019), the sub-type and its data."""

    msg_id: ClassVar[int] = MsgId.WARN_MSG
    plate: str
    color: int
    sub_id: int
    data: bytes

    def encode(self, v2019: bool = False) -> bytes:
        if v2019:
            return _SUB.pack(self.sub_id, len(self.data)) + self.data
        plate = gbk(self.plate, 21, "plate")
        return _VEHICLE.pack(plate, self.color, self.sub_id, len(self.data)) + self.data

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> WarnMsg:
        head = _SUB if v2019 else _VEHICLE
        if len(body) < head.size:
            raise BadBodyError(
                f"UP_WARN_MSG 0x1400: body of {len(body)} bytes, {head.size} at least"
            )
        if v2019:
            plate, color = "", 0
            sub, n = _SUB.unpack_from(body)
        else:
            raw, color, sub, n = _VEHICLE.unpack_from(body)
            plate = text(raw)
        data = body[head.size :]
        if len(data) != n:
            raise BadBodyError(
                f"UP_WARN_MSG 0x1400 {sub:#06x}: DATA_LENGTH {n}, {len(data)} bytes follow"
            )
        return cls(plate, color, sub, data)


_W2011 = struct.Struct(">BHQII")
_W2019 = struct.Struct(">11sHQQQ21sB11sII")


@dataclass(frozen=True, slots=True)
class WarnInfo:
    """0x1402: a warning. `source` (2011 WARN_SRC: 1 terminal, 2 enterprise platform, 3
    government platform, 9 other) or `source_platform` (2019); `warn_type` (the standard's
    table: 0x0001 overspeed, 0x0002 fatigue, ...); times UTC seconds."""

    sub_id: ClassVar[int] = SubId.WARN_INFO
    warn_type: int
    warn_time_s: int
    content: str
    source: int = 0
    info_id: int = 0
    source_platform: str = ""
    start_s: int = 0
    end_s: int = 0
    plate: str = ""
    color: int = 0
    target_platform: str = ""
    line_id: int = 0

    def encode(self, v2019: bool = False) -> bytes:
        info = self.content.encode("gb18030")
        if not v2019:
            head = _W2011.pack(
                self.source, self.warn_type, self.warn_time_s, self.info_id, len(info)
            )
            return head + info
        head = _W2019.pack(
            gbk(self.source_platform, 11, "platform id"),
            self.warn_type,
            self.warn_time_s,
            self.start_s,
            self.end_s,
            gbk(self.plate, 21, "plate"),
            self.color,
            gbk(self.target_platform, 11, "platform id"),
            self.line_id,
            len(info),
        )
        return head + info

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> WarnInfo:
        head = _W2019 if v2019 else _W2011
        if len(data) < head.size:
            raise BadBodyError(f"0x1402: {len(data)} bytes, {head.size} at least")
        if v2019:
            src, wtype, wtime, start, end, plate, color, target, line, n = head.unpack_from(data)
        else:
            source, wtype, wtime, info_id, n = head.unpack_from(data)
        content = data[head.size :]
        if len(content) != n:
            raise BadBodyError(f"0x1402: INFO_LENGTH {n}, {len(content)} bytes follow")
        info = text(content)
        if not v2019:
            return cls(wtype, wtime, info, source=source, info_id=info_id)
        return cls(
            wtype,
            wtime,
            info,
            source_platform=text(src),
            start_s=start,
            end_s=end,
            plate=text(plate),
            color=color,
            target_platform=text(target),
            line_id=line,
        )


def decode_warning(msg: WarnMsg, v2019: bool) -> WarnInfo:
    """The 0x1402 of a 0x1400; `UnsupportedError` for another sub-type (0x1401, 0x1403)."""
    if msg.sub_id != SubId.WARN_INFO:
        raise UnsupportedError(f"UP_WARN_MSG sub-type {msg.sub_id:#06x} is not supported")
    return WarnInfo.decode(msg.data, v2019)
