"""Listed supervision (挂牌督办, DOMAIN 6 `SupervisionTicket`) of a major hidden-danger item: the
regulator (the centre) lists the item for supervision at a level (province, city, county), by an
issuing authority, under a document number, with its public notice (the plan is published in the
local media); the supervision's deadline is the item's binding one. Closing (销号) the item
records the supervision's result. One ticket per item, in the state database beside the items
(`hazard_supervision`); each listing or change is a line of the item's audit."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from alerts.hazardflow import HazardConflictError, HazardIncompleteError, HazardItem
from alerts.hazards import _audit
from alerts.statedb import StateDB

__all__ = [
    "LEVELS",
    "Supervision",
    "close_supervision",
    "supervise",
    "supervision_of",
    "supervisions_of",
]

LEVELS = ("province", "city", "county")
_COLS = (
    "hazard_id, level, authority, document_no, notice_url, issued_at, issued_by, status, "
    "result, closed_at, updated_at"
)
_SET = ("level", "authority", "document_no", "notice_url")


@dataclass(frozen=True, slots=True)
class Supervision:
    """An item's listing: `status` "listed" until the item is closed ("closed", with the
    closing's comment as its `result`)."""

    hazard_id: int
    level: str
    authority: str
    document_no: str
    notice_url: str | None
    issued_at: int
    issued_by: str
    status: str = "listed"
    result: str | None = None
    closed_at: int | None = None
    updated_at: int = 0


def _row(r: Sequence[Any]) -> Supervision:
    return Supervision(
        int(r[0]), str(r[1]), str(r[2]), str(r[3]), None if r[4] is None else str(r[4]),
        int(r[5]), str(r[6]), str(r[7]), None if r[8] is None else str(r[8]),
        None if r[9] is None else int(r[9]), int(r[10]),
    )  # fmt: skip


def supervision_of(con: sqlite3.Connection, hazard_id: int) -> Supervision | None:
    """The item's ticket, in the caller's transaction."""
    row = con.execute(
        f"SELECT {_COLS} FROM hazard_supervision WHERE hazard_id = ?", (hazard_id,)
    ).fetchone()
    return None if row is None else _row(row)


def supervisions_of(db: StateDB, ids: Sequence[int]) -> dict[int, Supervision]:
    """The tickets of the items `ids` (those listed), on the reading connection."""
    found: dict[int, Supervision] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        rows = db.query(
            f"SELECT {_COLS} FROM hazard_supervision "
            f"WHERE hazard_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        found.update((int(r[0]), _row(r)) for r in rows)
    return found


def supervise(
    con: sqlite3.Connection,
    item: HazardItem,
    given: dict[str, str | None],
    comment: str,
    actor: str,
    now: int,
) -> Supervision:
    """List the item for supervision (`given`: level, authority, document_no, notice_url), or
    change its listing (a comment saying why required), in the caller's transaction, with its
    audit line. Raise HazardConflictError for a closed item, HazardIncompleteError for a general
    one, one without its deadline, or a change without a comment."""
    if item.status == "closed":
        raise HazardConflictError(f"item {item.id} is closed (销号): it is listed no more")
    if item.grade != "major":
        raise HazardIncompleteError(
            f"item {item.id} is {item.grade}: only a major hidden danger (重大事故隐患) is "
            "listed for supervision (挂牌督办); the centre grades it major first"
        )
    if item.deadline is None:
        raise HazardIncompleteError(
            f"item {item.id} has no deadline: the supervision's deadline is the item's, set it "
            "first (the grade or deadline step)"
        )
    before = supervision_of(con, item.id)
    if before is None:
        ticket = Supervision(
            item.id, str(given["level"]), str(given["authority"]), str(given["document_no"]),
            given.get("notice_url"), now, actor, updated_at=now,
        )  # fmt: skip
        changes: dict[str, object] = {k: getattr(ticket, k) for k in _SET}
        con.execute(
            f"INSERT INTO hazard_supervision ({_COLS}) VALUES ({','.join('?' * 11)})",
            list(asdict(ticket).values()),
        )
    else:
        if not comment.strip():
            raise HazardIncompleteError(
                "'supervise' changing a listing needs a comment saying why (须填写说明)"
            )
        ticket = replace(
            before,
            level=str(given["level"]),
            authority=str(given["authority"]),
            document_no=str(given["document_no"]),
            notice_url=given.get("notice_url"),
            updated_at=now,
        )
        changes = {k: getattr(ticket, k) for k in _SET if getattr(ticket, k) != getattr(before, k)}
        con.execute(
            "UPDATE hazard_supervision SET level = ?, authority = ?, document_no = ?, "
            "notice_url = ?, updated_at = ? WHERE hazard_id = ?",
            (ticket.level, ticket.authority, ticket.document_no, ticket.notice_url, now, item.id),
        )
    _audit(con, item, "supervise", item.status, actor, "centre", now, comment, changes)
    return ticket


def close_supervision(
    con: sqlite3.Connection, item: HazardItem, result: str, now: int
) -> Supervision | None:
    """Record the supervision's result when its item is closed (销号): the closing's comment."""
    before = supervision_of(con, item.id)
    if before is None:
        return None
    con.execute(
        "UPDATE hazard_supervision SET status = 'closed', result = ?, closed_at = ?, "
        "updated_at = ? WHERE hazard_id = ?",
        (result, now, now, item.id),
    )
    return replace(before, status="closed", result=result, closed_at=now, updated_at=now)
