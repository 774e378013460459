"""Calibration due (标校超期): a sensor not calibrated for its interval. AQ 1029 asks a
carrier-catalytic methane sensor to be calibrated every 15 days, and a late calibration is one of
the ways a monitoring system "cannot run normally" (a 重大事故隐患, DOMAIN 1.3 and 7): the hub
sees the calibrations (readings flagged calibration) and can say when one is overdue.

Semantics, over a sensor's readings in event-time order (`CalibrationDueSpec`):

* a CALIBRATION reading is a calibration: the interval counts from it again (level 0, clearing an
  overdue one);
* any other reading but COMM_LOSS and STALE (good, out of range, fault, manual) is judged: the
  sensor is overdue (level 1, the 'calibration_due' alarm) when at least the interval past its
  last calibration, or past its first judged reading when the hub has seen no calibration of it
  (it cannot know those before it watched);
* COMM_LOSS and STALE readings are neither (the no-data alarm says the link is down);
* a sensor whose interval was turned off (0) with its alarm raised: cleared at its next reading.

The transition's value is the days since the last calibration (when raised: the interval passed;
when cleared by a calibration: how long the sensor went without one). Pure numpy over the sorted
readings; the state is each sensor's `CoreState.calib_at`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.maintenance import PASS
from alerts.segments import run_since, segment_ends, segment_starts
from alerts.state import I64, NO_TS, CoreState, Part, level_changes
from alerts.table import CALIBRATION_DUE, RuleTable
from telemetry.quality import Quality

__all__ = ["CALIBRATED", "DAY_MS", "judge_calibration"]

CALIBRATED = int(Quality.CALIBRATION)
DAY_MS = 86_400_000


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
