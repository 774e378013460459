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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from alerts.alarmevent import (
    DEVICE_RULE,
    FLEET_RULE,
    TERMINAL_RULE,
    AlarmEvent,
    device_alarm_id,
    disposal_due,
    finite_or_none,
    lifecycle_columns,
)
from alerts.evaluate import CoreState, Transitions
from alerts.lifecycle import Lifecycle, step
from alerts.statedb import AlarmRow, StateDB
from alerts.table import ACTION, BELOW, EARLY, NO_DATA, SIDES, SLOTS, RuleTable, kind_name
from alerts.vehicles.alarms import FLEET_ALARMS, FleetChange, fleet_side
from alerts.vehicles.terminal import TERMINAL_BITS, TERMINAL_SIDE0, TerminalChange
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry, SensorInfo

__all__ = [
    "DEVICE_RULE",
    "FLEET_RULE",
    "TERMINAL_RULE",
    "AlarmBook",
    "AlarmEvent",
    "device_alarm_id",
    "disposal_due",
    "lifecycle_columns",
]


_NORMAL = ("normal", "none", "")
_DEVICE_ACTION = "检查设备供电与通信链路 check the device's power and link"


class AlarmBook:
    """Applies transitions to the alarms in a `StateDB`."""

    def __init__(
        self,
        db: StateDB,
        registry: Registry,
        table: RuleTable,
        disposal: DisposalSpec | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._table = table
        self._disposal = disposal or DisposalSpec()
        # the devices whose sensors all report no data, by sensor index
        self._device_of: dict[int, tuple[str, str, str]] = {}
        self._device_sensors: dict[tuple[str, str, str], tuple[int, ...]] = {}
        # the sensors that can lose data (alerts.evaluate: process levels or a no-data timeout)
        can_lose = table.has_rules | (table.no_data > 0)
        for key, dev in registry.devices.items():
            watched = tuple(i for i in dev.sensors if bool(can_lose[i]))
            if not watched:
                continue
            self._device_sensors[key] = watched
            for i in watched:
                self._device_of[i] = key
        self._suppressible = [s for s in registry.sensors if s.suppress_when]

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

    def suppressed(self, info: SensorInfo, state: CoreState | None) -> bool:
        """Whether a condition of the sensor's `suppress_when` holds in the core's state."""
        if state is None:
            return False
        for cond in info.suppress_when:
            other = self._registry.sensor(cond.sensor)
            if other is None:
                continue
            j = other.index
            if cond.alarm:
                if bool(np.any(state.level[j] > 0)):
                    return True
                continue
            value = float(state.last_value[j])
            if not math.isfinite(value):
                continue
            if cond.below is not None and value < cond.below:
                return True
            if cond.above is not None and value > cond.above:
                return True
        return False

    def apply(
        self, transitions: Transitions, arrival: int, state: CoreState | None = None
    ) -> list[AlarmEvent]:
        """Record the transitions (in order) and return the alarm events they make. `state` is
        the core's state after them: it decides suppression by design and device comm loss.

        One transaction: the batch's active alarms, shelves and sensors out of service are read
        once, each transition adds its alarm (a raise) and its journal event, and the changed
        alarms are written together at the end."""
        if not len(transitions):
            return []
        events: list[AlarmEvent] = []
        touched: dict[tuple[str, str, str], int] = {}
        sensors = self._registry.sensors
        idx = transitions.sensor.tolist()
        sides = transitions.side.tolist()
        afters = transitions.after.tolist()
        tss = transitions.ts.tolist()
        values = transitions.value.tolist()
        with self._db.transaction() as con:
            names = {sensors[i].id for i in set(idx)}
            names.update(device_alarm_id(*self._device_of[i]) for i in idx if i in self._device_of)
            work = _Work(
                con,
                {(r.sensor, r.rule, r.side): r for r in self._db.active_for(con, names)},
                self._db.shelves_until(con, arrival),
                self._db.sensors_out(con),
            )
            for i, side, after, ts, value in zip(idx, sides, afters, tss, values, strict=True):
                event = self._one(work, i, side, after, ts, value, arrival, state)
                if event is not None:
                    events.append(event)
                if side == NO_DATA and i in self._device_of:
                    key = self._device_of[i]
                    touched[key] = max(touched.get(key, 0), ts)
            if state is not None:
                for key in sorted(touched):
                    events.extend(self._device(work, key, state, touched[key], arrival))
            self._db.update_alarms(con, list(work.dirty.values()))
        return events

    def apply_fleet(
        self,
        changes: Sequence[FleetChange],
        arrival: int,
        terminal: Sequence[TerminalChange] = (),
    ) -> list[AlarmEvent]:
        """Record the alarm changes of the fleet analytics and of the terminals' own alarm
        bits, in order, in one transaction."""
        if not changes and not terminal:
            return []
        rows: list[tuple[int, str, int, int, tuple[str, str, str], int, float]] = []
        for c in changes:
            described = FLEET_ALARMS[c.kind] if c.level else _NORMAL
            rows.append(
                (c.vehicle, FLEET_RULE, fleet_side(c.kind), c.level, described, c.ts, c.value)
            )
        for t in terminal:
            kind, tier, action = TERMINAL_BITS[t.bit]
            described = (kind, tier, action) if t.level else _NORMAL
            rows.append(
                (
                    t.vehicle,
                    TERMINAL_RULE,
                    TERMINAL_SIDE0 + t.bit,
                    t.level,
                    described,
                    t.ts,
                    math.nan,
                )
            )
        sensors = self._registry.sensors
        events: list[AlarmEvent] = []
        with self._db.transaction() as con:
            names = {sensors[r[0]].id for r in rows}
            work = _Work(
                con,
                {(r.sensor, r.rule, r.side): r for r in self._db.active_for(con, names)},
                self._db.shelves_until(con, arrival),
                self._db.sensors_out(con),
            )
            for vehicle, rule, side, level, described, ts, value in rows:
                info = sensors[vehicle]
                event = self._change(
                    work,
                    (info.tenant, info.site, info.device, info.id, rule, side),
                    level,
                    described,
                    ts,
                    value,
                    arrival,
                )
                if event is not None:
                    events.append(event)
            self._db.update_alarms(con, list(work.dirty.values()))
        return events

    def retire(
        self,
        arrival: int,
        rejudged: set[str],
        why: str = "configuration changed",
        fleet_kinds: frozenset[str] = frozenset(),
    ) -> list[AlarmEvent]:
        """After a configuration change: clear, at `arrival`, the active alarms of points that
        no longer exist (a sensor, vehicle or device removed, a sensor's rule changed), of the
        sensors in `rejudged` (their rules changed: judged afresh from their next reading) and
        the fleet alarms of `fleet_kinds` (the geofences changed: found again from the next
        position). The clears are journaled like any other; an unacknowledged one still needs
        its ack."""
        reg = self._registry
        devices = {device_alarm_id(*k) for k in reg.devices}
        with self._db.transaction() as con:
            gone: list[AlarmRow] = []
            for row in self._db.active_alarms():
                if row.rule == DEVICE_RULE:
                    keep = row.sensor in devices
                elif row.rule in (FLEET_RULE, TERMINAL_RULE):
                    keep = reg.sensor(row.sensor) is not None
                    keep &= not (row.rule == FLEET_RULE and kind_name(row.side) in fleet_kinds)
                else:
                    info = reg.sensor(row.sensor)
                    keep = info is not None and info.rule == row.rule and info.id not in rejudged
                if not keep:
                    gone.append(row)
            if not gone:
                return []
            work = _Work(con, {(r.sensor, r.rule, r.side): r for r in gone}, {}, set())
            events = []
            for r in gone:
                key = (r.tenant, r.site, r.device, r.sensor, r.rule, r.side)
                ts = max(arrival, r.last_ts)
                ev = self._change(work, key, 0, _NORMAL, ts, math.nan, arrival, comment=why)
                if ev is not None:
                    events.append(ev)
            self._db.update_alarms(con, list(work.dirty.values()))
        return events

    def active_vehicle_alarms(self) -> tuple[list[tuple[int, str]], list[tuple[int, int]]]:
        """The fleet alarms (speed sensor index, kind) and the terminal alarms (speed sensor
        index, bit) still active."""
        fleet, terminal = [], []
        for row in self._db.active_alarms():
            info = self._registry.sensor(row.sensor)
            if info is None:
                continue
            if row.rule == FLEET_RULE:
                fleet.append((info.index, kind_name(row.side)))
            elif row.rule == TERMINAL_RULE:
                terminal.append((info.index, row.side - TERMINAL_SIDE0))
        return fleet, terminal

    def _one(
        self,
        work: _Work,
        sensor: int,
        side: int,
        after: int,
        ts: int,
        value: float,
        arrival: int,
        state: CoreState | None,
    ) -> AlarmEvent | None:
        info = self._registry.sensors[sensor]
        rule = info.rule
        # the level the sensor went to; a cleared alarm row keeps the last level it had
        level_name, tier, action = self._table.describe(sensor, side, after)
        return self._change(
            work,
            (info.tenant, info.site, info.device, info.id, rule, side),
            after,
            (level_name, tier, action),
            ts,
            value,
            arrival,
            suppressed=bool(info.suppress_when) and self.suppressed(info, state),
        )

    def _change(
        self,
        work: _Work,
        key: tuple[str, str, str, str, str, int],
        after: int,
        described: tuple[str, str, str],
        ts: int,
        value: float,
        arrival: int,
        *,
        suppressed: bool = False,
        comment: str = "",
    ) -> AlarmEvent | None:
        tenant, site, device, sensor, rule, side = key
        level_name, tier, action = described
        point = (sensor, rule, side)
        current = work.open.get(point)
        if current is not None and after == current.level:
            return None  # no change (a fleet episode seen again after a restart)
        stored = finite_or_none(value)
        if current is None and after > 0:
            kind = "raised"
            until = work.shelves.get(point)
            lc = step(
                Lifecycle(
                    shelved_until=until,
                    suppressed=suppressed,
                    out_of_service=sensor in work.oos,
                ),
                "raise",
            )
            fields: dict[str, Any] = {
                "tenant": tenant,
                "site": site,
                "device": device,
                "sensor": sensor,
                "rule": rule,
                "side": side,
                "level": after,
                "level_name": level_name,
                "tier": tier,
                "action": action,
                "state": "active",
                "started_ts": ts,
                "raised_at": arrival,
                "peak_level": after,
                "last_ts": ts,
                "value": stored,
                **lifecycle_columns(lc),
                "disposal_due": disposal_due(self._disposal, lc.disposal, tier, arrival),
                "gateway": self._gateway(tenant, site, device),
            }
            pending = work.cleared.pop(point, None)
            if pending is not None:  # its clear must be written before a new active alarm
                self._db.update_alarms(work.con, [work.dirty.pop(pending)])
            alarm_id = self._db.insert_alarm(work.con, fields)
            row = AlarmRow(id=alarm_id, ended_ts=None, cleared_at=None, **fields)
            work.open[point] = row
        elif current is None:
            return None  # a change below an alarm that is no longer active: nothing to record
        elif after == 0:
            kind = "cleared"
            lc = step(current.lifecycle, "clear")
            row = replace(
                current,
                state="cleared",
                ended_ts=ts,
                cleared_at=arrival,
                last_ts=ts,
                value=stored,
                **lifecycle_columns(lc),
            )
            del work.open[point]
            work.dirty[row.id] = row
            work.cleared[point] = row.id
        else:
            kind = "escalated" if after > current.level else "deescalated"
            lc = step(current.lifecycle, "escalate" if kind == "escalated" else "deescalate")
            due = disposal_due(self._disposal, lc.disposal, tier, current.raised_at)
            row = replace(
                current,
                level=after,
                level_name=level_name,
                tier=tier,
                action=action,
                peak_level=max(current.peak_level, after),
                last_ts=ts,
                value=stored,
                **lifecycle_columns(lc),
                # a higher tier is due sooner; a lower one keeps the deadline it had
                disposal_due=due
                if due is None or current.disposal_due is None
                else min(due, current.disposal_due),
            )
            work.open[point] = row
            work.dirty[row.id] = row
        event_id = self._db.insert_event(
            work.con,
            row.id,
            kind,
            ts,
            arrival,
            after,
            level_name,
            tier,
            stored,
            lc.state,
            comment=comment,
        )
        if event_id is None:
            return None  # already recorded by an earlier try of the same batch
        return AlarmEvent.of(
            row, kind, ts, arrival, event_id, comment=comment, level=(after, level_name, tier)
        )

    def _gateway(self, tenant: str, site: str, device: str) -> str:
        dev = self._registry.devices.get((tenant, site, device))
        return dev.spec.gateway if dev is not None else ""

    def _device(
        self,
        work: _Work,
        key: tuple[str, str, str],
        state: CoreState,
        ts: int,
        arrival: int,
    ) -> list[AlarmEvent]:
        """Raise or clear the comm-loss alarm of a device: raised when every one of its sensors
        that can lose data has, cleared when one reports again."""
        sensors = self._device_sensors[key]
        down = bool(np.all(state.level[list(sensors), NO_DATA] > 0))
        tenant, site, device = key
        event = self._change(
            work,
            (tenant, site, device, device_alarm_id(*key), DEVICE_RULE, NO_DATA),
            1 if down else 0,
            ("device_comm_loss", "orange", _DEVICE_ACTION),
            ts,
            math.nan,
            arrival,
        )
        return [event] if event is not None else []


@dataclass(slots=True)
class _Work:
    """What one batch of transitions works on, inside its transaction."""

    con: sqlite3.Connection
    open: dict[tuple[str, str, int], AlarmRow]  # the active alarms of the batch's points
    shelves: dict[tuple[str, str, int], int]  # shelved points and until when
    oos: set[str]  # sensors out of service
    dirty: dict[int, AlarmRow] = field(default_factory=dict)  # changed alarms, to write
    cleared: dict[tuple[str, str, int], int] = field(default_factory=dict)  # their clears
