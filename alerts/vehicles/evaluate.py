"""The vectorized fleet rules: positions in, events out, no Python loop per position.

`evaluate_fleet(table, state, batch, now) -> (state, events)`; semantics (the same in
`alerts.vehicles.reference`, the per-position twin the property test compares with). Every event
carries its own event time, so the events do not depend on how positions are cut into batches
(only the value of an `OFFLINE` found by `now` is the silence so far).

* Positions of unknown vehicles are ignored. Per vehicle, a batch is taken in event-time order
  (stable: of equal times the first in input order counts); a position at or before the
  vehicle's last fix is dropped.
* A fix is *moving* when its speed is above `moving_kmh` (default 5 km/h: GNSS speed of a parked
  vehicle wanders by a few km/h). The interval from one fix to the next is *driving* when the
  earlier fix is moving (counted up to `max_drive_gap_s`, and the rest of a longer silence is a
  rest of its own), a *stop* when it is not; a rest is the time from the first stopped fix to the
  next moving fix. With the class's `rest_needs_acc_off`, a stopped fix saying ACC on is *idle*:
  its interval is neither driving nor rest (a silence after it beyond `max_drive_gap_s` is a
  rest of its own, as after a moving fix); it ends a rest going on and does not break the
  stretch of driving. A fix without ACC said is judged as one with ACC off. A silence's rest
  counts for continuous driving only (the driving counted before it goes to the day's total, not
  to the next stretch).
* Fatigue: continuous driving is the driving time since the last rest of at least `min_rest_s`;
  it is judged at each fix against the night limit when the fix is at night, else the day limit,
  and raised once per stretch (`FATIGUE_CONTINUOUS`). A raised stretch ends
  (`FATIGUE_CONTINUOUS_END`) when its rest is complete: first stopped fix + `min_rest_s`, found
  at the first fix at or after it. Daily driving, by the class's `daily_window`:
  - `rolling` (the default; the passenger rule "24小时内累计驾驶时间不超过8小时"): each interval's
    driving goes to the 5-minute slot of event time (`ROLL_SLOT_MS`, aligned on the epoch) of
    its end fix; at a fix, the 24 h are its slot's driving so far and the 288 slots before it
    (24 h and up to a slot more: on the safe side). Above `daily_driving_s` it raises
    `FATIGUE_DAILY`, once per episode; a raised episode ends (`FATIGUE_DAILY_END`) at the first
    slot boundary at which the 24 h (without the driving after the last fix) are within the
    limit, found by the vehicle's next fix after it, and the same fix may raise again.
  - `calendar`: the driving time in the local calendar day of the interval's end (JT/T 808 bit
    18 "当天累计驾驶超时"), raised once a day; a raised day ends (`FATIGUE_DAILY_END`) at its local
    midnight, found by the first fix of a later day.
  Both keep the calendar day's total (the 7 days' rule reads it) and the 24 h's slots.
* Overspeed: the limit of a fix is its class's expressway limit inside an expressway zone, else
  its ordinary limit; capped by the lowest posted limit of the zones it is in; times the night
  factor at night. Raised once per run of fixes above the limit when the run has lasted
  `overspeed_min_s` (from the first fix of the run to the fix that raises it); a raised run ends
  (`OVERSPEED_END`) at its first fix no longer above the limit.
* Banned hours (coaches 02:00-05:00 unless exempt): the first moving fix in the window, once per
  window.
* Corridors: a vehicle on a route raises `CORRIDOR_LEAVE` on its first fix more than `buffer_m`
  from the polyline (also its first fix ever) and `CORRIDOR_ENTER` on coming back.
  Forbidden areas: `FORBIDDEN_ENTER` on the first fix inside the area during one of its windows;
  `FORBIDDEN_END` at the first fix inside none any more, stamped with that fix, or with the
  moment the windows closed when that is why (`alerts.vehicles.areas`).
* Offline: after a moving fix, a silence of `offline_s` raises `OFFLINE` at last-fix +
  `offline_s`, found either by the next fix (backfill) or by `now` when no fix has arrived for
  `offline_s` on the hub's clock either (`heard`), once per silence; the next
  fix ends it (`OFFLINE_END`). After a stopped fix, a silence of `offline_s` ending at a fix
  `offline_move_m` or more away raises `OFFLINE_MOVED` there (离线位移).
* Drift: a fix is implausible when its implied speed from the fix before is above `drift_kmh`;
  the first raises `DRIFT` and opens an episode, the first plausible fix `drift_quiet_s` or more
  after its last implausible one ends it (`DRIFT_END`, value: the implausible fixes;
  `alerts.vehicles.drift`).
* The `_END` events come only for an episode raised (or restored: `FleetAlarms.restore`).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import forbidden_areas, index_positions
from alerts.vehicles.crew import keep_said, rounds, take_over
from alerts.vehicles.drift import drift_episodes
from alerts.vehicles.fatigue import fatigue, seg_cumsum
from alerts.vehicles.geo import EARTH_R, step_m
from alerts.vehicles.route import corridors
from alerts.vehicles.speed import banned_hours, limits, overspeed
from alerts.vehicles.state import RANK, EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import FleetTable
from alerts.vehicles.track import Track
from alerts.vehicles.weekly import weekly

__all__ = ["Out", "clock", "evaluate_fleet", "judge_rows", "order_positions", "seg_cumsum"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
T = TypeVar("T", bound=npt.NDArray[Any])


def order_positions(table: FleetTable, state: FleetState, batch: Positions) -> tuple[I64, I32]:
    """(rows of the batch to judge in (slot, ts) order, their slots)."""
    rows, s, _ = _order(table, state, batch)
    return rows, s.astype(np.int32)


def _order(
    table: FleetTable, state: FleetState, batch: Positions, late_rows: list[I64] | None = None
) -> tuple[I64, I64, I64]:
    """(rows of the batch to judge in (slot, ts) order, their slots, their times); with
    `late_rows`, the rows dropped as at or before their vehicle's last fix are appended to it
    (in (slot, ts) order, duplicates within the batch left out)."""
    veh = np.asarray(batch.vehicle)
    ts = np.asarray(batch.ts, dtype=np.int64)
    size = table.slot_of.shape[0]
    if veh.size and int(veh.min()) >= 0 and int(veh.max()) < size:
        slot = table.slot_of[veh]
        rows = None if int(slot.min()) >= 0 else np.flatnonzero(slot >= 0)
    else:
        known = (veh >= 0) & (veh < size)
        slot = np.full(veh.shape, -1, dtype=np.int32)
        slot[known] = table.slot_of[veh[known]]
        rows = np.flatnonzero(slot >= 0)
    if rows is not None:  # some vehicles unknown
        if rows.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        slot, ts = slot[rows], ts[rows]
    if len(table) < (1 << 15) and bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(slot.astype(np.int16), kind="stable")  # arrival in time order: radix
    else:
        t0 = int(ts.min())
        span = int(ts.max()) - t0 + 1
        if span * (len(table) + 1) < (1 << 62):
            order = np.argsort(slot.astype(np.int64) * span + (ts - t0), kind="stable")
        else:
            order = np.lexsort((ts, slot))
    # sorted by slot: the slots are runs, no need to gather them
    count = np.bincount(slot, minlength=len(table))
    s = np.repeat(np.arange(len(table), dtype=np.int64), count)
    t = ts[order]
    rows = order.astype(np.int64, copy=False) if rows is None else rows[order]
    same = np.flatnonzero(t[1:] == t[:-1]) + 1
    same = same[s[same] == s[same - 1]]  # duplicates: the first counts
    fi = (np.cumsum(count) - count)[count > 0]  # each vehicle's first row
    late = bool(np.any(state.has_fix[s[fi]] & (t[fi] <= state.last_ts[s[fi]])))
    if not same.size and not late:
        return rows, s, t
    drop = np.zeros(rows.shape, dtype=np.bool_)
    drop[same] = True
    if late:
        old = state.has_fix[s] & (t <= state.last_ts[s])  # at or before the last fix: late
        if late_rows is not None:
            late_rows.append(rows[old & ~drop])
        drop |= old
    keep = ~drop
    return rows[keep], s[keep], t[keep]


class Out:
    """Events as they are made, with the driver of each (`FleetEvents.driver`)."""

    def __init__(self, st: FleetState) -> None:
        self.parts: list[tuple[I64, EventKind, I64, F64, I64 | int, I64]] = []
        self._st = st  # its drivers as they are when an event is made (a round's, crew.py)

    def add(self, slots: I64, kind: EventKind, ts: I64, value: F64, ref: I64 | int = -1) -> None:
        if slots.size:
            self.parts.append((slots, kind, ts, value, ref, self._st.driver[slots]))

    def add_rows(self, slots: I64, kind: I64, ts: I64, value: F64, ref: I64, driver: I64) -> None:
        """Events of several kinds, with their drivers given."""
        for k in np.unique(kind).tolist():
            m = kind == k
            self.parts.append((slots[m], EventKind(k), ts[m], value[m], ref[m], driver[m]))

    def events(self, table: FleetTable) -> FleetEvents:
        if not self.parts:
            return FleetEvents(
                np.zeros(0, np.int32),
                np.zeros(0, np.int8),
                np.zeros(0, np.int64),
                np.zeros(0, np.float64),
                np.zeros(0, np.int32),
                np.zeros(0, np.int64),
            )
        slot = np.concatenate([p[0] for p in self.parts])
        kind = np.concatenate([np.full(p[0].shape, int(p[1]), np.int8) for p in self.parts])
        ts = np.concatenate([p[2] for p in self.parts]).astype(np.int64)
        value = np.concatenate([p[3] for p in self.parts]).astype(np.float64)
        ref = np.concatenate([np.broadcast_to(p[4], p[0].shape) for p in self.parts])
        driver = np.concatenate([p[5] for p in self.parts]).astype(np.int64)
        vehicle = table.index[slot]
        rank = RANK[kind]
        t0 = int(ts.min())
        span, refs = int(ts.max()) - t0 + 1, int(ref.max()) + 2
        ranks = int(RANK.max()) + 1  # ranks run past the kinds' count (RANK's shift)
        fits = (int(vehicle.max()) + 1) * span * ranks * refs < (1 << 62)
        if fits and int(vehicle.min()) >= 0:  # one key: faster than four
            key = vehicle.astype(np.int64) * span + (ts - t0)
            key *= ranks
            key += rank
            key *= refs
            key += ref + 1
            order = np.argsort(key, kind="stable")
        else:
            order = np.lexsort((ref, rank, ts, vehicle))
        return FleetEvents(
            vehicle[order].astype(np.int32),
            kind[order],
            ts[order],
            value[order],
            ref[order].astype(np.int32),
            driver[order],
        )


def evaluate_fleet(
    table: FleetTable, state: FleetState, batch: Positions, now: int
) -> tuple[FleetState, FleetEvents]:
    """Judge a batch of positions and the silence up to `now` (ms); returns a new state."""
    st = state.copy()
    out = Out(st)
    rows, s, t = _order(table, st, batch)
    if rows.size:
        judge_rows(table, st, batch, rows, s, t, out)
        st.heard[s] = now
    clock(table, st, now, out)
    return st, out.events(table)


def judge_rows(
    table: FleetTable, st: FleetState, batch: Positions, rows: I64, s: I64, t: I64, out: Out
) -> None:
    """Judge rows of `batch` (in (slot, ts) order, each after its vehicle's last fix; `s`
    their slots, `t` their times) into `st` (changed in place), events into `out`."""
    drivers = getattr(batch, "driver", None)
    d = None if drivers is None else np.asarray(drivers, dtype=np.int64)[rows]
    if d is None and np.any(st.driver_said[s] != st.driver[s]):
        d = np.zeros(s.shape, dtype=np.int64)  # a driver said before waits for a stop
    found = None
    if d is not None:
        found = rounds(table, st, s, d, np.asarray(batch.speed_kmh, dtype=np.float64)[rows])
        if found is not None:  # the days and drivers change: copied once (`FleetState.copy`)
            st.own_week()
            st.own_crew()
        keep_said(st, s, d, owned=found is not None)
    if found is None:
        _judge(table, st, batch, rows, s, t, out)
    else:  # a change of driver: judged in rounds, each up to the next change
        seg, change, said = found
        for k in range(int(seg.max()) + 1):
            for i in change[seg[change] == k].tolist():
                take_over(table, st, int(s[i]), int(said[i]), int(t[i]), out)
            m = seg == k
            if m.any():
                _judge(table, st, batch, rows[m], s[m], t[m], out)


def clock(table: FleetTable, st: FleetState, now: int, out: Out) -> None:
    """The silence up to `now`: `OFFLINE` of the vehicles silent in event time and on the
    hub's clock (`st` changed in place)."""
    # silent in event time, and on the hub's clock too: fixes of a replay or a backlog keep
    # arriving with old times, each ending an `OFFLINE` the clock raised between two batches
    silent = (
        st.has_fix
        & st.last_moving
        & ~st.offline_raised
        & (np.int64(now) - st.last_ts >= table.offline_ms)
        & (np.int64(now) - st.heard >= table.offline_ms)
    )
    gone = np.flatnonzero(silent)
    out.add(
        gone,
        EventKind.OFFLINE,
        st.last_ts[gone] + table.offline_ms,
        (now - st.last_ts[gone]) / 1000.0,
    )
    st.offline_raised[gone] = True


def _judge(
    table: FleetTable, st: FleetState, batch: Positions, rows: I64, s: I64, t: I64, out: Out
) -> None:
    lat = np.asarray(batch.lat, dtype=np.float64)[rows]
    lon = np.asarray(batch.lon, dtype=np.float64)[rows]
    v = np.asarray(batch.speed_kmh, dtype=np.float64)[rows]
    said = getattr(batch, "acc", None)
    acc = None if said is None else np.asarray(said, dtype=np.int8)[rows]
    k = Track.build(
        s, t, v, st, table.moving_kmh, table.drive_gap_ms, table.offset_ms, table.night,
        table.rest_needs_acc_off, acc,
    )  # fmt: skip
    weekly(table, st, k, out)  # before `fatigue`: it reads the days as they were
    fatigue(table, st, k, out)

    # speed limits and zones; forbidden areas
    zoned, expressway, posted = np.zeros(0, dtype=np.int64), np.zeros(0, np.bool_), np.zeros(0)
    index = index_positions(table.fences, lat, lon)
    if table.zones or table.forbidden:
        found: list[tuple[I64, bool, float]] = []
        for zone in table.zones:
            cand = index.candidates(zone)
            if cand.size:
                cand = cand[zone.shape.contains(lat[cand], lon[cand], distance=False)[0]]
            if cand.size:
                found.append((cand, zone.expressway, zone.limit_kmh))
        if found:
            every = np.concatenate([f[0] for f in found])
            order = np.argsort(every, kind="stable")
            every = every[order]
            heads = np.flatnonzero(np.concatenate(([True], every[1:] != every[:-1])))
            zoned = every[heads]
            flag = np.concatenate([np.full(f[0].shape, f[1]) for f in found])[order]
            expressway = np.logical_or.reduceat(flag, heads)
            cap = np.concatenate([np.full(f[0].shape, f[2]) for f in found])[order]
            posted = np.minimum.reduceat(cap, heads)
        if table.forbidden:
            forbidden_areas(table, st, index, k, lat, lon, out)
    overspeed(table, st, k, limits(table, k, zoned, expressway, posted), out)
    banned_hours(table, st, k, out)
    corridors(table, st, k, lat, lon, index, out)

    # offline found by the next fix; drift
    fi, li, fs, dt, first = k.fi, k.li, k.fs, k.dt, k.first
    quiet = np.flatnonzero(dt >= table.offline_ms)
    quiet = quiet[k.prev_moving[quiet]]  # a silence ends at the fix that ends it,
    out.add(s[quiet], EventKind.OFFLINE_END, t[quiet], dt[quiet] / 1000.0)  # raised now or before
    hit = fi[st.offline_raised[fs]]
    hit = hit[~np.isin(hit, quiet)]
    # raised by the clock at the last fix + offline_ms: a backlog's first fix, older than
    # that (a blind area uploaded after the silence), ends it no earlier than its raise
    ended = np.maximum(t[hit], st.last_ts[s[hit]] + table.offline_ms)
    out.add(s[hit], EventKind.OFFLINE_END, ended, dt[hit] / 1000.0)
    hit = quiet[~(first[quiet] & st.offline_raised[s[quiet]])]
    out.add(s[hit], EventKind.OFFLINE, t[hit] - dt[hit] + table.offline_ms, dt[hit] / 1000.0)
    # cos(lat) <= 1 and |dlat| + |dlon| >= the Euclidean step: a bound first, then the exact
    # distance of the few candidates
    dlat = np.empty_like(lat)
    np.subtract(lat[1:], lat[:-1], out=dlat[1:])
    dlat[fi] = lat[fi] - st.last_lat[fs]
    dlon = np.empty_like(lon)
    np.subtract(lon[1:], lon[:-1], out=dlon[1:])
    dlon[fi] = lon[fi] - st.last_lon[fs]
    np.abs(dlat, out=dlat)
    np.abs(dlon, out=dlon)
    dlat += dlon
    dlat *= 3600.0 * EARTH_R * math.pi / 180.0 / (table.drift_kmh * (1.0 - 1e-6))  # in ms
    far = dlat > dt  # the margin of 1e-6 covers the rounding of the scaling
    far &= k.has_prev

    def step_to(rows: I64) -> F64:
        """The distance (m) of each of `rows` from the vehicle's fix before it."""
        at_first = first[rows]
        prev_lat = np.where(at_first, st.last_lat[s[rows]], lat[rows - 1])
        prev_lon = np.where(at_first, st.last_lon[s[rows]], lon[rows - 1])
        return step_m(prev_lat, prev_lon, lat[rows], lon[rows])

    pr = np.flatnonzero(far)
    implied = step_to(pr) * 3600.0 / dt[pr]
    jump = implied > table.drift_kmh
    drift_episodes(table, st, k, pr[jump], implied[jump], out)
    # moved while silent (离线位移), parked before it: a silence after a moving fix raises
    # `OFFLINE` already (and a tunnel's blind-area fixes come after the live one that ends it)
    parked = k.has_prev & ~k.prev_moving & (dt >= table.offline_ms)
    gap = np.flatnonzero(parked) if table.offline_move_m else pr[:0]
    if gap.size:
        moved = step_to(gap)
        far = moved >= table.offline_move_m
        out.add(s[gap[far]], EventKind.OFFLINE_MOVED, t[gap[far]], moved[far])

    st.has_fix[fs] = True
    st.last_ts[fs] = t[li]
    st.last_lat[fs] = lat[li]
    st.last_lon[fs] = lon[li]
    st.last_moving[fs] = k.moving[li]
    st.last_acc[fs] = -1 if acc is None else acc[li]
    st.offline_raised[fs] = False
