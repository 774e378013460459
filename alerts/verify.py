"""Action verification: a level that demands a protective action, and the feedback that proves it.

Methane at the power-cut level demands that the face's power-feed sensor reads 'no power' within
2 s of the event time (DOMAIN 1.3); otherwise a 'power cut failed' (馈电异常) alarm is raised. A
plan may name several feedback sensors (the feeds of each airway of a power-cut scope, a crane's
hoisting-up and trolley-out circuits): the demand is met when all of them confirm it.

The step works on the few events of one verification plan (the demanding sensor's level changes
and the feedback sensor's readings of a batch), so both the vectorized core and the plain-Python
reference call it; it is never run per reading of other sensors.

Semantics, in event time (ties: feedback readings first, then level changes, then the deadline):

* the demand starts when the sensor's level on the plan's side (above; below for a fan's stop)
  reaches the plan's level number, or (`on_fault`, 故障闭锁) when the sensor's fault side rises
  (a SENSOR_FAULT reading: comm-loss and calibration readings leave the side as it is); it
  lasts while either holds, so a fault during the level's demand, or a reading at the level
  ending the fault, continues it (one demand, one deadline; the level's and the fault's changes
  at one event time judged together, `demands`); the deadline
  is the event time plus `within`; the demand is met at once if the feedback's last value (as of
  that time) already satisfies it, or later by a satisfying reading at or before the deadline;
* an unmet demand fails at its deadline once something later is known: a feedback reading after
  it, or `now` past it by the plan's grace while every feedback has been silent for the grace
  too. A reading of one with a value, not dropped as late, that arrived within the grace means
  the plan's streams are flowing, only behind: after a hub restart or a cut link the backlog is
  judged batch by batch, each feed's in its own batches, and the confirming reading may be in
  the next one. A fault or comm-loss reading brings no confirmation, nor does an old reading
  sent again (late), so neither holds the failure off. The failure is an ACTION transition
  stamped with the deadline;
* the failure clears when the feedback satisfies the demand, or when the demand ends (the level
  falls below the plan's level number, and with `on_fault` the sensor is out of fault: its
  next reading with a value below the level);
* a plan that holds (`hold`): once met, a feedback reading that no longer satisfies the demand
  while it lasts is a break (a face re-energised during the power cut, a crane lifting during
  the wind stop). The break fails at the next reading of the demanding sensor, at or after it
  in event time and judged with or after it, that leaves the level on: the hub may get the
  substation's reading that ended the level a poll after the feed's, so the feed alone does
  not tell a restore after the level from one during it. A reading with a value counts, and
  so does one in fault, calibration or manual (`UNMEASURED`: it changes no level, so the
  level lasts; power back with the head measuring nothing is a break, 故障闭锁, and a head put
  in calibration hid an illegal restore until it measured again); a comm-loss or stale one
  does not (the hub hears nothing of the head: the methane may have fallen while the link was
  down). The failure is stamped with the break (the value carried: the feedback that breaks);
  a feedback reading that satisfies the demand again ends the break unfailed, or clears the
  failure, as does the demand's end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from alerts.maintenance import HELD
from alerts.state import I64, NO_TS, CoreState, Part
from alerts.table import ABOVE, ACTION, BELOW, FAULT, RuleTable
from alerts.verifyplan import VerifyPlan
from telemetry.quality import Quality

__all__ = ["NO_TS", "UNMEASURED", "Row", "demands", "run_plans", "unmeasured", "verify_step"]

Row = tuple[int, int, float, int, int, int]  # sensor, ts, value, side, before, after
# the qualities of a demanding sensor's readings without a value that fail a held plan's break
# as one with a value does (in fault, calibration, manual; not comm loss or stale)
UNMEASURED = (int(Quality.SENSOR_FAULT), *HELD)


def verify_step(
    plan: VerifyPlan,
    changes: Sequence[tuple[int, int, int]],
    feed: Sequence[tuple[int, int, float]],
    last_values: Sequence[float],
    deadline: int,
    met: bool,
    failed: int,
    now: int | None,
    feed_arrival: int = NO_TS,
    broke: int = NO_TS,
    seen: Sequence[int] = (),
    faults: Sequence[tuple[int, int]] = (),
    sides0: tuple[int, int] = (0, 0),
) -> tuple[list[Row], int, bool, int, int]:
    """Run one plan over a batch: `changes` are (ts, before, after) of the demanding sensor's level
    on the plan's side, `feed` (ts, j, value) the judged readings of its feedback j
    (`plan.feedbacks[j]`), both in time order (feed by time, then j); `last_values` each
    feedback's value before the batch;
    `feed_arrival` when a reading of any of them last arrived (`now`; NO_TS: never). A plan that
    holds also takes `broke` (when its met action stopped holding, NO_TS: it holds) and `seen`,
    the times of the demanding sensor's readings of the batch with a value, in fault, in
    calibration or manual (`UNMEASURED`). A plan that a sensor fault demands too (`on_fault`)
    takes `faults`, the (ts, after) of the sensor's fault side in the batch, and `sides0`, its
    level on the plan's side and its fault side before the batch. Returns the transitions and the
    new (deadline, met, failed, broke). The demand is met when every feedback satisfies it."""
    events: list[tuple[int, int, float, int, int]] = [(t, 0, v, j, 0) for t, j, v in feed]
    events.extend((t, 1, math.nan, b, a) for t, b, a in demands(plan, changes, faults, sides0))
    if plan.hold:
        events.extend((t, 2, math.nan, 0, 0) for t in seen)
    events.sort(key=lambda e: (e[0], e[1]))
    out: list[Row] = []
    cur = list(last_values)

    def confirmed() -> bool:
        return all(plan.satisfied(c) for c in cur)

    def shown() -> float:
        """The value an ACTION transition carries: the first feedback that does not confirm."""
        return next((c for c in cur if not plan.satisfied(c)), cur[0])

    for t, kind, v, before, after in events:
        if kind == 2:  # the demanding sensor read, the demand on (after its changes at t)
            # (at or after the break: an older reading of it, arriving after the feed's, says
            # nothing of the break, and its failure would sort after the clear at its level's
            # end and stay open for good, helper-137)
            if NO_TS not in (broke, deadline) and not failed and t >= broke:
                out.append((plan.sensor, broke, shown(), ACTION, 0, 1))
                failed = 1
            continue
        if deadline != NO_TS and not met and not failed and deadline < t:
            out.append((plan.sensor, deadline, shown(), ACTION, 0, 1))
            failed = 1
        if kind == 0:
            if broke != NO_TS and t < broke:
                continue  # from before the break (late): it neither mends it nor is now's value
            cur[before] = v  # `before` holds the feedback's number j
            if deadline != NO_TS and confirmed():
                met, broke = True, NO_TS
                if failed:
                    out.append((plan.sensor, t, v, ACTION, 1, 0))
                    failed = 0
            elif plan.hold and met and deadline != NO_TS and broke == NO_TS:
                broke = t  # the met action no longer holds
            continue
        was, is_on = before > 0, after > 0
        if is_on and not was:
            deadline = t + plan.within_ms
            met, broke = confirmed(), NO_TS
        elif was and not is_on:
            if failed:
                out.append((plan.sensor, t, shown(), ACTION, 1, 0))
                failed = 0
            deadline, met, broke = NO_TS, False, NO_TS
    due = deadline != NO_TS and not met and not failed
    # in transit: a reading of a feedback arrived within the grace (one that confirms already
    # too: the plan's feeds may be replaying a backlog, each in its own batches)
    heard = feed_arrival != NO_TS and now is not None and now - feed_arrival <= plan.grace_ms
    if due and now is not None and deadline + plan.grace_ms < now and not heard:
        out.append((plan.sensor, deadline, shown(), ACTION, 0, 1))
        failed = 1
    return out, deadline, met, failed, broke


def demands(
    plan: VerifyPlan,
    changes: Sequence[tuple[int, int, int]],
    faults: Sequence[tuple[int, int]],
    before: tuple[int, int],
) -> list[tuple[int, int, int]]:
    """The plan's demand over the batch, as (ts, was, is) (1: on): the level on the plan's side
    at the plan's level number or more, or (`on_fault`, 故障闭锁) the sensor in fault. Of the
    level's and the fault's changes at one event time (one reading: a fault giving way to a
    reading at the level) the demand is judged once, after all of them: it goes on."""
    number = plan.number
    if not plan.on_fault:
        return [(t, int(b >= number), int(a >= number)) for t, b, a in changes]
    level, fault = before
    on = level >= number or fault > 0
    # (stable: of equal times each side's changes keep their order, a correction last)
    merged = sorted(
        [(t, 0, a) for t, _, a in changes] + [(t, 1, a) for t, a in faults], key=lambda e: e[0]
    )
    out: list[tuple[int, int, int]] = []
    for k, (t, which, after) in enumerate(merged):
        if which:
            fault = after
        else:
            level = after
        if k + 1 < len(merged) and merged[k + 1][0] == t:
            continue  # judged after the last change at t
        now_on = level >= number or fault > 0
        out.append((t, int(on), int(now_on)))  # (one that changes nothing is news of t too)
        on = now_on
    return out


def unmeasured(
    main: tuple[I64, I64, npt.NDArray[np.uint8]], late: tuple[I64, I64] | None
) -> tuple[I64, I64]:
    """The batch's readings (sensor, ts) that fail a held plan's break without a value
    (`UNMEASURED`), by sensor and time: of `main`, its kept readings (sensor, ts, quality) by
    sensor and time, and `late`, the rewound sensors' (`alerts.lateness.LateResult.unread`)."""
    s, t, q = main
    rows = np.flatnonzero(np.isin(q, UNMEASURED))
    rs, rt = s[rows], t[rows]
    if late is not None and late[0].shape[0]:
        ls, lt = late
        order = np.lexsort((np.concatenate([rt, lt]), np.concatenate([rs, ls])))
        rs, rt = np.concatenate([rs, ls])[order], np.concatenate([rt, lt])[order]
    return rs, rt


def _among(x: I64, sorted_: I64) -> npt.NDArray[np.bool_]:
    """np.isin(x, sorted_) for a sorted `sorted_`, by binary search (no hashing of either)."""
    if not sorted_.shape[0]:
        return np.zeros(x.shape[0], dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_, x), sorted_.shape[0] - 1)
    found: npt.NDArray[np.bool_] = sorted_[at] == x
    return found


def run_plans(
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    level_parts: list[Part],
    fs: I64,
    ft: I64,
    fv: npt.NDArray[np.float64],
    now: int | None,
    feed_before: npt.NDArray[np.float64],
    lockout: tuple[Part, I64] | None = None,
    unread: tuple[I64, I64] | None = None,
) -> list[Part]:
    """Run the plans that have something to do: a level change (with `on_fault`, a change of
    the sensor's fault side: `faults`, the batch's fault transitions by sensor and time),
    feedback on a demand not met or failed, a held demand whose batch may break, fail or mend
    it (`_held`), or a pending demand whose deadline the clock has passed. A met demand that
    does not hold, and a held one whose feedback keeps confirming it, take no step: none runs
    per reading of a demand that is quiet. `lockout` (a table with fault lock-outs, `on_fault`)
    holds the batch's fault transitions by sensor and time and each plan's sensor's level on
    its side and fault side before the batch. `unread` (a table with held plans) holds the
    batch's readings without a value that fail a break (`UNMEASURED`, `unmeasured`)."""
    if not table.verify:
        return []
    none = np.zeros(0, np.int64)
    faults: Part = (none, none, np.zeros(0), FAULT, none, none)
    fu_s, fu_t = none, none
    sides0 = None
    if lockout is not None:
        faults, sides0 = lockout
    if unread is not None:
        fu_s, fu_t = unread
    # the demanding sensors' readings that may fail a break: with a value, or in fault,
    # calibration or manual (of every sensor: a superset, the held plans' steps decide)
    read_s = fs if not fu_s.shape[0] else np.sort(np.concatenate([fs, fu_s]))
    # the level changes of each side (a plan demands on one: above, or below for a fan's stop)
    empty = (np.zeros(0, np.int64),) * 6
    by_side = {
        side: next((p for p in level_parts if isinstance(p[3], int) and p[3] == side), empty)
        for side in (ABOVE, BELOW)
    }
    ps, pp, pf = table.verify_sensor, table.verify_pair_plan, table.verify_pair_feedback
    deadline = state.deadline[ps]
    pending = deadline != NO_TS
    fed = np.zeros(ps.shape[0], dtype=np.bool_)  # a feedback of the plan has readings
    fed[pp[_among(pf, fs)]] = True
    changed = np.zeros(ps.shape[0], dtype=np.bool_)
    sides = table.verify_side
    for side, part in by_side.items():
        changed |= (sides == side) & _among(ps, part[0])
    if table.has_on_fault:
        changed |= table.verify_on_fault & _among(ps, faults[0])
    met = state.met[ps]
    # a met demand without a failure has nothing to do on feedback alone, unless it must hold
    todo = changed | (pending & fed & ~(met & (state.level[ps, ACTION] == 0)))
    if table.has_hold:
        held = pending & met & table.verify_hold
        if held.any() and table.lateness_ms > 0:
            # (with a lateness window, rewound readings come in too: the step decides, as the
            # reference's, whenever the plan has readings; helper-137's fuzzing found `_held`
            # skipping a step that broke the action)
            todo |= held & (fed | _among(ps, read_s))
        elif held.any():
            todo |= _held(table, state, held & ~changed, fs, fv, read_s)
    if now is not None:
        idle = pending & ~state.met[ps] & (state.level[ps, ACTION] == 0)
        arrived = new.last_arrival[pf]
        heard_pair = (arrived != NO_TS) & (
            now - np.where(arrived != NO_TS, arrived, 0) <= table.verify_grace[pp]
        )
        heard = np.zeros(ps.shape[0], dtype=np.bool_)  # any of the plan's feedbacks
        heard[pp[heard_pair]] = True
        todo |= idle & ~heard & (np.where(idle, deadline, 0) + table.verify_grace < now)
    parts: list[Part] = []
    ptr = table.verify_pair_ptr
    for k in np.flatnonzero(todo).tolist():
        plan = table.verify[k]
        cs, ct, _, _, cb, ca = by_side[plan.side]
        lo, hi = np.searchsorted(cs, plan.sensor, "left"), np.searchsorted(cs, plan.sensor, "right")
        feed: list[tuple[int, int, float]] = []
        for j, f in enumerate(plan.feedbacks):
            flo, fhi = np.searchsorted(fs, f, "left"), np.searchsorted(fs, f, "right")
            readings = zip(ft[flo:fhi].tolist(), fv[flo:fhi].tolist(), strict=True)
            feed.extend((t, j, v) for t, v in readings)
        feed.sort(key=lambda r: (r[0], r[1]))
        seen: list[int] = []
        if plan.hold:  # the demanding sensor's readings with a value, and its `UNMEASURED`
            slo, shi = (
                np.searchsorted(fs, plan.sensor, "left"),
                np.searchsorted(fs, plan.sensor, "right"),
            )
            ulo, uhi = (
                np.searchsorted(fu_s, plan.sensor, "left"),
                np.searchsorted(fu_s, plan.sensor, "right"),
            )
            seen = sorted(ft[slo:shi].tolist() + fu_t[ulo:uhi].tolist())
        its_faults: list[tuple[int, int]] = []
        if plan.on_fault:
            xlo, xhi = (
                np.searchsorted(faults[0], plan.sensor, "left"),
                np.searchsorted(faults[0], plan.sensor, "right"),
            )
            its_faults = list(
                zip(faults[1][xlo:xhi].tolist(), faults[5][xlo:xhi].tolist(), strict=True)
            )
        rows, dl, now_met, failed, broke = verify_step(
            plan,
            list(zip(ct[lo:hi].tolist(), cb[lo:hi].tolist(), ca[lo:hi].tolist(), strict=True)),
            feed,
            feed_before[ptr[k] : ptr[k + 1]].tolist(),
            int(state.deadline[plan.sensor]),
            bool(state.met[plan.sensor]),
            int(state.level[plan.sensor, ACTION]),
            now,
            int(new.last_arrival[pf[ptr[k] : ptr[k + 1]]].max()),
            int(state.broke[plan.sensor]) if plan.hold else NO_TS,
            seen,
            its_faults,
            (0, 0) if sides0 is None else (int(sides0[k, 0]), int(sides0[k, 1])),
        )
        new.deadline[plan.sensor], new.met[plan.sensor] = dl, now_met
        if plan.hold:
            new.broke[plan.sensor] = broke
        new.level[plan.sensor, ACTION] = failed
        if rows:
            a = np.array([(r[0], r[1], r[4], r[5]) for r in rows], dtype=np.int64)
            vals = np.array([r[2] for r in rows], dtype=np.float64)
            parts.append((a[:, 0], a[:, 1], vals, ACTION, a[:, 2], a[:, 3]))
    return parts


def _held(
    table: RuleTable,
    state: CoreState,
    held: npt.NDArray[np.bool_],
    fs: I64,
    fv: npt.NDArray[np.float64],
    read_s: I64,
) -> npt.NDArray[np.bool_]:
    """Of the met demands that must hold (`held`, plans), those the batch may change: holding,
    a feedback reading past the bound (a break); broken or failed, a reading that satisfies the
    demand again, or (broken, not yet failed) a reading of the demanding sensor (with a value,
    or `UNMEASURED`: `read_s`, sorted). The others' readings change nothing; found without a
    loop over the readings."""
    ps, pp = table.verify_sensor, table.verify_pair_plan
    failed = state.level[ps, ACTION] > 0
    broken = state.broke[ps] != NO_TS
    todo: npt.NDArray[np.bool_] = held & broken & ~failed & _among(ps, read_s)
    # the readings of the held plans' feedbacks, pair by pair
    pairs = np.flatnonzero(held[pp])
    f = table.verify_pair_feedback[pairs]
    lo, hi = np.searchsorted(fs, f, "left"), np.searchsorted(fs, f, "right")
    n = hi - lo
    some = n > 0
    pairs, lo, n = pairs[some], lo[some], n[some]
    if not pairs.shape[0]:
        return todo
    starts = np.cumsum(n) - n
    rows = np.repeat(lo - starts, n) + np.arange(int(n.sum()))
    k = pp[pairs]
    bound, below = np.repeat(table.verify_bound[k], n), np.repeat(table.verify_below[k], n)
    ok = np.where(below, fv[rows] < bound, fv[rows] > bound)
    any_ok = np.logical_or.reduceat(ok, starts)
    any_bad = np.logical_or.reduceat(~ok, starts)
    wants_ok = broken[k] | failed[k]
    todo[k[np.where(wants_ok, any_ok, any_bad)]] = True
    return todo
