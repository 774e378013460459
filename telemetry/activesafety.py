"""The active-safety events of a position record (pure, the wire contract): the ADAS and DSM
alarms of a 苏标 terminal (T/JSATL 12-2017; JT/T 808 additional items 0x64 and 0x65), as the
JT/T 808 gateway publishes them in a record's `active_safety` array and the hub reads them
(docs/mqtt.md "Active-safety events").

Each event is an object: `source` ("adas" or "dsm"), `alarm_id` (the terminal's alarm id,
DWORD), `flag` (0 an event without duration, 1 start, 2 end), `type` (the block's alarm or
event type), `level` (1 first level, 2 second level; 0-255 read), `ts` (the event's own time,
epoch ms), and optional `attachments` (files the terminal keeps for it, 0-255), `ref` (the
alarm identification number, 报警标识号, at most 64 characters), `lat` and `lon` (where it
happened, WGS-84 degrees), `speed_kmh` (the vehicle's speed then, 0-255), `fatigue` (DSM: the
terminal's fatigue degree, 0-255) and `headway_s` (ADAS: the time to the vehicle or person
ahead, 0-25.5 s). No other key.

The hub reads each event on its own: one that does not read is left out with its reason
(counted and dead-lettered by the caller), never the position that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADAS_TYPES",
    "DSM_TYPES",
    "EVENT_TYPES",
    "MAX_AFTER_MS",
    "MAX_EVENTS",
    "SAFETY_KINDS",
    "SafetyEvent",
    "read_event",
    "read_events",
    "safety_kind",
]

# the alarm and event types of T/JSATL 12-2017 (types 8-15 and 18-31 are the vendors' own)
ADAS_TYPES: dict[int, str] = {
    1: "forward_collision",  # 前向碰撞报警
    2: "lane_departure",  # 车道偏离报警
    3: "headway",  # 车距过近报警
    4: "pedestrian_collision",  # 行人碰撞报警
    5: "frequent_lane_change",  # 频繁变道报警
    6: "road_sign_overlimit",  # 道路标识超限报警
    7: "obstacle",  # 障碍物报警
    16: "road_sign",  # 道路标志识别事件
    17: "capture",  # 主动抓拍事件
}
DSM_TYPES: dict[int, str] = {
    1: "fatigue",  # 疲劳驾驶报警
    2: "phone_call",  # 接打电话报警
    3: "smoking",  # 抽烟报警
    4: "distraction",  # 分神驾驶报警
    5: "driver_abnormal",  # 驾驶员异常报警
    16: "capture",  # 自动抓拍事件
    17: "driver_change",  # 驾驶员变更事件
}
# types that are events, not alarms: recorded, alarmed only when the fleet says so
EVENT_TYPES = frozenset({16, 17})
# every kind, by source and type: "adas_forward_collision" ...
SAFETY_KINDS: dict[tuple[str, int], str] = {
    **{("adas", t): f"adas_{name}" for t, name in ADAS_TYPES.items()},
    **{("dsm", t): f"dsm_{name}" for t, name in DSM_TYPES.items()},
}
MAX_AFTER_MS = 30_000  # an event may be this much after the report that carries it, no more
# per record: a 0x0200 body (at most 1023 bytes) holds 20 blocks of 47 bytes and their 2-byte
# heads after its 28-byte base (13 of the 71-byte 粤标 ones)
MAX_EVENTS = 20
_PLACE = ("lat", "lon", "speed_kmh", "fatigue", "headway_s")
_KEYS = frozenset(
    {"source", "alarm_id", "flag", "type", "level", "ts", "attachments", "ref", *_PLACE}
)
_REQUIRED = ("source", "alarm_id", "flag", "type", "level", "ts")


def safety_kind(source: str, type_: int) -> str | None:
    """The alarm kind of an event (`adas_forward_collision`), None for a vendor's own type."""
    return SAFETY_KINDS.get((source, type_))


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    source: str  # "adas" or "dsm"
    alarm_id: int
    flag: int  # 0 no duration, 1 start, 2 end
    type: int
    level: int
    ts: int  # epoch ms, the event's own time
    attachments: int = 0
    ref: str = ""
    lat: float | None = None  # where it happened (None: not said)
    lon: float | None = None
    speed_kmh: int | None = None
    fatigue: int | None = None  # DSM: the fatigue degree the terminal judged
    headway_s: float | None = None  # ADAS: the time to the vehicle or person ahead
    driver: str = ""  # the record's driver_id (the hub's; not an event key)

    @property
    def kind(self) -> str | None:
        return safety_kind(self.source, self.type)

    def record(self) -> dict[str, object]:
        """The event as a record's `active_safety` item."""
        out: dict[str, object] = {
            "source": self.source,
            "alarm_id": self.alarm_id,
            "flag": self.flag,
            "type": self.type,
            "level": self.level,
            "ts": self.ts,
            "attachments": self.attachments,
        }
        if self.ref:
            out["ref"] = self.ref
        for key in _PLACE:
            v = getattr(self, key)
            if v is not None:
                out[key] = v
        return out


def _int(item: dict[str, Any], key: str, hi: int) -> int:
    v = item.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise ValueError(f"active_safety {key} must be an integer 0-{hi}")
    return v


def _float(item: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    v = item.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise ValueError(f"active_safety {key} must be a number {lo:g} to {hi:g}")
    return float(v)


def _optional_int(item: dict[str, Any], key: str, hi: int) -> int | None:
    return _int(item, key, hi) if key in item else None


def read_event(item: Any, record_ts: int) -> SafetyEvent:
    """One event of a record; ValueError naming what is wrong. An event may not be more than
    30 s after the report that carries it (it happened before it was sent)."""
    if not isinstance(item, dict):
        raise ValueError("an active_safety event must be an object")
    missing = [k for k in _REQUIRED if k not in item]
    if missing:
        raise ValueError(f"active_safety event without {', '.join(missing)}")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValueError(f"active_safety event with unknown key(s) {', '.join(unknown[:5])}")
    if item["source"] not in ("adas", "dsm"):
        raise ValueError("active_safety source must be 'adas' or 'dsm'")
    ref = item.get("ref", "")
    if not isinstance(ref, str) or len(ref) > 64:
        raise ValueError("active_safety ref must be a string of at most 64 characters")
    flag = _int(item, "flag", 2)
    ts = _int(item, "ts", 2**53 - 1)
    if ts > record_ts + MAX_AFTER_MS:
        raise ValueError(f"active_safety event at {ts}, after the report's ts {record_ts}")
    return SafetyEvent(
        item["source"],
        _int(item, "alarm_id", 2**32 - 1),
        flag,
        _int(item, "type", 255),
        _int(item, "level", 255),
        ts,
        _int(item, "attachments", 255),
        ref,
        _float(item, "lat", -90, 90),
        _float(item, "lon", -180, 180),
        _optional_int(item, "speed_kmh", 255),
        _optional_int(item, "fatigue", 255),
        _float(item, "headway_s", 0, 25.5),
    )


def read_events(value: Any, record_ts: int) -> tuple[tuple[SafetyEvent, ...], list[str]]:
    """A record's `active_safety` array: the events that read, and why each of the others
    does not (the array itself not an array, or events beyond `MAX_EVENTS`: left out)."""
    if not isinstance(value, list):
        return (), ["active_safety must be an array"]
    out: list[SafetyEvent] = []
    why: list[str] = []
    for i, item in enumerate(value[:MAX_EVENTS]):
        try:
            out.append(read_event(item, record_ts))
        except ValueError as exc:
            why.append(f"active_safety event {i}: {exc}")
    if len(value) > MAX_EVENTS:
        why.append(f"active_safety holds {len(value)} events, at most {MAX_EVENTS}: rest left out")
    return tuple(out), why
