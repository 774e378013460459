"""Maintenance held too long: a detector left in calibration, a value forced by hand for a test and
forgotten. Its readings say so (quality CALIBRATION or MANUAL) and never alarm, so that the
sensor measures nothing and says nothing, for as long as it stays so; like an interlock's bypass
(DOMAIN 2), the time it may is limited (`MaintenanceSpec`; a chemical engineer found a detector
left in calibration for 12 h raised nothing, helper-109).

Semantics, over all of a sensor's readings in event-time order:

* a CALIBRATION or MANUAL reading continues the sensor's run of such readings, or starts one at
  its own time when there is none; it is overdue (level 1, the 'maintenance' alarm) when at least
  `after` past the start of its run;
* a reading that measures (good, out of range) or reports a fault ends the run (level 0);
* COMM_LOSS and STALE readings neither continue nor end it (a link down during a calibration
  says nothing of whether it is over; the no-data alarm says the link is down).

The transition's value is the run's length so far in seconds (when raised: the limit passed;
when cleared: how long the sensor was out of measurement). Pure numpy over the sorted readings, a
few passes; the state is the start of each sensor's run (`CoreState.maint_since`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.segments import run_since, segment_ends, segment_starts
from alerts.state import I64, NO_TS, CoreState, Part, level_changes
from alerts.table import MAINTENANCE, RuleTable
from telemetry.quality import Quality

__all__ = ["HELD", "PASS", "judge_maintenance"]

HELD = (int(Quality.CALIBRATION), int(Quality.MANUAL))  # continue (or start) a run
PASS = (int(Quality.COMM_LOSS), int(Quality.STALE))  # neither continue nor end one


def judge_maintenance(
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    s: I64,
    t: I64,
    q: npt.NDArray[np.uint8],
) -> list[Part]:
    """The maintenance side of the readings `s`, `t`, `q` (sorted by sensor, then time, every
    quality); updates `new`."""
    sel = np.flatnonzero((table.maint_ms[s] > 0) & (q != PASS[0]) & (q != PASS[1]))
    if not sel.shape[0]:
        return []
    s, t, q = s[sel], t[sel], q[sel]
    held = (q == HELD[0]) | (q == HELD[1])
    first = segment_starts(s)
    starts = np.flatnonzero(first)
    since0 = state.maint_since[s[starts]]
    # a run begins at a held reading after one that ended the run before (or with none before)
    prev_held = np.empty_like(held)
    prev_held[1:] = held[:-1]
    prev_held[starts] = since0 != NO_TS
    begins = held & ~prev_held
    # each row's run start: the last beginning at or before it in its sensor's rows, or the run
    # the sensor was in before the batch (NO_TS: none, and then the row is an end)
    since = run_since(first, starts, begins, t, since0)
    running = since != NO_TS
    held_ms = np.where(running, t - since, 0)
    level = (held & running & (held_ms >= table.maint_ms[s])).astype(np.int64)
    seed = state.level[s[starts], MAINTENANCE].astype(np.int64)
    ends = segment_ends(first)
    new.maint_since[s[ends]] = np.where(held[ends], since[ends], NO_TS)
    new.level[s[ends], MAINTENANCE] = level[ends]
    value = np.where(running, held_ms / 1000.0, np.nan)
    return [level_changes(s, t, value, level, seed, starts, MAINTENANCE)]
