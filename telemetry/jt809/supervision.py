"""JT/T 809 alarm supervision (报警督办, pure): the upper platform's 0x9400 DOWN_WARN_MSG with its
0x9401 DOWN_WARN_MSG_URGE_TODO_REQ (the centre's ticket), and the lower platform's answer, the
0x1401 UP_WARN_MSG_URGE_TODO_ACK in a 0x1400 (`WarnMsg`).

0x9400: in 2011 the vehicle (plate BYTE[21], colour) then the sub-type and DATA_LENGTH; in 2019
no vehicle header (as SmallChi/JT809 writes it, and as this package reads 0x1400). 0x9401:
WARN_SRC, WARN_TYPE, WARN_TIME (UTC seconds, 8 bytes), SUPERVISION_ID (DWORD), SUPERVISION_ENDTIME
(UTC seconds, 8), SUPERVISION_LEVEL (0 urgent, 1 normal), SUPERVISOR (16), SUPERVISOR_TEL (20),
SUPERVISOR_EMAIL (32): 92 bytes, the same in both versions (SmallChi/JT809 has no 2019 layout of
its own for it). 0x1401: SUPERVISION_ID, RESULT (0 处理中, 1 已处理完毕, 2 不作处理, 3 将来处理).

`warn_type` maps the hub's vehicle alarm kinds to the standard's WARN_TYPE table (0x0001 超速 ..
0x000E 其他); a kind without a code of its own is 0x000E (other).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt809.fields import BadBodyError, UnsupportedError, exact, gbk, text
from telemetry.jt809.ids import MsgId, SubId
from telemetry.jt809.warnings import WarnMsg

__all__ = [
    "RESULTS",
    "WARN_OTHER",
    "DownWarnMsg",
    "SuperviseAnswer",
    "SuperviseRequest",
    "decode_supervise_answer",
    "warn_source",
    "warn_type",
]

WARN_OTHER = 0x000E
# the hub's vehicle alarm kinds (docs/vehicles.md) -> WARN_TYPE: 0x0001 超速, 0x0002 疲劳驾驶,
# 0x0003 紧急, 0x0004 进入指定区域, 0x0005 离开指定区域, 0x0006 路段堵塞, 0x0007 危险路段,
# 0x0008 越界, 0x0009 盗警, 0x000A 劫警, 0x000B 偏离路线, 0x000C 车辆移动, 0x000D 超时驾驶,
# 0x000E 其他 (the table as SmallChi/JT809's JT809WarnType carries it)
_WARN_TYPES: dict[str, int] = {
    "overspeed": 0x0001,
    "terminal_overspeed": 0x0001,
    "fatigue": 0x0002,
    "terminal_fatigue": 0x0002,
    "terminal_emergency": 0x0003,
    "forbidden_area": 0x0004,
    "terminal_stolen": 0x0009,
    "corridor": 0x000B,
    "terminal_off_route": 0x000B,
    # (not `terminal_route`, 808 bit 21 进出路线: entering or leaving a route is no deviation
    # from it; nor `terminal_area`, bit 20 进出区域: the bit does not say in or out, 0x0004 or
    # 0x0005; both 0x000E)
    "terminal_illegal_move": 0x000C,
    "fatigue_daily": 0x000D,
    "fatigue_weekly": 0x000D,
    "terminal_day_driving": 0x000D,
}
RESULTS = {0: "处理中", 1: "已处理完毕", 2: "不作处理", 3: "将来处理"}


def warn_type(kind: str) -> int:
    """The WARN_TYPE of a hub alarm kind; 0x000E (other) for one without its own."""
    return _WARN_TYPES.get(kind, WARN_OTHER)


def warn_source(kind: str) -> int:
    """WARN_SRC: 1 the vehicle's terminal (its own alarm bits), 3 the supervising (government)
    platform (the hub's own judgement of the positions)."""
    return 1 if kind.startswith("terminal_") else 3


_VEHICLE = struct.Struct(">21sBHI")
_SUB = struct.Struct(">HI")


@dataclass(frozen=True, slots=True)
class DownWarnMsg:
    """0x9400: the vehicle (2011; empty in 2019), the sub-type and its data."""

    msg_id: ClassVar[int] = MsgId.DOWN_WARN_MSG
    plate: str
    color: int
    sub_id: int
    data: bytes

    def encode(self, v2019: bool = False) -> bytes:
        return WarnMsg(self.plate, self.color, self.sub_id, self.data).encode(v2019)

    @classmethod
    def decode(cls, body: bytes, v2019: bool = False) -> DownWarnMsg:
        try:
            m = WarnMsg.decode(body, v2019)
        except BadBodyError as exc:
            raise BadBodyError(
                str(exc).replace("UP_WARN_MSG 0x1400", "DOWN_WARN_MSG 0x9400")
            ) from None
        return cls(m.plate, m.color, m.sub_id, m.data)


_REQ = struct.Struct(">BHQIQB16s20s32s")


@dataclass(frozen=True, slots=True)
class SuperviseRequest:
    """0x9401 报警督办请求: times UTC seconds; `level` 0 urgent (紧急), 1 normal (一般)."""

    sub_id: ClassVar[int] = SubId.WARN_URGE_TODO_REQ
    warn_src: int
    warn_type: int
    warn_time_s: int
    supervision_id: int
    end_s: int
    level: int
    supervisor: str = ""
    tel: str = ""
    email: str = ""

    def encode(self, v2019: bool = False) -> bytes:
        return _REQ.pack(
            self.warn_src,
            self.warn_type,
            self.warn_time_s,
            self.supervision_id,
            self.end_s,
            self.level,
            gbk(self.supervisor, 16, "supervisor"),
            gbk(self.tel, 20, "supervisor's telephone"),
            gbk(self.email, 32, "supervisor's e-mail"),
        )

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> SuperviseRequest:
        exact(data, _REQ.size, "0x9401")
        src, wtype, wtime, sid, end, level, who, tel, email = _REQ.unpack(data)
        return cls(src, wtype, wtime, sid, end, level, text(who), text(tel), text(email))


_ACK = struct.Struct(">IB")


@dataclass(frozen=True, slots=True)
class SuperviseAnswer:
    """0x1401 报警督办应答: the supervision id and the result (`RESULTS`)."""

    sub_id: ClassVar[int] = SubId.WARN_ADVISE
    supervision_id: int
    result: int

    def encode(self, v2019: bool = False) -> bytes:
        return _ACK.pack(self.supervision_id, self.result)

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> SuperviseAnswer:
        exact(data, _ACK.size, "0x1401")
        return cls(*_ACK.unpack(data))


def decode_supervise_answer(msg: WarnMsg, v2019: bool) -> SuperviseAnswer:
    """The 0x1401 of a 0x1400; `UnsupportedError` for another sub-type."""
    if msg.sub_id != SubId.WARN_ADVISE:
        raise UnsupportedError(f"UP_WARN_MSG sub-type {msg.sub_id:#06x} is not a 0x1401")
    return SuperviseAnswer.decode(msg.data, v2019)
