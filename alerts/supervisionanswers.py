"""A lower platform's answer to the centre's alarm supervision (报警督办应答, JT/T 809 0x1401),
journaled on the alarm. The supervision id is the id of the journal event that recorded the
centre's 督办 (`api.alarmsupervise`: a comment starting with 督办), so the answer finds its
alarm by it; an id that is no such event, or an event of another tenant's alarm, is unknown
(counted, logged by the caller). The answer is a comment of the platform's on that alarm
(actor `{platform} (JT/T 809)`), e.g. `督办 #4711 应答: 1 已处理完毕`; the same answer again
(an MQTT message delivered twice) is journaled once."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmDesk
from alerts.statedb import StateDB

__all__ = ["RESULTS", "SUPERVISION_MARK", "SupervisionAnswer", "record_answer"]

SUPERVISION_MARK = "督办"  # the journal comment of a supervision starts with it
RESULTS = {0: "处理中", 1: "已处理完毕", 2: "不作处理", 3: "将来处理"}


@dataclass(frozen=True, slots=True)
class SupervisionAnswer:
    tenant: str
    gateway: str
    supervision_id: int
    result: int
    platform: str
    plate: str = ""


def record_answer(
    db: StateDB, desk: AlarmDesk, answer: SupervisionAnswer, now: int
) -> AlarmEvent | str:
    """The answer's journal event, or why there is none: `unknown` (no supervision of that id
    in the tenant), `duplicate` (journaled already)."""
    with db.transaction() as con:
        row = con.execute(
            "SELECT e.alarm_id, e.comment FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
            "WHERE e.id = ? AND e.kind = 'commented' AND a.tenant = ?",
            (answer.supervision_id, answer.tenant),
        ).fetchone()
        if row is None or not str(row[1] or "").startswith(SUPERVISION_MARK):
            return "unknown"
        alarm_id = int(row[0])
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
