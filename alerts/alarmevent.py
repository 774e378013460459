"""An alarm event (a raise, escalation, clear or lifecycle step of one alarm) as it leaves the
hub: to the live stream, the alarm topic, the time-series store and the notification pipeline;
and the rule names and deadline arithmetic the alarm book and its readers share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from alerts.lifecycle import Lifecycle
from alerts.statedb import AlarmRow
from alerts.table import kind_name
from telemetry.notifyconfig import DisposalSpec

__all__ = [
    "DEVICE_RULE",
    "FLEET_RULE",
    "TERMINAL_RULE",
    "AlarmEvent",
    "device_alarm_id",
    "disposal_due",
    "finite_or_none",
    "lifecycle_columns",
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

    def to_json(self) -> dict[str, object]:
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

# the alarm of a whole device (or gateway) whose sensors all lost communication: it inhibits the
# notifications of its sensors' own no-data alarms (alerts.notify)
DEVICE_RULE = "comm_loss"


def device_alarm_id(tenant: str, site: str, device: str) -> str:
    return f"device:{tenant}/{site}/{device}"


def disposal_due(spec: DisposalSpec, disposal: str, tier: str, raised_at: int) -> int | None:
    """The deadline of the next disposal step for the alarm's tier, from its arrival."""
    deadline = spec.for_tier(tier)
    seconds = {
        "received": deadline.verify_s,
        "verified": deadline.dispose_s,
        "disposed": deadline.close_s,
    }.get(disposal)
    return None if seconds is None else raised_at + int(seconds * 1000)


def lifecycle_columns(lc: Lifecycle) -> dict[str, Any]:
    return {
        "acked": int(lc.acked),
        "shelved_until": lc.shelved_until,
        "suppressed": int(lc.suppressed),
        "out_of_service": int(lc.out_of_service),
        "disposal": lc.disposal,
        "overdue": int(lc.overdue),
        "isa_state": lc.state,
    }
