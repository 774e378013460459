"""Geofences over a batch: the indexes that find a fence's candidate positions, and the
forbidden areas (entered, and left: the end of the vehicle's forbidden-area episode).

Part of the vectorized core (`alerts.vehicles.evaluate`); the per-position twin is in
`alerts.vehicles.reference`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.vehicles.fencegrid import FenceGrid, FenceIndex
from alerts.vehicles.state import EventKind, FleetState
from alerts.vehicles.table import FleetTable, Zone, in_window, window_close
from alerts.vehicles.track import Track

__all__ = [
    "SCAN_MAX",
    "Index",
    "ScanIndex",
    "Sink",
    "forbidden_areas",
    "index_positions",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
SCAN_MAX = 1024  # positions up to which a scan per fence is cheaper than an index


class Sink(Protocol):
    """Where events go."""

    def add(
        self, slots: I64, kind: EventKind, ts: I64, value: F64, ref: I64 | int = -1
    ) -> None: ...


class ScanIndex:
    """No index: every position tested against the box of every fence of the grid at once
    (cheapest for a few hundred positions), grouped by fence."""

    def __init__(self, grid: FenceGrid, lat: F64, lon: F64) -> None:
        self.number = {zone: f for f, zone in enumerate(grid.zones)}
        box = grid.bboxes  # by fence: lat_min, lat_max, lon_min, lon_max
        la, lo = lat[:, None], lon[:, None]
        hit = (la >= box[:, 0]) & (la <= box[:, 1]) & (lo >= box[:, 2]) & (lo <= box[:, 3])
        fence, rows = np.nonzero(hit.T)  # by fence, ascending rows within each
        self.rows = rows.astype(np.int64)
        self.bounds = np.searchsorted(fence, np.arange(len(grid.zones) + 1))

    def candidates(self, zone: Zone) -> I64:
        """The rows inside the zone's bounding box (sorted)."""
        f = self.number[zone]
        out: I64 = self.rows[self.bounds[f] : self.bounds[f + 1]]
        return out


Index = ScanIndex | FenceIndex


def index_positions(grid: FenceGrid, lat: F64, lon: F64) -> Index:
    """The index for a batch: none for up to `SCAN_MAX` positions, else the cells of the
    table's grid over the fences."""
    if lat.shape[0] <= SCAN_MAX:
        return ScanIndex(grid, lat, lon)
    return FenceIndex(grid, lat, lon)


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
    table: FleetTable, st: FleetState, index: Index, k: Track, lat: F64, lon: F64, out: Sink
) -> None:
    """`FORBIDDEN_ENTER` at the first fix inside an area during one of its windows, per area;
    `FORBIDDEN_END` at the first fix inside none any more, stamped when the last of them was
    left (`_area_end`). Updates `st.forbidden`. `lat`, `lon` are the rows of the track `k`."""
    s, t, v, first, last, fi = k.s, k.t, k.v, k.first, k.last, k.fi
    old = st.forbidden  # read in the loop, written after it
    in_some = fi[old[s[fi]] != 0]  # first rows of the vehicles in some area before the batch
    mask = np.zeros(old.shape, dtype=np.uint64)  # by slot: the areas of its last row
    insides: list[I64] = []
    drops: list[tuple[I64, I64]] = []  # (rows where an area's bit drops, when it was left)
    held = int(np.bitwise_or.reduce(old[s[in_some]])) if in_some.size else 0
    for f, zone in enumerate(table.forbidden):
        bit = np.uint64(1 << f)
        ins = index.candidates(zone)
        if not ins.size and not (held >> f) & 1:
            continue  # nobody near it, nobody in it before the batch
        if ins.size:
            keep = np.asarray(zone.classes, dtype=np.bool_)[table.cls[s[ins]]]
            if zone.windows:
                active = np.zeros(ins.shape, dtype=np.bool_)
                for w in zone.windows:
                    active |= in_window(t[ins], table.offset_ms, w)
                keep &= active
            ins = ins[keep]
        if ins.size:
            ins = ins[zone.shape.contains(lat[ins], lon[ins], distance=False)[0]]
        gone = in_some[(old[s[in_some]] & bit) != 0]
        if ins.size:
            was = np.where(first[ins], (old[s[ins]] & bit) != 0, _member(ins, ins - 1))
            hit = ins[~was]
            out.add(s[hit], EventKind.FORBIDDEN_ENTER, t[hit], v[hit], f)
            tail = ins[last[ins]]
            mask[s[tail]] |= bit
            insides.append(ins)
            gone = np.concatenate((ins[~last[ins]] + 1, gone))
            gone = gone[~_member(ins, gone)]
        if gone.size:
            drops.append(
                (
                    gone,
                    _area_end(
                        zone, table.offset_ms, t[gone], t[gone] - k.dt[gone], k.has_prev[gone]
                    ),
                )
            )
    st.forbidden[s[fi]] = mask[s[fi]]
    if not drops:
        return
    # the episode ends where a vehicle that was in an area (it dropped one) is in none
    at_rows = np.concatenate([d[0] for d in drops])
    ends = np.concatenate([d[1] for d in drops])
    anywhere = np.unique(np.concatenate(insides)) if insides else at_rows[:0]
    clear = np.unique(at_rows[~_member(anywhere, at_rows)])
    if not clear.size:
        return
    at = np.searchsorted(clear, at_rows)
    mine = (at < clear.size) & (clear[np.minimum(at, clear.size - 1)] == at_rows)
    when = np.full(clear.shape, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(when, at[mine], ends[mine])
    out.add(s[clear], EventKind.FORBIDDEN_END, when, v[clear])
