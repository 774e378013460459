"""Fatigue per driver: a double-crewed coach's drivers take turns, and each one's driving counts
for him alone. Part of the vectorized core (`alerts.vehicles.evaluate`); the reference does the
same per position.

A position may say its driver (`driver`, a code; 0: not said: the driver said before stays).
At the first position of a vehicle whose previous fix was stopped and whose driver said last is
another than its own (a *change*: drivers change at a stop; a driver said while moving, or
once, is taken at the next stop, so a card swapped while driving cannot hide the driving),
before that position is judged:

* the fatigue episodes raised for the vehicle (continuous, daily, weekly driving) end then: the
  driver they were about no longer drives;
* the leaving driver's continuous and daily driving, rest, day, week and rolling 24 h (its slots)
  are kept with the time he left (the vehicle's last fix before the change), in one of `CREW`
  places per vehicle (the place of the driver who comes, else an empty one, else that of the one
  who left longest ago);
* the coming driver takes up his own, kept from when he left: his rest is what it was then plus
  the time since (he did not drive meanwhile), so a rest of `min_rest_s` since ends his
  continuous driving. A driver not kept (new, or forgotten) starts rested, with no driving.

The first driver said of a vehicle whose driver was not known takes over its driving as it is:
it was his (a terminal that starts sending its IC card's driver is no reason to forget it).
Changes are rare: a batch is judged in rounds, each up to the next change of any vehicle. At
most `MAX_CHANGES` of one vehicle are taken in one batch (a feed flapping between two ids would
make a round of each position); the later ones are not, and are logged.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.state import NO_KEY, ROLL_SLOTS, EventKind, FleetState
from alerts.vehicles.table import FleetTable

__all__ = ["MAX_CHANGES", "keep_said", "rounds", "take_over"]

log = logging.getLogger("alerts.vehicles.crew")

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
MAX_CHANGES = 64  # changes of one vehicle's driver taken in one batch


def rounds(
    table: FleetTable, st: FleetState, s: I64, d: I64, v: F64
) -> tuple[I64, I64, I64] | None:
    """Each row's round (rows in (slot, time) order, `s` their slots, `d` their drivers, `v`
    their speeds): the number of changes of its vehicle up to it; the rows of the changes; and
    the driver each row says or said before (`said`, which a change takes). None when the
    batch has no change."""
    n = s.shape[0]
    first = np.ones(n, dtype=np.bool_)
    first[1:] = s[1:] != s[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))  # each row's vehicle's first
    # the driver said last at or before each row (a driver said while moving waits for a stop)
    told = d != 0
    seen = np.maximum.accumulate(np.where(told, np.arange(n), -1))
    said = np.where(seen >= start, d[np.maximum(seen, 0)], st.driver_said[s])
    moved = np.empty(n, dtype=np.bool_)  # the vehicle's fix before each row was moving
    moved[1:] = v[:-1] > table.moving_kmh
    moved[first] = st.has_fix[s[first]] & st.last_moving[s[first]]
    known = (said != 0) & ~moved  # at a stop, the driver said last is the vehicle's
    if not known.any():
        return None
    seen = np.maximum.accumulate(np.where(known, np.arange(n), -1))  # the last known at or before
    before = np.empty(n, dtype=np.int64)
    before[1:] = seen[:-1]
    before[0] = -1
    current = np.where(before >= start, said[np.maximum(before, 0)], st.driver[s])
    change = known & (said != current)
    if not change.any():
        return None
    total = np.cumsum(change)
    seg = np.asarray(total - (total[start] - change[start]), dtype=np.int64)
    over = change & (seg > MAX_CHANGES)
    if over.any():
        for slot in np.unique(s[over]).tolist():
            log.warning(
                "vehicle %s: %d more changes of driver in one batch than the %d taken (a feed "
                "flapping between ids?): its driver stays the last taken",
                table.ids[slot],
                int(np.count_nonzero(over & (s == slot))),
                MAX_CHANGES,
            )
        change &= ~over
        seg = np.minimum(seg, MAX_CHANGES)
    return seg, np.flatnonzero(change), said


def keep_said(st: FleetState, s: I64, d: I64, owned: bool) -> None:
    """Keep the driver each vehicle of the batch said last (for a change at a later stop),
    owning the drivers first (`FleetState.own_crew`) when any differs, unless `owned`."""
    told = np.flatnonzero(d != 0)
    if not told.size:
        return
    last = np.ones(told.shape, dtype=np.bool_)  # rows in (slot, time) order: each slot's last
    last[:-1] = s[told[1:]] != s[told[:-1]]
    slots, drivers = s[told[last]], d[told[last]]
    if np.any(st.driver_said[slots] != drivers):
        if not owned:
            st.own_crew()
        st.driver_said[slots] = drivers


def take_over(table: FleetTable, st: FleetState, slot: int, driver: int, t: int, out: Sink) -> None:
    """`driver` takes the vehicle of `slot` over at a position of time `t` (see above). The
    caller owns the state's days and drivers first (`FleetState.own_week`, `own_crew`)."""
    old = int(st.driver[slot])
    if old == 0:
        st.driver[slot] = driver
        return
    # the episodes end with the driver they were about (`FleetEvents.driver`)
    one, at = np.array([slot], dtype=np.int64), np.array([t], dtype=np.int64)
    if st.cont_raised[slot]:
        out.add(one, EventKind.FATIGUE_CONTINUOUS_END, at, np.array([st.rest_ms[slot] / 1000.0]))
    if st.daily_raised[slot]:  # value: the day's driving, or the 24 h's (rolling)
        daily = st.roll_sum[slot] if table.daily_rolling[slot] else st.daily_ms[slot]
        out.add(one, EventKind.FATIGUE_DAILY_END, at, np.array([daily / 1000.0]))
    if st.weekly_raised[slot]:
        day = int(st.day[slot])
        recent = (st.week_day[slot] >= day - 6) & (st.week_day[slot] <= day - 1)
        week = int(st.week_ms[slot][recent].sum()) + int(st.daily_ms[slot])
        out.add(one, EventKind.FATIGUE_WEEKLY_END, at, np.array([week / 1000.0]))
    st.cont_raised[slot] = st.daily_raised[slot] = st.weekly_raised[slot] = False
    st.driver[slot] = driver
    left = int(st.last_ts[slot]) if st.has_fix[slot] else t
    places = st.crew_driver[slot]
    mine = np.flatnonzero(places == driver)
    if mine.size:  # his own, kept: taken up, and his place is the leaving driver's
        j = int(mine[0])
        rest = int(st.crew_rest[slot, j]) + max(0, left - int(st.crew_out[slot, j]))
        came = (
            0 if rest >= int(table.min_rest_ms[slot]) else int(st.crew_cont[slot, j]),
            rest,
            int(st.crew_day[slot, j]),
            int(st.crew_daily[slot, j]),
            st.crew_week_ms[slot, j].copy(),
            st.crew_week_day[slot, j].copy(),
            st.crew_roll_ms[slot, j].copy(),
            int(st.crew_roll_slot[slot, j]),
        )
    else:
        free = np.flatnonzero(places == 0)
        j = int(free[0]) if free.size else int(np.argmin(st.crew_out[slot]))
        came = (
            0,
            int(table.min_rest_ms[slot]),
            NO_KEY,
            0,
            np.zeros(7, dtype=np.int64),
            np.full(7, NO_KEY, dtype=np.int64),
            np.zeros(ROLL_SLOTS, dtype=np.int32),
            NO_KEY,
        )
    st.crew_driver[slot, j] = old
    st.crew_out[slot, j] = left
    st.crew_cont[slot, j] = st.cont_ms[slot]
    st.crew_rest[slot, j] = st.rest_ms[slot]
    st.crew_day[slot, j] = st.day[slot]
    st.crew_daily[slot, j] = st.daily_ms[slot]
    st.crew_week_ms[slot, j] = st.week_ms[slot]
    st.crew_week_day[slot, j] = st.week_day[slot]
    st.crew_roll_ms[slot, j] = st.roll_ms[slot]
    st.crew_roll_slot[slot, j] = st.roll_slot[slot]
    cont, rest, day, daily, week_ms, week_day, roll_ms, roll_slot = came
    st.cont_ms[slot], st.rest_ms[slot], st.day[slot], st.daily_ms[slot] = cont, rest, day, daily
    st.week_ms[slot] = week_ms
    st.week_day[slot] = week_day
    st.roll_ms[slot] = roll_ms
    st.roll_slot[slot] = roll_slot
    st.roll_sum[slot] = int(st.roll_ms[slot].sum())
