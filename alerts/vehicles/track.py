"""A batch's positions in (slot, time) order, with what every rule reads of them.

Part of the vectorized core (`alerts.vehicles.evaluate`): built once per batch, so that the rules
share one pass for each derived column; `take` restricts it to some vehicles (all their rows), for
the rules that judge row by row only the vehicles that can raise or end an episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alerts.vehicles.state import FleetState
from alerts.vehicles.table import DAY_MS

__all__ = ["Track", "meets", "ranges", "shift"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
T = TypeVar("T", bound=npt.NDArray[Any])


def shift(values: T, first: B, carry: npt.NDArray[Any]) -> T:
    """Each row's previous row in its vehicle, the state's value on a vehicle's first row."""
    out: T = np.empty_like(values)
    out[1:] = values[:-1]
    out[first] = carry
    return out


def meets(lo: int, span: int, window: tuple[int, int]) -> bool:
    """Whether local times of the day from `lo` over `span` ms meet a daily window [start, end)."""
    start, end = window
    if span >= DAY_MS or start == end:
        return True
    parts = [(start, end)] if start < end else [(start, DAY_MS), (0, end)]
    hi = lo + span
    times = [(lo, min(hi, DAY_MS - 1))] + ([(0, hi - DAY_MS)] if hi >= DAY_MS else [])
    return any(a < e and b >= s for a, b in times for s, e in parts)


def ranges(lo: I64, hi: I64) -> I64:
    """The rows lo[i] .. hi[i] (inclusive) of each range, concatenated in order."""
    size = hi - lo + 1
    out: I64 = np.arange(int(size.sum()), dtype=np.int64)
    out += np.repeat(lo - (np.cumsum(size) - size), size)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Track:
    """Rows of a batch in (slot, ts) order: `fi`/`li` the first and last row of each vehicle,
    `fs` its slot; `dt` the time since the previous fix (0 without one); `drive_dt` the driving
    time of the interval ending at the row (its start moving, capped at `max_drive_gap_s`);
    `idle` a stopped fix with ACC on of a class whose rest needs the engine off
    (`rest_needs_acc_off`), `prev_idle` the fix before it such a one: its interval is neither
    driving nor rest (`alerts.vehicles.fatigue`)."""

    s: I64
    t: I64
    v: F64
    first: B
    last: B
    fi: I64
    li: I64
    fs: I64
    has_prev: B
    dt: I64
    moving: B
    prev_moving: B
    drive_dt: I64
    idle: B
    prev_idle: B
    day: I64  # local day
    one_day: bool  # all rows in one local day
    night: B
    earliest: int  # the first and the last time of the rows
    latest: int

    def take(self, vehicles: I64) -> Track:
        """The rows of these vehicles (positions in `fi`, ascending)."""
        rows = ranges(self.fi[vehicles], self.li[vehicles])
        first = self.first[rows]
        last = self.last[rows]
        return Track(
            s=self.s[rows],
            t=self.t[rows],
            v=self.v[rows],
            first=first,
            last=last,
            fi=np.flatnonzero(first),
            li=np.flatnonzero(last),
            fs=self.fs[vehicles],
            has_prev=self.has_prev[rows],
            dt=self.dt[rows],
            moving=self.moving[rows],
            prev_moving=self.prev_moving[rows],
            drive_dt=self.drive_dt[rows],
            idle=self.idle[rows],
            prev_idle=self.prev_idle[rows],
            day=self.day[rows],
            one_day=self.one_day,
            night=self.night[rows],
            earliest=int(self.t[self.fi[vehicles]].min()) if vehicles.size else self.earliest,
            latest=int(self.t[self.li[vehicles]].max()) if vehicles.size else self.latest,
        )

    def turns(self) -> B:
        """The rows whose local day is not that of the vehicle's row before them in the batch
        (a vehicle's first row: never)."""
        turn = np.zeros(self.s.shape, dtype=np.bool_)
        if not self.one_day:
            np.not_equal(self.day[1:], self.day[:-1], out=turn[1:])
            turn &= ~self.first
        return turn

    @staticmethod
    def build(
        s: I64,
        t: I64,
        v: F64,
        st: FleetState,
        moving_kmh: float,
        drive_gap_ms: int,
        offset_ms: int,
        night_window: tuple[int, int],
        rest_acc: B | None = None,
        acc: npt.NDArray[np.int8] | None = None,
    ) -> Track:
        """`rest_acc`: per slot, whether the class's rest needs the engine off (None: no
        class's); `acc`: the rows' ACC (1 on, 0 off, -1 not said; None: none said)."""
        n = s.shape[0]
        first = np.empty(n, dtype=np.bool_)
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
        last = np.empty(n, dtype=np.bool_)
        last[-1] = True
        last[:-1] = first[1:]
        fi, li = np.flatnonzero(first), np.flatnonzero(last)
        fs = s[fi]
        has_prev = np.ones(n, dtype=np.bool_)
        has_prev[fi] = st.has_fix[fs]
        dt = np.empty(n, dtype=np.int64)
        np.subtract(t[1:], t[:-1], out=dt[1:])
        dt[fi] = np.where(has_prev[fi], t[fi] - st.last_ts[fs], 0)
        moving = v > moving_kmh
        prev_moving = shift(moving, first, st.last_moving[fs])
        prev_moving &= has_prev
        if int(dt.max()) > drive_gap_ms:
            drive_dt = np.minimum(dt, drive_gap_ms)
            drive_dt *= prev_moving
        else:  # no gap to cap
            drive_dt = dt * prev_moving
        if rest_acc is None or not rest_acc.any():
            idle = prev_idle = np.zeros(n, dtype=np.bool_)
        else:
            idle = ~moving & rest_acc[s] if acc is not None else np.zeros(n, dtype=np.bool_)
            if acc is not None:
                idle &= acc == 1
            before = rest_acc[fs] & ~st.last_moving[fs] & (st.last_acc[fs] == 1)
            prev_idle = shift(idle, first, before)
            prev_idle &= has_prev
        earliest, latest = int(t[fi].min()), int(t[li].max())  # ascending in each vehicle
        lo, hi = (earliest + offset_ms) // DAY_MS, (latest + offset_ms) // DAY_MS
        day: I64 = (
            np.broadcast_to(np.int64(lo), (n,)) if lo == hi else (t + offset_ms) // DAY_MS
        )  # one day: the same (read-only) value for every row, not an array of it
        start, end = night_window
        if not meets((earliest + offset_ms) % DAY_MS, latest - earliest, night_window):
            night = np.zeros(n, dtype=np.bool_)  # the batch is all by day
        else:
            tod = (t + offset_ms) % DAY_MS
            if start == end:
                night = np.ones(n, dtype=np.bool_)
            elif start < end:
                night = (tod >= start) & (tod < end)
            else:
                night = (tod >= start) | (tod < end)
        return Track(
            s, t, v, first, last, fi, li, fs, has_prev, dt, moving, prev_moving, drive_dt, idle,
            prev_idle, day, lo == hi, night, earliest, latest,
        )  # fmt: skip
