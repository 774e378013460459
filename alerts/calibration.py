"""Calibration due (标校超期): a sensor not calibrated for its interval. AQ 1029 asks a
carrier-catalytic methane sensor to be calibrated every 15 days, and a late calibration is one of
the ways a monitoring system "cannot run normally" (a 重大事故隐患, DOMAIN 1.3 and 7): the hub
sees the calibrations (readings flagged calibration) and can say when one is overdue.

Semantics, over a sensor's readings in event-time order (`CalibrationDueSpec`):

* a CALIBRATION reading is a calibration: the interval counts from it again (level 0, clearing an
  overdue one);
* any other reading but COMM_LOSS and STALE (good, out of range, fault, manual) is judged: the
  sensor is overdue (level 1, the 'calibration_due' alarm) when at least the interval past its
  last calibration, or past its first judged reading when the hub knows no calibration of it
  (see below for the stored ones);
* COMM_LOSS and STALE readings are neither (the no-data alarm says the link is down);
* a sensor whose interval was turned off (0) with its alarm raised: cleared at its next reading.

The transition's value is the days since the last calibration (when raised: the interval passed;
when cleared by a calibration: how long the sensor went without one). Pure numpy over the sorted
readings; the state is each sensor's `CoreState.calib_at`.

A state that does not know a sensor's last calibration (no saved state, a sensor new to the hub,
an upgrade from a hub without the check) would count from the next reading: at start and after a
configuration change the hub looks for it in the time-series store first (`ingest.calibrations`,
with `unknown_calibrations`, `lookback_ms` and `seed_calibrations` here).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from alerts.maintenance import PASS
from alerts.segments import run_since, segment_ends, segment_starts
from alerts.state import I64, NO_TS, CoreState, Part, level_changes
from alerts.table import CALIBRATION_DUE, RuleTable
from telemetry.quality import Quality

__all__ = [
    "CALIBRATED",
    "DAY_MS",
    "LOOKBACK_INTERVALS",
    "judge_calibration",
    "lookback_ms",
    "seed_calibrations",
    "unknown_calibrations",
]

CALIBRATED = int(Quality.CALIBRATION)
DAY_MS = 86_400_000
# how far back a hub looks for the last calibrations it does not know: this many of the longest
# interval of the sensors asked for (a calibration older than one interval already makes the
# sensor overdue; two leave room for a hub stopped a while and for a calibration overdue long)
LOOKBACK_INTERVALS = 2


def unknown_calibrations(table: RuleTable, state: CoreState) -> npt.NDArray[np.int64]:
    """The sensors judged for calibration due whose last calibration the state does not know
    (no saved state, a sensor new to the hub or to the check, an upgrade from a hub without
    it): their intervals would count from their next reading."""
    n = min(table.calib_ms.shape[0], state.calib_at.shape[0])
    wanted = (table.calib_ms[:n] > 0) & (state.calib_at[:n] == NO_TS)
    return np.flatnonzero(wanted).astype(np.int64)


def lookback_ms(table: RuleTable, sensors: npt.NDArray[np.int64]) -> int:
    """How far back to look for the last calibrations of `sensors`: `LOOKBACK_INTERVALS` of
    their longest interval."""
    if not sensors.size:
        return 0
    return LOOKBACK_INTERVALS * int(table.calib_ms[sensors].max())


def seed_calibrations(state: CoreState, found: Mapping[int, int]) -> int:
    """Take the last calibrations found elsewhere (the time-series store), sensor -> event
    time, for the sensors whose last calibration `state` does not know: in place, the lateness
    window's checkpoint too (a rewind starts from it). A calibration the state knows (saved,
    seen, or restored from an active alarm) is kept. Returns how many were taken."""
    taken = 0
    ck = state.ck_calib_at.shape[0] == state.calib_at.shape[0]
    for i, ts in found.items():
        if 0 <= i < state.calib_at.shape[0] and int(state.calib_at[i]) == NO_TS:
            state.calib_at[i] = ts
            if ck and int(state.ck_calib_at[i]) == NO_TS:
                state.ck_calib_at[i] = ts
            taken += 1
    return taken


def judge_calibration(
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    s: I64,
    t: I64,
    q: npt.NDArray[np.uint8],
) -> list[Part]:
    """The calibration-due side of the readings `s`, `t`, `q` (sorted by sensor, then time,
    every quality); updates `new`."""
    # (a sensor whose interval was turned off, `every_days: 0`, with its alarm still raised:
    # cleared at its next reading, helper-159; judged for nothing else)
    checked = table.calib_ms[s] > 0
    raised = state.level[s, CALIBRATION_DUE] > 0
    sel = np.flatnonzero((checked | raised) & (q != PASS[0]) & (q != PASS[1]))
    if not sel.shape[0]:
        return []
    s, t, q = s[sel], t[sel], q[sel]
    off = table.calib_ms[s] == 0
    cal = q == CALIBRATED
    first = segment_starts(s)
    starts = np.flatnonzero(first)
    # before the batch: the sensor's last calibration, or its first judged reading (this one)
    at0 = state.calib_at[s[starts]]
    at0 = np.where(at0 == NO_TS, t[starts], at0)
    since = run_since(first, starts, cal, t, at0)  # a calibration row: its own time
    before = np.empty_like(since)  # the interval's start just before the row
    before[1:] = since[:-1]
    before[starts] = at0
    age = t - before
    level = (~cal & ~off & (age >= table.calib_ms[s])).astype(np.int64)
    seed = state.level[s[starts], CALIBRATION_DUE].astype(np.int64)
    ends = segment_ends(first)
    new.calib_at[s[ends]] = since[ends]
    new.level[s[ends], CALIBRATION_DUE] = level[ends]
    value = np.where(off, np.nan, age / DAY_MS)
    return [level_changes(s, t, value, level, seed, starts, CALIBRATION_DUE)]
