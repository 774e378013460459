"""The centre's alarm supervisions (报警督办) and a lower platform's answers to them (报警督办应答,
JT/T 809 0x1401), journaled on the alarm.

A supervision is recorded in `alarm_supervisions` (`record_supervision`, by `api.alarmsupervise`):
its id is the id of the journal event that said it (the comment of the centre's key), with its
alarm, tenant, vehicle, the plate the ticket went with, deadline, moment and actor; and, once the
gateway's receipt said so, the platform it was sent to. An answer is taken only for a supervision
of that id in the answer's tenant whose plate is the answer's (and, when the platform it was sent
to is known, from that platform); a 2019 answer, which carries no plate, only from the platform
the receipt named: any other is `unknown` (counted, logged by the caller) — a
comment that merely starts with 督办, an answer's own event, a supervision of another vehicle or
another platform's. The answer is a comment of the platform's on the alarm (actor
`{platform} (JT/T 809)`), e.g. `督办 #4711 应答: 1 已处理完毕`; the same answer again (an MQTT
message delivered twice) is journaled once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmDesk
from alerts.statedb import StateDB
from telemetry.plates import plate_key

__all__ = [
    "LATE",
    "RECEIPTS",
    "RESULTS",
    "SUPERVISION_MARK",
    "Supervision",
    "SupervisionAnswer",
    "record_answer",
    "record_not_sent",
    "record_supervision",
]

SUPERVISION_MARK = "督办"  # the journal comment of a supervision starts with it
LATE = "(超期应答 answered late)"  # after an answer of a supervision past its deadline
RESULTS = {0: "处理中", 1: "已处理完毕", 2: "不作处理", 3: "将来处理"}
# the gateway's receipts: what became of a ticket, as journaled
RECEIPTS = {
    "sent": "已发往 {platform} ({link} link)",
    "kept": "待发: {platform} 未登录 (kept for its next login)",
    "expired": "未发出: 已过截止时间 (expired before it could be sent to {platform})",
    "dropped": "未发出: {platform} 待发过多 (dropped: too many kept for the platform)",
    "no_platform": "未发出: 无平台 (no platform of the tenant known to serve the vehicle)",
}


@dataclass(frozen=True, slots=True)
class Supervision:
    id: int  # the journal event that said it
    alarm_id: int
    tenant: str
    vehicle: str
    plate: str
    deadline: int
    created_at: int
    actor: str


@dataclass(frozen=True, slots=True)
class SupervisionAnswer:
    tenant: str
    gateway: str
    supervision_id: int
    result: int
    platform: str
    plate: str = ""
    # a receipt of the gateway's (what became of the ticket, `RECEIPTS`), not an answer: "" for
    # an answer; `link` the ticket went on when sent ("sub", "main")
    receipt: str = ""
    link: str = ""


def record_supervision(db: StateDB, s: Supervision) -> None:
    """Record a supervision (its journal event written already)."""
    with db.transaction() as con:
        con.execute(
            "INSERT INTO alarm_supervisions (id, alarm_id, tenant, vehicle, plate, deadline, "
            "created_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.alarm_id, s.tenant, s.vehicle, plate_key(s.plate), s.deadline,
             s.created_at, s.actor),
        )  # fmt: skip


def _supervision(con: sqlite3.Connection, a: SupervisionAnswer) -> int | None:
    """The alarm of the supervision `a` answers, None when it answers none of its own."""
    row = con.execute(
        "SELECT alarm_id, plate, platform FROM alarm_supervisions WHERE id = ? AND tenant = ?",
        (a.supervision_id, a.tenant),
    ).fetchone()
    if row is None:
        return None
    sent_to = None if row[2] is None else str(row[2])
    if sent_to is not None and sent_to != a.platform:
        return None
    if a.plate:  # (2011) the ticket's vehicle
        return int(row[0]) if row[1] and str(row[1]) == plate_key(a.plate) else None
    # (2019: no vehicle in the 0x1400) the platform the gateway's receipt says it went to
    return int(row[0]) if sent_to is not None else None


def _receipt(con: sqlite3.Connection, r: SupervisionAnswer) -> int | None:
    """The alarm of the supervision receipt `r` is of (None: none of its tenant)."""
    row = con.execute(
        "SELECT alarm_id FROM alarm_supervisions WHERE id = ? AND tenant = ?",
        (r.supervision_id, r.tenant),
    ).fetchone()
    return None if row is None else int(row[0])


def _recorded(con: sqlite3.Connection, a: SupervisionAnswer, said: str, now: int) -> None:
    """What the receipt or answer `a` says, on its supervision's row (`alerts.supervisionstate`):
    the last receipt and when (the platform of one sent: its answers are taken from that
    platform only); the first answer's moment, the last answer's result, text, moment and
    platform. Written again alike when the journal failed after it (the message delivered
    again): the first answer's moment stays."""
    if a.receipt:
        con.execute(
            "UPDATE alarm_supervisions SET receipt = ?, receipt_at = ?, "
            "platform = CASE WHEN ? = 'sent' THEN ? ELSE platform END WHERE id = ?",
            (a.receipt, now, a.receipt, a.platform, a.supervision_id),
        )
        return
    con.execute(
        "UPDATE alarm_supervisions SET answered_at = coalesce(answered_at, ?), result = ?, "
        "result_text = ?, result_at = ?, answer_platform = ? WHERE id = ?",
        (now, a.result, said, now, a.platform, a.supervision_id),
    )


def record_not_sent(db: StateDB, supervision_id: int, now: int) -> None:
    """The hub could not publish the supervision (`api.alarmsupervise`): undelivered."""
    with db.transaction() as con:
        con.execute(
            "UPDATE alarm_supervisions SET receipt = 'not_sent', receipt_at = ? WHERE id = ?",
            (now, supervision_id),
        )


def record_answer(
    db: StateDB, desk: AlarmDesk, answer: SupervisionAnswer, now: int
) -> AlarmEvent | str:
    """The answer's (or receipt's) journal event, or why there is none: `unknown` (no
    supervision of that id in the tenant for that plate and platform), `duplicate` (journaled
    already)."""
    with db.transaction() as con:
        if answer.receipt:
            alarm_id = _receipt(con, answer)
            actor = f"{answer.gateway} (JT/T 809 gateway)"
            said = RECEIPTS[answer.receipt].format(platform=answer.platform, link=answer.link)
            note = f"{SUPERVISION_MARK} #{answer.supervision_id} {said}"
        else:
            alarm_id = _supervision(con, answer)
            actor = f"{answer.platform} (JT/T 809)"
            said = RESULTS.get(answer.result, "结果未知")
            note = f"{SUPERVISION_MARK} #{answer.supervision_id} 应答: {answer.result} {said}"
            if alarm_id is not None and _late(con, answer.supervision_id, now):
                note += f" {LATE}"
        if alarm_id is None:
            return "unknown"
        again = con.execute(
            "SELECT 1 FROM alarm_events WHERE alarm_id = ? AND kind = 'commented' AND actor = ? "
            "AND comment = ?",
            (alarm_id, actor, note),
        ).fetchone()
        if again is None:
            _recorded(con, answer, said, now)
    if again is not None:
        return "duplicate"
    return desk.act(alarm_id, "comment", actor=actor, now=now, note=note)


def _late(con: sqlite3.Connection, supervision_id: int, now: int) -> bool:
    """An answer at `now` is late: past the deadline (its first answer's moment, when one came
    already, judges it)."""
    row = con.execute(
        "SELECT deadline, answered_at FROM alarm_supervisions WHERE id = ?", (supervision_id,)
    ).fetchone()
    first = now if row[1] is None else int(row[1])
    return first > int(row[0])
