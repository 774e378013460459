"""What became of the centre's alarm supervisions (报警督办, `alerts.supervisionanswers`): each
row of `alarm_supervisions` with its gateway's last receipt, the platform's answers and the
hub's verdict at its deadline, and the status the centre chases it by:

- `answered`: the platform answered (0x1401); `late` when its first answer came after the
  deadline;
- `undelivered`: no answer, and the ticket never reached the platform: the gateway's last
  receipt says `expired`, `dropped`, `no_platform`, or the hub could not publish it
  (`not_sent`); never judged overdue (the enterprise was never asked);
- `overdue`: no answer, past its deadline by the hub's clock (`overdue_at`: when it found it);
- `open`: none of these yet (no receipt, sent, or kept for the platform's next login).

The hub's clock (`SupervisionDeadlines.step`, on the dispatcher's tick) marks each unanswered
supervision past its deadline once and journals `督办 #N 超期未应答` on its alarm (actor `hub`);
a hub down past a deadline marks it at its first tick."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from alerts.alarmchange import cst
from alerts.alarms import AlarmEvent
from alerts.desk import AlarmDesk, AlarmNotFoundError
from alerts.statedb import StateDB
from alerts.supervisionanswers import Supervision

__all__ = [
    "COUNTED",
    "COUNT_SQL",
    "STATUSES",
    "UNDELIVERED",
    "Status",
    "SupervisionDeadlines",
    "SupervisionState",
    "get_supervision",
    "list_supervisions",
    "of_alarms",
    "overdue_note",
]

Status = Literal["open", "answered", "overdue", "undelivered"]
STATUSES: tuple[Status, ...] = ("open", "answered", "overdue", "undelivered")
# the receipts that say the ticket never reached the platform (and the hub's own, not published)
UNDELIVERED = ("expired", "dropped", "no_platform", "not_sent")
_UNDELIVERED_SQL = "('expired', 'dropped', 'no_platform', 'not_sent')"
_COLUMNS = (
    "id, alarm_id, tenant, vehicle, plate, deadline, created_at, actor, platform, receipt, "
    "receipt_at, answered_at, result, result_text, result_at, answer_platform, overdue_at"
)
_DELIVERABLE = f"coalesce(receipt, '') NOT IN {_UNDELIVERED_SQL}"
# each status as a condition on a row (as `SupervisionState.status` judges)
_WHERE: dict[Status, str] = {
    "answered": "answered_at IS NOT NULL",
    "undelivered": f"answered_at IS NULL AND coalesce(receipt, '') IN {_UNDELIVERED_SQL}",
    "overdue": f"answered_at IS NULL AND {_DELIVERABLE} AND overdue_at IS NOT NULL",
    "open": f"answered_at IS NULL AND {_DELIVERABLE} AND overdue_at IS NULL",
}
# the counts of a group of supervisions (`s` in a join with the alarms: no column of theirs but
# `id` is one of the alarms' too), for the handling report (`api.handling`)
COUNTED = ("given", "answered_in_time", "answered_late", "overdue", "undelivered", "open")
COUNT_SQL = (
    "count(s.id), sum(answered_at IS NOT NULL AND answered_at <= deadline), "
    "sum(answered_at IS NOT NULL AND answered_at > deadline), "
    + ", ".join(f"sum({_WHERE[k]})" for k in ("overdue", "undelivered", "open"))
)


@dataclass(frozen=True, slots=True)
class SupervisionState(Supervision):
    """A supervision as recorded, with what became of it."""

    platform: str | None  # the platform the gateway sent it to
    receipt: str | None  # the gateway's last receipt (or the hub's not_sent)
    receipt_at: int | None
    answered_at: int | None  # the platform's first answer
    result: int | None  # its last answer
    result_text: str | None
    result_at: int | None
    answer_platform: str | None
    overdue_at: int | None  # when the hub's clock found it past its deadline unanswered

    @property
    def status(self) -> Status:
        if self.answered_at is not None:
            return "answered"
        if (self.receipt or "") in UNDELIVERED:
            return "undelivered"
        return "overdue" if self.overdue_at is not None else "open"

    @property
    def late(self) -> bool:
        """Answered after its deadline."""
        return self.answered_at is not None and self.answered_at > self.deadline


def _row(r: Sequence[object]) -> SupervisionState:
    def num(v: object) -> int | None:
        return None if v is None else int(str(v))

    def text(v: object) -> str | None:
        return None if v is None else str(v)

    return SupervisionState(
        int(str(r[0])), int(str(r[1])), str(r[2]), str(r[3]), str(r[4]), int(str(r[5])),
        int(str(r[6])), str(r[7]), text(r[8]), text(r[9]), num(r[10]), num(r[11]), num(r[12]),
        text(r[13]), num(r[14]), text(r[15]), num(r[16]),
    )  # fmt: skip


def list_supervisions(
    db: StateDB,
    tenants: Sequence[str] | None,
    status: Status | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[SupervisionState]:
    """The supervisions of `tenants` (None: every tenant) given within [since, until) (ms),
    of `status`, newest first, those of an id below `before` (paging)."""
    where, args = "", list[object]()
    if tenants is not None:
        where += f" AND tenant IN ({', '.join('?' * len(tenants))})"
        args += tenants
    if status is not None:
        where += f" AND {_WHERE[status]}"
    for cond, v in (("created_at >= ?", since), ("created_at < ?", until), ("id < ?", before)):
        if v is not None:
            where += f" AND {cond}"
            args.append(v)
    with db.snapshot() as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM alarm_supervisions WHERE 1 = 1{where} "  # noqa: S608
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
    return [_row(r) for r in rows]


def get_supervision(db: StateDB, supervision_id: int) -> SupervisionState | None:
    with db.snapshot() as con:
        r = con.execute(
            f"SELECT {_COLUMNS} FROM alarm_supervisions WHERE id = ?",  # noqa: S608
            (supervision_id,),
        ).fetchone()
    return None if r is None else _row(r)


def of_alarms(db: StateDB, alarm_ids: Sequence[int]) -> dict[int, list[SupervisionState]]:
    """The supervisions of each of `alarm_ids` that has any, oldest first (one read over the
    range of ids: supervisions are few beside alarms)."""
    if not alarm_ids:
        return {}
    wanted = set(alarm_ids)
    with db.snapshot() as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM alarm_supervisions "  # noqa: S608
            "WHERE alarm_id BETWEEN ? AND ? ORDER BY id",
            (min(wanted), max(wanted)),
        ).fetchall()
    found: dict[int, list[SupervisionState]] = {}
    for r in rows:
        s = _row(r)
        if s.alarm_id in wanted:
            found.setdefault(s.alarm_id, []).append(s)
    return found


def overdue_note(supervision_id: int, deadline: int) -> str:
    """The journal's words for a supervision found past its deadline without an answer."""
    return f"督办 #{supervision_id} 超期未应答 (no answer by the deadline {cst(deadline)})"


class SupervisionDeadlines:
    """The hub's clock on the supervisions: each one unanswered past its deadline (and not
    undelivered) is marked `overdue_at` once and journaled on its alarm (actor `hub`)."""

    def __init__(self, db: StateDB, desk: AlarmDesk) -> None:
        self._db, self._desk = db, desk

    def step(self, now: int) -> list[AlarmEvent]:
        """The journal events of the supervisions found overdue at `now` (the hub's clock).
        Journaled before marked, and a journal line found already is not written again: a
        crash between the two journals nothing twice. Raise AlarmStoreError."""
        with self._db.snapshot() as con:
            due = con.execute(
                "SELECT id, alarm_id, deadline FROM alarm_supervisions "  # noqa: S608
                "WHERE answered_at IS NULL "
                f"AND overdue_at IS NULL AND {_DELIVERABLE} AND deadline < ? "
                "ORDER BY deadline, id",
                (now,),
            ).fetchall()
        events: list[AlarmEvent] = []
        for sid, alarm_id, deadline in due:
            note = overdue_note(int(sid), int(deadline))
            with self._db.snapshot() as con:
                said = con.execute(
                    "SELECT 1 FROM alarm_events WHERE alarm_id = ? AND kind = 'commented' "
                    "AND actor = 'hub' AND comment = ?",
                    (alarm_id, note),
                ).fetchone()
            if said is None:
                try:
                    ev = self._desk.act(int(alarm_id), "comment", actor="hub", now=now, note=note)
                except AlarmNotFoundError:  # (no such alarm: marked all the same)
                    pass
                else:
                    events.append(ev)
            with self._db.transaction() as con:
                con.execute(
                    "UPDATE alarm_supervisions SET overdue_at = ? WHERE id = ? "
                    "AND overdue_at IS NULL AND answered_at IS NULL",
                    (now, sid),
                )
        return events
