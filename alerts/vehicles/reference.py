"""The per-position twin of `alerts.vehicles.evaluate`: plain Python, one position at a time.

Same semantics, written the obvious way; the property test checks that both give the same events
on random streams, and the bench measures the vectorized core against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alerts.vehicles.crew import MAX_CHANGES
from alerts.vehicles.geo import step_m_one
from alerts.vehicles.refdriving import DrivingTime, _past
from alerts.vehicles.reflate import Kept, judge_late, tell
from alerts.vehicles.state import (
    CREW,
    NO_KEY,
    RANK,
    ROLL_SLOTS,
    EventKind,
    Positions,
)
from alerts.vehicles.table import DAY_MS, FleetTable, Zone, in_window_one, window_close_one

__all__ = ["EventRow", "ReferenceFleet"]

EventRow = tuple[int, EventKind, int, float, int]  # vehicle, kind, ts, value, ref


@dataclass(slots=True)
class Vehicle:
    has_fix: bool = False
    last_ts: int = 0
    last_lat: float = 0.0
    last_lon: float = 0.0
    last_moving: bool = False
    last_acc: int = -1
    cont_ms: int = 0
    rest_ms: int = 0
    cont_raised: bool = False
    day: int = NO_KEY
    daily_ms: int = 0
    daily_raised: bool = False
    roll_ms: list[int] = field(default_factory=lambda: [0] * ROLL_SLOTS)  # as `FleetState.roll_ms`
    roll_slot: int = NO_KEY
    roll_sum: int = 0
    over_active: bool = False
    over_since: int = 0
    over_raised: bool = False
    ban_key: int = NO_KEY
    in_route: bool = True
    forbidden: int = 0
    offline_raised: bool = False
    heard: int = 0
    week_ms: list[int] = field(default_factory=lambda: [0] * 7)
    week_day: list[int] = field(default_factory=lambda: [NO_KEY] * 7)
    weekly_raised: bool = False
    drift_open: bool = False  # a GPS drift episode (`alerts.vehicles.drift`)
    drift_last: int = 0
    drift_count: int = 0
    driver: int = 0  # as `FleetState` (`alerts.vehicles.crew`)
    driver_said: int = 0
    crew_driver: list[int] = field(default_factory=lambda: [0] * CREW)
    crew_out: list[int] = field(default_factory=lambda: [0] * CREW)
    crew_cont: list[int] = field(default_factory=lambda: [0] * CREW)
    crew_rest: list[int] = field(default_factory=lambda: [0] * CREW)
    crew_day: list[int] = field(default_factory=lambda: [NO_KEY] * CREW)
    crew_daily: list[int] = field(default_factory=lambda: [0] * CREW)
    crew_week_ms: list[list[int]] = field(default_factory=lambda: [[0] * 7 for _ in range(CREW)])
    crew_week_day: list[list[int]] = field(
        default_factory=lambda: [[NO_KEY] * 7 for _ in range(CREW)]
    )
    crew_roll_ms: list[list[int]] = field(
        default_factory=lambda: [[0] * ROLL_SLOTS for _ in range(CREW)]
    )
    crew_roll_slot: list[int] = field(default_factory=lambda: [NO_KEY] * CREW)


class ReferenceFleet(DrivingTime):
    def __init__(self, table: FleetTable) -> None:
        self.table = table
        self.vehicles = [Vehicle() for _ in range(len(table))]
        self.slot_of = {int(ix): slot for slot, ix in enumerate(table.index.tolist())}
        self._changes: dict[int, int] = {}  # changes of driver taken in this batch, by slot
        # the driver of each event `evaluate` returned last (`FleetEvents.driver`)
        self.drivers: list[int] = []
        # with a lateness window: each vehicle's kept fixes and checkpoint, and the last
        # batch's counts (`alerts.vehicles.reflate`)
        self.kept: dict[int, Kept] = {}
        self.rewound = self.late = self.late_in_window = 0

    def evaluate(self, batch: Positions, now: int) -> list[EventRow]:
        """Judge a batch and the silence up to `now`; events ordered by (vehicle, ts, kind, ref)."""
        rows = []
        for i, (vix, ts) in enumerate(zip(batch.vehicle.tolist(), batch.ts.tolist(), strict=True)):
            slot = self.slot_of.get(int(vix))
            if slot is not None:
                rows.append((slot, int(ts), i))
        rows.sort(key=lambda r: (r[0], r[1]))  # stable: equal times keep input order
        events: list[tuple[int, EventKind, int, float, int, int]] = []
        self._changes.clear()
        lat, lon, speed = batch.lat.tolist(), batch.lon.tolist(), batch.speed_kmh.tolist()
        said = getattr(batch, "driver", None)
        drivers = [0] * len(lat) if said is None else [int(x) for x in said]
        given = getattr(batch, "acc", None)
        acc = [-1] * len(lat) if given is None else [int(x) for x in given]
        if self.table.lateness_ms > 0:  # the lateness window (`alerts.vehicles.reflate`)
            judge_late(self, rows, (lat, lon, speed, drivers, acc), events, now)
        else:
            for slot, ts, i in rows:
                if self._position(slot, ts, lat[i], lon[i], speed[i], events, drivers[i], acc[i]):
                    self.vehicles[slot].heard = now
        tb = self.table
        for slot, veh in enumerate(self.vehicles):
            silent = now - veh.last_ts
            due = (
                veh.has_fix
                and veh.last_moving
                and silent >= tb.offline_ms
                and now - veh.heard >= tb.offline_ms  # nor did a fix arrive (a replay, a backlog)
            )
            if due and not veh.offline_raised:
                ts_off = veh.last_ts + tb.offline_ms
                row = (int(tb.index[slot]), EventKind.OFFLINE, ts_off, silent / 1000.0, -1)
                events.append((*row, veh.driver))
                veh.offline_raised = True
        events.sort(key=lambda e: (e[0], e[2], int(RANK[e[1]]), e[4]))
        if self.table.lateness_ms > 0:
            tell(self, events)
        self.drivers = [e[5] for e in events]
        return [e[:5] for e in events]

    def _position(
        self,
        slot: int,
        t: int,
        lat: float,
        lon: float,
        v: float,
        events: list[tuple[int, EventKind, int, float, int, int]],
        driver: int = 0,
        acc: int = -1,
    ) -> bool:
        """Judge one fix; False for one not newer than the vehicle's last (late, again)."""
        tb, veh = self.table, self.vehicles[slot]
        if veh.has_fix and t <= veh.last_ts:
            return False
        ix = int(tb.index[slot])

        def emit(kind: EventKind, ts: int, value: float, ref: int = -1) -> None:
            events.append((ix, kind, ts, value, ref, veh.driver))

        # the driver said last (now, or before: said while moving, it waits for a stop) takes
        # the vehicle at a stop; at most MAX_CHANGES a vehicle in a batch (a flapping feed)
        if driver:
            veh.driver_said = driver
        stopped = not (veh.has_fix and veh.last_moving)
        if veh.driver_said and veh.driver_said != veh.driver and stopped:
            taken = self._changes.get(slot, 0)
            if taken < MAX_CHANGES:
                self._changes[slot] = taken + 1
                self._take_over(slot, veh.driver_said, t, emit)

        moving = v > tb.moving_kmh
        night = in_window_one(t, tb.offset_ms, tb.night)
        has_prev = veh.has_fix
        dt = t - veh.last_ts if has_prev else 0
        prev_moving = has_prev and veh.last_moving
        drive = min(dt, tb.drive_gap_ms) if prev_moving else 0
        # stopped with the engine running, of a class whose rest needs it off: no rest, no driving
        acc_off = bool(tb.rest_needs_acc_off[slot])
        prev_idle = has_prev and not prev_moving and acc_off and veh.last_acc == 1
        stop = has_prev and not prev_moving and not prev_idle
        # a silence after a moving (or idle) fix: driving (idle) up to max_drive_gap_s, then a rest
        busy = prev_moving or prev_idle
        gap_rest = dt - tb.drive_gap_ms if busy and dt > tb.drive_gap_ms else 0

        # fatigue
        veh.rest_ms = veh.rest_ms + dt if stop else gap_rest
        min_rest = int(tb.min_rest_ms[slot])
        if (stop or gap_rest > 0) and veh.rest_ms >= min_rest:
            if veh.cont_raised:  # ended when the rest had lasted its minimum
                rested = veh.rest_ms / 1000.0
                emit(EventKind.FATIGUE_CONTINUOUS_END, t - veh.rest_ms + min_rest, rested)
            veh.cont_ms, veh.cont_raised = 0, False
        else:
            veh.cont_ms += drive
        limit_ms = int(tb.cont_night_ms[slot] if night else tb.cont_day_ms[slot])
        if veh.cont_ms > limit_ms and not veh.cont_raised:
            emit(EventKind.FATIGUE_CONTINUOUS, t, veh.cont_ms / 1000.0)
            veh.cont_raised = True
        rolling = bool(tb.daily_rolling[slot])
        if rolling:
            self._rolling(slot, t, drive, emit)
        else:
            self._roll(veh, t, drive)
        day = (t + tb.offset_ms) // DAY_MS
        weekly_ms = int(tb.weekly_ms[slot])
        if day != veh.day:
            if veh.daily_raised and not rolling:  # ended at the midnight after its day
                end = t if veh.day == NO_KEY else (veh.day + 1) * DAY_MS - tb.offset_ms
                emit(EventKind.FATIGUE_DAILY_END, end, veh.daily_ms / 1000.0)
            if veh.day != NO_KEY:  # the day done goes into the week
                veh.week_ms[veh.day % 7], veh.week_day[veh.day % 7] = veh.daily_ms, veh.day
            if veh.weekly_raised:  # ended at the first midnight the 7 days fell to the limit
                for x in (
                    range(day, day + 1)
                    if veh.day == NO_KEY
                    else range(veh.day + 1, min(day, veh.day + 7) + 1)
                ):
                    past = _past(veh, x)
                    if weekly_ms == 0 or past <= weekly_ms:  # a limit turned off: at once
                        end = t if veh.day == NO_KEY else x * DAY_MS - tb.offset_ms
                        emit(EventKind.FATIGUE_WEEKLY_END, end, past / 1000.0)
                        veh.weekly_raised = False
                        break
            veh.day, veh.daily_ms = day, 0
            if not rolling:
                veh.daily_raised = False
        veh.daily_ms += drive
        if not rolling and veh.daily_ms > int(tb.daily_ms[slot]) and not veh.daily_raised:
            emit(EventKind.FATIGUE_DAILY, t, veh.daily_ms / 1000.0)
            veh.daily_raised = True
        if weekly_ms > 0 and not veh.weekly_raised:
            weekly = veh.daily_ms + _past(veh, day)
            if weekly > weekly_ms:
                emit(EventKind.FATIGUE_WEEKLY, t, weekly / 1000.0)
                veh.weekly_raised = True

        # overspeed
        expressway, posted = False, math.inf
        for zone in tb.zones:
            if zone.shape.in_bbox_one(lat, lon) and zone.shape.contains_one(lat, lon)[0]:
                expressway = expressway or zone.expressway
                posted = min(posted, zone.limit_kmh)
        limit = float(tb.expressway_kmh[slot] if expressway else tb.speed_kmh[slot])
        limit = min(limit, posted)
        if night:
            limit = limit * float(tb.night_factor[slot])
        if v > limit:
            if not veh.over_active:
                veh.over_active, veh.over_since, veh.over_raised = True, t, False
            if t - veh.over_since >= int(tb.overspeed_ms[slot]) and not veh.over_raised:
                emit(EventKind.OVERSPEED, t, v, round(limit * 10))  # ref: the limit, 0.1 km/h
                veh.over_raised = True
        else:
            if veh.over_raised:
                emit(EventKind.OVERSPEED_END, t, v)
            veh.over_active, veh.over_since, veh.over_raised = False, 0, False

        # banned hours
        bs, be = int(tb.ban_start_ms[slot]), int(tb.ban_end_ms[slot])
        if bs >= 0 and moving and in_window_one(t, tb.offset_ms, (bs, be)):
            key = (t + tb.offset_ms - bs) // DAY_MS
            if key != veh.ban_key:
                emit(EventKind.BANNED_HOURS, t, v)
                veh.ban_key = key

        # corridor
        route = int(tb.route[slot])
        if route >= 0:
            inside, d2 = tb.corridors[route].shape.contains_one(lat, lon)
            if veh.in_route and not inside:
                emit(EventKind.CORRIDOR_LEAVE, t, math.sqrt(d2), route)
            elif not veh.in_route and inside:
                emit(EventKind.CORRIDOR_ENTER, t, math.sqrt(d2), route)
            veh.in_route = inside

        # forbidden areas
        cls = int(tb.cls[slot])
        was_in, left = veh.forbidden != 0, []
        for f, zone in enumerate(tb.forbidden):
            bit = 1 << f
            now_in = (
                zone.classes[cls]
                and (
                    not zone.windows or any(in_window_one(t, tb.offset_ms, w) for w in zone.windows)
                )
                and zone.shape.in_bbox_one(lat, lon)
                and zone.shape.contains_one(lat, lon)[0]
            )
            if now_in and not veh.forbidden & bit:
                emit(EventKind.FORBIDDEN_ENTER, t, v, f)
            if not now_in and veh.forbidden & bit:
                left.append(self._area_end(zone, t, veh.last_ts if has_prev else None))
            veh.forbidden = veh.forbidden | bit if now_in else veh.forbidden & ~bit
        if was_in and not veh.forbidden:
            emit(EventKind.FORBIDDEN_END, max(left), v)

        # offline found by this fix; drift
        silent = prev_moving and dt >= tb.offline_ms
        if silent and not veh.offline_raised:
            emit(EventKind.OFFLINE, veh.last_ts + tb.offline_ms, dt / 1000.0)
        if silent or veh.offline_raised:  # no earlier than the clock's raise (last + offline)
            emit(EventKind.OFFLINE_END, max(t, veh.last_ts + tb.offline_ms), dt / 1000.0)
        implausible = False
        if has_prev:
            moved = step_m_one(veh.last_lat, veh.last_lon, lat, lon)
            implied = moved * 3600.0 / dt
            implausible = implied > tb.drift_kmh
            if implausible:
                if not veh.drift_open:
                    emit(EventKind.DRIFT, t, implied)
                    veh.drift_open, veh.drift_count = True, 0
                veh.drift_count += 1
                veh.drift_last = t
            parked = not prev_moving and dt >= tb.offline_ms
            if parked and tb.offline_move_m > 0 and moved >= tb.offline_move_m:
                emit(EventKind.OFFLINE_MOVED, t, moved)
        if not implausible and veh.drift_open and t - veh.drift_last >= tb.drift_quiet_ms:
            emit(EventKind.DRIFT_END, t, float(veh.drift_count))
            veh.drift_open, veh.drift_last, veh.drift_count = False, 0, 0

        veh.has_fix, veh.last_ts, veh.last_lat, veh.last_lon = True, t, lat, lon
        veh.last_moving, veh.offline_raised = moving, False
        veh.last_acc = acc
        return True

    def _area_end(self, zone: Zone, t: int, prev_t: int | None) -> int:
        """When a vehicle no longer in a forbidden area at `t` left it: the last close of the
        windows open at the previous fix when none is open now, else `t`."""
        off = self.table.offset_ms
        if prev_t is None or any(in_window_one(t, off, w) for w in zone.windows):
            return t
        closes = [window_close_one(prev_t, off, w) for w in zone.windows]
        opened = [
            c for c, w in zip(closes, zone.windows, strict=True) if in_window_one(prev_t, off, w)
        ]
        return max(opened) if opened else t
