"""Fatigue over a batch: continuous driving without a qualifying rest, driving per local day
and in the rolling 24 h.

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
from alerts.vehicles.state import NO_KEY, ROLL_SLOT_MS, ROLL_SLOTS, EventKind, FleetState
from alerts.vehicles.table import DAY_MS, FleetTable
from alerts.vehicles.track import Track, ranges

__all__ = ["fatigue", "rolling", "seg_cumsum"]

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
    calendar = ~table.daily_rolling[fs]
    daily_rows = np.flatnonzero(
        calendar & (st.daily_raised[fs] | (before + total > table.daily_ms[fs]))
    )
    rolling(table, st, k, total, out)  # reads `day` and `daily_ms` before the batch
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
    calm &= calendar
    st.daily_raised[fs[calm]] = False


def _resting(table: FleetTable, k: Track) -> tuple[I64, B]:
    """Per row, the rest in the interval before it: all of it after a stopped fix; after a
    moving fix, what a silence has beyond `max_drive_gap_s` (counted as driving up to there, not
    driving after: helper-116's coaches kept a fatigue alarm open across 36 h without data); and
    the rows whose rest is of that second kind (a rest of its own, not one going on). After an
    idle fix (stopped, ACC on, of a class whose rest needs the engine off) as after a moving
    one, with no driving: the interval up to `max_drive_gap_s` is neither, it ends a rest going
    on without breaking the stretch of driving."""
    stop = k.has_prev & ~k.prev_moving & ~k.prev_idle
    gap = (k.prev_moving | k.prev_idle) & (k.dt > table.drive_gap_ms)
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


def rolling(table: FleetTable, st: FleetState, k: Track, total: I64, out: Sink) -> None:
    """The rolling 24 h of every vehicle of the batch (`total`: each one's driving in it): its
    slots moved on to its last fix, and the daily rule of the vehicles whose class has
    `daily_window: rolling` (`alerts.vehicles.evaluate` states it; the calendar day's is
    `_daily`). Only the vehicles that can raise or end an episode (a raised one; one whose 24 h
    kept and batch together pass the limit) are judged fix by fix, in one pass."""
    fs = k.fs
    # a state saved before the slots were kept (or a driver coming without them, crew.py): the
    # day's driving so far in the slot of the last fix (on the safe side: it stays 24 h)
    seed = st.has_fix[fs] & (st.roll_slot[fs] == NO_KEY)
    if seed.any():
        v = fs[seed]
        at = st.last_ts[v] // ROLL_SLOT_MS
        st.roll_ms[v] = 0
        known = st.day[v] != NO_KEY
        day = np.where(known, st.daily_ms[v], 0)
        st.roll_ms[v, at % ROLL_SLOTS] = day
        # and the day before's in the last slot before its midnight: an upgrade after midnight
        # lost an overnight driver's evening (helper-159); counted up to 24 h after it
        yday = np.where(known, st.day[v], 1) - 1
        col = yday % 7
        prev = np.where(known & (st.week_day[v, col] == yday), st.week_ms[v, col], 0)
        eve = ((yday + 1) * DAY_MS - table.offset_ms - 1) // ROLL_SLOT_MS
        prev = np.where((eve < at) & (at - eve < ROLL_SLOTS - 1), prev, 0)
        st.roll_ms[v, eve % ROLL_SLOTS] += prev.astype(np.int32)
        st.roll_slot[v] = at
        st.roll_sum[v] = day + prev
    # a vehicle without slots (roll_slot NO_KEY) has none with driving
    judged = table.daily_rolling[fs] & st.daily_raised[fs]
    maybe = np.flatnonzero(table.daily_rolling[fs] & ~judged & (st.roll_slot[fs] != NO_KEY))
    if maybe.size:
        kept = st.roll_sum[fs[maybe]]
        judged[maybe] = kept + total[maybe] > table.daily_ms[fs[maybe]]
    new = np.flatnonzero(table.daily_rolling[fs] & (st.roll_slot[fs] == NO_KEY))
    judged[new] |= total[new] > table.daily_ms[fs[new]]
    if judged.any():
        _rolling(table, st, k.take(np.flatnonzero(judged)), out)
    # the slots moved on to each vehicle's last fix: those it passed emptied (all of them after
    # 24 h), the batch's driving added in the slot of each interval's end fix
    q = k.t // ROLL_SLOT_MS
    start = st.roll_slot[fs]
    end = q[k.li]
    known = start != NO_KEY
    ahead = np.where(known, end - np.where(known, start, 0), ROLL_SLOTS)
    whole = known & (ahead >= ROLL_SLOTS)  # without slots: none to empty
    if whole.any():
        st.roll_ms[fs[whole]] = 0
        st.roll_sum[fs[whole]] = 0
    part = np.flatnonzero(known & (ahead > 0) & (ahead < ROLL_SLOTS))
    if part.size:
        passed = ranges(start[part] + 1, end[part])
        owner, cell = np.repeat(fs[part], ahead[part]), passed % ROLL_SLOTS
        gone = st.roll_ms[owner, cell].astype(np.int64)
        st.roll_sum[fs[part]] -= np.add.reduceat(gone, np.cumsum(ahead[part]) - ahead[part])
        st.roll_ms[owner, cell] = 0
    rows = np.flatnonzero((k.drive_dt > 0) & (q > np.repeat(end, k.li - k.fi + 1) - ROLL_SLOTS))
    if rows.size:  # rows in (slot, time) order: a slot's rows are a run
        vehicle, cell = k.s[rows], q[rows] % ROLL_SLOTS
        head = np.ones(rows.shape, dtype=np.bool_)
        head[1:] = (vehicle[1:] != vehicle[:-1]) | (cell[1:] != cell[:-1])
        at = np.flatnonzero(head)
        add = np.add.reduceat(k.drive_dt[rows], at)
        st.roll_ms[vehicle[at], cell[at]] += add.astype(np.int32)  # each (vehicle, slot) once
        one = np.flatnonzero(np.concatenate(([True], vehicle[at][1:] != vehicle[at][:-1])))
        st.roll_sum[vehicle[at][one]] += np.add.reduceat(add, one)
    st.roll_slot[fs] = end


def _rolling(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """The rolling daily rule over the vehicles of `k`, before their slots move on. Each
    vehicle's driving is a sequence of (slot, ms): its kept slots, then its rows; the 24 h at
    a row are the sums of its sequence up to the row from the slot 24 h before, found by a
    search in the running sums, as is the boundary at which a raised episode's 24 h fell to
    the limit."""
    s, t, first, fi, fs = k.s, k.t, k.first, k.fi, k.fs
    q = k.t // ROLL_SLOT_MS
    nv = fs.shape[0]
    size = k.li - fi + 1
    veh = np.repeat(np.arange(nv, dtype=np.int64), size)  # each row's vehicle (of `k`)
    start = st.roll_slot[fs]
    known = start != NO_KEY
    base_slot = np.where(known, start, q[fi])
    age = (base_slot[:, None] - np.arange(ROLL_SLOTS)) % ROLL_SLOTS
    ring = st.roll_ms[fs]
    kv, kj = np.nonzero(ring)
    kept_slot = base_slot[kv] - age[kv, kj]
    low = min(int(kept_slot.min()) if kept_slot.size else int(q.min()), int(q.min()))
    low -= ROLL_SLOTS
    span = int(q.max()) - low + 1
    key = np.concatenate([kv * span + (kept_slot - low), veh * span + (q - low)])
    amount = np.concatenate([ring[kv, kj].astype(np.int64), k.drive_dt])
    order = np.argsort(key, kind="stable")  # the kept slots before the rows of their slot
    key, amount = key[order], amount[order]
    cum = np.zeros(key.shape[0] + 1, dtype=np.int64)
    np.cumsum(amount, out=cum[1:])
    at = np.empty(s.shape[0], dtype=np.int64)  # each row's place in the sequence
    at[order[order >= kv.shape[0]] - kv.shape[0]] = np.flatnonzero(order >= kv.shape[0])

    def since_at(vehicle: I64, slot: I64) -> I64:
        """The running sum before the first item of each `vehicle` at or after `slot`."""
        found: I64 = cum[np.searchsorted(key, vehicle * span + (slot - low))]
        return found

    def since(slot: I64) -> I64:
        return since_at(veh, slot)

    limit = table.daily_ms[s]
    window = q - (ROLL_SLOTS - 1)
    # the 24 h at each row, its own driving in: its slot so far and the 287 slots before it,
    # not the one 24 h before its slot's start (which also holds driving of more than 24 h
    # before the fix): between 23 h 55 min and 24 h, never more than the 24 h at the next
    # boundary. Counted with that slot (up to 24 h 5 min), a driver near the limit was raised at
    # a fix and ended at the next boundary, every 5 minutes (helper-159)
    day24 = cum[at + 1] - since(window + 1)
    before = cum[at] - since(window)  # the 24 h at its slot's start, before its driving
    prev_q = np.empty_like(q)
    prev_q[1:] = q[:-1]
    prev_q[fi] = np.where(known, start, 0)
    crossed = q > prev_q  # a slot boundary since the fix before: the 24 h may have fallen
    crossed[fi] |= ~known  # restored without a state: not known, ended at the first fix
    over = day24 > limit
    ends = crossed & (before <= limit)
    # raised after each row: the last raise or end up to it decides (else the state's)
    act = over | ends
    last = np.maximum.accumulate(np.where(act, np.arange(s.shape[0]), -1))
    mine = last >= np.repeat(fi, size)
    on = np.where(mine, over[np.maximum(last, 0)], np.repeat(st.daily_raised[fs], size))
    was = np.empty_like(on)
    was[1:] = on[:-1]
    was[fi] = st.daily_raised[fs]
    hit = np.flatnonzero(was & ends)
    if hit.size:
        # the first boundary b whose 24 h (the slots from b - 288 up to the fix before) is
        # within the limit: past the sequence's first item at which the running sum reaches
        # (24 h up to the fix before) - limit
        need = cum[at[hit]] - limit[hit]
        m = np.searchsorted(cum[1:], need, side="left")
        head = np.searchsorted(key, veh[hit] * span)  # the vehicle's first item
        slot_m = key[np.minimum(m, key.shape[0] - 1)] - veh[hit] * span + low
        b = np.where(m >= head, slot_m + ROLL_SLOTS, prev_q[hit] + 1)
        b = np.maximum(b, prev_q[hit] + 1)
        value = cum[at[hit]] - since_at(veh[hit], b - (ROLL_SLOTS - 1))
        kept = known[veh[hit]] | ~first[hit]
        stamp = np.where(kept, b * ROLL_SLOT_MS, t[hit])
        value = np.where(kept, value, 0)
        out.add(s[hit], EventKind.FATIGUE_DAILY_END, stamp, value / 1000.0)
    hit = np.flatnonzero(over & ~(was & ~ends))
    out.add(s[hit], EventKind.FATIGUE_DAILY, t[hit], day24[hit] / 1000.0)
    st.daily_raised[fs] = on[k.li]
