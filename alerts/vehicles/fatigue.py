"""Fatigue over a batch: continuous driving without a qualifying rest, driving per local day.

Part of the vectorized core (`alerts.vehicles.evaluate`, whose docstring states the rules).
Only the vehicles that can raise or end an episode in the batch are judged row by row: a vehicle
whose driving before the batch plus all its driving in the batch stays within its limit, with no
episode raised, can do neither. For the others (most of a fleet, most of the time) only the state
is carried, from the batch's stops and day turns: sparse, not a pass per rule over every row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.state import NO_KEY, EventKind, FleetState
from alerts.vehicles.table import DAY_MS, FleetTable
from alerts.vehicles.track import Track

__all__ = ["fatigue", "seg_cumsum"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


def seg_cumsum(values: I64, starts: B, init: I64) -> I64:
    """Running sums restarting at each start row (row 0 must be one) from `init` of that row."""
    cs = np.cumsum(values)
    si = np.flatnonzero(starts)
    offset = init[si] - cs[si] + values[si]
    out: I64 = cs + np.repeat(offset, np.diff(si, append=starts.shape[0]))
    return out


def _last_at_most(marks: I64, k: Track) -> tuple[B, I64]:
    """Per vehicle of the track, whether it has one of the (sorted) rows `marks`, and its last."""
    j = np.searchsorted(marks, k.li, side="right") - 1
    found = j >= 0
    at = np.where(found, marks[np.maximum(j, 0)] if marks.size else 0, -1)
    found &= at >= k.fi
    return found, at


def fatigue(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """Both fatigue rules; updates the state's rest, continuous and daily driving."""
    drive = np.cumsum(k.drive_dt)  # driving of row i = drive[i] - drive[i - 1]
    total = drive[k.li] - drive[k.fi] + k.drive_dt[k.fi]
    fs = k.fs
    # continuous driving: the state after the batch from its rests; candidates row by row
    rdt, gap = _resting(table, k)
    resting = rdt > 0
    begin = resting.copy()
    begin[1:] &= ~resting[:-1] | k.first[1:] | gap[1:]
    end = resting.copy()
    end[:-1] &= ~resting[1:] | k.last[:-1] | gap[1:]
    rs, re = np.flatnonzero(begin), np.flatnonzero(end)  # rests: first and last row
    rest = k.t[re] - k.t[rs] + rdt[rs]
    rest += np.where(k.first[rs] & ~gap[rs], st.rest_ms[k.s[rs]], 0)
    qualify = re[rest >= table.min_rest_ms[k.s[re]]]
    reset, at = _last_at_most(qualify, k)
    cont_ms = np.where(reset, drive[k.li] - drive[np.maximum(at, 0)], st.cont_ms[fs] + total)
    stopped = resting[k.li]
    rest_ms = np.zeros(fs.shape, dtype=np.int64)
    rest_ms[stopped] = rest[np.searchsorted(re, k.li[stopped])]
    lowest = np.minimum(table.cont_day_ms[fs], table.cont_night_ms[fs])
    cont_rows = np.flatnonzero(st.cont_raised[fs] | (st.cont_ms[fs] + total > lowest))
    # daily driving: the same from the batch's day turns
    turn = k.turns()
    carry = st.day[fs] == k.day[k.fi]
    before = np.where(carry, st.daily_ms[fs], 0)
    turned, at = _last_at_most(np.flatnonzero(turn), k)
    at = np.maximum(at, 0)
    daily_ms = np.where(turned, drive[k.li] - drive[at] + k.drive_dt[at], before + total)
    daily_rows = np.flatnonzero(st.daily_raised[fs] | (before + total > table.daily_ms[fs]))
    if cont_rows.size:
        _continuous(table, st, k.take(cont_rows), out)  # reads the state before the batch
    if daily_rows.size:
        _daily(table, st, k.take(daily_rows), out)
    calm = np.ones(fs.shape, dtype=np.bool_)
    calm[cont_rows] = False
    st.rest_ms[fs[calm]] = rest_ms[calm]
    st.cont_ms[fs[calm]] = cont_ms[calm]
    st.cont_raised[fs[calm]] = False
    calm[:] = True
    calm[daily_rows] = False
    st.day[fs[calm]] = k.day[k.li[calm]]
    st.daily_ms[fs[calm]] = daily_ms[calm]
    st.daily_raised[fs[calm]] = False


def _resting(table: FleetTable, k: Track) -> tuple[I64, B]:
    """Per row, the rest in the interval before it: all of it after a stopped fix; after a
    moving fix, what a silence has beyond `max_drive_gap_s` (counted as driving up to there, not
    driving after: helper-116's coaches kept a fatigue alarm open across 36 h without data); and
    the rows whose rest is of that second kind (a rest of its own, not one going on)."""
    stop = k.has_prev & ~k.prev_moving
    gap = k.prev_moving & (k.dt > table.drive_gap_ms)
    rdt = np.where(stop, k.dt, np.where(gap, k.dt - table.drive_gap_ms, 0))
    return rdt, gap


def _continuous(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """Continuous driving row by row (the vehicles of `k` only)."""
    s, t, first, fi, li, fs = k.s, k.t, k.first, k.fi, k.li, k.fs
    zero = np.zeros(s.shape, dtype=np.int64)
    rdt, gap = _resting(table, k)
    resting = rdt > 0
    starts = first | gap
    starts[1:] |= resting[1:] != resting[:-1]
    init = zero.copy()
    init[fi] = np.where(resting[fi] & ~gap[fi], st.rest_ms[fs], 0)
    rest = seg_cumsum(np.where(resting, rdt, 0), starts, init)
    reset = resting & (rest >= table.min_rest_ms[s])
    starts = first | reset
    carry = first & ~reset
    init = zero.copy()
    init[fi] = np.where(carry[fi], st.cont_ms[fs], 0)
    # the driving a silence is counted up to goes before its rest, not into the next stretch
    cont = seg_cumsum(np.where(reset & gap, 0, k.drive_dt), starts, init)
    over = cont > np.where(k.night, table.cont_night_ms[s], table.cont_day_ms[s])
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


def _daily(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """Driving per local day row by row (the vehicles of `k` only)."""
    s, t, first, fi, li, fs, day = k.s, k.t, k.first, k.fi, k.li, k.fs, k.day
    zero = np.zeros(s.shape, dtype=np.int64)
    turn = day[1:] != day[:-1]
    starts = first.copy()
    starts[1:] |= turn
    carry = np.zeros(s.shape, dtype=np.bool_)
    carry[fi] = st.day[fs] == day[fi]
    init = zero.copy()
    init[fi] = np.where(carry[fi], st.daily_ms[fs], 0)
    daily = seg_cumsum(k.drive_dt, starts, init)
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
