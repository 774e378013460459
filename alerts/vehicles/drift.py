"""GPS drift as an episode, vectorized: a terminal with an antenna fault sends runs of
implausible fixes, one alarm for the run (not one per fix) is what a monitoring desk can use.

Per vehicle, over its fixes in event-time order (`alerts.vehicles.reference` does it fix by
fix): an implausible fix (its implied speed from the fix before above `drift_kmh`) raises
`DRIFT` when no episode is open and opens one; further implausible fixes only count; the first
fix that is not implausible and comes `drift_quiet_ms` or more after the episode's last
implausible one ends it (`DRIFT_END`, value: the implausible fixes counted). Only fixes end an
episode (event time): a vehicle gone silent keeps it open until its next fix.

Without a loop per fix: within a vehicle, between two implausible fixes the time of the last
one is fixed and the fixes' times grow, so "quiet long enough" is false, then true, over the
plausible fixes that follow an implausible one; the first true one is the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.vehicles.areas import Sink
from alerts.vehicles.state import EventKind, FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.track import Track, ranges, shift

__all__ = ["drift_episodes"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def drift_episodes(
    table: FleetTable, st: FleetState, k: Track, hit: I64, implied: F64, out: Sink
) -> None:
    """The episodes of the rows `hit` of `k` (ascending: its implausible fixes, `implied` their
    implied speeds km/h): events into `out`, the episodes left open into
    `st` (changed in place)."""
    was_open = st.drift_open[k.fs]
    if not hit.size and not was_open.any():
        return  # the common case: nothing to judge
    # the vehicles with an implausible fix or an episode open, all their rows
    involved = was_open.copy()
    involved[np.searchsorted(k.fi, hit, side="right") - 1] = True
    rows = ranges(k.fi[involved], k.li[involved])
    n = k.s.shape[0]
    flag = np.zeros(n, dtype=np.bool_)
    flag[hit] = True
    speed = np.zeros(n, dtype=np.float64)
    speed[hit] = implied
    drift, speed = flag[rows], speed[rows]
    s, t, first = k.s[rows], k.t[rows], k.first[rows]
    idx = np.arange(rows.shape[0], dtype=np.int64)
    head = np.maximum.accumulate(np.where(first, idx, 0))  # each row's vehicle's first row
    st_open = st.drift_open[s]
    # the last implausible row at or before each row (in its vehicle when >= head)
    d = np.maximum.accumulate(np.where(drift, idx, -1))
    before = shift(d, first, np.full(int(first.sum()), -1, dtype=np.int64))  # strictly before
    in_batch = before >= head
    has_last = in_batch | st_open  # an episode was open after the last implausible fix
    last = np.where(in_batch, t[np.maximum(before, 0)], st.drift_last[s])
    cand = ~drift & has_last & (t - last >= table.drift_quiet_ms)
    end = cand & ~shift(cand, first, np.zeros(int(first.sum()), dtype=np.bool_))
    # open after each row: an implausible fix opens it; after plausible ones it stays open
    # until the first that is quiet long enough (`cand` only grows between implausible fixes)
    after = drift | (has_last & ~cand)
    up = drift & ~shift(after, first, st_open[first])
    # implausible fixes in the episode up to each row: since its raise in the batch, or the
    # state's count and those since the batch's first row
    cs = np.cumsum(drift, dtype=np.int64)
    excl = cs - drift
    r = np.maximum.accumulate(np.where(up, idx, -1))
    own = r >= head
    count = np.where(own, cs - excl[np.maximum(r, 0)], st.drift_count[s] + cs - excl[head])
    raised = np.flatnonzero(up)
    out.add(s[raised], EventKind.DRIFT, t[raised], speed[raised])
    ended = np.flatnonzero(end)
    out.add(s[ended], EventKind.DRIFT_END, t[ended], count[ended].astype(np.float64))
    li = np.flatnonzero(np.append(first[1:], True))
    sl = s[li]
    still = after[li]
    dl = d[li]
    st.drift_open[sl] = still
    st.drift_last[sl] = np.where(
        still, np.where(dl >= head[li], t[np.maximum(dl, 0)], st.drift_last[sl]), 0
    )
    st.drift_count[sl] = np.where(still, count[li], 0)
