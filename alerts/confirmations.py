"""The journal's record that a protective action was confirmed in time.

A level that demands a protective action (methane at the power-cut level: the face's feed cut
within 2 s; a crane's overload: its hoisting-up circuit) raised `action_failed` when the feedback
did not confirm it, and said nothing when it did: an inspector had to piece the cut together from
the two sensors' history (helper-103; AQ 6201 asks a mine's monitoring system for a record of its
power cuts and their feedback). Each demand met is now a line in the journal of the alarm that
demanded it: a `commented` event of the system (no actor), at the event time of the confirming
reading, saying how long after the level it came and which feedbacks read what. Recorded once (a
process event: a batch retried adds nothing).

A plan with a lock-test interval (`alerts.locktests`) gets a test of the hub's own
(`source: action`) from each real demand: passed for a confirmation in time at the level (a fault
lock-out's, 故障闭锁, tests no gas threshold: not a passed test), failed for each action_failed
raise (馈电异常: no cut in time; a held cut broken, power back on while the level lasts; a fault
lock-out's too: the cut did not work) and for a confirmation late, stamped with the deadline (the
action_failed raise's time: one failed test for both).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.alarmchange import cst
from alerts.alarmevent import AlarmEvent
from alerts.kinds import ACTION, SIDE_NAMES
from alerts.locktests import SOURCE_ACTION, insert_test
from alerts.statedb import StateDB
from alerts.table import FAULT
from alerts.verifyplan import VerifyPlan
from telemetry.registry import Registry

__all__ = ["Confirmation", "record_confirmations", "record_failures"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    plan: VerifyPlan
    began: int  # event time the level demanding the action was reached
    at: int  # event time of the reading with which every feedback confirmed it
    values: tuple[float, ...]  # each feedback's value then, in the plan's order


def said(registry: Registry, c: Confirmation, what: str = "the level") -> str:
    """保护动作已确认 action confirmed 0.85 s after the level: face1301-feed 0 at 2026-... CST
    (`what`: "the fault" for a fault lock-out's, 故障闭锁); after the deadline `... 13 s after
    the level (超时 late: 2 s allowed): ...`"""
    sensors = registry.sensors
    feeds = ", ".join(
        f"{sensors[f].id} {v:g}" for f, v in zip(c.plan.feedbacks, c.values, strict=True)
    )
    after = max(0, c.at - c.began) / 1000
    # a cut after the deadline is confirmed too, but said late (its action_failed is apart):
    # an inspector reading the journal alone took 13 s for a cut in time (helper-142)
    late = (
        f" (超时 late: {c.plan.within_ms / 1000:g} s allowed)"
        if c.at - c.began > c.plan.within_ms
        else ""
    )
    return (
        f"保护动作已确认 action confirmed {after:g} s after {what}{late}: {feeds} at "
        f"{cst(c.at, '%Y-%m-%d %H:%M:%S CST')}"
    )


def record_confirmations(
    db: StateDB, registry: Registry, confirmations: Sequence[Confirmation], arrival: int
) -> list[AlarmEvent]:
    """Journal each confirmation on the alarm of its demanding sensor and side that had started
    by then (the newest; of a fault lock-out, `on_fault`, its sensor-fault alarm if newer: the
    fault demanded it); events for those written now (not those a retry already had). A
    confirmation in time of a plan with a lock-test interval is a passed test of its lock-out
    (`alerts.locktests`), recorded once, unless the sensor's fault demanded it (故障闭锁: no
    gas threshold tested); a late one is a failed test, stamped with the deadline."""
    out: list[AlarmEvent] = []
    with db.transaction() as con:
        for c in confirmations:
            info = registry.sensors[c.plan.sensor]
            fault = c.plan.side if not c.plan.on_fault else FAULT
            rows = db.alarms_where(
                con,
                "sensor = ? AND rule = ? AND side IN (?, ?) AND started_ts <= ? "
                "ORDER BY id DESC LIMIT 1",
                (info.id, info.rule, c.plan.side, fault, c.at),
            )
            fault_said = bool(rows) and rows[0].side == FAULT
            comment = said(registry, c, "the fault" if fault_said else "the level")
            in_time = c.at - c.began <= c.plan.within_ms
            if info.lock_test is not None and not (in_time and fault_said):
                # the lock-out worked in time at the level: a passed test of it; late: a failed
                # one, at the deadline (the action_failed raise's, `record_failures`: one test)
                at = c.at if in_time else c.began + c.plan.within_ms
                insert_test(
                    db, con, info.tenant, info.id, at, in_time, comment, None, SOURCE_ACTION,
                    arrival,
                )  # fmt: skip
            if not rows:
                continue
            row = rows[0]
            level = (row.level, row.level_name, row.tier)
            event_id = db.insert_event(
                con, row.id, "commented", c.at, arrival, *level, row.value, row.isa_state,
                comment=comment,
            )  # fmt: skip
            if event_id is not None:
                out.append(AlarmEvent.of(row, "commented", c.at, arrival, event_id, None, comment))
    return out


_FAILED = SIDE_NAMES[ACTION]


def record_failures(
    db: StateDB,
    con: sqlite3.Connection,
    registry: Registry,
    events: Sequence[AlarmEvent],
    arrival: int,
) -> None:
    """In the alarm book's transaction: each action_failed raise of a plan with a lock-test
    interval is a failed test of its lock-out (`source: action`, at the raise's event time,
    the raise's words as its note), recorded once."""
    for e in events:
        if e.side != _FAILED or e.kind != "raised":
            continue
        info = registry.sensor_of(e.tenant, e.sensor, e.site, e.device)
        if info is None or info.lock_test is None:
            continue
        said = f": {e.comment}" if e.comment else ""
        note = f"保护动作失败 protective action failed (action_failed){said}"
        insert_test(db, con, info.tenant, info.id, e.ts, False, note, None, SOURCE_ACTION, arrival)
