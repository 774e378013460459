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
  earlier fix is moving (counted up to `max_drive_gap_s`), a *stop* when it is not; a rest is the
  time from the first stopped fix to the next moving fix.
* Fatigue: continuous driving is the driving time since the last rest of at least `min_rest_s`;
  it is judged at each fix against the night limit when the fix is at night, else the day limit,
  and raised once per stretch (`FATIGUE_CONTINUOUS`). A raised stretch ends
  (`FATIGUE_CONTINUOUS_END`) when its rest is complete: first stopped fix + `min_rest_s`, found
  at the first fix at or after it. Daily driving is the driving time in the local calendar day
  of the interval's end (JT/T 808 bit 18 "当天累计驾驶超时"), raised once a day; a raised day ends
  (`FATIGUE_DAILY_END`) at its local midnight, found by the first fix of a later day.
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
  `offline_s`, found either by the next fix (backfill) or by `now`, once per silence; the next
  fix ends it (`OFFLINE_END`).
* Drift: implied speed between consecutive fixes above `drift_kmh`, at the later fix.
* The `_END` events come only for an episode raised (or restored: `FleetAlarms.restore`).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import forbidden_areas, index_positions
from alerts.vehicles.geo import EARTH_R, step_m
from alerts.vehicles.state import NO_KEY, RANK, EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import DAY_MS, FleetTable

__all__ = ["evaluate_fleet", "order_positions", "seg_cumsum"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
T = TypeVar("T", bound=npt.NDArray[Any])


def seg_cumsum(values: I64, starts: B, init: I64) -> I64:
    """Running sums restarting at each start row (row 0 must be one) from `init` of that row."""
    cs = np.cumsum(values)
    si = np.flatnonzero(starts)
    offset = init[si] - cs[si] + values[si]
    out: I64 = cs + np.repeat(offset, np.diff(si, append=starts.shape[0]))
    return out


def order_positions(table: FleetTable, state: FleetState, batch: Positions) -> tuple[I64, I32]:
    """(rows of the batch to judge in (slot, ts) order, their slots)."""
    rows, s, _ = _order(table, state, batch)
    return rows, s.astype(np.int32)


def _order(table: FleetTable, state: FleetState, batch: Positions) -> tuple[I64, I64, I64]:
    """(rows of the batch to judge in (slot, ts) order, their slots, their times)."""
    veh = np.asarray(batch.vehicle)
    ts = np.asarray(batch.ts, dtype=np.int64)
    size = table.slot_of.shape[0]
    if veh.size and int(veh.min()) >= 0 and int(veh.max()) < size:
        slot = table.slot_of[veh].astype(np.int64)
        rows = None if int(slot.min()) >= 0 else np.flatnonzero(slot >= 0)
    else:
        known = (veh >= 0) & (veh < size)
        slot = np.full(veh.shape, -1, dtype=np.int64)
        slot[known] = table.slot_of[veh[known]]
        rows = np.flatnonzero(slot >= 0)
    if rows is not None:  # some vehicles unknown
        if rows.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        slot, ts = slot[rows], ts[rows]
    t0 = int(ts.min())
    span = int(ts.max()) - t0 + 1
    if len(table) < (1 << 15) and bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(slot.astype(np.int16), kind="stable")  # arrival in time order: radix
    elif span * (len(table) + 1) < (1 << 62):
        order = np.argsort(slot * span + (ts - t0), kind="stable")
    else:
        order = np.lexsort((ts, slot))
    # sorted by slot: the slots are runs, no need to gather them
    s = np.repeat(np.arange(len(table), dtype=np.int64), np.bincount(slot, minlength=len(table)))
    t = ts[order]
    rows = order.astype(np.int64) if rows is None else rows[order]
    drop = np.zeros(rows.shape, dtype=np.bool_)
    drop[1:] = (s[1:] == s[:-1]) & (t[1:] == t[:-1])  # duplicates: the first counts
    fi = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    if bool(np.any(state.has_fix[s[fi]] & (t[fi] <= state.last_ts[s[fi]]))):
        drop |= state.has_fix[s] & (t <= state.last_ts[s])  # at or before the last fix: late
    if not drop.any():
        return rows, s, t
    keep = ~drop
    return rows[keep], s[keep], t[keep]


class _Out:
    def __init__(self) -> None:
        self.parts: list[tuple[I64, EventKind, I64, F64, I64 | int]] = []

    def add(self, slots: I64, kind: EventKind, ts: I64, value: F64, ref: I64 | int = -1) -> None:
        if slots.size:
            self.parts.append((slots, kind, ts, value, ref))

    def events(self, table: FleetTable) -> FleetEvents:
        if not self.parts:
            return FleetEvents(
                np.zeros(0, np.int32),
                np.zeros(0, np.int8),
                np.zeros(0, np.int64),
                np.zeros(0, np.float64),
                np.zeros(0, np.int32),
            )
        slot = np.concatenate([p[0] for p in self.parts])
        kind = np.concatenate([np.full(p[0].shape, int(p[1]), np.int8) for p in self.parts])
        ts = np.concatenate([p[2] for p in self.parts]).astype(np.int64)
        value = np.concatenate([p[3] for p in self.parts]).astype(np.float64)
        ref = np.concatenate([np.broadcast_to(p[4], p[0].shape) for p in self.parts])
        vehicle = table.index[slot]
        order = np.lexsort((ref, RANK[kind], ts, vehicle))
        return FleetEvents(
            vehicle[order].astype(np.int32),
            kind[order],
            ts[order],
            value[order],
            ref[order].astype(np.int32),
        )


def _prev(values: T, first: B, carry: npt.NDArray[Any]) -> T:
    """Each row's previous row in its vehicle, the state's value on a vehicle's first row."""
    out = values.copy()
    out[1:] = values[:-1]
    out[first] = carry
    return out


def evaluate_fleet(
    table: FleetTable, state: FleetState, batch: Positions, now: int
) -> tuple[FleetState, FleetEvents]:
    """Judge a batch of positions and the silence up to `now` (ms); returns a new state."""
    st = state.copy()
    out = _Out()
    rows, s, t = _order(table, st, batch)
    if rows.size:
        _judge(table, st, batch, rows, s, t, out)
    silent = (
        st.has_fix
        & st.last_moving
        & ~st.offline_raised
        & (np.int64(now) - st.last_ts >= table.offline_ms)
    )
    gone = np.flatnonzero(silent)
    out.add(
        gone,
        EventKind.OFFLINE,
        st.last_ts[gone] + table.offline_ms,
        (now - st.last_ts[gone]) / 1000.0,
    )
    st.offline_raised[gone] = True
    return st, out.events(table)


def _judge(
    table: FleetTable, st: FleetState, batch: Positions, rows: I64, s: I64, t: I64, out: _Out
) -> None:
    n = rows.shape[0]
    lat = np.asarray(batch.lat, dtype=np.float64)[rows]
    lon = np.asarray(batch.lon, dtype=np.float64)[rows]
    v = np.asarray(batch.speed_kmh, dtype=np.float64)[rows]
    first = np.ones(n, dtype=np.bool_)
    first[1:] = s[1:] != s[:-1]
    last = np.ones(n, dtype=np.bool_)
    last[:-1] = first[1:]
    fi, li = np.flatnonzero(first), np.flatnonzero(last)
    fs = s[fi]
    zero = np.zeros(n, dtype=np.int64)
    moving = v > table.moving_kmh
    has_prev = np.ones(n, dtype=np.bool_)
    has_prev[fi] = st.has_fix[fs]
    prev_t = _prev(t, first, st.last_ts[fs])
    prev_moving = _prev(moving, first, st.last_moving[fs]) & has_prev
    dt = np.where(has_prev, t - prev_t, 0)
    day, tod = np.divmod(t + table.offset_ms, DAY_MS)
    night = _in_window_tod(tod, table.night)

    # fatigue: continuous driving and rests
    drive_dt = np.where(prev_moving, np.minimum(dt, table.drive_gap_ms), 0)
    stop = has_prev & ~prev_moving
    starts = first.copy()
    starts[1:] |= stop[1:] != stop[:-1]
    init = zero.copy()
    init[fi] = np.where(stop[fi], st.rest_ms[fs], 0)
    rest = seg_cumsum(np.where(stop, dt, 0), starts, init)
    reset = stop & (rest >= table.min_rest_ms[s])
    starts = first | reset
    carry = first & ~reset
    init = zero.copy()
    init[fi] = np.where(carry[fi], st.cont_ms[fs], 0)
    cont = seg_cumsum(drive_dt, starts, init)
    over = cont > np.where(night, table.cont_night_ms[s], table.cont_day_ms[s])
    init = zero.copy()
    init[fi] = carry[fi] & st.cont_raised[fs]
    count = seg_cumsum(over.astype(np.int64), starts, init)
    hit = np.flatnonzero(over & (count == 1))
    out.add(s[hit], EventKind.FATIGUE_CONTINUOUS, t[hit], cont[hit] / 1000.0)
    # a raised stretch ends when its rest has lasted `min_rest_s`: between two fixes
    hit = np.flatnonzero(reset)
    hit = hit[np.where(first[hit], st.cont_raised[s[hit]], count[hit - 1] > 0)]
    since = t[hit] - rest[hit]
    end = since + table.min_rest_ms[s[hit]]
    out.add(s[hit], EventKind.FATIGUE_CONTINUOUS_END, end, rest[hit] / 1000.0)
    st.rest_ms[fs] = rest[li]
    st.cont_ms[fs] = cont[li]
    st.cont_raised[fs] = count[li] > 0

    # fatigue: driving per local day
    turn = day[1:] != day[:-1]
    starts = first.copy()
    starts[1:] |= turn
    carry = np.zeros(n, dtype=np.bool_)
    carry[fi] = st.day[fs] == day[fi]
    init = zero.copy()
    init[fi] = np.where(carry[fi], st.daily_ms[fs], 0)
    daily = seg_cumsum(drive_dt, starts, init)
    over = daily > table.daily_ms[s]
    init = zero.copy()
    init[fi] = carry[fi] & st.daily_raised[fs]
    count = seg_cumsum(over.astype(np.int64), starts, init)
    hit = np.flatnonzero(over & (count == 1))
    out.add(s[hit], EventKind.FATIGUE_DAILY, t[hit], daily[hit] / 1000.0)
    # a raised day ends at its local midnight, seen at the first fix of a later day
    hit = np.flatnonzero(turn) + 1
    hit = hit[~first[hit]]
    hit = hit[count[hit - 1] > 0]
    end = (day[hit - 1] + 1) * DAY_MS - table.offset_ms
    out.add(s[hit], EventKind.FATIGUE_DAILY_END, end, daily[hit - 1] / 1000.0)
    hit = fi[~carry[fi] & st.daily_raised[fs]]
    known = st.day[s[hit]] != NO_KEY  # restored without a saved state: the day is not known
    end = np.where(
        known, (np.where(known, st.day[s[hit]], 0) + 1) * DAY_MS - table.offset_ms, t[hit]
    )
    out.add(s[hit], EventKind.FATIGUE_DAILY_END, end, st.daily_ms[s[hit]] / 1000.0)
    st.day[fs] = day[li]
    st.daily_ms[fs] = daily[li]
    st.daily_raised[fs] = count[li] > 0

    # speed limits and zones; forbidden areas
    expressway = np.zeros(n, dtype=np.bool_)
    posted = np.full(n, np.inf)
    if table.zones or table.forbidden:
        index = index_positions(lat, lon)
        for zone in table.zones:
            cand = index.candidates(zone)
            if not cand.size:
                continue
            cand = cand[zone.shape.contains(lat[cand], lon[cand], distance=False)[0]]
            if zone.expressway:
                expressway[cand] = True
            posted[cand] = np.minimum(posted[cand], zone.limit_kmh)
        if table.forbidden:
            forbidden_areas(
                table,
                st,
                index,
                (s, t, lat, lon, v),
                (prev_t, has_prev),
                (first, last, fi),
                out,
            )
    limit = np.where(expressway, table.expressway_kmh[s], table.speed_kmh[s])
    limit = np.minimum(limit, posted)
    limit = np.where(night, limit * table.night_factor[s], limit)
    fast = v > limit
    prev_fast = _prev(fast, first, st.over_active[fs])
    anchor = fast & (first | ~prev_fast)
    since_at = t.copy()  # read at run starts and, continuing a run, at first rows
    since_at[fi] = np.where(prev_fast[fi], st.over_since[fs], t[fi])
    since = since_at[np.maximum.accumulate(np.where(anchor, np.arange(n), 0))]
    due = fast & (t - since >= table.overspeed_ms[s])
    flip = np.flatnonzero(fast[1:] != fast[:-1]) + 1
    starts = first.copy()
    starts[flip] = True
    init = zero.copy()
    init[fi] = fast[fi] & prev_fast[fi] & st.over_raised[fs]
    count = seg_cumsum(due.astype(np.int64), starts, init)
    hit = np.flatnonzero(due & (count == 1))
    out.add(s[hit], EventKind.OVERSPEED, t[hit], v[hit])
    # a raised run ends at its first fix no longer above the limit
    hit = flip[~fast[flip] & ~first[flip]]
    hit = np.concatenate((hit[count[hit - 1] > 0], fi[~fast[fi] & st.over_raised[fs]]))
    out.add(s[hit], EventKind.OVERSPEED_END, t[hit], v[hit])
    st.over_active[fs] = fast[li]
    st.over_since[fs] = np.where(fast[li], since[li], 0)
    st.over_raised[fs] = fast[li] & (count[li] > 0)

    # banned hours
    _banned(table, st, s, t, v, tod, moving, first, out)

    # corridors: inside from the pruned test, the distance only where an event needs it
    route = table.route[s]
    on = np.flatnonzero(route >= 0)
    if on.size:
        inside = np.ones(n, dtype=np.bool_)
        key = route[on].astype(np.int16) if len(table.corridors) < (1 << 15) else route[on]
        on = on[np.argsort(key, kind="stable")]  # radix on int16
        bounds = np.searchsorted(route[on], np.arange(len(table.corridors) + 1))
        for c, zone in enumerate(table.corridors):
            part = on[bounds[c] : bounds[c + 1]]
            if part.size:
                inside[part] = zone.shape.contains(lat[part], lon[part], distance=False)[0]
        was = _prev(inside, first, st.in_route[fs])
        routed = route >= 0
        for kind, hit_mask in (
            (EventKind.CORRIDOR_LEAVE, routed & was & ~inside),
            (EventKind.CORRIDOR_ENTER, routed & ~was & inside),
        ):
            hit = np.flatnonzero(hit_mask)
            dist = np.zeros(hit.shape)
            for c in np.unique(route[hit]).tolist():
                sel = np.flatnonzero(route[hit] == c)
                rows_c = hit[sel]
                dist[sel] = np.sqrt(table.corridors[c].shape.contains(lat[rows_c], lon[rows_c])[1])
            out.add(s[hit], kind, t[hit], dist, route[hit].astype(np.int64))
        st.in_route[fs] = inside[li]

    # offline found by the next fix; drift
    silent = prev_moving & (dt >= table.offline_ms)
    hit = np.flatnonzero(silent)  # a silence ends at the fix that ends it, raised here or before
    out.add(s[hit], EventKind.OFFLINE_END, t[hit], dt[hit] / 1000.0)
    hit = fi[st.offline_raised[fs] & ~silent[fi]]
    out.add(s[hit], EventKind.OFFLINE_END, t[hit], dt[hit] / 1000.0)
    silent[fi] &= ~st.offline_raised[fs]
    hit = np.flatnonzero(silent)
    out.add(s[hit], EventKind.OFFLINE, prev_t[hit] + table.offline_ms, dt[hit] / 1000.0)
    pr = np.flatnonzero(has_prev)
    prev_lat = _prev(lat, first, st.last_lat[fs])
    prev_lon = _prev(lon, first, st.last_lon[fs])
    # cos(lat) <= 1: a bound on the distance first, the exact distance of the few candidates
    k = EARTH_R * math.pi / 180.0
    ex, ey = (lon[pr] - prev_lon[pr]) * k, (lat[pr] - prev_lat[pr]) * k
    bound = np.sqrt(ex * ex + ey * ey) * 3600.0 / dt[pr]
    pr = pr[bound > table.drift_kmh * (1.0 - 1e-9)]
    implied = step_m(prev_lat[pr], prev_lon[pr], lat[pr], lon[pr]) * 3600.0 / dt[pr]
    jump = implied > table.drift_kmh
    hit = pr[jump]
    out.add(s[hit], EventKind.DRIFT, t[hit], implied[jump])

    st.has_fix[fs] = True
    st.last_ts[fs] = t[li]
    st.last_lat[fs] = lat[li]
    st.last_lon[fs] = lon[li]
    st.last_moving[fs] = moving[li]
    st.offline_raised[fs] = False


def _in_window_tod(tod: I64, window: tuple[int, int]) -> B:
    start, end = window
    if start == end:
        return np.ones(tod.shape, dtype=np.bool_)
    if start < end:
        return (tod >= start) & (tod < end)
    return (tod >= start) | (tod < end)


def _banned(
    table: FleetTable,
    st: FleetState,
    s_all: I64,
    t_all: I64,
    v_all: F64,
    tod_all: I64,
    moving: B,
    first_all: B,
    out: _Out,
) -> None:
    """Banned hours, over the rows of the vehicles that have them (all rows of a vehicle or
    none, so its first row stays first)."""
    sub = np.flatnonzero(table.ban_start_ms[s_all] >= 0)
    if not sub.size:
        return
    s, t, tod, first = s_all[sub], t_all[sub], tod_all[sub], first_all[sub]
    fi = np.flatnonzero(first)
    fs = s[fi]
    bs, be = table.ban_start_ms[s], table.ban_end_ms[s]
    inside_w = np.where(
        bs < be, (tod >= bs) & (tod < be), np.where(bs > be, (tod >= bs) | (tod < be), True)
    )
    banned = inside_w & moving[sub]
    key = (t + table.offset_ms - bs) // DAY_MS
    starts = first.copy()
    starts[1:] |= key[1:] != key[:-1]
    init = np.zeros(sub.shape, dtype=np.int64)
    init[fi] = st.ban_key[fs] == key[fi]
    count = seg_cumsum(banned.astype(np.int64), starts, init)
    hit = np.flatnonzero(banned & (count == 1))
    out.add(s[hit], EventKind.BANNED_HOURS, t[hit], v_all[sub][hit])
    latest = np.maximum.reduceat(np.where(banned, key, NO_KEY), fi)
    st.ban_key[fs] = np.maximum(st.ban_key[fs], latest)
