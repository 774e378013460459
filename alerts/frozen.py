"""Frozen value: a transmitter that is stuck, covered or cut off from its sensing element sends
the same value poll after poll (DOMAIN 1.5 "frozen value", 3 "flat-line (stuck)", 6 "stuck
anemometer"; AQ 1029-2019 asks for abnormal-data analysis).

Semantics, over a sensor's judged readings (good or out of range, finite) in event-time order:

* a reading whose value differs from the judged reading before it by more than the sensor's
  `band` (or with none before it) is a change: it starts a run, at its own time;
* the others continue the run; a reading at least `after` past the start of its run is frozen
  (level 1, the 'frozen' alarm), unless it is below the sensor's `ignore_below` (a calm, clean
  air), which also starts a run of its own (so that a calm ends a run, and the first reading
  above the floor starts one); any other is not (level 0): the alarm is raised by the reading
  that shows it and cleared by the first that moves (or falls below `ignore_below`);
* readings of other qualities (a fault, a comm loss, calibration) neither continue nor end a
  run; a sensor that sends nothing is no-data, never frozen.

Pure numpy over the sorted judged readings, a few passes; the state is the time each sensor's
run started (`CoreState.frozen_since`) and its last judged value (`last_value`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.segments import run_since, segment_ends, segment_starts
from alerts.state import I64, NO_TS, CoreState, Part, level_changes
from alerts.table import FROZEN, RuleTable

__all__ = ["judge_frozen"]


def judge_frozen(
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    s: I64,
    t: I64,
    v: npt.NDArray[np.float64],
) -> list[Part]:
    """The frozen side of judged readings (sorted by sensor, then time); updates `new`."""
    sel = np.flatnonzero(table.frozen_ms[s] > 0)
    if not sel.shape[0]:
        return []
    s, t, v = s[sel], t[sel], v[sel]
    first = segment_starts(s)
    starts = np.flatnonzero(first)
    prev = np.empty_like(v)
    prev[1:] = v[:-1]
    prev[starts] = state.last_value[s[starts]]
    with np.errstate(invalid="ignore"):
        changed = ~(np.abs(v - prev) <= table.frozen_band[s])  # none before (NaN): a change
    changed |= v < table.frozen_floor[s]  # below the floor: a run of its own at each reading
    # each reading's run start: the last change at or before it in its sensor's readings, or
    # the run the sensor was in before the batch (a run not known yet starts at the first)
    since0 = state.frozen_since[s[starts]]
    since0 = np.where(since0 == NO_TS, t[starts], since0)
    since = run_since(first, starts, changed, t, since0)
    level = (t - since >= table.frozen_ms[s]).astype(np.int64)
    seed = state.level[s[starts], FROZEN].astype(np.int64)
    ends = segment_ends(first)
    new.frozen_since[s[ends]] = since[ends]
    new.level[s[ends], FROZEN] = level[ends]
    return [level_changes(s, t, v, level, seed, starts, FROZEN)]
