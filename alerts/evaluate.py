"""The vectorized threshold core: readings in, level transitions out, no Python loop per reading.

Semantics (also in `alerts.reference`, the plain-Python twin the property tests compare with):

* Readings are judged in event-time order per sensor. A reading at or before the last judged event
  time of its sensor is late: it is not judged (counted in `Outcome.late`).
* Only GOOD, finite readings are judged; others are counted in `Outcome.skipped`.
* Each level is a hysteresis: above-level j turns on when value >= threshold, off when
  value < recover, and otherwise keeps its previous state (mirrored for below-levels).
* The level of a side is the highest active level number (1..4), 0 when none is active. Every change
  of a side's level is a transition, stamped with the event time and value of the reading.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from alerts.table import SLOTS, RuleTable
from telemetry.quality import Quality

__all__ = ["CoreState", "Outcome", "Transitions", "evaluate"]


@dataclass(frozen=True, slots=True, eq=False)
class CoreState:
    active: npt.NDArray[np.bool_]  # (n, 8) per level slot
    level: npt.NDArray[np.int8]  # (n, 2): level number of the high and the low side
    last_ts: npt.NDArray[np.int64]  # (n,) event time of the last judged reading

    @staticmethod
    def empty(n: int) -> CoreState:
        return CoreState(
            np.zeros((n, 2 * SLOTS), dtype=np.bool_),
            np.zeros((n, 2), dtype=np.int8),
            np.full(n, np.iinfo(np.int64).min, dtype=np.int64),
        )

    def copy(self) -> CoreState:
        return replace(
            self, active=self.active.copy(), level=self.level.copy(), last_ts=self.last_ts.copy()
        )


@dataclass(frozen=True, slots=True, eq=False)
class Transitions:
    sensor: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    side: npt.NDArray[np.uint8]  # 0 = above, 1 = below
    before: npt.NDArray[np.int8]
    after: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True, slots=True)
class Outcome:
    judged: int
    late: int
    skipped: int


def _side_levels(active: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
    numbers = np.arange(1, SLOTS + 1, dtype=np.int8)
    levels: npt.NDArray[np.int8] = np.max(np.where(active, numbers, 0), axis=1).astype(np.int8)
    return levels


def evaluate(
    table: RuleTable,
    state: CoreState,
    sensor: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> tuple[CoreState, Transitions, Outcome]:
    """Judge one batch of readings; return the new state (the old one is not modified)."""
    n_in = int(ts.shape[0])
    sensor = sensor.astype(np.int64, copy=False)
    with np.errstate(invalid="ignore"):
        judgeable = (quality == Quality.GOOD) & np.isfinite(value) & table.has_rules[sensor]
    late = judgeable & (ts <= state.last_ts[sensor])
    mask = judgeable & ~late
    new = state.copy()
    order = np.flatnonzero(mask)
    order = order[np.lexsort((ts[order], sensor[order]))]
    s, t, v = sensor[order], ts[order], value[order]
    m = int(s.shape[0])
    if m:
        start = np.empty(m, dtype=np.bool_)
        start[0] = True
        np.not_equal(s[1:], s[:-1], out=start[1:])
        # Equal event times within a sensor: only the last reading of a timestamp is judged, as
        # the store keeps only one reading per (sensor, ts).
        keep = np.ones(m, dtype=np.bool_)
        keep[:-1] = ~((s[1:] == s[:-1]) & (t[1:] == t[:-1]))
        if not keep.all():
            s, t, v = s[keep], t[keep], v[keep]
            m = int(s.shape[0])
            start = np.empty(m, dtype=np.bool_)
            start[0] = True
            np.not_equal(s[1:], s[:-1], out=start[1:])
        pos = np.arange(m)
        thr = table.threshold[s]
        rec = table.recover[s]
        with np.errstate(invalid="ignore"):
            on = np.empty((m, 2 * SLOTS), dtype=np.bool_)
            off = np.empty((m, 2 * SLOTS), dtype=np.bool_)
            on[:, :SLOTS] = v[:, None] >= thr[:, :SLOTS]
            off[:, :SLOTS] = v[:, None] < rec[:, :SLOTS]
            on[:, SLOTS:] = v[:, None] <= thr[:, SLOTS:]
            off[:, SLOTS:] = v[:, None] > rec[:, SLOTS:]
        decisive = on | off
        prev_active = state.active[s]
        src = np.where(decisive, pos[:, None], -1)
        src[start] = pos[start][:, None]
        np.maximum.accumulate(src, axis=0, out=src)
        base = np.where(decisive, on, prev_active)
        active = np.take_along_axis(base, src, axis=0)
        level = np.stack([_side_levels(active[:, :SLOTS]), _side_levels(active[:, SLOTS:])], 1)
        before = np.empty_like(level)
        before[1:] = level[:-1]
        before[start] = state.level[s[start]]
        changed_row, changed_side = np.nonzero(level != before)
        transitions = Transitions(
            s[changed_row].astype(np.int32),
            t[changed_row],
            v[changed_row],
            changed_side.astype(np.uint8),
            before[changed_row, changed_side],
            level[changed_row, changed_side],
        )
        end = np.empty(m, dtype=np.bool_)
        end[-1] = True
        end[:-1] = start[1:]
        last = s[end]
        new.active[last] = active[end]
        new.level[last] = level[end]
        new.last_ts[last] = t[end]
    else:
        empty_i8 = np.zeros(0, dtype=np.int8)
        transitions = Transitions(
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            np.zeros(0, dtype=np.uint8),
            empty_i8,
            empty_i8.copy(),
        )
    outcome = Outcome(judged=m, late=int(late.sum()), skipped=n_in - int(judgeable.sum()))
    return new, transitions, outcome
