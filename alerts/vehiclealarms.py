"""The alarms of vehicles, for the alarm book (`alerts.alarms.AlarmBook` is built on this): the
fleet analytics' changes (`alerts.vehicles`: overspeed, fatigue, geofences, offline ...) and the
terminals' own alarm bits (`alerts.vehicles.terminal`), on the vehicle's speed sensor, rules
`fleet` and `terminal`."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from alerts.alarmevent import (
    AT_LEVEL,
    AT_LEVEL_NAME,
    AT_TIER,
    FLEET_RULE,
    SAFETY_RULE,
    TERMINAL_RULE,
    AlarmBatch,
    AlarmEvent,
)
from alerts.gatewayalarms import NORMAL as _NORMAL
from alerts.gatewayalarms import GatewayAlarms
from alerts.statedb import StateDB
from alerts.table import kind_name
from alerts.vehicles.alarms import FLEET_ALARMS, FleetChange, fleet_side
from alerts.vehicles.safety import SAFETY_ACTIONS, Active, SafetyChange, episodes_said
from alerts.vehicles.terminal import TERMINAL_BITS, TERMINAL_SIDE0, TerminalChange

__all__ = ["VehicleAlarms"]

_LEVEL_NAMES = {
    1: "level1",
    2: "level2",
}  # an active-safety alarm's (苏标 一级, 二级: the dashboard says so)


class VehicleAlarms(GatewayAlarms):
    """Records the fleet's and the terminals' alarm changes in `_db` (set by the alarm book)."""

    _db: StateDB

    def apply_fleet(
        self,
        changes: Sequence[FleetChange],
        arrival: int,
        terminal: Sequence[TerminalChange] = (),
        safety: Sequence[SafetyChange] = (),
    ) -> list[AlarmEvent]:
        """Record the alarm changes of the fleet analytics, of the terminals' own alarm bits
        and of their active-safety events, in order, in one transaction."""
        if not changes and not terminal and not safety:
            return []
        rows: list[tuple[int, str, int, int, tuple[str, str, str], int, float, str]] = []
        for c in changes:
            described = FLEET_ALARMS[c.kind] if c.level else _NORMAL
            if c.level and c.action:  # the vehicle's own (fatigue_daily: its class's window)
                described = (*described[:2], c.action)
            told = [] if c.limit_kmh is None else [f"限速 limit {c.limit_kmh:g} km/h"]
            if c.zone and c.kind == "forbidden_area":
                told.append(f"禁入区域 area {c.zone}")
            elif c.zone:
                told.append(f"规定路线 route {c.zone}")
            if c.driver:
                told.append(f"驾驶员 driver {c.driver}")
            value = c.value
            if c.kind == "drift" and not c.level:
                # the clear's value counts fixes: said in the journal, not as the alarm's value,
                # whose unit is the raise's (km/h: "19 km/h" read as a speed); a correction of
                # the lateness window knows no count (NaN)
                if math.isfinite(c.value):
                    told.append(f"漂移定位 {c.value:g} 个 implausible fixes in the episode")
                value = math.nan
            said = "; ".join(told)
            rows.append(
                (c.vehicle, FLEET_RULE, fleet_side(c.kind), c.level, described, c.ts, value, said)
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
                    "",
                )
            )
        notes: dict[int, SafetyChange] = {}  # row number -> its safety change (apart, note)
        for a in safety:
            described = (
                (_LEVEL_NAMES[a.level], a.tier, SAFETY_ACTIONS[a.kind]) if a.level else _NORMAL
            )
            if a.apart or a.note:
                notes[len(rows)] = a
            rows.append(
                (a.vehicle, SAFETY_RULE, a.side, a.level, described, a.ts, math.nan, a.said)
            )
        sensors = self._registry.sensors
        with self._db.transaction() as con:
            names = {sensors[r[0]].id for r in rows}
            work = AlarmBatch.over(self._db, con, names, arrival)
            replayed: set[tuple[str, str, int]] = set()
            aside: dict[tuple[str, str, int], list[Any]] = {}  # apart alarms, while open
            for n, (vehicle, rule, side, level, described, ts, value, said) in enumerate(rows):
                info = sensors[vehicle]
                if n in notes:
                    self._safety_note(
                        work,
                        (info.tenant, info.site, info.device, info.id),
                        notes[n],
                        described,
                        arrival,
                        aside,
                    )
                    continue
                # positions carry no sequence the hub could drop a repeat by: a message judged
                # again after the hub was killed before acknowledging it (helper-150) raises
                # what the journal has: that raise and its changes up to its clear are not
                # recorded twice
                point = (info.id, rule, side)
                if point in replayed:
                    if level <= 0:
                        replayed.discard(point)
                    continue
                if (
                    level > 0
                    and point not in work.open
                    and self._db.raised_at(con, info.id, rule, side, ts)
                ):
                    replayed.add(point)
                    continue
                self._change(
                    work,
                    (info.tenant, info.site, info.device, info.id, rule, side),
                    level,
                    described,
                    ts,
                    value,
                    arrival,
                    comment=said,
                )
            return work.write(self._db, self._disposal)

    def active_vehicle_alarms(
        self,
    ) -> tuple[list[tuple[int, str, int]], list[tuple[int, int]]]:
        """The fleet alarms (speed sensor index, kind, event time raised) and the terminal
        alarms (speed sensor index, bit) still active."""
        fleet, terminal = [], []
        for row in self._db.active_alarms():
            info = self._registry.sensor_of(row.tenant, row.sensor, row.site, row.device)
            if info is None:
                continue
            if row.rule == FLEET_RULE:
                fleet.append((info.index, kind_name(row.side), row.started_ts))
            elif row.rule == TERMINAL_RULE:
                terminal.append((info.index, row.side - TERMINAL_SIDE0))
        return fleet, terminal

    def _safety_note(
        self,
        work: AlarmBatch,
        where: tuple[str, str, str, str],
        a: SafetyChange,
        described: tuple[str, str, str],
        arrival: int,
        aside: dict[tuple[str, str, int], list[Any]],
    ) -> None:
        """An active-safety change that is not the open alarm's level: an alarm of its own
        before the open one (`apart`: raised, then returned, with the open alarm set aside
        meanwhile), or an episode's start or end the open alarm's journal says (`note`)."""
        point = (where[3], SAFETY_RULE, a.side)
        key = (*where, SAFETY_RULE, a.side)
        if a.note:
            row = work.open.get(point)
            if row is not None:
                change = (row[AT_LEVEL], row[AT_LEVEL_NAME], row[AT_TIER], None)
                self._journal(work, key, row, "commented", a.ts, arrival, change, a.said)
            return
        if a.level > 0 and self._db.raised_at(work.con, where[3], SAFETY_RULE, a.side, a.ts):
            aside[point] = []  # recorded before (a backfill judged again): its return too
            return
        if aside.get(point) == []:
            if a.level <= 0:
                del aside[point]
            return
        current = work.open.pop(point, None)
        if point in aside:
            work.open[point] = aside.pop(point)
        self._change(work, key, a.level, described, a.ts, math.nan, arrival, comment=a.said)
        mine = work.open.pop(point, None)
        if mine is not None:
            aside[point] = mine
        if current is not None:
            work.open[point] = current

    def active_safety_alarms(self, vehicles: Collection[int] | None = None) -> list[Active]:
        """The active-safety alarms still active (of `vehicles`' speed sensors, None: all):
        (speed sensor index, side, level, started, the episodes its journal says open and ended)."""
        sensors = self._registry.sensors
        ids = None if vehicles is None else [sensors[v].id for v in vehicles]
        rows = self._db.active_of_rule(SAFETY_RULE, ids)
        journals = self._db.alarm_events([r.id for r in rows])
        out = []
        for row in rows:
            info = self._registry.sensor_of(row.tenant, row.sensor, row.site, row.device)
            if info is None:
                continue
            said = [(e.ts, e.comment) for e in journals.get(row.id, [])]
            out.append(
                (info.index, row.side, row.level, row.started_ts, episodes_said(row.side, said))
            )
        return out
