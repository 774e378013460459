"""The centre's alarm supervisions (报警督办) and a lower platform's answers to them (报警督办应答,
JT/T 809 0x1401), journaled on the alarm.

A supervision is recorded in `alarm_supervisions` (`record_supervision`, by `api.alarmsupervise`):
its id is the id of the journal event that said it (the comment of the centre's key), with its
alarm, tenant, vehicle, the plate the ticket went with, deadline, moment and actor; and, once the
gateway's receipt said so, the platform it was sent to. An answer is taken only for a supervision
of that id in the answer's tenant whose plate is the answer's (and, when the platform it was sent
to is known, from that platform): any other is `unknown` (counted, logged by the caller) — a
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

__all__ = [
    "RESULTS",
    "SUPERVISION_MARK",
    "Supervision",
    "SupervisionAnswer",
    "plate_key",
    "record_answer",
    "record_supervision",
]

SUPERVISION_MARK = "督办"  # the journal comment of a supervision starts with it
RESULTS = {0: "处理中", 1: "已处理完毕", 2: "不作处理", 3: "将来处理"}


def plate_key(plate: str) -> str:
    """A plate as compared: without the dot, spaces and NULs (the 809's padding), upper case."""
    return "".join(c for c in plate if c not in "·. \x00\t").upper()


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
    if row is None or str(row[1]) != plate_key(a.plate) or not row[1]:
        return None
    if row[2] is not None and str(row[2]) != a.platform:
        return None
    return int(row[0])


def record_answer(
    db: StateDB, desk: AlarmDesk, answer: SupervisionAnswer, now: int
) -> AlarmEvent | str:
    """The answer's journal event, or why there is none: `unknown` (no supervision of that id
    in the tenant for that plate and platform), `duplicate` (journaled already)."""
    with db.transaction() as con:
        alarm_id = _supervision(con, answer)
        if alarm_id is None:
            return "unknown"
        actor = f"{answer.platform} (JT/T 809)"
        said = RESULTS.get(answer.result, "结果未知")
        note = f"{SUPERVISION_MARK} #{answer.supervision_id} 应答: {answer.result} {said}"
        again = con.execute(
            "SELECT 1 FROM alarm_events WHERE alarm_id = ? AND kind = 'commented' AND actor = ? "
            "AND comment = ?",
            (alarm_id, actor, note),
        ).fetchone()
    if again is not None:
        return "duplicate"
    return desk.act(alarm_id, "comment", actor=actor, now=now, note=note)
