"""The state database's rows as Python sees them, and its column lists (`alerts.statedb` holds
the statements), and the chunks of an `IN (...)` list."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from alerts.lifecycle import Lifecycle

__all__ = [
    "ALARM_COLS",
    "ALARM_COLUMNS",
    "EVENT_COLS",
    "EVENT_NAMES",
    "MUTABLE",
    "AlarmEventRow",
    "AlarmRecords",
    "AlarmRow",
    "DeadLetter",
    "Shelf",
    "chunks_in",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Shelf:
    """An alarm point's shelve: until when, who and why, and the level the alarm had reached
    when it was shelved (None: a shelve of before schema 5): a raise or an escalation above it
    ends the shelve."""

    until: int
    level: int | None
    actor: str
    reason: str
    at: int


_IN_CHUNK = 500  # values in one `IN (...)`: well under SQLite's limit of bound parameters


def chunks_in(values: Sequence[T]) -> Iterator[tuple[list[T], str]]:
    """`values` in chunks for `IN (...)`, each with its placeholders ("?,?,...")."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = list(values[start : start + _IN_CHUNK])
        yield chunk, ",".join("?" * len(chunk))


ALARM_COLS = (
    "id, tenant, site, device, sensor, rule, side, level, level_name, tier, action, state, "
    "started_ts, ended_ts, raised_at, cleared_at, peak_level, last_ts, value, "
    "acked, shelved_until, suppressed, out_of_service, disposal, disposal_due, overdue, "
    "isa_state, gateway, disposal_from, centre_acked"
)
MUTABLE = (
    "level",
    "level_name",
    "tier",
    "action",
    "state",
    "ended_ts",
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
    "disposal_from",
    "centre_acked",
)
EVENT_COLS = (
    "id, alarm_id, kind, ts, arrival, level, level_name, tier, value, actor, comment, isa_state"
)
ALARM_COLUMNS = tuple(c.strip() for c in ALARM_COLS.split(","))  # an alarm row's values, in order
EVENT_NAMES = tuple(c.strip() for c in EVENT_COLS.split(","))

# alarms as dictionaries (column -> value), newest first, and the events of each by alarm id
AlarmRecords = tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    tenant: str
    site: str
    device: str
    sensor: str
    rule: str
    side: int
    level: int
    level_name: str
    tier: str
    action: str
    state: str
    started_ts: int
    ended_ts: int | None
    raised_at: int
    cleared_at: int | None
    peak_level: int
    last_ts: int
    value: float | None
    acked: bool
    shelved_until: int | None
    suppressed: bool
    out_of_service: bool
    disposal: str
    disposal_due: int | None
    overdue: bool
    isa_state: str
    gateway: str
    # when the deadline of its disposal step counts from, when not `raised_at`: the
    # enterprise's submission for review, the centre's return (schema 8)
    disposal_from: int | None = None
    # the supervising centre's acknowledgement, apart from the site's `acked` (schema 9)
    centre_acked: bool = False

    @property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            active=self.state == "active",
            acked=bool(self.acked),
            shelved_until=self.shelved_until,
            suppressed=bool(self.suppressed),
            out_of_service=bool(self.out_of_service),
            disposal=self.disposal,
            overdue=bool(self.overdue),
            centre_acked=bool(self.centre_acked),
        )


@dataclass(frozen=True, slots=True)
class AlarmEventRow:
    id: int
    alarm_id: int
    kind: str
    ts: int
    arrival: int
    level: int
    level_name: str
    tier: str
    value: float | None
    actor: str | None
    comment: str
    isa_state: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at: int
    source: str
    topic: str
    reason: str
    payload: bytes
    size: int
    repeats: int = 0  # messages like it (topic, source, reason) since, within the hour
    last_at: int | None = None  # when the last of them came
