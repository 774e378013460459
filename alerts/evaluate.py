"""The vectorized alert core: readings in, transitions out, no Python loop per reading.

`evaluate(table, batch, state, now) -> (state, transitions, outcome)`. Semantics (also in
`alerts.reference`, the plain-Python twin the property tests compare with):

* Every sensor is looked at ("watched"). Readings are judged in event-time order per sensor;
  a reading at or before the last processed event time of its sensor is late and not judged
  (`Outcome.late`), unless the table has a lateness window and the reading is within it: then
  its sensor is rewound and judged again in order (`Outcome.rewound`; see `alerts.lateness`).
  Of equal event times of one sensor in a batch only the last in input order counts, as the
  store keeps one of them.
* Process levels judge GOOD and OUT_OF_RANGE readings with a finite value (a saturated reading
  is still a measurement, NAMUR NE 43). Each level is a hysteresis: raw-on at value >= threshold,
  raw-off below the recovery threshold, else unchanged (mirrored for levels below). The level
  follows its raw state once the new raw state has lasted `on_delay`/`off_delay` ms of event time
  and `on_samples`/`off_samples` judged readings in a row (counted from the reading that changed
  it); until then it keeps its previous state. A side's level is its highest active level number.
* SENSOR_FAULT readings raise a sensor's FAULT side (a sensor-fault alarm, not a process alarm),
  levels or none; its next reading with a value (good or out of range) clears it. CALIBRATION
  and MANUAL readings never alarm.
* COMM_LOSS and STALE readings raise the NO_DATA side; any other reading is data and clears it.
  With a timeout, a gap between data readings longer than the timeout raises NO_DATA at
  last-data + timeout (cleared by the reading that ends the gap), and so does `now` when it is
  past last-data + timeout and no reading with a value of the sensor, newer than its last, has
  arrived (at a `now`) for the timeout (`alerts.nodata`). A sensor never heard from starts its
  clock at the first `now`.
* ACTION: see `alerts.verify`.
* RATE (rate of rise) and EARLY (early warning) of sensors with those options: see `alerts.trend`.
* FROZEN (a value that has not moved for the sensor's frozen time): see `alerts.frozen`.
* MAINTENANCE (calibration or manual readings longer than the sensor's limit): see
  `alerts.maintenance`.
* CALIBRATION_DUE (no calibration for the sensor's interval, 标校超期): see `alerts.calibration`.

Every change of a side's level is a transition stamped with its event time; transitions come out
ordered by (sensor, ts, side).
"""

from __future__ import annotations

from dataclasses import replace
from typing import overload

import numpy as np
import numpy.typing as npt

from alerts.calibration import judge_calibration
from alerts.frozen import judge_frozen
from alerts.lateness import LateResult, classify, judge_late, side_part
from alerts.levels import judge_levels
from alerts.maintenance import judge_maintenance
from alerts.nodata import silence, start_clocks
from alerts.segments import by_sensor_time, distinct, segment_ends, segment_starts, segments_with
from alerts.state import (
    I64,
    NO_TS,
    RUN_START0,
    Columns,
    CoreState,
    Outcome,
    Part,
    Readings,
    Transitions,
    as_part,
    assemble,
)
from alerts.table import ABOVE, BELOW, CALIBRATION_DUE, FAULT, NO_DATA, SIDES, RuleTable
from alerts.trend import judge_trends
from alerts.verify import run_plans, unmeasured
from alerts.vote import batch_groups, fresh_groups, group_readings, vote_seed
from telemetry.quality import Quality

__all__ = [
    "NO_TS",
    "RUN_START0",
    "Columns",
    "CoreState",
    "Outcome",
    "Readings",
    "Transitions",
    "evaluate",
]


def _flags(
    s: I64, t: I64, v: npt.NDArray[np.float64], after: I64, seed: npt.NDArray[np.int8], side: int
) -> tuple[Part, npt.NDArray[np.bool_], I64]:
    """Transitions of a side whose level each row decides alone; returns the part, the segment
    starts and the level before each row."""
    start = segment_starts(s)
    before = np.empty_like(after)
    before[1:] = after[:-1]
    before[start] = seed[s[start]]
    rows = np.flatnonzero(after != before)
    return (s[rows], t[rows], v[rows], side, before[rows], after[rows]), start, before


@overload
def evaluate(
    table: RuleTable,
    batch: Columns,
    state: CoreState,
    now: int | None = None,
    *,
    inplace: bool = False,
) -> tuple[CoreState, Transitions, Outcome]: ...
@overload
def evaluate(
    table: RuleTable,
    batch: CoreState,
    state: npt.NDArray[np.int32],
    now: I64,
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> tuple[CoreState, Transitions, Outcome]: ...
def evaluate(
    table: RuleTable,
    batch: Columns | CoreState,
    state: CoreState | npt.NDArray[np.int32],
    now: int | I64 | None = None,
    value: npt.NDArray[np.float64] | None = None,
    quality: npt.NDArray[np.uint8] | None = None,
    *,
    inplace: bool = False,
) -> tuple[CoreState, Transitions, Outcome]:
    """Judge one batch; return the new state, the transitions and the counts. `now` (ms, the
    hub's clock) drives the no-data timeouts and action deadlines.

    The state given is not modified, unless `inplace` (no copy: for callers that never need to
    roll a batch back; the copy is what costs most on small batches over many sensors).

    The old form `evaluate(table, state, sensor, ts, value, quality)` is still accepted.
    """
    if isinstance(batch, CoreState):
        assert value is not None and quality is not None and isinstance(now, np.ndarray)
        cols = Readings(np.asarray(state), now, value, quality)
        return _evaluate(table, cols, batch, None)
    assert isinstance(state, CoreState) and not isinstance(now, np.ndarray)
    return _evaluate(table, batch, state, now, inplace=inplace)


def _evaluate(
    table: RuleTable,
    batch: Columns,
    state: CoreState,
    now: int | None,
    *,
    groups: bool = False,
    inplace: bool = False,
) -> tuple[CoreState, Transitions, Outcome]:
    """One pass; `groups` is the second pass over the voting groups' synthetic readings, which
    works on (and modifies) the state of the first pass."""
    sensor = np.asarray(batch.sensor).astype(np.int64, copy=False)
    ts = np.asarray(batch.ts, dtype=np.int64)
    value = np.asarray(batch.value, dtype=np.float64)
    quality = np.asarray(batch.quality, dtype=np.uint8)
    n_in = int(ts.shape[0])
    if state.hist_n.shape[0] != table.trends or state.hist_ts.shape[1] != table.trend_keep:
        state = state.with_trends(table.trends, table.trend_keep)
    elif state.hist_head.shape != state.hist_n.shape:  # saved before the rings: right-aligned
        state = replace(state, hist_head=np.zeros_like(state.hist_n))
    state = state.with_ring_offsets()  # (saved before them: absolute times)
    window = table.lateness_ms > 0 and not groups
    if not groups and state.ring_ts.shape != ((table.size, table.late_depth) if window else (0, 0)):
        state = state.with_lateness(table.late_depth if window else 0)
    elif window and state.told.shape != (table.size, SIDES):  # saved before it: not known
        state = replace(state, told=np.full((table.size, SIDES), NO_TS, dtype=np.int64))
    if table.has_hold and state.broke.shape != state.last_ts.shape:  # none held yet
        state = replace(state, broke=np.full(state.last_ts.shape[0], NO_TS, dtype=np.int64))
    new = state if groups or inplace else state.copy()
    fresh_parts: list[Part] = []
    # the groups of the batch's member readings (computed once for the two steps that need them)
    voting = batch_groups(table, sensor) if not groups and table.vote_ids.shape[0] else None
    if voting is not None:
        fresh = fresh_groups(table, new, sensor, voting)
        if fresh is not None:  # judged first, as the batch's members changes build on them
            new, fresh_tr, _ = _evaluate(table, fresh, new, None, groups=True)
            fresh_parts.append(as_part(fresh_tr))
    # what later stages need from before the batch, taken before anything is written
    feed_before = state.last_value[table.verify_pair_feedback]  # a copy (fancy index)
    # (a fault lock-out's: the plans' sensors' level on the plan's side and fault side)
    sides0 = None
    if table.has_on_fault:
        sides0 = np.stack(
            [
                state.level[table.verify_sensor, table.verify_side],
                state.level[table.verify_sensor, FAULT],
            ],
            axis=1,
        ).astype(np.int64)
    seed = None if voting is None else vote_seed(table, state, sensor, voting)
    if now is not None:
        start_clocks(table, new.last_data, now)
        if window:
            start_clocks(table, new.ck_last_data, now)
    watched = table.watched[sensor]
    late = watched & (ts <= state.last_ts[sensor])
    late_n = int(late.sum())
    todo = watched & ~late
    rewind = in_window = None
    if window and late_n:
        rewind, in_window = classify(table, state, sensor, ts, late)
        n_rewound = int(rewind.sum())
        if n_rewound:
            rewound = np.zeros(table.size, dtype=np.bool_)
            rewound[sensor[rewind]] = True
            todo &= ~rewound[sensor]
            late_n -= n_rewound
            rewind = (rewind | (watched & ~late)) & rewound[sensor]
        else:
            rewind = None
    # each reading with a value its rules can judge (good or out of range, a number)
    valued_in = ((quality == Quality.GOOD) | (quality == Quality.OUT_OF_RANGE)) & np.isfinite(value)
    if now is not None and n_in:
        # such a reading, newer than the sensor's last: its stream is alive (a feedback's may
        # still bring the confirmation; a sensor is not silent). A fault or comm-loss reading,
        # or an old one sent again (even within the lateness window), is not heard: a gateway
        # re-sending its last batch for ever must not keep a dead device heard
        new.last_arrival[sensor[valued_in & ~late]] = now
    idx = _kept(todo, sensor, ts)
    s, t = sensor[idx], ts[idx]
    v, q = value[idx], quality[idx]
    parts: list[Part] = fresh_parts
    late_res = None
    if window:
        if rewind is not None:
            ri = _kept(rewind, sensor, ts)
            rs = sensor[ri]
            first = np.flatnonzero(late & rewind)
            t0 = np.full(table.size, np.iinfo(np.int64).max)
            np.minimum.at(t0, sensor[first], ts[first])
            late_in = (rs, ts[ri], value[ri], quality[ri], t0[distinct(rs, ordered=True)])
        else:
            none = np.zeros(0, np.int64)
            late_in = (none, none, np.zeros(0), np.zeros(0, np.uint8), none)
        late_res = judge_late(_evaluate, table, state, new, (s, t, v, q), late_in, now)
        parts.extend(late_res.parts)
    valued = valued_in[idx]
    rules = table.has_rules[s]
    judged = valued & rules
    n_judged = int(judged.sum())
    level_parts: list[Part] = []
    if n_judged:
        j = _rows(judged)
        sj, tj, vj = s[j], t[j], v[j]
        level_parts, above = judge_levels(table, state, new, sj, tj, vj)
        parts.extend(level_parts)
        if table.trends:
            parts.extend(judge_trends(table, state, new, sj, tj, vj, above))
        if table.has_frozen:
            parts.extend(judge_frozen(table, state, new, sj, tj, vj))
    if table.has_maint:  # (the re-runs of `alerts.lateness` too, which pass `groups`)
        parts.extend(judge_maintenance(table, state, new, s, t, q))
    # (turned off: cleared; a side's levels read from its column, faster than a 2-D index)
    if table.has_calib or bool(state.level[:, CALIBRATION_DUE][s].any()):
        parts.extend(judge_calibration(table, state, new, s, t, q))
    # sensor fault: decided by fault readings and readings with a value, of every sensor; only
    # a sensor with a fault reading in the batch, or in fault before it, can change
    is_fault = q == Quality.SENSOR_FAULT
    decides = valued | is_fault
    hot = decides & (is_fault | (state.level[:, FAULT][s] > 0))
    f = np.flatnonzero(decides & segments_with(s, hot))
    fault_parts: list[Part] = []  # (a fault lock-out's demand: `alerts.verify`)
    if f.shape[0]:
        sf, fault = s[f], is_fault[f]
        part, start, _ = _flags(
            sf, t[f], v[f], fault.astype(np.int64), state.level[:, FAULT], FAULT
        )
        parts.append(part)
        fault_parts.append(part)
        end = segment_ends(start)
        new.level[sf[end], FAULT] = fault[end]
    # no data: comm-loss readings, gaps between data readings, silence until `now`
    d = _rows(table.loses[s])
    if s[d].shape[0]:
        sd, td, vd = s[d], t[d], v[d]
        loss = (q[d] == Quality.COMM_LOSS) | (q[d] == Quality.STALE)
        part, start, before = _flags(
            sd, td, vd, loss.astype(np.int64), new.level[:, NO_DATA], NO_DATA
        )
        parts.append(part)
        prev_t = np.empty_like(td)
        prev_t[1:] = td[:-1]
        prev_t[start] = new.last_data[sd[start]]
        timeout = table.no_data[sd]
        known = prev_t != NO_TS
        gap = ~loss & (before == 0) & (timeout > 0) & known
        gap &= td - np.where(known, prev_t, td) > timeout
        g = np.flatnonzero(gap)
        if g.shape[0]:
            ones, zeros = np.ones(g.shape[0], np.int64), np.zeros(g.shape[0], np.int64)
            nan = np.full(g.shape[0], np.nan)
            parts.append((sd[g], prev_t[g] + timeout[g], nan, NO_DATA, zeros, ones))
            parts.append((sd[g], td[g], vd[g], NO_DATA, ones, zeros))
        end = segment_ends(start)
        new.level[sd[end], NO_DATA] = loss[end]
        data = _rows(~loss)
        dend = np.arange(sd.shape[0])[data][segment_ends(segment_starts(sd[data]))]
        new.last_data[sd[dend]] = td[dend]
    # last values (feedback of verifications) and last processed times
    vi = _rows(valued)
    fs, ft, fv = s[vi], t[vi], v[vi]
    vend = segment_ends(segment_starts(fs))
    new.last_value[fs[vend]] = fv[vend]
    end = segment_ends(segment_starts(s))
    new.last_ts[s[end]] = t[end]
    if late_res is not None and late_res.above is not None:
        # votes and verification see the rewound sensors' transitions and readings on arrival,
        # each side's (a verification may demand on the side below: a fan's stop)
        merged = []
        for side, redone in ((ABOVE, late_res.above), (BELOW, late_res.below)):
            mine = [p for p in level_parts if isinstance(p[3], int) and p[3] == side]
            if redone is not None and redone[0].shape[0]:
                mine.append(redone)
            if mine:
                merged.append(_merge(mine))
        level_parts = merged
        ls, lt, lv = late_res.feed
        order = np.lexsort((np.concatenate([ft, lt]), np.concatenate([fs, ls])))
        fs, ft = np.concatenate([fs, ls])[order], np.concatenate([ft, lt])[order]
        fv = np.concatenate([fv, lv])[order]
    if not groups:
        lockout: tuple[Part, I64] | None = None
        unread: tuple[I64, I64] | None = None
        if sides0 is not None:
            lockout = (_faults(fault_parts, late_res), sides0)
        if table.has_hold:  # a held plan's sensor read without a value (`alerts.verify`)
            unread = unmeasured((s, t, q), None if late_res is None else late_res.unread)
        parts.extend(
            run_plans(table, state, new, level_parts, fs, ft, fv, now, feed_before, lockout, unread)
        )
    if now is not None:
        due_part = silence(table, new, now)
        if due_part is not None:
            parts.append(due_part)
    votes = None
    if not groups and (seed is not None or table.counts_failed):
        votes = group_readings(table, seed, level_parts, state, parts, new)
    if votes is not None:
        # the groups are judged like sensors, on the member counts (a second, smaller pass)
        new, group_tr, _ = _evaluate(table, votes, new, None, groups=True)
        parts.append(as_part(group_tr))
    transitions = assemble(parts)
    if window and transitions.sensor.shape[0]:  # what a consumer was last told, per side
        np.maximum.at(
            new.told,
            (transitions.sensor.astype(np.intp), transitions.side.astype(np.intp)),
            transitions.ts,
        )
    n_rewound = n_in_window = 0
    if late_res is not None:
        n_judged += late_res.judged
        if rewind is not None:
            n_rewound = int((rewind & late).sum())
        n_in_window = 0 if in_window is None else int(in_window.sum())
    return (
        new,
        transitions,
        Outcome(n_judged, late_n, n_in - n_judged - late_n, n_rewound, n_in_window),
    )


def _faults(main: list[Part], late_res: LateResult | None) -> Part:
    """For the fault lock-outs (`VerifySpec.on_fault`): the batch's fault transitions by
    (sensor, time), the rewound sensors' with the others'."""
    late_parts = [] if late_res is None else late_res.parts
    got = [p for p in late_parts if p[0].shape[0]]
    mine = [side_part(got, FAULT)] if got else []
    merged = [p for p in (*main, *mine) if p[0].shape[0]]
    none = np.zeros(0, np.int64)
    empty: Part = (none, none, np.zeros(0), FAULT, none, none)
    return _merge(merged) if merged else empty


def _rows(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp] | slice:
    """The rows of `mask`: all of them (a slice: views, no gathers) in the common case."""
    return slice(None) if mask.all() else np.flatnonzero(mask)


def _kept(todo: npt.NDArray[np.bool_], sensor: I64, ts: I64) -> npt.NDArray[np.intp]:
    """The rows of `todo` by (sensor, time); of equal times of a sensor the last in input order."""
    idx = np.flatnonzero(todo)
    idx = idx[by_sensor_time(sensor[idx], ts[idx])]
    if idx.shape[0] > 1:
        s, t = sensor[idx], ts[idx]
        keep = np.ones(idx.shape[0], dtype=np.bool_)
        keep[:-1] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        idx = idx[keep]
    return idx


def _merge(parts: list[Part]) -> Part:
    """Parts of one side (sensors disjoint) as one, by (sensor, time)."""
    if len(parts) == 1:
        return parts[0]
    s, t, v, b, a = (np.concatenate([np.asarray(p[i]) for p in parts]) for i in (0, 1, 2, 4, 5))
    order = np.lexsort((t, s))
    return s[order], t[order], v[order], parts[0][3], b[order], a[order]
