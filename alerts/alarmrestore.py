"""What the alarm book (`alerts.alarms`) tells the core at a start: the core state seeded from
the active alarms (`restore`), the protective actions they demand that the state does not know
(`unarmed_demands`), and the sensors whose alarms their rules no longer judge (`unjudged`).
Split from `alerts.alarms`, whose `AlarmBook` extends `AlarmRestore` and sets up the attributes
declared here; the code moved as it was.
"""

from __future__ import annotations

import math

from alerts.alarmevent import FLEET_RULE
from alerts.calibration import DAY_MS
from alerts.evaluate import NO_TS, CoreState
from alerts.statedb import AlarmRow, StateDB
from alerts.table import (
    ABOVE,
    ACTION,
    BELOW,
    CALIBRATION_DUE,
    EARLY,
    FAULT,
    FROZEN,
    MAINTENANCE,
    NO_DATA,
    RATE,
    SIDES,
    SLOTS,
    RuleTable,
)
from alerts.verifyplan import VerifyPlan
from telemetry.registry import Registry

__all__ = ["AlarmRestore", "Ended"]

# a side whose alarm ended: (sensor index, side, event time of the end, hub's clock recording it)
Ended = tuple[int, int, int, int]


# the core's sides whose alarms end at a reading of their own sensor (an ACTION alarm may end at
# its feedback's; the others' are not the core's)
_OWN_READINGS = (ABOVE, BELOW, FAULT, NO_DATA, RATE, EARLY, FROZEN, MAINTENANCE, CALIBRATION_DUE)


class AlarmRestore:
    """The start of `AlarmBook`, which sets up every attribute declared here."""

    _db: StateDB
    _registry: Registry
    _table: RuleTable

    def restore(self, state: CoreState) -> CoreState:
        """Seed the core state from the active alarms, so that a restart raises nothing twice;
        and each sensor's last judged time from the latest end of its alarms: the saved state
        is up to its saving interval old, and a message judged and recorded but not yet
        acknowledged when the hub was killed comes again (helper-150: an alarm raised and
        cleared in it was recorded a second time, its notifications sent twice under other
        idempotency keys)."""
        new = state.copy()
        for tenant, site, device, sid, rule, ended in self._db.cleared_until(_OWN_READINGS):
            info = self._registry.sensor_of(tenant, sid, site, device)
            if info is not None and info.rule == rule:
                i = info.index
                new.last_ts[i] = max(int(new.last_ts[i]), ended)
                new.last_data[i] = max(int(new.last_data[i]), ended)
        for row, i in self._core_alarms():
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
            if row.side == FROZEN and new.frozen_since[i] == NO_TS:
                # no saved run (no state file): the run began when the alarm says, so that the
                # next unmoved reading keeps the alarm instead of starting a run afresh
                new.frozen_since[i] = row.started_ts - int(self._table.frozen_ms[i])
                if row.value is not None and math.isnan(new.last_value[i]):
                    new.last_value[i] = row.value
            if row.side == MAINTENANCE and new.maint_since[i] == NO_TS:
                # no saved run: it began its value (seconds held when raised) before the raise
                held = row.value if row.value is not None and math.isfinite(row.value) else 0.0
                new.maint_since[i] = row.started_ts - round(held * 1000)
            if row.side == CALIBRATION_DUE and new.calib_at[i] == NO_TS:
                # no saved state: the last calibration was its value (days) before the raise
                days = row.value if row.value is not None and math.isfinite(row.value) else 0.0
                new.calib_at[i] = row.started_ts - round(days * DAY_MS)
            new.level[i, row.side] = level
            new.last_ts[i] = max(int(new.last_ts[i]), row.last_ts)
        return new

    def ended(self) -> tuple[list[Ended], list[Ended]]:
        """The sides with an alarm cleared and none active now, each with the event time of its
        latest end and the hub's clock when it was recorded: the core's (sensor index, side, ...)
        and the fleet's (speed sensor index, kind, ...). One that ended after the analytics state
        was saved has its delay started afresh (`snapshot.afresh`; helper-241: an overspeed was
        raised 1.5 s into a new excess, continuing in the saved state the one since cleared)."""
        rows = self._db.query(
            "SELECT tenant, site, device, sensor, rule, side, MAX(ended_ts), MAX(cleared_at) "
            "FROM alarms AS a WHERE state = 'cleared' AND NOT EXISTS (SELECT 1 FROM alarms AS b "
            "WHERE b.state = 'active' AND b.sensor = a.sensor AND b.rule = a.rule "
            "AND b.side = a.side) GROUP BY tenant, site, device, sensor, rule, side"
        )
        core: list[Ended] = []
        fleet: list[Ended] = []
        for tenant, site, device, sensor, rule, side, ended, at in rows:
            info = self._registry.sensor_of(str(tenant), str(sensor), str(site), str(device))
            if info is None or ended is None:
                continue
            item = (info.index, int(side), int(ended), int(at or 0))
            if rule == info.rule and 0 <= int(side) < SIDES:
                core.append(item)
            elif rule == FLEET_RULE:
                fleet.append(item)
        return core, fleet

    def unarmed_demands(self, state: CoreState) -> list[tuple[VerifyPlan, int, bool]]:
        """The protective actions an active alarm demands that `state` knows nothing of: the
        state was saved before the alarm reached the plan's level (the hub killed within the
        few seconds after a raise: saved every 10 s) or there is none. Each with when the demand
        began: the raise or escalation of the alarm's journal that reached the plan's level.
        Without them `restore` rebuilt the level and no check ever started: a limiter that
        failed to cut, a power cut that failed, went unsaid (helper-103). A fault lock-out's
        (`on_fault`) sensor in fault below the plan's level: from its sensor-fault alarm's raise.
        Each says too whether its failure was told already (an `action_failed` alarm of the
        sensor since the demand began, now cleared: the action was seen done late), which the
        caller arms as met: judged again, it raised a second `action_failed` for the same
        deadline at the next reading (helper-206)."""
        if not self._table.verify:
            return []
        active = {(row.sensor, row.side): row for row, _ in self._core_alarms()}
        out: list[tuple[VerifyPlan, int, bool]] = []
        for plan in self._table.verify:
            i = plan.sensor
            known = int(state.deadline[i]) != NO_TS or bool(state.met[i])
            if known or int(state.level[i, ACTION]):
                continue
            side = plan.side
            if int(state.level[i, side]) < plan.number:
                # a fault lock-out's (`on_fault`): demanded since its sensor-fault alarm's raise
                if not (plan.on_fault and int(state.level[i, FAULT])):
                    continue
                side = FAULT
            row = active.get((self._registry.sensors[i].id, side))
            if row is None:
                continue
            journal = self._db.alarm_events([row.id]).get(row.id, [])
            reached = (
                e.ts
                for e in journal
                if e.kind in ("raised", "escalated")
                and e.level >= (plan.number if side != FAULT else 1)
            )
            began = next(reached, row.started_ts)
            info = self._registry.sensors[i]
            told = self._db.query(
                "SELECT 1 FROM alarms WHERE tenant = ? AND sensor = ? AND side = ? "
                "AND started_ts >= ? LIMIT 1",
                (info.tenant, info.id, ACTION, began),
            )
            out.append((plan, began, bool(told)))
        return out

    def unjudged(self) -> set[str]:
        """The sensors with an active alarm of a kind their rules no longer judge (a level, a
        rate of rise, an early warning, a verification, a frozen-value check, a maintenance
        limit or a calibration interval removed while the hub was down): nothing would ever
        clear it, so the caller retires them."""
        t = self._table
        plans = set(t.verify_sensor.tolist())
        out: set[str] = set()
        for row, i in self._core_alarms():  # the others: gone, or `retire` sees to them
            side = row.side
            if side <= BELOW:
                judged = row.level <= len(t.levels[i][side])
            elif side == FAULT:
                judged = True  # every sensor's
            elif side == NO_DATA:
                judged = bool(t.loses[i])
            elif side == ACTION:
                judged = i in plans
            elif side == RATE:
                judged = t.rates[i] is not None
            elif side == EARLY:
                judged = t.early[i] is not None
            elif side == MAINTENANCE:
                judged = int(t.maint_ms[i]) > 0
            elif side == CALIBRATION_DUE:
                judged = int(t.calib_ms[i]) > 0
            else:
                judged = int(t.frozen_ms[i]) > 0
            if not judged:
                out.add(row.sensor)
        return out

    def _core_alarms(self) -> list[tuple[AlarmRow, int]]:
        """The active alarms of the core's sides of sensors still there under the same rule,
        with the sensor's index."""
        out = []
        for row in self._db.active_alarms():
            info = self._registry.sensor_of(row.tenant, row.sensor, row.site, row.device)
            if info is not None and info.rule == row.rule and 0 <= row.side < SIDES:
                out.append((row, info.index))
        return out
