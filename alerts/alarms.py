"""From level transitions to alarms: one alarm per sensor, rule and side, raised when the level
leaves 0, escalated or de-escalated while it moves, cleared when it returns to 0.

The side is the alarm's kind (`SIDE_NAMES`): a process level above or below, a sensor fault, no
data, a protective action that was not confirmed ("action_failed", 馈电异常 for a power cut), a
rate of rise ("rate"), or an early warning ("early_warning", blue, its level the one foreseen).

An alarm keeps the event time at which it started and ended and the arrival time beside them.
All changes of one batch are written in one transaction, so a crash never leaves half of them.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from alerts.evaluate import CoreState, Transitions
from alerts.statedb import StateDB
from alerts.table import ACTION, BELOW, EARLY, SIDE_NAMES, SIDES, SLOTS, RuleTable
from telemetry.registry import Registry

__all__ = ["AlarmBook", "AlarmEvent"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of an alarm, as published to subscribers and shown by the API."""

    alarm_id: int
    kind: str  # raised | escalated | deescalated | cleared
    tenant: str
    site: str
    device: str
    sensor: str
    rule: str
    side: str
    level: int
    level_name: str
    tier: str
    action: str
    value: float
    ts: int  # event time of the reading that caused it (ms)
    arrival: int  # when the hub judged it (ms)

    def to_json(self) -> dict[str, object]:
        return {
            "alarm_id": self.alarm_id,
            "kind": self.kind,
            "tenant": self.tenant,
            "site": self.site,
            "device": self.device,
            "sensor": self.sensor,
            "rule": self.rule,
            "side": self.side,
            "level": self.level,
            "level_name": self.level_name,
            "tier": self.tier,
            "action": self.action,
            "value": _finite(self.value),
            "ts": self.ts,
            "arrival": self.arrival,
        }


class AlarmBook:
    """Applies transitions to the alarms in a `StateDB`."""

    def __init__(self, db: StateDB, registry: Registry, table: RuleTable) -> None:
        self._db = db
        self._registry = registry
        self._table = table

    def restore(self, state: CoreState) -> CoreState:
        """Seed the core state from the active alarms, so that a restart raises nothing twice."""
        new = state.copy()
        for row in self._db.active_alarms():
            info = self._registry.sensor(row.sensor)
            if info is None or info.rule != row.rule or not 0 <= row.side < SIDES:
                continue
            i = info.index
            if row.side <= BELOW:
                level = min(row.level, SLOTS)
                base = row.side * SLOTS
                new.active[i, base : base + level] = True
                new.raw[i, base : base + level] = True
            elif row.side == EARLY:
                level = min(row.level, SLOTS)  # the number of the level foreseen
            else:
                level = min(row.level, 1)
            if row.side == ACTION:
                new.deadline[i] = row.started_ts  # the demand is still on and not met
            new.level[i, row.side] = level
            new.last_ts[i] = max(int(new.last_ts[i]), row.last_ts)
        return new

    def apply(self, transitions: Transitions, arrival: int) -> list[AlarmEvent]:
        """Record the transitions (in order) and return the alarm events they make."""
        if not len(transitions):
            return []
        events: list[AlarmEvent] = []
        with self._db.transaction() as con:
            for i in range(len(transitions)):
                event = self._one(
                    con,
                    int(transitions.sensor[i]),
                    int(transitions.side[i]),
                    int(transitions.before[i]),
                    int(transitions.after[i]),
                    int(transitions.ts[i]),
                    float(transitions.value[i]),
                    arrival,
                )
                if event is not None:
                    events.append(event)
        return events

    def _one(
        self,
        con: sqlite3.Connection,
        sensor: int,
        side: int,
        before: int,
        after: int,
        ts: int,
        value: float,
        arrival: int,
    ) -> AlarmEvent | None:
        info = self._registry.sensors[sensor]
        rule = info.rule
        current = self._db.active_alarm(con, info.id, rule, side)
        # the level the sensor went to; a cleared alarm row keeps the last level it had
        level_name, tier, action = self._table.describe(sensor, side, after)
        stored = _finite(value)
        if current is None and after > 0:
            kind = "raised"
            cur = con.execute(
                "INSERT INTO alarms (tenant, site, device, sensor, rule, side, level, level_name, "
                "tier, action, state, started_ts, raised_at, peak_level, last_ts, value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
                (
                    info.tenant,
                    info.site,
                    info.device,
                    info.id,
                    rule,
                    side,
                    after,
                    level_name,
                    tier,
                    action,
                    ts,
                    arrival,
                    after,
                    ts,
                    stored,
                ),
            )
            alarm_id = int(cur.lastrowid or 0)
        elif current is None:
            return None  # a change below an alarm that is no longer active: nothing to record
        elif after == 0:
            kind = "cleared"
            alarm_id = current.id
            con.execute(
                "UPDATE alarms SET state = 'cleared', ended_ts = ?, cleared_at = ?, last_ts = ?, "
                "value = ? WHERE id = ?",
                (ts, arrival, ts, stored, alarm_id),
            )
        else:
            kind = "escalated" if after > current.level else "deescalated"
            alarm_id = current.id
            con.execute(
                "UPDATE alarms SET level = ?, level_name = ?, tier = ?, action = ?, "
                "peak_level = MAX(peak_level, ?), last_ts = ?, value = ? WHERE id = ?",
                (after, level_name, tier, action, after, ts, stored, alarm_id),
            )
        con.execute(
            "INSERT OR IGNORE INTO alarm_events "
            "(alarm_id, kind, ts, arrival, level, level_name, tier, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alarm_id,
                kind,
                ts,
                arrival,
                after,
                level_name,
                tier,
                stored,
            ),
        )
        return AlarmEvent(
            alarm_id,
            kind,
            info.tenant,
            info.site,
            info.device,
            info.id,
            rule,
            SIDE_NAMES[side],
            after,
            level_name,
            tier,
            action,
            value,
            ts,
            arrival,
        )
