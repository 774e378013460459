"""An alarm event (a raise, escalation, clear or lifecycle step of one alarm) as it leaves the
hub: to the live stream, the alarm topic, the time-series store and the notification pipeline;
the batch of alarm changes the alarm book writes in one go (`AlarmBatch`); and the rule names and
deadline arithmetic the alarm book and its readers share.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alerts.alarmrows import Shelf
from alerts.lifecycle import Action, Lifecycle, step
from alerts.statedb import ALARM_COLUMNS, AlarmRow, StateDB
from alerts.table import kind_name
from telemetry.notifyconfig import DisposalSpec

if TYPE_CHECKING:
    from telemetry.registry import Registry

__all__ = [
    "DEVICE_RULE",
    "FLEET_RULE",
    "HAZARD_RULE",
    "SAFETY_RULE",
    "TERMINAL_RULE",
    "AlarmBatch",
    "AlarmEvent",
    "device_alarm_id",
    "disposal_due",
    "finite_or_none",
    "lifecycle_columns",
    "lifecycle_fields",
]


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of an alarm, as published to subscribers and shown by the API: a process
    change (raised, escalated, deescalated, cleared) or a lifecycle one (acknowledged, shelved,
    verified ... with the actor and the comment)."""

    alarm_id: int
    kind: str
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
    ts: int  # event time of the reading that caused it, or of the action (ms)
    arrival: int  # when the hub judged it (ms)
    event_id: int = 0
    isa_state: str = ""
    disposal: str = "received"
    actor: str | None = None
    comment: str = ""

    def to_json(self, registry: Registry | None = None) -> dict[str, object]:
        """The event as the alarm topic and the live stream carry it; with `registry`, also
        where its sensor is as configured (`location`: a vehicle's plate) and the names of the
        enterprise, the site and the device (helper-116: the plate was in the webhook only)."""
        found = self._json()
        if registry is not None:
            info = registry.sensor_of(self.tenant, self.sensor, self.site, self.device)
            device = "" if self.sensor.startswith("gateway:") else self.device  # (a gateway's)
            names = registry.names(self.tenant, self.site, device)
            found["location"] = info.location if info is not None else ""
            found["tenant_name"], found["site_name"], found["device_name"] = names
        return found

    def _json(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
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
            "value": finite_or_none(self.value),
            "ts": self.ts,
            "arrival": self.arrival,
            "isa_state": self.isa_state,
            "disposal": self.disposal,
            "actor": self.actor,
            "comment": self.comment,
        }

    @staticmethod
    def of(
        row: AlarmRow,
        kind: str,
        ts: int,
        arrival: int,
        event_id: int,
        actor: str | None = None,
        comment: str = "",
        level: tuple[int, str, str] | None = None,
    ) -> AlarmEvent:
        """The event of an alarm row as it is after the change; `level` (number, name, tier)
        when the event's differs from the row's (a clear: 0, normal, none)."""
        number, name, tier = level if level is not None else (row.level, row.level_name, row.tier)
        return AlarmEvent(
            row.id,
            kind,
            row.tenant,
            row.site,
            row.device,
            row.sensor,
            row.rule,
            kind_name(row.side),
            number,
            name,
            tier,
            row.action,
            math.nan if row.value is None else row.value,
            ts,
            arrival,
            event_id,
            row.isa_state,
            row.disposal,
            actor,
            comment,
        )


FLEET_RULE = "fleet"  # the rule of the alarms the fleet analytics raise
TERMINAL_RULE = "terminal"  # the rule of a vehicle terminal's own alarms (JT/T 808 bits)
SAFETY_RULE = "active_safety"  # ... of its ADAS and DSM events (苏标 0x64, 0x65)
HAZARD_RULE = "hazard"  # ... of a hidden-danger item's deadlines (alerts.hazardalarms)

# the alarm of a whole device (or gateway) whose sensors all lost communication: it inhibits the
# notifications of its sensors' own no-data alarms (alerts.notify)
DEVICE_RULE = "comm_loss"


def device_alarm_id(tenant: str, site: str, device: str) -> str:
    return f"device:{tenant}/{site}/{device}"


def disposal_due(spec: DisposalSpec, disposal: str, tier: str, raised_at: int) -> int | None:
    """The deadline of the next disposal step for the alarm's tier, from its arrival (or from
    the moment its steps count from again: `lifecycle_fields`)."""
    deadline = spec.for_tier(tier)
    seconds = {
        "received": deadline.verify_s,
        "verified": deadline.dispose_s,
        "disposed": deadline.close_s,
        "review": deadline.review_s,
    }.get(disposal)
    return None if seconds is None else raised_at + int(seconds * 1000)


def lifecycle_fields(
    spec: DisposalSpec,
    row: AlarmRow,
    lc: Lifecycle,
    now: int | None = None,
    review_tier: str | None = None,
) -> dict[str, Any]:
    """What an action (an operator's or the clock's) writes of an alarm's lifecycle: its
    columns, and the deadline of its next disposal step recomputed for its tier from its
    arrival, except that an overdue step keeps the deadline it missed until it is done (the
    overdue event itself, at the tier it has after a de-escalation, moved it into the future:
    "OVERDUE, due 22:14" at 21:50, helper-93).

    The centre's review starts a count of its own at `now`: a submission for review is due
    `review_s` after it (of `review_tier`, the tier that made the review needed: the peak), and
    keeps that deadline while it waits; a return starts the steps again from the return (the
    enterprise disposes of it anew in the step's full time, not overdue at once)."""
    fields = lifecycle_columns(lc)
    base = row.raised_at if row.disposal_from is None else row.disposal_from
    # a submission (-> review) or a return (review -> verified)
    restarts = lc.disposal != row.disposal and (
        lc.disposal == "review" or (row.disposal == "review" and lc.disposal != "closed")
    )
    if restarts and now is not None:
        base = now
        fields["disposal_from"] = now
    if lc.overdue and lc.disposal == row.disposal:
        fields["disposal_due"] = row.disposal_due
    elif lc.disposal == "review" and row.disposal == "review":
        fields["disposal_due"] = row.disposal_due  # set at the submission, by the peak tier
    else:
        tier = review_tier if lc.disposal == "review" and review_tier else row.tier
        fields["disposal_due"] = disposal_due(spec, lc.disposal, tier, base)
    return fields


def lifecycle_columns(lc: Lifecycle) -> dict[str, Any]:
    return {
        "acked": int(lc.acked),
        "shelved_until": lc.shelved_until,
        "suppressed": int(lc.suppressed),
        "out_of_service": int(lc.out_of_service),
        "disposal": lc.disposal,
        "overdue": int(lc.overdue),
        "isa_state": lc.state,
        "centre_acked": int(lc.centre_acked),
    }


@dataclass(slots=True)
class AlarmBatch:
    """The alarm changes of one batch, inside its transaction: the active alarms of its points
    as lists of values (`ALARM_COLUMNS`, changed in place), the alarms and journal events it
    makes, numbered ahead (`StateDB.next_ids`) and written together by `write`."""

    con: sqlite3.Connection
    open: dict[tuple[str, str, int], list[Any]]  # the active alarms of the batch's points
    shelves: dict[tuple[str, str, int], Shelf]  # the shelved points
    oos: set[str]  # sensors out of service
    next_alarm: int
    next_event: int
    changed: dict[int, list[Any]] = field(default_factory=dict)  # alarms that were there
    new: dict[int, list[Any]] = field(default_factory=dict)  # alarms raised by the batch
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # journal events
    events: list[AlarmEvent] = field(default_factory=list)  # the same, as they leave
    # shelves broken through: the point -> (event time, arrival, what the journal says)
    ended: dict[tuple[str, str, int], tuple[int, int, str]] = field(default_factory=dict)

    @staticmethod
    def start(
        db: StateDB,
        con: sqlite3.Connection,
        active: list[list[Any]],
        shelves: dict[tuple[str, str, int], Shelf],
        oos: set[str],
    ) -> AlarmBatch:
        next_alarm, next_event = db.next_ids(con)
        points = {(r[_SENSOR], r[_RULE], r[_SIDE]): r for r in active}
        return AlarmBatch(con, points, shelves, oos, next_alarm, next_event)

    @staticmethod
    def over(db: StateDB, con: sqlite3.Connection, points: set[str], arrival: int) -> AlarmBatch:
        """A batch over the alarm points `points` (their `sensor` ids): their active alarms, the
        shelves at `arrival` and the sensors out of service."""
        return AlarmBatch.start(
            db, con, db.active_rows(con, points), db.shelves(con, arrival), db.sensors_out(con)
        )

    def touch(self, row: list[Any]) -> None:
        """The row changed: written back at the end (a new one is inserted as it ends up)."""
        if row[0] not in self.new:
            self.changed[row[0]] = row

    def write(self, db: StateDB, disposal: DisposalSpec) -> list[AlarmEvent]:
        """Write the batch; the events it recorded (not those a retried batch already had).
        `disposal`: the deadlines of the alarms a broken-through shelve unshelves."""
        skipped = db.write_alarms(
            self.con, list(self.changed.values()), list(self.new.values()), self.rows
        )
        events = [e for e in self.events if e.event_id not in skipped] if skipped else self.events
        for point, (ts, arrival, said) in self.ended.items():
            # the point's shelve is over: its other alarms still shelved say so no more
            db.set_shelf(self.con, point, None)
            rows = db.alarms_where(
                self.con,
                "sensor = ? AND rule = ? AND side = ? AND shelved_until IS NOT NULL",
                point,
            )
            events = [*events, *unshelve_rows(db, self.con, rows, ts, arrival, said, disposal)]
        return events


def unshelve_rows(
    db: StateDB,
    con: sqlite3.Connection,
    rows: list[AlarmRow],
    ts: int,
    arrival: int,
    said: str,
    disposal: DisposalSpec,
) -> list[AlarmEvent]:
    """Unshelve these alarms (the system's doing: their point's shelve ended), journaled, as
    unshelving by hand does (`AlarmDesk`): their deadlines recomputed (`lifecycle_fields`)."""
    out = []
    for row in rows:
        lc = step(row.lifecycle, "unshelve", now=arrival)
        db.update_alarm(con, row.id, lifecycle_fields(disposal, row, lc))
        after = db.alarm_in(con, row.id)
        assert after is not None
        level = (after.level, after.level_name, after.tier)
        event_id = db.insert_event(
            con, row.id, "unshelved", ts, arrival, *level, after.value, lc.state, comment=said
        )
        if event_id is not None:
            out.append(AlarmEvent.of(after, "unshelved", ts, arrival, event_id, None, said))
    return out


_SENSOR, _RULE, _SIDE = (ALARM_COLUMNS.index(c) for c in ("sensor", "rule", "side"))


# positions in an alarm row (`ALARM_COLUMNS`)
(
    AT_LEVEL,
    AT_LEVEL_NAME,
    AT_TIER,
    AT_ACTION,
    AT_STATE,
    AT_STARTED_TS,
    AT_ENDED_TS,
    AT_RAISED_AT,
    AT_CLEARED_AT,
    AT_PEAK,
    AT_LAST_TS,
    AT_VALUE,
    AT_ACKED,
    AT_SHELVED,
    AT_SUPPRESSED,
    AT_OOS,
    AT_DISPOSAL,
    AT_DUE,
    AT_OVERDUE,
    AT_ISA,
    AT_CENTRE_ACKED,
) = (
    ALARM_COLUMNS.index(c)
    for c in (
        "level",
        "level_name",
        "tier",
        "action",
        "state",
        "started_ts",
        "ended_ts",
        "raised_at",
        "cleared_at",
        "peak_level",
        "last_ts",
        "value",
        "acked",
        "shelved_until",
        "suppressed",
        "out_of_service",
        "disposal",
        "disposal_due",
        "overdue",
        "isa_state",
        "centre_acked",
    )
)
# the lifecycle columns `_step` gives, in this order
LIFECYCLE_AT = (
    AT_ACKED,
    AT_SHELVED,
    AT_SUPPRESSED,
    AT_OOS,
    AT_DISPOSAL,
    AT_OVERDUE,
    AT_ISA,
    AT_CENTRE_ACKED,
)


def lifecycle_key(action: Action, row: list[Any]) -> tuple[Any, ...]:
    """What a process action's outcome depends on: the action and the row's lifecycle."""
    return (
        action,
        row[AT_STATE],
        row[AT_ACKED],
        row[AT_SHELVED],
        row[AT_SUPPRESSED],
        row[AT_OOS],
        row[AT_DISPOSAL],
        row[AT_OVERDUE],
        row[AT_CENTRE_ACKED],
    )


def row_lifecycle(row: list[Any]) -> Lifecycle:
    return Lifecycle(
        active=row[AT_STATE] == "active",
        acked=bool(row[AT_ACKED]),
        shelved_until=row[AT_SHELVED],
        suppressed=bool(row[AT_SUPPRESSED]),
        out_of_service=bool(row[AT_OOS]),
        disposal=row[AT_DISPOSAL],
        overdue=bool(row[AT_OVERDUE]),
        centre_acked=bool(row[AT_CENTRE_ACKED]),
    )
