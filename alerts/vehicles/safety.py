"""The active-safety alarms of 苏标 terminals (T/JSATL 12-2017): the ADAS and DSM events a
position carries (`telemetry.activesafety`) become alarms of the vehicle, one per kind
(`adas_forward_collision`, `dsm_fatigue` ...), in the events' own time:

- flag 1 (start) raises the kind's alarm at the block's level (1 first level, 2 second level:
  a tier each, `ActiveSafety.tier`), or escalates an open one to a higher level;
- flag 2 (end) returns it to normal;
- flag 0 (an event without duration) raises it and returns it to normal at once (it still
  needs its acknowledgement), unless the kind's alarm is open (then it may escalate it).

The event types 16 and 17 (captures, a change of driver) are counted, not alarmed, unless the
fleet lists them (`alarm_events`); vendors' own types are counted. The same event sent again
(a report retransmitted, a blind area uploaded twice: the same source, alarm id, flag, type and
time) changes nothing: each vehicle's last `SEEN` events are remembered; across a restart the
alarm database says which raises were recorded (`VehicleAlarms.apply_fleet`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.kinds import ALARM_KIND_SIDES
from telemetry.activesafety import SafetyEvent
from telemetry.fleetconfig import ActiveSafety

__all__ = ["SAFETY_ACTIONS", "SEEN", "SafetyAlarms", "SafetyChange", "is_safety_kind"]

SEEN = 256  # events remembered per vehicle
_Key = tuple[str, int, int, int, int]  # source, alarm id, flag, type, time
Checkpoint = tuple[dict[tuple[int, int], int], dict[int, dict[_Key, None]]]
_ADAS = "ADAS 主动安全报警: 通知驾驶员, 调取附件核实 tell the driver, check the evidence"
_DSM = "DSM 驾驶员状态报警: 立即提醒驾驶员 remind the driver now"
SAFETY_ACTIONS: dict[str, str] = {
    "adas_forward_collision": "前向碰撞报警 forward collision warning: " + _ADAS,
    "adas_lane_departure": "车道偏离报警 lane departure: " + _ADAS,
    "adas_headway": "车距过近报警 headway too short: " + _ADAS,
    "adas_pedestrian_collision": "行人碰撞报警 pedestrian collision warning: " + _ADAS,
    "adas_frequent_lane_change": "频繁变道报警 frequent lane changes: " + _ADAS,
    "adas_road_sign_overlimit": "道路标识超限报警 over a road sign's limit: " + _ADAS,
    "adas_obstacle": "障碍物报警 obstacle ahead: " + _ADAS,
    "adas_road_sign": "道路标志识别事件 road sign recognised",
    "adas_capture": "主动抓拍事件 ADAS capture",
    "dsm_fatigue": "疲劳驾驶报警 driver fatigue: " + _DSM + ", 安排休息 arrange a rest",
    "dsm_phone_call": "接打电话报警 phone call while driving: " + _DSM,
    "dsm_smoking": "抽烟报警 smoking while driving: " + _DSM,
    "dsm_distraction": "分神驾驶报警 distracted driving: " + _DSM,
    "dsm_driver_abnormal": "驾驶员异常报警 driver absent or abnormal: " + _DSM + ", 电话联系 call",
    "dsm_capture": "自动抓拍事件 DSM capture",
    "dsm_driver_change": "驾驶员变更事件 driver changed",
}


def is_safety_kind(kind: str) -> bool:
    return kind in SAFETY_ACTIONS


@dataclass(frozen=True, slots=True)
class SafetyChange:
    vehicle: int  # registry index of the vehicle's speed sensor
    kind: str
    side: int
    level: int  # 1 or 2 raised (or escalated), 0 returned to normal
    tier: str
    ts: int
    said: str  # the 苏标 alarm id, its identification number and attachments


def _said(ev: SafetyEvent) -> str:
    what = {0: "事件 event", 1: "开始 start", 2: "结束 end"}.get(ev.flag, str(ev.flag))
    parts = [f"苏标报警ID alarm id {ev.alarm_id} ({what}, 级别 level {ev.level})"]
    if ev.ref:
        parts.append(f"报警标识号 {ev.ref}")
    if ev.flag != 2:
        parts.append(f"附件 {ev.attachments} 个 attachments at the terminal")
    return "; ".join(parts)


class SafetyAlarms:
    """The open active-safety alarms of each vehicle, and the events seen lately."""

    def __init__(self, settings: ActiveSafety) -> None:
        self.settings = settings
        self.open: dict[tuple[int, int], int] = {}  # (vehicle, side) -> level
        self.seen: dict[int, dict[_Key, None]] = {}
        # what became of the last `judge`'s events: alarmed, repeated, recorded (an event
        # type not alarmed), unknown_type (a vendor's own)
        self.outcomes: dict[str, int] = {}

    def restore(self, active: Iterable[tuple[int, int, int]]) -> None:
        """(vehicle, side, level) of the active-safety alarms active in the alarm database."""
        self.open = {(v, side): level for v, side, level in active}

    def checkpoint(self, events: Sequence[tuple[int, SafetyEvent]]) -> Checkpoint:
        """What `undo` puts back when the alarms of `events` could not be recorded (the
        vehicles of the events only: the others' are not touched)."""
        vehicles = {v for v, _ in events}
        return dict(self.open), {v: dict(self.seen.get(v, {})) for v in vehicles}

    def undo(self, saved: Checkpoint) -> None:
        self.open = dict(saved[0])
        self.seen.update({v: dict(s) for v, s in saved[1].items()})

    def _new(self, vehicle: int, ev: SafetyEvent) -> bool:
        key = (ev.source, ev.alarm_id, ev.flag, ev.type, ev.ts)
        seen = self.seen.setdefault(vehicle, {})
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > SEEN:
            del seen[next(iter(seen))]
        return True

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def judge(self, events: Sequence[tuple[int, SafetyEvent]]) -> list[SafetyChange]:
        """The alarm changes of a batch's events, per vehicle in event time."""
        self.outcomes = {}
        out: list[SafetyChange] = []
        for vehicle, ev in sorted(events, key=lambda e: (e[0], e[1].ts)):
            if not self._new(vehicle, ev):
                self._count("repeated")
                continue
            kind = ev.kind
            if kind is None:
                self._count("unknown_type")
                continue
            if not self.settings.alarmed(kind):
                self._count("recorded")
                continue
            self._count("alarmed")
            side = ALARM_KIND_SIDES[kind]
            level = 2 if ev.level >= 2 else 1
            now = self.open.get((vehicle, side), 0)
            said = _said(ev)
            tier = self.settings.tier(kind, level)
            if ev.flag == 2:
                if now:
                    del self.open[(vehicle, side)]
                    out.append(SafetyChange(vehicle, kind, side, 0, "none", ev.ts, said))
                continue
            if level > now:  # a raise, or an escalation of the open alarm
                out.append(SafetyChange(vehicle, kind, side, level, tier, ev.ts, said))
                self.open[(vehicle, side)] = level
                if ev.flag == 0 and not now:  # no duration: back to normal at once
                    del self.open[(vehicle, side)]
                    out.append(SafetyChange(vehicle, kind, side, 0, "none", ev.ts, said))
        return out
