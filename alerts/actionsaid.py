"""What an action_failed change says: at its raise, the feedbacks that did not confirm; at its
clear, why; and whether the demand it failed was a sensor fault's (故障闭锁, `VerifySpec.on_fault`).

The alarm book (`alerts.alarms`) applies a batch's transitions in order with the core's state
after all of them; what a change of a fault lock-out says depends on the demand at its event
time, which the batch's own transitions of the sensor's sides tell (`BatchSides`): a sensor
level or fault side's value at a time is that of its last change at or before it in the batch,
else (none) the state's.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.evaluate import CoreState, Transitions
from alerts.table import ACTION, FAULT, RuleTable
from alerts.verifyplan import VerifyPlan
from telemetry.registry import SensorInfo

__all__ = [
    "BatchSides",
    "action_said",
    "batch_sides",
    "failed_as",
    "failure_action",
    "fault_locked",
    "plan_of",
]

# (sensor, side): the batch's changes of it, (ts, before, after) in order
BatchSides = dict[tuple[int, int], list[tuple[int, int, int]]]


def batch_sides(table: RuleTable, transitions: Transitions) -> BatchSides:
    """The changes of the fault lock-outs' sensors' sides in the batch (none without one)."""
    out: BatchSides = {}
    if not table.has_on_fault:
        return out
    mine = {p.sensor for p in table.verify if p.on_fault}
    rows = zip(
        transitions.sensor.tolist(),
        transitions.side.tolist(),
        transitions.ts.tolist(),
        transitions.before.tolist(),
        transitions.after.tolist(),
        strict=True,
    )
    for i, side, ts, before, after in rows:
        if i in mine and side != ACTION:
            out.setdefault((i, side), []).append((ts, before, after))
    return out


def _at(sides: BatchSides, state: CoreState, sensor: int, side: int, ts: int) -> int:
    """The side's level at event time `ts`: after the batch's changes at or before it."""
    level = int(state.level[sensor, side])
    for t, before, _ in sides.get((sensor, side), []):
        if t > ts:
            return before
    return level


def fault_locked(plan: VerifyPlan, ts: int, state: CoreState, sides: BatchSides) -> bool:
    """Whether the plan's demand at `ts` is the sensor fault's alone (故障闭锁): the sensor in
    fault, its level below the plan's."""
    if not plan.on_fault:
        return False
    level = _at(sides, state, plan.sensor, plan.side, ts)
    return level < plan.number and _at(sides, state, plan.sensor, FAULT, ts) > 0


def _fault_ended(plan: VerifyPlan, ts: int, sides: BatchSides) -> bool:
    """The sensor's fault ended at `ts` (a reading with a value, at `ts`, of the batch)."""
    changes = sides.get((plan.sensor, FAULT), [])
    return plan.on_fault and any(t == ts and after == 0 for t, _, after in changes)


def plan_of(table: RuleTable, sensor: int) -> VerifyPlan | None:
    """The verification whose demanding sensor is `sensor` (at most one), or None."""
    return next((p for p in table.verify if p.sensor == sensor), None)


def failed_as(plan: VerifyPlan, ts: int, state: CoreState, sides: BatchSides) -> tuple[bool, bool]:
    """What an action_failed raise at `ts` failed: (the demand was the sensor fault's alone
    (故障闭锁), the confirmed action broke (a plan that holds))."""
    return fault_locked(plan, ts, state, sides), plan.hold and bool(state.met[plan.sensor])


def failure_action(
    table: RuleTable, plan: VerifyPlan, ts: int, state: CoreState, sides: BatchSides
) -> str | None:
    """The action of an action_failed raise when it is not the plan's failure to act in time
    (`RuleTable.describe`): a fault lock-out's, else a held action's break; None otherwise."""
    fault, broken = failed_as(plan, ts, state, sides)
    if fault:
        return table.fault_lock_actions[plan.sensor]
    return table.broken_actions[plan.sensor] if broken else None


def action_said(
    sensors: Sequence[SensorInfo],
    plan: VerifyPlan,
    after: int,
    ts: int,
    state: CoreState,
    sides: BatchSides,
) -> str:
    """What an action_failed change says beside its action: at its raise, the feedbacks of
    the sensor's verification that do not confirm, with their last values (a plan's own
    text, a crane's "did not cut hoisting-up and trolley-out", named none: nobody could
    tell which circuit stayed on); at its clear, why (a load set down ended the demand, the
    circuit never cut: it read as if the limiter had acted, helper-103). A fault lock-out's
    says so: `故障闭锁未确认`, and at the demand's end `故障结束` (the sensor good again below
    the level)."""
    sensor = plan.sensor
    # a plan that holds (`verify.hold`) fails also when its confirmed action stops holding
    # (the face re-energised): "never confirmed" and "confirmed late" said wrong of that
    if not after:
        on = _at(sides, state, sensor, plan.side, ts) >= plan.number
        if not (on or fault_locked(plan, ts, state, sides)):
            if _fault_ended(plan, ts, sides):
                if plan.hold:
                    return "故障结束 the sensor's fault ended"
                return "故障结束 the sensor's fault ended: it was never confirmed"
            if plan.hold:
                return "需求结束 the level that demanded the action ended"
            return "需求结束 the level that demanded the action ended: it was never confirmed"
        if plan.hold:
            return "已确认 the feedback confirms the action"
        return "已确认 confirmed late by the feedback"
    stayed = [
        f"{sensors[f].id} {float(state.last_value[f]):g}"
        for f in plan.feedbacks
        if not plan.satisfied(float(state.last_value[f]))
    ]
    if not stayed:
        return ""
    names = ", ".join(stayed)
    fault, broken = failed_as(plan, ts, state, sides)
    if broken:  # confirmed, then broken
        if fault:
            return f"故障闭锁未保持 fault lock-out: the action did not hold: {names}"
        return f"未保持 the action did not hold: {names}"
    if fault:
        return f"故障闭锁未确认 fault lock-out not confirmed: {names}"
    return f"未确认 not confirmed: {names}"
