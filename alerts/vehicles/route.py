"""Approved-route corridors over a batch: a vehicle on a route leaves it and comes back.

Part of the vectorized core (`alerts.vehicles.evaluate`, whose docstring states the rule). A
corridor tests the rows of its vehicles in its cells of the fence grid (those of all its
vehicles in a small batch); the others are outside. Events are where inside changes, the
distance measured only there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Index, Sink
from alerts.vehicles.fencegrid import FenceIndex
from alerts.vehicles.state import EventKind, FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.track import Track, ranges

__all__ = ["corridors"]

F64 = npt.NDArray[np.float64]


def corridors(
    table: FleetTable, st: FleetState, k: Track, lat: F64, lon: F64, index: Index, out: Sink
) -> None:
    """`CORRIDOR_LEAVE` and `CORRIDOR_ENTER`; updates the state's `in_route`."""
    route = table.route[k.fs]
    on = np.flatnonzero(route >= 0)  # vehicles on a route
    if not on.size:
        return
    n = k.s.shape[0]
    inside = np.zeros(n, dtype=np.bool_)
    if isinstance(index, FenceIndex):  # the rows in a corridor's cells that are on it
        for c, zone in enumerate(table.corridors):
            rows = index.near(zone)
            rows = rows[table.route[k.s[rows]] == c]
            if rows.size:
                inside[rows] = zone.shape.contains(lat[rows], lon[rows], distance=False)[0]
    else:  # few rows: those of each route's vehicles
        key = route[on].astype(np.int16) if len(table.corridors) < (1 << 15) else route[on]
        by_route = on[np.argsort(key, kind="stable")]
        every = ranges(k.fi[by_route], k.li[by_route])
        bounds = np.searchsorted(
            np.repeat(route[by_route], k.li[by_route] - k.fi[by_route] + 1),
            np.arange(len(table.corridors) + 1),
        )
        for c in np.flatnonzero(np.diff(bounds)).tolist():
            rows = every[bounds[c] : bounds[c + 1]]
            shape = table.corridors[c].shape
            inside[rows] = shape.contains(lat[rows], lon[rows], distance=False)[0]
    # a change: from the previous row of the vehicle, or from the state at its first row
    hit = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    hit = hit[~k.first[hit]]
    hit = hit[table.route[k.s[hit]] >= 0]
    fi = k.fi[on]
    hit = np.sort(np.concatenate((hit, fi[inside[fi] != st.in_route[k.fs[on]]])))
    ref = table.route[k.s[hit]]
    dist = np.sqrt(table.corridor_set.distance2(ref, lat[hit], lon[hit]))
    for kind, mask in (
        (EventKind.CORRIDOR_LEAVE, ~inside[hit]),
        (EventKind.CORRIDOR_ENTER, inside[hit]),
    ):
        rows = hit[mask]
        out.add(k.s[rows], kind, k.t[rows], dist[mask], ref[mask].astype(np.int64))
    st.in_route[k.fs[on]] = inside[k.li[on]]
