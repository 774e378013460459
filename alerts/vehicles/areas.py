"""Geofences over a batch: the latitude index that finds a fence's candidate positions, and the
forbidden areas (entered, and left: the end of the vehicle's forbidden-area episode).

Part of the vectorized core (`alerts.vehicles.evaluate`); the per-position twin is in
`alerts.vehicles.reference`.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.vehicles.state import EventKind, FleetState
from alerts.vehicles.table import FleetTable, Zone, in_window, window_close

__all__ = ["LatIndex", "Sink", "forbidden_areas"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


class Sink(Protocol):
    """Where events go."""

    def add(
        self, slots: I64, kind: EventKind, ts: I64, value: F64, ref: I64 | int = -1
    ) -> None: ...


class LatIndex:
    """Positions bucketed by 0.01 degree of latitude (a radix sort), to find a fence's
    candidates without scanning every position per fence."""

    def __init__(self, lat: F64, lon: F64) -> None:
        bins = np.floor((np.clip(lat, -90.0, 90.0) + 90.0) * 100.0).astype(np.int16)
        self.order = np.argsort(bins, kind="stable")
        self.bins = bins[self.order]
        self.lat = lat[self.order]
        self.lon = lon[self.order]

    def candidates(self, zone: Zone) -> I64:
        lat_min, lat_max, lon_min, lon_max = zone.shape.bbox
        lo = math.floor((max(lat_min, -90.0) + 90.0) * 100.0)
        hi = math.floor((min(lat_max, 90.0) + 90.0) * 100.0)
        i0 = int(np.searchsorted(self.bins, np.int16(lo), side="left"))
        i1 = int(np.searchsorted(self.bins, np.int16(hi), side="right"))
        rows = self.order[i0:i1]
        la, lo_ = self.lat[i0:i1], self.lon[i0:i1]
        hit = (la >= lat_min) & (la <= lat_max) & (lo_ >= lon_min) & (lo_ <= lon_max)
        out: I64 = np.sort(rows[hit]).astype(np.int64)
        return out


def _member(sorted_rows: I64, rows: I64) -> B:
    """Whether each of `rows` is in `sorted_rows`."""
    if not sorted_rows.size:
        return np.zeros(rows.shape, dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_rows, rows), sorted_rows.size - 1)
    found: B = sorted_rows[at] == rows
    return found


def _area_end(zone: Zone, offset_ms: int, t: I64, prev_t: I64, has_prev: B) -> I64:
    """When the vehicle's time in a forbidden area ended, for fixes no longer in it: when every
    window open at the previous fix is closed at this one, the moment the last of them closed;
    else (it drove out, or the area has no window) the fix."""
    if not zone.windows:
        return t
    open_now = np.zeros(t.shape, dtype=np.bool_)
    close = np.full(t.shape, -1, dtype=np.int64)
    for w in zone.windows:
        open_now |= in_window(t, offset_ms, w)
        was_open = has_prev & in_window(prev_t, offset_ms, w)
        close = np.where(was_open, np.maximum(close, window_close(prev_t, offset_ms, w)), close)
    out: I64 = np.where(~open_now & (close >= 0), close, t)
    return out


def forbidden_areas(
    table: FleetTable,
    st: FleetState,
    index: LatIndex,
    rows: tuple[I64, I64, F64, F64, F64],
    prev: tuple[I64, B],
    bounds: tuple[B, B, I64, I64],
    out: Sink,
) -> None:
    """`FORBIDDEN_ENTER` at the first fix inside an area during one of its windows, per area;
    `FORBIDDEN_END` at the first fix inside none any more, stamped when the last of them was
    left (`_area_end`). Updates `st.forbidden`. `rows` are the batch's (slot, ts, lat, lon,
    speed) in (slot, ts) order, `prev` each row's previous fix time and whether it has one,
    `bounds` (first, last, first rows, last rows) per vehicle."""
    s, t, lat, lon, v = rows
    prev_t, has_prev = prev
    first, last, fi, li = bounds
    fs = s[fi]
    cls = table.cls[s]
    was_in = st.forbidden[fs] != 0
    any_in = np.zeros(s.shape, dtype=np.bool_)
    drops: list[tuple[I64, I64]] = []  # (rows where an area's bit drops, when it was left)
    for f, zone in enumerate(table.forbidden):
        bit = np.uint64(1 << f)
        had = (st.forbidden[fs] & bit) != 0
        cand = index.candidates(zone)
        keep = np.asarray(zone.classes, dtype=np.bool_)[cls[cand]]
        if zone.windows:
            active = np.zeros(cand.shape, dtype=np.bool_)
            for w in zone.windows:
                active |= in_window(t[cand], table.offset_ms, w)
            keep &= active
        cand = cand[keep]
        inside, _ = zone.shape.contains(lat[cand], lon[cand], distance=False)
        ins = cand[inside]
        any_in[ins] = True
        before = _member(ins, ins - 1)
        was = np.where(first[ins], (st.forbidden[s[ins]] & bit) != 0, before)
        hit = ins[~was]
        out.add(s[hit], EventKind.FORBIDDEN_ENTER, t[hit], v[hit], f)
        gone = np.concatenate((ins[~last[ins]] + 1, fi[had]))
        gone = gone[~_member(ins, gone)]
        if gone.size:
            drops.append(
                (gone, _area_end(zone, table.offset_ms, t[gone], prev_t[gone], has_prev[gone]))
            )
        in_last = _member(ins, li)
        st.forbidden[fs] = (st.forbidden[fs] & ~bit) | np.where(in_last, bit, np.uint64(0))
    # the episode ends where a vehicle in some area is in none
    clear = np.flatnonzero(any_in[:-1] & ~any_in[1:]) + 1
    clear = np.concatenate((clear[~first[clear]], fi[was_in & ~any_in[fi]]))
    if not clear.size:
        return
    clear.sort()
    at_rows = np.concatenate([d[0] for d in drops])
    ends = np.concatenate([d[1] for d in drops])
    at = np.searchsorted(clear, at_rows)
    mine = (at < clear.size) & (clear[np.minimum(at, clear.size - 1)] == at_rows)
    when = np.full(clear.shape, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(when, at[mine], ends[mine])
    out.add(s[clear], EventKind.FORBIDDEN_END, when, v[clear])
