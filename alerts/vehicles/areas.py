"""Geofences over a batch: the indexes that find a fence's candidate positions, and the
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
from alerts.vehicles.track import Track

__all__ = [
    "GRID_MIN",
    "SCAN_MAX",
    "GridIndex",
    "Index",
    "LatIndex",
    "ScanIndex",
    "Sink",
    "forbidden_areas",
    "index_positions",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
_CELL_DEG = 0.02  # about 2 km: the grid is made coarser until it has fewer than 32768 cells
SCAN_MAX = 1024  # positions up to which a scan per fence is cheaper than an index
GRID_MIN = 200_000  # positions from which the grid pays for its cost per fence


class Sink(Protocol):
    """Where events go."""

    def add(
        self, slots: I64, kind: EventKind, ts: I64, value: F64, ref: I64 | int = -1
    ) -> None: ...


class ScanIndex:
    """No index: a fence's candidates are found by testing every position against its box
    (cheapest for a few hundred positions)."""

    def __init__(self, lat: F64, lon: F64) -> None:
        self.lat, self.lon = lat, lon

    def candidates(self, zone: Zone) -> I64:
        lat_min, lat_max, lon_min, lon_max = zone.shape.bbox
        la, lo = self.lat, self.lon
        out: I64 = np.flatnonzero(
            (la >= lat_min) & (la <= lat_max) & (lo >= lon_min) & (lo <= lon_max)
        )
        return out


class LatIndex:
    """Positions bucketed by 0.01 degree of latitude (a radix sort), to find a fence's
    candidates without scanning every position per fence."""

    def __init__(self, lat: F64, lon: F64) -> None:
        with np.errstate(invalid="ignore"):  # a NaN falls in some band, fails every box test
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


class GridIndex:
    """Positions sorted by cell of a grid over the batch's extent (a radix sort on an int16
    key), to find a fence's candidates among the positions near it without scanning every
    position per fence. A corridor is looked up by the box of each segment."""

    def __init__(self, lat: F64, lon: F64) -> None:
        # the grid over the finite extent (a NaN falls in some cell and fails every box test)
        la, lo = np.clip(lat, -90.0, 90.0), np.clip(lon, -180.0, 180.0)
        self.lat0 = float(np.fmin.reduce(la)) if la.size else 0.0
        self.lon0 = float(np.fmin.reduce(lo)) if lo.size else 0.0
        if not (math.isfinite(self.lat0) and math.isfinite(self.lon0)):  # all NaN
            self.lat0 = self.lon0 = 0.0
        height = float(np.fmax.reduce(la)) - self.lat0 if la.size else 0.0
        width = float(np.fmax.reduce(lo)) - self.lon0 if lo.size else 0.0
        if not (math.isfinite(height) and math.isfinite(width)):
            height = width = 0.0
        cell = _CELL_DEG
        while (int(height / cell) + 1) * (int(width / cell) + 1) >= 1 << 15:
            cell *= 2.0
        self.cell, self.rows, self.cols = cell, int(height / cell) + 1, int(width / cell) + 1
        # (x - x0) / cell is monotone in x, so a box's cells (the same arithmetic) hold its points
        with np.errstate(invalid="ignore"):
            row = ((la - self.lat0) / cell).astype(np.int16)
            col = ((lo - self.lon0) / cell).astype(np.int16)
        key = row * np.int16(self.cols) + col
        self.order = np.argsort(key, kind="stable")
        self.keys = key[self.order]
        self.lat = lat[self.order]
        self.lon = lon[self.order]

    def candidates(self, zone: Zone) -> I64:
        """The rows inside the zone's bounding box (sorted), found from the cells of its boxes."""
        cells = np.zeros((self.rows, self.cols), dtype=np.bool_)
        for lat_min, lat_max, lon_min, lon_max in zone.shape.boxes:
            r0 = max(0, math.floor((lat_min - self.lat0) / self.cell))
            r1 = min(self.rows - 1, math.floor((lat_max - self.lat0) / self.cell))
            c0 = max(0, math.floor((lon_min - self.lon0) / self.cell))
            c1 = min(self.cols - 1, math.floor((lon_max - self.lon0) / self.cell))
            if r0 <= r1 and c0 <= c1:
                cells[r0 : r1 + 1, c0 : c1 + 1] = True
        edges = np.flatnonzero(np.diff(cells.ravel(), prepend=False, append=False))
        lo = np.searchsorted(self.keys, edges[0::2].astype(np.int16), side="left")
        hi = np.searchsorted(self.keys, edges[1::2].astype(np.int16), side="left")
        size = hi - lo
        idx = np.arange(int(size.sum()), dtype=np.int64)
        idx += np.repeat(lo - (np.cumsum(size) - size), size)
        lat_min, lat_max, lon_min, lon_max = zone.shape.bbox
        la, lo_ = self.lat[idx], self.lon[idx]
        hit = (la >= lat_min) & (la <= lat_max) & (lo_ >= lon_min) & (lo_ <= lon_max)
        out: I64 = np.sort(self.order[idx[hit]]).astype(np.int64)
        return out


Index = ScanIndex | LatIndex | GridIndex


def index_positions(lat: F64, lon: F64) -> Index:
    """The index for a batch: none for up to `SCAN_MAX` positions, by latitude band up to
    `GRID_MIN` (cheapest per fence), by grid cell beyond (fewest candidates per fence)."""
    n = lat.shape[0]
    if n <= SCAN_MAX:
        return ScanIndex(lat, lon)
    return GridIndex(lat, lon) if n >= GRID_MIN else LatIndex(lat, lon)


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
    for f, zone in enumerate(table.forbidden):
        bit = np.uint64(1 << f)
        ins = index.candidates(zone)
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
