"""The hidden-danger items (隐患, `alerts.hazardflow`) in the state database: an item reported,
each step taken (the item written and its audit line added in one transaction), the list and
one item with its audit. The audit (`hazard_events`) is never updated nor deleted from: who took
each step, when, from which status to which, with their comment and what the step set."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from alerts.hazardflow import HazardItem, HazardPlan, Party, advance
from alerts.statedb import StateDB

__all__ = [
    "HazardEvent",
    "HazardFilter",
    "get_item",
    "insert_item",
    "item_events",
    "list_items",
    "open_items",
    "read_item",
    "take_step",
]

_FIELDS = tuple(f.name for f in fields(HazardItem))
_COLS = ", ".join(_FIELDS)
_EVENT_COLS = "id, hazard_id, action, from_status, to_status, actor, party, at, comment, changes"


@dataclass(frozen=True, slots=True)
class HazardEvent:
    """One audit line of an item: `actor` the API key's name (None: the hub's)."""

    id: int
    hazard_id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str | None
    party: str
    at: int
    comment: str
    changes: dict[str, Any]


def _item(row: Sequence[Any]) -> HazardItem:
    values = dict(zip(_FIELDS, row, strict=True))
    values["alarm_ids"] = tuple(int(i) for i in json.loads(values["alarm_ids"]))
    values["sensor_ids"] = tuple(str(s) for s in json.loads(values["sensor_ids"]))
    plan = values["plan"]
    values["plan"] = None if plan is None else HazardPlan(**json.loads(plan))
    return HazardItem(**values)


def _stored(item: HazardItem) -> list[Any]:
    """The item's columns as stored (tuples and the plan as JSON text)."""
    out: list[Any] = []
    for name in _FIELDS:
        value = getattr(item, name)
        if name in ("alarm_ids", "sensor_ids"):
            value = json.dumps(list(value))
        elif name == "plan":
            value = None if value is None else json.dumps(asdict(value), ensure_ascii=False)
        out.append(value)
    return out


def _plain(changes: Mapping[str, object]) -> dict[str, Any]:
    """A step's changes as JSON can hold them (the plan as its elements)."""
    return {k: asdict(v) if isinstance(v, HazardPlan) else v for k, v in changes.items()}


def _audit(
    con: sqlite3.Connection,
    item: HazardItem,
    action: str,
    before: str | None,
    actor: str | None,
    party: str,
    at: int,
    comment: str,
    changes: Mapping[str, object],
) -> None:
    con.execute(
        f"INSERT INTO hazard_events ({_EVENT_COLS.partition(', ')[2]}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.id, action, before, item.status, actor, party, at, comment,
            json.dumps(_plain(changes), ensure_ascii=False, sort_keys=True),
        ),
    )  # fmt: skip


def insert_item(
    con: sqlite3.Connection,
    item: HazardItem,
    party: Party | Literal["hub"],
    comment: str = "",
    changes: Mapping[str, object] | None = None,
) -> HazardItem:
    """Record a reported item (its `id` given here) and its `report` audit line (with
    `changes`: what the reporter proposed, a deadline), in the caller's transaction; `party`
    "hub": opened by an alarm -> hazard rule (the audit's actor None)."""
    values = _stored(item)[1:]
    cur = con.execute(
        f"INSERT INTO hazards ({_COLS.partition(', ')[2]}) VALUES ({', '.join('?' * len(values))})",
        values,
    )
    made = HazardItem(**{**{n: getattr(item, n) for n in _FIELDS}, "id": int(cur.lastrowid or 0)})
    actor = None if party == "hub" else item.reported_by
    _audit(con, made, "report", None, actor, party, item.reported_at, comment, changes or {})
    return made


def get_item(con: sqlite3.Connection, hazard_id: int) -> HazardItem | None:
    """The item, in the caller's transaction."""
    row = con.execute(f"SELECT {_COLS} FROM hazards WHERE id = ?", (hazard_id,)).fetchone()
    return None if row is None else _item(row)


def read_item(db: StateDB, hazard_id: int) -> HazardItem | None:
    """The item, on the reading connection."""
    rows = db.query(f"SELECT {_COLS} FROM hazards WHERE id = ?", (hazard_id,))
    return _item(rows[0]) if rows else None


def take_step(
    con: sqlite3.Connection,
    item: HazardItem,
    action: str,
    party: Party,
    changes: Mapping[str, object],
    comment: str,
    actor: str,
    now: int,
) -> HazardItem:
    """Take one step of the item (`alerts.hazardflow.advance`, which raises when refused) and
    write it with its audit line, in the caller's transaction. The item is the one read in it."""
    after = advance(item, action, party, changes, comment, actor, now)
    sets = ", ".join(f"{n} = ?" for n in _FIELDS[1:])
    con.execute(f"UPDATE hazards SET {sets} WHERE id = ?", [*_stored(after)[1:], item.id])
    _audit(con, after, action, item.status, actor, party, now, comment, changes)
    return after


def item_events(db: StateDB, hazard_id: int) -> list[HazardEvent]:
    """The item's audit, oldest first."""
    rows = db.query(
        f"SELECT {_EVENT_COLS} FROM hazard_events WHERE hazard_id = ? ORDER BY id", (hazard_id,)
    )
    return [
        HazardEvent(
            int(r[0]), int(r[1]), str(r[2]), None if r[3] is None else str(r[3]), str(r[4]),
            None if r[5] is None else str(r[5]), str(r[6]), int(r[7]), str(r[8]),
            dict(json.loads(r[9])),
        )
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class HazardFilter:
    """A list's filters: `tenants` None is every tenant; `overdue` the items past their
    rectification deadline at `now` and not closed; `supervised` those listed (挂牌督办)."""

    tenants: Sequence[str] | None
    site: str | None = None
    status: str | None = None
    grade: str | None = None
    overdue: bool | None = None
    now: int = 0
    before: int | None = None
    supervised: bool | None = None  # listed for supervision (挂牌督办), or not

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.tenants is not None:
            clauses.append(f"tenant IN ({','.join('?' * len(self.tenants))})")
            params += list(self.tenants)
        for column in ("site", "status", "grade"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.overdue is not None:
            # (as `alerts.hazardflow.overdue_since`: a review requested by the deadline waits
            # on the centre, not overdue)
            due = (
                "(deadline IS NOT NULL AND deadline <= ? AND status != 'closed' AND NOT ("
                "status IN ('review_requested', 'accepted') AND requested_at IS NOT NULL "
                "AND requested_at <= deadline))"
            )
            clauses.append(due if self.overdue else f"NOT {due}")
            params.append(self.now)
        if self.supervised is not None:
            listed = "id IN (SELECT hazard_id FROM hazard_supervision)"
            clauses.append(listed if self.supervised else f"NOT {listed}")
        if self.before is not None:
            clauses.append("id < ?")
            params.append(self.before)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def list_items(db: StateDB, where: HazardFilter, limit: int) -> list[HazardItem]:
    """The items `where` selects, newest reported first (page with `before`)."""
    if where.tenants is not None and not where.tenants:
        return []
    sql, params = where.where()
    rows = db.query(f"SELECT {_COLS} FROM hazards {sql} ORDER BY id DESC LIMIT ?", [*params, limit])
    return [_item(r) for r in rows]


def open_items(con: sqlite3.Connection, now: int, ids: Sequence[int] = ()) -> list[HazardItem]:
    """The items whose deadline alarms may change at `now`: not closed and past their
    rectification deadline or their review's, and those of `ids` whatever their status (an
    alarm still active). An item before its deadlines is not read (the minute's tick stays
    short as items grow): its alarms change only by a step, judged at once."""
    # two seeks (the partial index on the deadline; the one on the status), not a scan of
    # every open item as one query with OR made of it
    rows = con.execute(
        f"SELECT {_COLS} FROM hazards WHERE status != 'closed' AND deadline <= ?", (now,)
    ).fetchall()
    rows += con.execute(
        f"SELECT {_COLS} FROM hazards WHERE status != 'closed' AND status = 'review_requested' "
        "AND review_due <= ?",
        (now,),
    ).fetchall()
    found: list[HazardItem] = []
    seen: set[int] = set()
    for row in rows:
        due = _item(row)
        if due.id not in seen:
            seen.add(due.id)
            found.append(due)
    for hazard_id in ids:
        if hazard_id not in seen:
            item = get_item(con, hazard_id)
            if item is not None:
                found.append(item)
    return found
