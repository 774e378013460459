"""The hidden-danger ledger's periodic statistics (DOMAIN 6: the quarterly analysis to the
regulator by the 15th of the next quarter, the annual one by 31 January), per tenant and in
total, for a period [start, end) in ms. Counted as the items were: each item's status, grade,
deadline, review request and production stop at the end come from its audit (`hazard_events`,
the steps taken before the end), so an item closed after the end is open at it, and a report of
the period made again later says the same.

- found: items found (`found_at`) in the period, by grade and by source;
- closed: items closed (销号) in the period, by their deadline (`closed_at <= deadline`) or after;
- open: items found before the end and not closed by it, by their status at the end; overdue:
  those of them past their deadline at the end (as `hazard_overdue` judges it), at `as_of` (the
  end, or the hub's clock when the end is still ahead);
- major_stop_full, major_stop_partial: items found in the period, major at the end, with a full
  or partial production stop (停产停业整改);
- found_closed: items found in the period and closed by its end; the rectification rate
  (整改率) is found_closed / found, in per cent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.hazardflow import GRADES, SOURCES, STATUSES, HazardItem, overdue_since
from alerts.hazards import _COLS, _FIELDS, _item
from alerts.statedb import StateDB

__all__ = ["COUNTS", "OPEN_STATUSES", "StatsRow", "hazard_stats", "rate"]

OPEN_STATUSES = tuple(s for s in STATUSES if s != "closed")
COUNTS: tuple[str, ...] = (
    "found",
    *(f"found_{g}" for g in GRADES),
    *(f"found_{s}" for s in SOURCES),
    "closed",
    "closed_on_time",
    "closed_late",
    "open",
    *(f"open_{s}" for s in OPEN_STATUSES),
    "overdue",
    "major_stop_full",
    "major_stop_partial",
    "found_closed",
)


@dataclass(slots=True)
class StatsRow:
    """One tenant's counts (`COUNTS`), or the total's (tenant "")."""

    tenant: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def add(self, other: StatsRow) -> None:
        for name, n in other.counts.items():
            self.counts[name] += n


def rate(row: StatsRow) -> float | None:
    """The rectification rate (整改率) in per cent: found and closed / found; None: none found."""
    found = row.counts["found"]
    return None if found == 0 else round(100 * row.counts["found_closed"] / found, 2)


@dataclass(slots=True)
class _AtEnd:
    """What the audit says of an item at the end: its status, grade, deadline, latest review
    request and production stop (None: not set by then)."""

    status: str = "reported"
    grade: str | None = None
    first_grade: str | None = None
    deadline: int | None = None
    requested_at: int | None = None
    production_stop: str | None = None


def _step(at_end: _AtEnd, action: str, to_status: str, at: int, changes: dict[str, Any]) -> None:
    at_end.status = to_status
    if "grade" in changes:
        at_end.grade = str(changes["grade"])
    if "deadline" in changes:
        at_end.deadline = int(changes["deadline"])
    if "production_stop" in changes:
        at_end.production_stop = changes["production_stop"]
    if action == "request-review":
        at_end.requested_at = at


def _count(
    item: HazardItem, at_end: _AtEnd, row: StatsRow, start: int, end: int, as_of: int
) -> None:
    c = row.counts
    # the grade at the end: the centre's last grading by then; not graded by then, the
    # reporter's (the item's own while never graded; the centre's first grading stands for it
    # once graded, as the reporter's assessment is not kept)
    grade = at_end.grade or at_end.first_grade or item.grade
    found = start <= item.found_at < end
    closed = item.closed_at is not None and item.closed_at < end
    if found:
        c["found"] += 1
        c[f"found_{grade}"] += 1
        if item.source in SOURCES:
            c[f"found_{item.source}"] += 1
        if closed:
            c["found_closed"] += 1
        if grade == "major" and at_end.production_stop in ("full", "partial"):
            c[f"major_stop_{at_end.production_stop}"] += 1
    if item.closed_at is not None and start <= item.closed_at < end:
        c["closed"] += 1
        on_time = item.deadline is not None and item.closed_at <= item.deadline
        c["closed_on_time" if on_time else "closed_late"] += 1
    if item.found_at < end and not closed:
        c["open"] += 1
        status = at_end.status if at_end.status in OPEN_STATUSES else "reported"
        c[f"open_{status}"] += 1
        was = replace(
            item, status=status, grade=grade, deadline=at_end.deadline,
            requested_at=at_end.requested_at,
        )  # fmt: skip
        if overdue_since(was, as_of) is not None:
            c["overdue"] += 1


def hazard_stats(
    db: StateDB, tenants: Sequence[str] | None, start: int, end: int, as_of: int
) -> dict[str, StatsRow]:
    """Each tenant's counts over [start, end) (`tenants` None: every tenant with items), keyed
    by tenant; `as_of` the moment "at the end" is judged (the end, or the hub's clock when
    the end is ahead of it)."""
    rows: dict[str, StatsRow] = {t: StatsRow(t) for t in tenants or ()}
    if tenants is not None and not tenants:
        return rows
    where = "h.found_at < ? AND (h.closed_at IS NULL OR h.closed_at >= ?)"
    params: list[Any] = [end, end, start]
    if tenants is not None:
        where += f" AND h.tenant IN ({','.join('?' * len(tenants))})"
        params += list(tenants)
    cols = ", ".join(f"h.{c}" for c in _COLS.split(", "))
    found = db.query(
        f"SELECT {cols}, e.action, e.to_status, e.at, e.changes FROM hazards h "
        "LEFT JOIN hazard_events e ON e.hazard_id = h.id AND e.at < ? "
        f"WHERE {where} ORDER BY h.id, e.id",
        params,
    )
    n = len(_FIELDS)
    current: tuple[HazardItem, _AtEnd] | None = None

    def done(pair: tuple[HazardItem, _AtEnd] | None) -> None:
        if pair is not None:
            item, at_end = pair
            _count(item, at_end, rows.setdefault(item.tenant, StatsRow(item.tenant)),
                   start, end, as_of)  # fmt: skip

    firsts = _first_grades(db, tenants, start, end)
    for r in found:
        item_id = int(r[0])
        if current is None or current[0].id != item_id:
            done(current)
            item = _item(r[:n])
            current = (item, _AtEnd(first_grade=firsts.get(item_id)))
        if r[n] is not None:
            _step(current[1], str(r[n]), str(r[n + 1]), int(r[n + 2]), dict(json.loads(r[n + 3])))
    done(current)
    return rows


def _first_grades(
    db: StateDB, tenants: Sequence[str] | None, start: int, end: int
) -> dict[int, str]:
    """The centre's first grading of the items graded only after the end (the grade they count
    under, `_count`)."""
    sql = (
        "SELECT e.hazard_id, e.changes FROM hazard_events e JOIN hazards h ON h.id = e.hazard_id "
        "WHERE e.action = 'grade' AND e.at >= ? AND h.found_at < ? "
        "AND (h.closed_at IS NULL OR h.closed_at >= ?)"
    )
    params: list[Any] = [end, end, start]
    if tenants is not None:
        sql += f" AND h.tenant IN ({','.join('?' * len(tenants))})"
        params += list(tenants)
    firsts: dict[int, str] = {}
    for hazard_id, changes in db.query(sql + " ORDER BY e.id", params):
        firsts.setdefault(int(hazard_id), str(json.loads(changes)["grade"]))
    return firsts
