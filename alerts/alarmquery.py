"""The alarm list's query: the filters an operator sets (`AlarmFilter`), the SELECT they make,
and the alarms found with their events as plain dictionaries, for the API to turn into JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.alarmrows import (
    ALARM_COLS,
    ALARM_COLUMNS,
    EVENT_COLS,
    EVENT_NAMES,
    AlarmRecords,
    chunks_in,
)

__all__ = ["AlarmFilter", "changed_up_to", "events_sql", "records"]


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Which alarms: of `tenants` (None: every tenant), and each field set narrows the list.
    `open_only`: not yet returned to normal and acknowledged, or with its disposal not closed;
    `finished_only`: its exact complement, normal (returned and acknowledged) and closed;
    `before_id`: the page after the alarm of that id (newest first); `start_ts`, `end_ts`: its
    event time (`started_ts`) in [start_ts, end_ts), ms; `changed_after`: an event of its
    journal has an id above this one (what changed since a receiver's last reconciliation: read
    from the journal's newest events by their ids, not from every alarm)."""

    tenants: Sequence[str] | None
    state: str | None = None
    sensor: str | None = None
    isa_state: Sequence[str] | None = None
    tier: Sequence[str] | None = None
    site: str | None = None
    side: int | None = None
    disposal: str | None = None
    open_only: bool = False
    before_id: int | None = None
    peak_tier: Sequence[str] | None = None  # reached one of these tiers at some time
    overdue: bool | None = None
    centre_acked: bool | None = None  # acknowledged by the supervising centre, or not
    finished_only: bool = False
    start_ts: int | None = None
    end_ts: int | None = None
    changed_after: int | None = None

    def select(self) -> tuple[str, list[Any]]:
        """The SELECT (newest first, `LIMIT ?` last) and its parameters but the limit."""
        where, params = [], []  # type: list[str], list[Any]

        def among(column: str, values: Sequence[Any]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)

        if self.tenants is not None:
            among("tenant", self.tenants)
        for column, value in (
            ("state", self.state),
            ("sensor", self.sensor),
            ("site", self.site),
            ("side", self.side),
            ("disposal", self.disposal),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if self.isa_state:
            among("isa_state", self.isa_state)
        if self.tier:
            among("tier", self.tier)
        if self.open_only:
            where.append("(isa_state != 'normal' OR disposal != 'closed')")
        if self.finished_only:
            where.append("isa_state = 'normal' AND disposal = 'closed'")
        if self.peak_tier:
            where.append(
                "EXISTS (SELECT 1 FROM alarm_events e WHERE e.alarm_id = alarms.id AND e.tier IN "
                f"({','.join('?' * len(self.peak_tier))}))"
            )
            params.extend(self.peak_tier)
        if self.overdue is not None:
            where.append("overdue = ?")
            params.append(int(self.overdue))
        if self.centre_acked is not None:
            where.append("centre_acked = ?")
            params.append(int(self.centre_acked))
        if self.start_ts is not None:
            where.append("started_ts >= ?")
            params.append(self.start_ts)
        if self.end_ts is not None:
            where.append("started_ts < ?")
            params.append(self.end_ts)
        if self.changed_after is not None:
            where.append("id IN (SELECT alarm_id FROM alarm_events WHERE id > ?)")
            params.append(self.changed_after)
        if self.before_id is not None:
            where.append("id < ?")
            params.append(self.before_id)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return f"SELECT {ALARM_COLS} FROM alarms {clause} ORDER BY id DESC LIMIT ?", params


def changed_up_to(
    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
    tenants: Sequence[str] | None,
    after: int,
) -> int:
    """The newest journal event id of `tenants`' alarms (None: of every alarm), or `after` when
    none is above it: read before a list of `changed_after=after`, every change up to it is in
    that list, so the next reconciliation asks from it. Walks the events after `after` alone
    (CROSS JOIN: the journal first, not every alarm of the tenants)."""
    if tenants is None:
        rows = query("SELECT MAX(id) FROM alarm_events WHERE id > ?", [after])
    elif not tenants:
        return after
    else:
        marks = ",".join("?" * len(tenants))
        rows = query(
            "SELECT MAX(e.id) FROM alarm_events e CROSS JOIN alarms a "
            f"WHERE e.id > ? AND a.id = e.alarm_id AND a.tenant IN ({marks})",
            [after, *tenants],
        )
    found = rows[0][0] if rows else None
    return after if found is None else int(found)


def events_sql(n: int) -> str:
    """The events of `n` alarms (their ids as parameters), oldest first."""
    return (
        f"SELECT {EVENT_COLS} FROM alarm_events WHERE alarm_id IN ({','.join('?' * n)}) ORDER BY id"
    )


def records(
    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]] | None],
    where: AlarmFilter,
    limit: int,
) -> AlarmRecords | None:
    """The alarms `where` selects and their events, as dictionaries; None if `query` gave up."""
    sql, params = where.select()
    rows = query(sql, [*params, limit])
    if rows is None:
        return None
    alarms = [dict(zip(ALARM_COLUMNS, r, strict=True)) for r in rows]
    events: dict[int, list[dict[str, Any]]] = {a["id"]: [] for a in alarms}
    # in chunks: an export's 100,000 alarms are more ids than SQLite binds in one statement
    for ids, _ in chunks_in(list(events)):
        found = query(events_sql(len(ids)), ids)
        if found is None:
            return None
        for r in found:
            events[r[1]].append(dict(zip(EVENT_NAMES, r, strict=True)))
    return alarms, events
