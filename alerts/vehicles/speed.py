"""Speed rules over a batch: each fix's limit, overspeed with a minimum duration, banned hours.

Part of the vectorized core (`alerts.vehicles.evaluate`, whose docstring states the rules).
Overspeed is judged on the runs of fixes above their limit (only the rows of those runs, and the
run ends), banned hours only when the batch's local times meet a ban window at all.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.fatigue import seg_cumsum
from alerts.vehicles.state import NO_KEY, EventKind, FleetState
from alerts.vehicles.table import DAY_MS, FleetTable
from alerts.vehicles.track import Track, meets, shift

__all__ = ["banned_hours", "limits", "overspeed"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


def limits(table: FleetTable, k: Track, zoned: I64, expressway: B, posted: F64) -> F64:
    """Each row's limit: its class's ordinary limit, or in the speed zones (`zoned`: rows, with
    whether one zone is an expressway and the lowest posted limit) the expressway limit capped
    by the posted one; times the night factor at night."""
    limit: F64 = np.repeat(table.speed_kmh[k.fs], k.li - k.fi + 1)  # rows are by vehicle
    if zoned.size:
        zs = k.s[zoned]
        inner = np.where(expressway, table.expressway_kmh[zs], table.speed_kmh[zs])
        limit[zoned] = np.minimum(inner, posted)
    if k.night.any():
        limit = np.where(k.night, limit * table.night_factor[k.s], limit)
    return limit


def overspeed(table: FleetTable, st: FleetState, k: Track, limit: F64, out: Sink) -> None:
    """`OVERSPEED` once a run of fixes above the limit has lasted the minimum, `OVERSPEED_END`
    at the first fix after a raised run; updates the state's run. Works on the runs (their first
    and last rows) only: the row where a run becomes due is found by a binary search over its
    rows (times ascend within a vehicle), not by a test of every row above the limit."""
    s, t, v, first, last, fi, fs = k.s, k.t, k.v, k.first, k.last, k.fi, k.fs
    fast = v > limit
    edge = shift(fast, first, st.over_active[fs])  # the previous row fast (first: the state's)
    np.logical_not(edge, out=edge)
    edge |= first
    edge &= fast
    starts = np.flatnonzero(edge)  # the runs' first rows
    edge[:-1] = fast[1:]
    np.logical_not(edge, out=edge)
    edge |= last
    edge &= fast
    ends = np.flatnonzero(edge)  # and their last rows, pairwise
    going = first[starts] & st.over_active[s[starts]]  # a run of the previous batch goes on
    since = np.where(going, st.over_since[s[starts]], t[starts])
    raised = going & st.over_raised[s[starts]]
    due_at = since + table.overspeed_ms[s[starts]]
    due = t[ends] >= due_at  # the run lasts the minimum: at its row `lo`, found by bisection
    some = np.flatnonzero(due)
    lo, hi, when = starts[some], ends[some], due_at[some]
    for _ in range(int((hi - lo).max()).bit_length() if some.size else 0):
        mid = (lo + hi) >> 1
        early = t[mid] < when  # hi stays a row at or after `when`
        lo = np.where(early, mid + 1, lo)
        hi = np.where(early, hi, mid)
    hit = lo[~raised[some]]
    # ref: the limit of the fix that raised it, in 0.1 km/h (the alarm names it)
    out.add(s[hit], EventKind.OVERSPEED, t[hit], v[hit], np.round(limit[hit] * 10).astype(np.int64))
    raised |= due
    hit = ends[raised & ~last[ends]] + 1  # the first fix no longer above the limit
    hit = np.concatenate((hit, fi[~fast[fi] & st.over_raised[fs]]))
    out.add(s[hit], EventKind.OVERSPEED_END, t[hit], v[hit])
    st.over_active[fs] = False
    st.over_since[fs] = 0
    st.over_raised[fs] = False
    on = last[ends]  # runs still going at the batch's end
    st.over_active[s[ends[on]]] = True
    st.over_since[s[ends[on]]] = since[on]
    st.over_raised[s[ends[on]]] = raised[on]


def banned_hours(table: FleetTable, st: FleetState, k: Track, out: Sink) -> None:
    """Banned hours, over the rows of the vehicles that have them (all rows of a vehicle or
    none, so its first row stays first), when the batch's local times meet a ban window."""
    bans = np.flatnonzero(table.ban_start_ms[k.fs] >= 0)
    if not bans.size:
        return
    lo = k.earliest
    local = (lo + table.offset_ms) % DAY_MS
    opens, closes = table.ban_start_ms[k.fs[bans]], table.ban_end_ms[k.fs[bans]]
    windows = set(zip(opens.tolist(), closes.tolist(), strict=True))
    if not any(meets(local, k.latest - lo, w) for w in windows):
        return
    c = k.take(bans)
    s, t, first, fi, fs = c.s, c.t, c.first, c.fi, c.fs
    tod = (t + table.offset_ms) % DAY_MS
    bs, be = table.ban_start_ms[s], table.ban_end_ms[s]
    inside_w = np.where(
        bs < be, (tod >= bs) & (tod < be), np.where(bs > be, (tod >= bs) | (tod < be), True)
    )
    banned = inside_w & c.moving
    key = (t + table.offset_ms - bs) // DAY_MS
    starts = first.copy()
    starts[1:] |= key[1:] != key[:-1]
    init = np.zeros(s.shape, dtype=np.int64)
    init[fi] = st.ban_key[fs] == key[fi]
    count = seg_cumsum(banned.astype(np.int64), starts, init)
    hit = np.flatnonzero(banned & (count == 1))
    out.add(s[hit], EventKind.BANNED_HOURS, t[hit], c.v[hit])
    latest = np.maximum.reduceat(np.where(banned, key, NO_KEY), fi)
    st.ban_key[fs] = np.maximum(st.ban_key[fs], latest)
