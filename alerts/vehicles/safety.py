"""The active-safety alarms of 苏标 terminals (T/JSATL 12-2017): the ADAS and DSM events a
position carries (`telemetry.activesafety`) become alarms of the vehicle, one per kind
(`adas_forward_collision`, `dsm_fatigue` ...), in the events' own time (docs/vehicles.md).

The alarm of a kind follows its open *episodes*, each a 苏标 alarm id (with its source):

- flag 1 (start) opens an episode: it raises the kind's alarm at the block's level (1 first
  level, 2 second level: a tier each, `ActiveSafety.tier`), or escalates the open one;
- flag 2 (end) closes its own episode only: the alarm's level is the highest open episode's,
  and it returns to normal when the last one ends. An end of no open episode changes nothing
  (counted `unmatched_end`);
- an episode without its end for `ActiveSafety.end_timeout_s` of the vehicle's event time (its
  later positions and events) ends then, "结束未收到 end not received";
- flag 0 (an event without duration) raises the alarm and returns it at once, or, the alarm
  open, escalates and de-escalates it at once when higher;
- an episode dated before the open alarm began (a blind area uploaded after live data) that
  ends before it began is an alarm of its own, raised and returned in its own time
  (`SafetyChange.apart`); one that ends later is merged into the open alarm (counted `merged`).

The same event sent again (a report retransmitted, a blind area uploaded twice) changes
nothing: an open episode is known, and each vehicle's last `ENDED` ended episodes; across a
restart or a reload the open episodes are read back from the alarm journal (`restore`), whose
events say each episode's start and end (`said`).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alerts.kinds import ALARM_KIND_SIDES
from alerts.table import kind_name
from alerts.vehicles.state import Positions
from telemetry.activesafety import SafetyEvent
from telemetry.fleetconfig import ActiveSafety

__all__ = [
    "ENDED",
    "SAFETY_ACTIONS",
    "Active",
    "SafetyAlarms",
    "SafetyChange",
    "SafetyPoint",
    "episodes_said",
    "is_safety_kind",
    "newest_by_vehicle",
]

ENDED = 32  # ended episodes remembered per vehicle (a start or an end sent again)
_ADAS = (
    "ADAS 主动安全报警: 企业监控人员电话或平台通知驾驶员, 调取附件核实 the enterprise's "
    "monitoring staff tell the driver (phone, their platform), check the evidence"
)
_DSM = (
    "DSM 驾驶员状态报警: 企业监控人员立即电话或平台提醒驾驶员 the enterprise's monitoring staff "
    "remind the driver now (phone, their platform)"
)
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
_WHAT = {0: "事件 event", 1: "开始 start", 2: "结束 end"}
_TIMED_OUT = "结束未收到 end not received"
# an episode as the journal says it (`_said`): alarm id, what, level
_SAID = re.compile(r"苏标报警ID alarm id (\d+) \((开始|结束|事件)[^,]*, 级别 level (\d+)\)")


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
    said: str  # the 苏标 alarm id, its identification number, place, driver ...
    # an alarm of its own before the open one (raised and returned at once), not the open one
    apart: bool = False
    # the level unchanged: only the journal says it (an episode begun or ended meanwhile)
    note: bool = False


@dataclass(slots=True)
class SafetyPoint:
    """The open alarm of one vehicle and kind: when it began (event time), its level, and its
    open episodes by key (`_key`): (level, start time)."""

    started: int
    level: int
    episodes: dict[int, tuple[int, int]] = field(default_factory=dict)

    def top(self) -> int:
        """The highest level of the episodes since the alarm began (0: none)."""
        return max((lv for lv, t in self.episodes.values() if t >= self.started), default=0)


def _key(source: str, alarm_id: int) -> int:
    """An episode's key: its alarm id and its source (the terminal counts them across both)."""
    return alarm_id << 1 | (source == "dsm")


def _said(ev: SafetyEvent, what: str = "") -> str:
    what = what or _WHAT.get(ev.flag, str(ev.flag))
    parts = [f"苏标报警ID alarm id {ev.alarm_id} ({what}, 级别 level {ev.level})"]
    if ev.ref:
        parts.append(f"报警标识号 {ev.ref}")
    if ev.lat is not None and ev.lon is not None:
        parts.append(f"位置 at {ev.lat:.6f}, {ev.lon:.6f}")
    if ev.speed_kmh is not None:
        parts.append(f"车速 speed {ev.speed_kmh} km/h")
    if ev.fatigue is not None:
        parts.append(f"疲劳程度 fatigue degree {ev.fatigue}")
    if ev.headway_s is not None:
        parts.append(f"前车距离 headway {ev.headway_s:g} s")
    if ev.driver:
        parts.append(f"驾驶员 driver {ev.driver}")
    if ev.flag != 2 and what != _TIMED_OUT:
        parts.append(f"附件 {ev.attachments} 个 attachments at the terminal")
    return "; ".join(parts)


# the episodes an alarm's journal says: the open ones by key (level, start time), the ended keys
Said = tuple[dict[int, tuple[int, int]], tuple[int, ...]]
# an active alarm read back: (vehicle, side, level, started, its episodes said)
Active = tuple[int, int, int, int, Said]


def episodes_said(side: int, journal: Iterable[tuple[int, str]]) -> Said:
    """The episodes still open by an active alarm's journal ((event time, comment), oldest
    first: each comment's `_said` episodes, started and ended), and those ended."""
    source = kind_name(side).split("_", 1)[0]
    out: dict[int, tuple[int, int]] = {}
    ended: list[int] = []
    for ts, comment in journal:
        for m in _SAID.finditer(comment or ""):
            key = _key(source, int(m.group(1)))
            if m.group(2) == "开始":
                out[key] = (2 if int(m.group(3)) >= 2 else 1, ts)
            elif m.group(2) == "结束" and out.pop(key, None) is not None:
                ended.append(key)
    return out, tuple(ended)


Checkpoint = tuple[dict[int, dict[int, SafetyPoint]], "dict[int, array[int]]", set[int]]


def _point(level: int, started: int, episodes: dict[int, tuple[int, int]]) -> SafetyPoint:
    """An alarm read back; one whose journal says no open episode holds one that times out."""
    return SafetyPoint(started, level, dict(episodes) or {-2: (level, started)})


class SafetyAlarms:
    """The open active-safety alarms of each vehicle and their episodes."""

    def __init__(self, settings: ActiveSafety) -> None:
        self.settings = settings
        self.points: dict[int, dict[int, SafetyPoint]] = {}  # vehicle -> side -> its alarm
        self.ended: dict[int, array[int]] = {}  # vehicle -> its last `ENDED` episode keys
        # what became of the last `judge`'s events: alarmed, repeated, recorded (an event
        # type not alarmed), unknown_type (a vendor's own), unmatched_end, merged, apart
        # (a backfilled episode alarmed on its own), timed_out (episodes without their end)
        self.outcomes: dict[str, int] = {}

    @property
    def open(self) -> dict[tuple[int, int], int]:
        """(vehicle, side) -> the level of its open alarm."""
        return {(v, s): p.level for v, sides in self.points.items() for s, p in sides.items()}

    def restore(self, active: Iterable[Active]) -> None:
        """(vehicle, side, level, started, episodes said) of the active-safety alarms active in
        the alarm database (`VehicleAlarms.active_safety_alarms`)."""
        self.points = {}
        for v, s, lv, t, (ep, ended) in active:
            self.points.setdefault(v, {})[s] = _point(lv, t, ep)
            for key in ended:
                if not self._ended(v, key):
                    self._end(v, key)

    def reconcile(
        self,
        vehicles: Iterable[int],
        active: Iterable[Active],
    ) -> None:
        """After a batch recorded: the alarms of `vehicles` as the database has them (a raise
        judged again after a restart is not recorded twice: not open here either)."""
        rows = {(v, s): (lv, t, ep) for v, s, lv, t, (ep, _) in active}
        for v in set(vehicles):
            sides = self.points.pop(v, {})
            kept = {s: p for s, p in sides.items() if (v, s) in rows}
            if kept:
                self.points[v] = kept
        for (v, s), (lv, t, ep) in rows.items():
            self.points.setdefault(v, {}).setdefault(s, _point(lv, t, ep))

    def checkpoint(self, vehicles: Iterable[int]) -> Checkpoint:
        """What `undo` puts back when the alarms of a batch could not be recorded: the state of
        `vehicles` (those of its events and clocks; the others' is not touched)."""
        mine = set(vehicles)
        return (
            {
                v: {
                    s: SafetyPoint(p.started, p.level, dict(p.episodes))
                    for s, p in self.points[v].items()
                }
                for v in mine
                if v in self.points
            },
            {v: array("q", self.ended.get(v, ())) for v in mine},
            mine,
        )

    def undo(self, saved: Checkpoint) -> None:
        points, ended, vehicles = saved
        for v in vehicles:
            self.points.pop(v, None)
        self.points.update(points)
        self.ended.update(ended)

    def _count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def _ended(self, vehicle: int, key: int) -> bool:
        return key in self.ended.get(vehicle, ())

    def _end(self, vehicle: int, key: int) -> None:
        ring = self.ended.get(vehicle)
        if ring is None:
            ring = self.ended[vehicle] = array("q")
        ring.append(key)
        if len(ring) > ENDED:
            del ring[0]

    def judge(
        self, events: Sequence[tuple[int, SafetyEvent]], clocks: Mapping[int, int] | None = None
    ) -> list[SafetyChange]:
        """The alarm changes of a batch's events, per vehicle in event time; `clocks`: each
        vehicle's newest event time in the batch (its positions'), which ends the episodes
        whose end did not come in time."""
        self.outcomes = {}
        out: list[SafetyChange] = []
        clocks = dict(clocks or {})
        for vehicle, ev in sorted(events, key=lambda e: (e[0], e[1].ts)):
            clocks[vehicle] = max(clocks.get(vehicle, ev.ts), ev.ts)
            self._expire(vehicle, ev.ts, out)
            self._one(vehicle, ev, out)
        for vehicle, now in sorted(clocks.items()):
            if vehicle in self.points:
                self._expire(vehicle, now, out)
        return out

    def _expire(self, vehicle: int, now: int, out: list[SafetyChange]) -> None:
        """End the vehicle's episodes older than the timeout at `now` (event time)."""
        span = round(self.settings.end_timeout_s * 1000)
        for side, point in list(self.points.get(vehicle, {}).items()):
            late = sorted((t, k, lv) for k, (lv, t) in point.episodes.items() if t + span <= now)
            for t, k, lv in late:
                kind = kind_name(side)
                ev = SafetyEvent(kind.split("_", 1)[0], k >> 1, 2, 0, lv, t + span)
                self._count("timed_out")
                self._close(vehicle, side, k, ev, out, f"{_TIMED_OUT} in {span // 1000} s")
                if side not in self.points.get(vehicle, {}):
                    break

    def _one(self, vehicle: int, ev: SafetyEvent, out: list[SafetyChange]) -> None:
        kind = ev.kind
        key = _key(ev.source, ev.alarm_id)
        if kind is None:
            self._count("unknown_type")
            return
        if not self.settings.alarmed(kind):
            self._count("recorded")
            return
        side = ALARM_KIND_SIDES[kind]
        point = self.points.get(vehicle, {}).get(side)
        if self._ended(vehicle, key) or (
            ev.flag == 1 and point is not None and key in point.episodes
        ):
            self._count("repeated")
            return
        level = 2 if ev.level >= 2 else 1
        tier = self.settings.tier(kind, level)
        said = _said(ev)
        if ev.flag == 2 and (point is None or key not in point.episodes):
            self._count("unmatched_end")
            return
        self._count("alarmed")
        if ev.flag == 2:
            self._close(vehicle, side, key, ev, out, "")
            return
        if ev.flag == 0:
            self._end(vehicle, key)
            if point is None or ev.ts < point.started:  # its own, raised and returned at once
                apart = point is not None
                out.append(SafetyChange(vehicle, kind, side, level, tier, ev.ts, said, apart))
                out.append(SafetyChange(vehicle, kind, side, 0, "none", ev.ts, said, apart))
            elif level > point.level:  # up and down at once
                out.append(SafetyChange(vehicle, kind, side, level, tier, ev.ts, said))
                back = self.settings.tier(kind, point.level)
                out.append(SafetyChange(vehicle, kind, side, point.level, back, ev.ts, said))
            else:
                out.append(
                    SafetyChange(vehicle, kind, side, point.level, "", ev.ts, said, note=True)
                )
            return
        # a start
        if point is None:
            self.points.setdefault(vehicle, {})[side] = SafetyPoint(
                ev.ts, level, {key: (level, ev.ts)}
            )
            out.append(SafetyChange(vehicle, kind, side, level, tier, ev.ts, said))
            return
        point.episodes[key] = (level, ev.ts)
        if ev.ts < point.started:  # before the open alarm: its own, known at its end
            return
        if level > point.level:
            point.level = level
            out.append(SafetyChange(vehicle, kind, side, level, tier, ev.ts, said))
        else:
            out.append(SafetyChange(vehicle, kind, side, point.level, "", ev.ts, said, note=True))

    def _close(
        self, vehicle: int, side: int, key: int, ev: SafetyEvent, out: list[SafetyChange], what: str
    ) -> None:
        """Episode `key` of the alarm of (vehicle, side) ended at `ev.ts`."""
        point = self.points[vehicle][side]
        level, started = point.episodes.pop(key)
        self._end(vehicle, key)
        kind = kind_name(side)
        said = _said(ev, what)
        if started < point.started:  # an episode before the open alarm (a backfill)
            if ev.ts <= point.started:
                self._count("apart")
                start = SafetyEvent(ev.source, ev.alarm_id, 1, ev.type, level, started)
                tier = self.settings.tier(kind, level)
                said0 = _said(start)
                out.append(SafetyChange(vehicle, kind, side, level, tier, started, said0, True))
                out.append(SafetyChange(vehicle, kind, side, 0, "none", ev.ts, said, True))
            else:
                self._count("merged")
            return
        top = point.top()
        if not top:  # the last episode: back to normal
            del self.points[vehicle][side]
            if not self.points[vehicle]:
                del self.points[vehicle]
            out.append(SafetyChange(vehicle, kind, side, 0, "none", ev.ts, said))
            if point.episodes:  # episodes before it began, never ended: merged into it
                for k in point.episodes:
                    self._end(vehicle, k)
                self._count("merged", len(point.episodes))
        elif top < point.level:
            point.level = top
            tier = self.settings.tier(kind, top)
            out.append(SafetyChange(vehicle, kind, side, top, tier, ev.ts, said))
        else:
            out.append(SafetyChange(vehicle, kind, side, point.level, "", ev.ts, said, note=True))


def newest_by_vehicle(batch: Positions, vehicles: Collection[int]) -> dict[int, int]:
    """The newest event time of each of `vehicles` in a batch of positions (their clocks for
    the episodes' timeout)."""
    if not vehicles or not batch.ts.shape[0]:
        return {}
    want = np.fromiter(vehicles, dtype=np.int64, count=len(vehicles))
    mine = np.isin(batch.vehicle, want)
    if not mine.any():
        return {}
    v, ts = batch.vehicle[mine], batch.ts[mine]
    order = np.lexsort((ts, v))
    v, ts = v[order], ts[order]
    last = np.flatnonzero(np.append(v[1:] != v[:-1], True))
    return dict(zip(v[last].tolist(), ts[last].tolist(), strict=True))
