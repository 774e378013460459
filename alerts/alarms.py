"""From level transitions to alarms: one alarm per sensor, rule and side, raised when the level
leaves 0, escalated or de-escalated while it moves, cleared when it returns to 0.

The side is the alarm's kind (`SIDE_NAMES`): a process level above or below, a sensor fault, no
data, a protective action that was not confirmed ("action_failed", 馈电异常 for a power cut), a
rate of rise ("rate"), or an early warning ("early_warning", blue, its level the one foreseen).

An alarm keeps the event time at which it started and ended and the arrival time beside them.
All changes of one batch are written in one transaction, so a crash never leaves half of them.
What the book tells the core at a start (the state seeded from the active alarms) is in
`alerts.alarmrestore`.
"""

from __future__ import annotations

import math

import numpy as np

from alerts.actionsaid import BatchSides, action_said, batch_sides, failure_action, plan_of
from alerts.alarmevent import (
    DEVICE_RULE,
    FLEET_RULE,
    HAZARD_RULE,
    SAFETY_RULE,
    TERMINAL_RULE,
    AlarmBatch,
    AlarmEvent,
    device_alarm_id,
    disposal_due,
    lifecycle_columns,
)
from alerts.alarmrestore import AlarmRestore
from alerts.chatter import collapse
from alerts.confirmations import record_failures
from alerts.evaluate import CoreState, Transitions
from alerts.gatewayalarms import NORMAL as _NORMAL
from alerts.gatewayalarms import configured_points
from alerts.gateways import GATEWAY_RULE
from alerts.referencetrend import trend_slope
from alerts.statedb import ALARM_COLUMNS, AlarmRow, StateDB
from alerts.table import (
    ABOVE,
    ACTION,
    EARLY,
    FAULT,
    NO_DATA,
    RuleTable,
    kind_name,
)
from alerts.vehiclealarms import VehicleAlarms
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry, SensorInfo

__all__ = [
    "DEVICE_RULE",
    "FLEET_RULE",
    "SAFETY_RULE",
    "TERMINAL_RULE",
    "AlarmBook",
    "AlarmEvent",
    "device_alarm_id",
    "disposal_due",
    "lifecycle_columns",
]


_DEVICE_ACTION = (
    "检查设备供电、通信链路与点表配置 (网关日志写明原因) check the device's power and link, "
    "and its register map: the gateway's log names the cause (an illegal data address is a "
    "configuration error)"
)


class AlarmBook(VehicleAlarms, AlarmRestore):
    """Applies transitions to the alarms in a `StateDB`."""

    def __init__(
        self,
        db: StateDB,
        registry: Registry,
        table: RuleTable,
        disposal: DisposalSpec | None = None,
    ) -> None:
        super().__init__(registry, disposal)
        self._db = db
        self._table = table
        # the devices whose sensors all report no data, by sensor index
        self._device_of: dict[int, tuple[str, str, str]] = {}
        self._device_sensors: dict[tuple[str, str, str], tuple[int, ...]] = {}
        # the sensors that can lose data (alerts.evaluate: process levels, a no-data timeout, or
        # a verification's feedback: `RuleTable.loses`)
        can_lose = table.loses
        for key, dev in registry.devices.items():
            watched = tuple(i for i in dev.sensors if bool(can_lose[i]))
            if not watched:
                continue
            self._device_sensors[key] = watched
            for i in watched:
                self._device_of[i] = key
        self._suppressible = [s for s in registry.sensors if s.suppress_when]

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
        transitions, chattered = collapse(transitions)
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
            work = AlarmBatch.over(self._db, con, names, arrival)
            rows = zip(idx, sides, afters, tss, values, strict=True)
            lockouts = batch_sides(self._table, transitions)  # (fault lock-outs' texts)
            for k, (i, side, after, ts, value) in enumerate(rows):
                said = chattered.get(k, "")
                self._one(work, i, side, after, ts, value, arrival, state, said, lockouts)
                if side == NO_DATA and i in self._device_of:
                    key = self._device_of[i]
                    touched[key] = max(touched.get(key, 0), ts)
            if state is not None:
                for key in sorted(touched):
                    self._device(work, key, state, touched[key], arrival)
            events = work.write(self._db, self._disposal)
            # a lock-out that failed is a failed test of it (`alerts.locktests`)
            record_failures(self._db, con, self._registry, events, arrival)
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
        if not self._gone(rejudged, fleet_kinds):
            return []  # nothing to write: no write transaction (a start with a locked database)
        with self._db.transaction() as con:
            gone = self._gone(rejudged, fleet_kinds)
            if not gone:
                return []
            rows = [[getattr(r, c) for c in ALARM_COLUMNS] for r in gone]
            work = AlarmBatch.start(self._db, con, rows, {}, set())
            for r in gone:
                key = (r.tenant, r.site, r.device, r.sensor, r.rule, r.side)
                ts = max(arrival, r.last_ts)
                self._change(work, key, 0, _NORMAL, ts, math.nan, arrival, comment=why)
            return work.write(self._db, self._disposal)

    def _gone(self, rejudged: set[str], fleet_kinds: frozenset[str]) -> list[AlarmRow]:
        """The active alarms `retire` clears."""
        reg = self._registry
        devices, gateways = configured_points(reg)
        gone: list[AlarmRow] = []
        for row in self._db.active_alarms():
            if row.rule == DEVICE_RULE:
                keep = row.sensor in devices
            elif row.rule == GATEWAY_RULE:
                keep = row.sensor in gateways
            elif row.rule == HAZARD_RULE:  # an item's, no configuration's: its own judge's
                keep = True
            elif row.rule in (FLEET_RULE, TERMINAL_RULE, SAFETY_RULE):
                keep = reg.sensor_of(row.tenant, row.sensor, row.site, row.device) is not None
                keep &= not (row.rule == FLEET_RULE and kind_name(row.side) in fleet_kinds)
            else:
                # (a sensor id now another tenant's, site's or device's: its alarms are gone,
                # never carried on by the other's readings, helper-122)
                info = reg.sensor_of(row.tenant, row.sensor, row.site, row.device)
                keep = info is not None and info.rule == row.rule and info.id not in rejudged
            if not keep:
                gone.append(row)
        return gone

    def _one(
        self,
        work: AlarmBatch,
        sensor: int,
        side: int,
        after: int,
        ts: int,
        value: float,
        arrival: int,
        state: CoreState | None,
        chattered: str = "",
        sides: BatchSides | None = None,
    ) -> None:
        info = self._registry.sensors[sensor]
        said = ""
        described = self._table.describe(sensor, side, after)
        sides = {} if sides is None else sides
        plan = plan_of(self._table, sensor) if side == ACTION and state is not None else None
        if plan is not None and state is not None:
            said = action_said(self._registry.sensors, plan, after, ts, state, sides)
            other = failure_action(self._table, plan, ts, state, sides) if after else None
            if other is not None:  # a fault lock-out's, or a held action's break
                described = (*described[:2], other)
        elif side == EARLY and after and state is not None:
            said = self._projected(sensor, after, ts, value, state)
        said = "; ".join(x for x in (said, chattered) if x)
        if side == FAULT:
            # a fault's reading is the transmitter's fault signal scaled, not a measurement: a
            # 2 mA loop went to the city as -12.5 %LEL (helper-146); the history keeps it
            value = math.nan
        # the level the sensor went to; a cleared alarm row keeps the last level it had
        self._change(
            work,
            (info.tenant, info.site, info.device, info.id, info.rule, side),
            after,
            described,
            ts,
            value,
            arrival,
            suppressed=bool(info.suppress_when) and self.suppressed(info, state),
            comment=said,
        )

    def _projected(self, sensor: int, level: int, ts: int, value: float, state: CoreState) -> str:
        """An early warning's projection, as the core made it (`alerts.trend`): the least-squares
        slope over the window's readings kept at `ts`, and when the value reaches the level
        foreseen: "预计约 40 s 后达到 power_cut 1.5: projected in about 40 s". The warning said its
        horizon only; a dispatcher wants the time left (helper-92). Empty when the readings are
        no longer kept (a batch of more than the ring's depth after it)."""
        t = self._table
        row, spec = int(t.trend_of[sensor]), t.early[sensor]
        above = t.levels[sensor][ABOVE]
        if row < 0 or spec is None or level > len(above):
            return ""
        window = round(spec.window_s * 1000)
        kept = [(x, v) for x, v in state.trend_readings(row) if ts - window <= x <= ts]
        if not kept or kept[-1][0] != ts:
            return ""
        slope = trend_slope(kept, ts)
        threshold = above[level - 1].above
        if threshold is None or not slope > 0 or not math.isfinite(value):
            return ""
        eta = (threshold - value) / slope / 1000
        name = above[level - 1].name
        return f"预计约 {eta:.0f} s 后达到 {name} {threshold:g}: projected in about {eta:.0f} s"

    def _device(
        self,
        work: AlarmBatch,
        key: tuple[str, str, str],
        state: CoreState,
        ts: int,
        arrival: int,
    ) -> None:
        """Raise or clear the comm-loss alarm of a device: raised when every one of its sensors
        that can lose data has, cleared when one reports again."""
        sensors = self._device_sensors[key]
        down = bool(np.all(state.level[list(sensors), NO_DATA] > 0))
        tenant, site, device = key
        self._change(
            work,
            (tenant, site, device, device_alarm_id(*key), DEVICE_RULE, NO_DATA),
            1 if down else 0,
            ("device_comm_loss", "orange", _DEVICE_ACTION) if down else _NORMAL,
            ts,
            math.nan,
            arrival,
        )
