"""Driving in any 7 consecutive local days (the passenger rule of 44 h, 道路旅客运输企业安全管理规范
Art. 38), over a batch: part of the vectorized core (`alerts.vehicles.evaluate`).

Each vehicle keeps the driving of its last 7 local days (`FleetState.week_ms`, at `day % 7`,
with the day in `week_day`); the current day's is `daily_ms`. At a fix, the week is the fix's
day's driving so far and the 6 days before; above `weekly_ms` it raises `FATIGUE_WEEKLY` once,
and the episode ends at the first local midnight whose 6 days before are within the limit
(found by the first fix of a later day, as the daily rule's end). Only the vehicles that can
raise or end one in the batch (a raised one; one whose 7 days kept, day and batch together pass
the limit) are judged fix by fix; the others only keep their days.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.fatigue import seg_cumsum
from alerts.vehicles.state import NO_KEY, EventKind, FleetState
from alerts.vehicles.table import DAY_MS, FleetTable
from alerts.vehicles.track import Track

__all__ = ["weekly"]

I64 = npt.NDArray[np.int64]


def weekly(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """Judge the week of the batch's vehicles and keep their days; reads `day` and `daily_ms`
    of the state before the batch (call it before `fatigue` moves them on)."""
    fs = k.fs
    turn = k.turns()
    new_day = k.day[k.fi] != st.day[fs]
    first_turns = new_day & (st.day[fs] != NO_KEY)
    # a day turn that matters: one with a day to keep, or a raised one's (its day unknown after
    # a restart without a state, too); a vehicle's first fix ever has neither
    turns = first_turns | (new_day & st.weekly_raised[fs])
    if turn.any():
        turns |= np.add.reduceat(turn, k.fi) > 0
    # judged fix by fix: a raised one at a day turn (its end comes only at a midnight), one
    # not raised whose kept days of the window, day and batch could pass the limit
    limit = table.weekly_ms[fs]
    judged = st.weekly_raised[fs] & turns
    maybe = ~st.weekly_raised[fs] & (limit > 0)
    if maybe.any():
        drive = np.cumsum(k.drive_dt)
        total = drive[k.li] - drive[k.fi] + k.drive_dt[k.fi]
        recent = st.week_day[fs] >= (k.day[k.fi] - 6)[:, None]
        bound = np.where(recent, st.week_ms[fs], 0).sum(axis=1) + st.daily_ms[fs] + total
        judged |= maybe & (bound > limit)
    if not judged.any() and not turns.any():
        return
    st.own_week()  # shared with the state before the batch until now (`FleetState.copy`)
    # the days done in the batch, of the vehicles not judged fix by fix: their last fix's day
    # driving (as the reference counts it) goes into the week
    init = np.zeros(k.s.shape, dtype=np.int64)
    carry = st.day[fs] == k.day[k.fi]
    init[k.fi] = np.where(carry, st.daily_ms[fs], 0)
    daily = seg_cumsum(k.drive_dt, k.first | turn, init)
    calm = np.flatnonzero(~judged)
    for j in calm[first_turns[calm]].tolist():
        _keep(st, int(fs[j]), int(st.day[fs[j]]), int(st.daily_ms[fs[j]]))
    done = np.flatnonzero(turn) - 1  # a day's last fix, a later day's fix after it
    if done.size:
        owner = np.searchsorted(k.fi, done, side="right") - 1
        for row in done[~judged[owner]].tolist():
            _keep(st, int(k.s[row]), int(k.day[row]), int(daily[row]))
    raised: list[tuple[int, int, float]] = []
    ended: list[tuple[int, int, float]] = []
    for j in np.flatnonzero(judged).tolist():
        _judge(table, st, k, j, raised, ended)
    for kind, rows in ((EventKind.FATIGUE_WEEKLY, raised), (EventKind.FATIGUE_WEEKLY_END, ended)):
        if rows:
            slots, ts, value = zip(*rows, strict=True)
            out.add(np.array(slots, np.int64), kind, np.array(ts, np.int64), np.array(value))


def _keep(st: FleetState, slot: int, day: int, ms: int) -> None:
    st.week_ms[slot, day % 7] = ms
    st.week_day[slot, day % 7] = day


def _past(st: FleetState, slot: int, day: int) -> int:
    """Driving in the 6 local days before `day`."""
    days = st.week_day[slot]
    kept = (days >= day - 6) & (days <= day - 1)
    return int(st.week_ms[slot][kept].sum())


def _judge(
    table: FleetTable,
    st: FleetState,
    k: Track,
    j: int,
    raised: list[tuple[int, int, float]],
    ended: list[tuple[int, int, float]],
) -> None:
    """One vehicle's fixes in order, as `alerts.vehicles.reference` does."""
    slot = int(k.fs[j])
    limit = int(table.weekly_ms[slot])
    day_was, daily = int(st.day[slot]), int(st.daily_ms[slot])
    on = bool(st.weekly_raised[slot])
    before = _past(st, slot, day_was) if day_was != NO_KEY else 0  # the ring moves at turns only
    for row in range(int(k.fi[j]), int(k.li[j]) + 1):
        day, t = int(k.day[row]), int(k.t[row])
        if day != day_was:
            if day_was != NO_KEY:
                _keep(st, slot, day_was, daily)
            if on:
                days = (
                    range(day, day + 1)
                    if day_was == NO_KEY
                    else range(day_was + 1, min(day, day_was + 7) + 1)
                )
                for x in days:
                    past = _past(st, slot, x)
                    if limit == 0 or past <= limit:  # a limit turned off ends it at once
                        end = t if day_was == NO_KEY else x * DAY_MS - table.offset_ms
                        ended.append((slot, end, past / 1000.0))
                        on = False
                        break
            day_was, daily = day, 0
            before = _past(st, slot, day)
        daily += int(k.drive_dt[row])
        if limit > 0 and not on:
            week = daily + before
            if week > limit:
                raised.append((slot, t, week / 1000.0))
                on = True
    st.weekly_raised[slot] = on
