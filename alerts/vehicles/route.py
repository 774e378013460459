"""Approved-route corridors over a batch: a vehicle on a route leaves it and comes back.

Part of the vectorized core (`alerts.vehicles.evaluate`, whose docstring states the rule). The
rows of the vehicles on a route are taken grouped by corridor (all rows of a vehicle, in order),
each group tested against its corridor only; the distance is measured only where an event needs it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.state import EventKind, FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.track import Track, ranges, shift

__all__ = ["corridors"]

F64 = npt.NDArray[np.float64]


def corridors(table: FleetTable, st: FleetState, k: Track, lat: F64, lon: F64, out: Sink) -> None:
    """`CORRIDOR_LEAVE` and `CORRIDOR_ENTER`; updates the state's `in_route`."""
    route = table.route[k.fs]
    on = np.flatnonzero(route >= 0)
    if not on.size:
        return
    key = route[on].astype(np.int16) if len(table.corridors) < (1 << 15) else route[on]
    on = on[np.argsort(key, kind="stable")]  # vehicles by corridor
    rows = ranges(k.fi[on], k.li[on])
    counts = k.li[on] - k.fi[on] + 1
    bounds = np.searchsorted(np.repeat(route[on], counts), np.arange(len(table.corridors) + 1))
    inside = np.empty(rows.shape, dtype=np.bool_)
    for c, zone in enumerate(table.corridors):
        part = rows[bounds[c] : bounds[c + 1]]
        if part.size:
            inside[bounds[c] : bounds[c + 1]] = zone.shape.contains(
                lat[part], lon[part], distance=False
            )[0]
    first = k.first[rows]
    was = shift(inside, first, st.in_route[k.fs[on]])
    for kind, mask in (
        (EventKind.CORRIDOR_LEAVE, was & ~inside),
        (EventKind.CORRIDOR_ENTER, ~was & inside),
    ):
        at = np.flatnonzero(mask)
        hit = rows[at]
        dist = np.zeros(hit.shape)
        cut = np.searchsorted(at, bounds)
        for c in np.flatnonzero(np.diff(cut)).tolist():
            sel = hit[cut[c] : cut[c + 1]]
            dist[cut[c] : cut[c + 1]] = np.sqrt(
                table.corridors[c].shape.contains(lat[sel], lon[sel])[1]
            )
        ref = np.repeat(np.arange(len(table.corridors), dtype=np.int64), np.diff(cut))
        out.add(k.s[hit], kind, k.t[hit], dist, ref)
    st.in_route[k.fs[on]] = inside[np.flatnonzero(k.last[rows])]
