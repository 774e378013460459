"""What became of the centre's 督办 (`alarm_supervisions`, schema 12): the gateway's receipts and
the platform's answers recorded on the supervision's row once (the same MQTT message twice
changes nothing), the hub's clock marking one unanswered past its deadline overdue once (also
after a restart, and at the first tick of a hub that was down past it), an answer after that
recorded as late; and a file of schema 11 upgraded in place from its alarms' journals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_api_alarms import CHEM, Hub, now_ms, opened

from alerts.statedb import StateDB
from alerts.stateschema import VERSION
from alerts.supervisionanswers import (
    LATE,
    Supervision,
    SupervisionAnswer,
    record_answer,
    record_supervision,
)
from alerts.supervisionstate import SupervisionDeadlines, get_supervision, overdue_note
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics

HOUR = 3_600_000


def supervise(hub: Hub, alarm_id: int, deadline: int, at: int) -> int:
    """A 督办 of `alarm_id` as `api.alarmsupervise` records it: its journal event, its row."""
    ev = hub.desk.act(alarm_id, "comment", actor="op", now=at, note="督办 (一般, 截止 x)")
    record_supervision(
        hub.db,
        Supervision(ev.event_id, alarm_id, CHEM, "tanker-01", "苏A·D1234", deadline, at, "op"),
    )
    return ev.event_id


def receipt(sid: int, what: str, link: str = "") -> SupervisionAnswer:
    return SupervisionAnswer(CHEM, "jt809", sid, 0, "acme-gps", "", what, link)


def answer(sid: int, result: int) -> SupervisionAnswer:
    return SupervisionAnswer(CHEM, "jt809", sid, result, "acme-gps", "苏AD1234")


def journal(hub: Hub, alarm_id: int) -> list[tuple[str | None, str]]:
    rows = hub.db.query(
        "SELECT actor, comment FROM alarm_events WHERE alarm_id = ? AND kind = 'commented' "
        "ORDER BY id",
        (alarm_id,),
    )
    return [(r[0], r[1]) for r in rows]


async def test_receipts_and_answers_are_recorded_on_the_row_once(tmp_path: Path) -> None:
    async with opened(tmp_path) as hub:
        t = now_ms()
        alarm = hub.raise_alarm("tanker-01.speed", 90)
        sid = supervise(hub, alarm, t + HOUR, t)
        s = get_supervision(hub.db, sid)
        assert s is not None and (s.status, s.receipt, s.answered_at) == ("open", None, None)

        assert not isinstance(record_answer(hub.db, hub.desk, receipt(sid, "kept"), t + 1), str)
        sent = receipt(sid, "sent", "main")
        assert not isinstance(record_answer(hub.db, hub.desk, sent, t + 2), str)
        assert record_answer(hub.db, hub.desk, sent, t + 3) == "duplicate"
        s = get_supervision(hub.db, sid)
        assert s is not None
        assert (s.receipt, s.receipt_at, s.platform, s.status) == (
            "sent",
            t + 2,
            "acme-gps",
            "open",
        )

        assert not isinstance(record_answer(hub.db, hub.desk, answer(sid, 0), t + 10), str)
        assert not isinstance(record_answer(hub.db, hub.desk, answer(sid, 1), t + 20), str)
        # the first answer delivered again: journaled already, nothing changes
        assert record_answer(hub.db, hub.desk, answer(sid, 0), t + 30) == "duplicate"
        s = get_supervision(hub.db, sid)
        assert s is not None
        assert (s.status, s.late, s.answered_at) == ("answered", False, t + 10)
        assert (s.result, s.result_text, s.result_at, s.answer_platform) == (
            1, "已处理完毕", t + 20, "acme-gps",
        )  # fmt: skip
        assert [c for a, c in journal(hub, alarm) if a == "acme-gps (JT/T 809)"] == [
            f"督办 #{sid} 应答: 0 处理中",
            f"督办 #{sid} 应答: 1 已处理完毕",
        ]


async def test_the_clock_marks_an_unanswered_supervision_overdue_once(tmp_path: Path) -> None:
    async with opened(tmp_path) as hub:
        t = now_ms()
        alarm = hub.raise_alarm("tanker-01.speed", 90)
        late = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)  # past, unanswered
        lost = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)  # past, never delivered
        record_answer(hub.db, hub.desk, receipt(lost, "no_platform"), t - 2 * HOUR + 5)
        done = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)  # past, answered in time
        record_answer(hub.db, hub.desk, answer(done, 1), t - 2 * HOUR + 9)
        ahead = supervise(hub, alarm, t + HOUR, t)  # not due

        metrics = Metrics()
        d = Dispatcher(hub.reg, hub.store, hub.db, metrics)
        events = await d.tick(t)  # (the first tick of a hub that was down past the deadline)
        said = [e for e in events if e.actor == "hub"]
        assert [e.comment for e in said] == [overdue_note(late, t - HOUR)]
        assert said[0].comment.startswith(f"督办 #{late} 超期未应答")
        assert metrics.get("hazardhub_supervisions_overdue_total") == 1
        states = {s: get_supervision(hub.db, s) for s in (late, lost, done, ahead)}
        assert {s: (x.status if x else None) for s, x in states.items()} == {
            late: "overdue", lost: "undelivered", done: "answered", ahead: "open",
        }  # fmt: skip
        marked = states[late]
        assert marked is not None and marked.overdue_at == t

        # once: later ticks, and a restarted hub, mark and journal nothing more
        assert [e for e in await d.tick(t + 1000) if e.actor == "hub"] == []
        again = Dispatcher(hub.reg, hub.store, hub.db, Metrics())
        assert [e for e in await again.tick(t + 2000) if e.actor == "hub"] == []
        overdue = [c for a, c in journal(hub, alarm) if a == "hub"]
        assert overdue == [overdue_note(late, t - HOUR)]
        assert metrics.get("hazardhub_supervisions_overdue_total") == 1

        # an answer after it: recorded, said late
        got = record_answer(hub.db, hub.desk, answer(late, 1), t + 5000)
        assert not isinstance(got, str) and got.comment.endswith(LATE)
        s = get_supervision(hub.db, late)
        assert s is not None and (s.status, s.late, s.overdue_at) == ("answered", True, t)
        assert record_answer(hub.db, hub.desk, answer(late, 1), t + 6000) == "duplicate"


async def test_a_journal_line_written_before_a_crash_is_not_written_again(
    tmp_path: Path,
) -> None:
    """The clock journals, then marks: a hub stopped between the two finds the line at its
    next start and only marks the supervision."""
    async with opened(tmp_path) as hub:
        t = now_ms()
        alarm = hub.raise_alarm("tanker-01.speed", 90)
        sid = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)
        hub.desk.act(alarm, "comment", actor="hub", now=t - 10, note=overdue_note(sid, t - HOUR))
        assert SupervisionDeadlines(hub.db, hub.desk).step(t) == []
        s = get_supervision(hub.db, sid)
        assert s is not None and s.overdue_at == t
        assert [c for a, c in journal(hub, alarm) if a == "hub"] == [overdue_note(sid, t - HOUR)]


def test_version_12_reads_what_the_journals_said_of_the_supervisions_of_before(
    tmp_path: Path,
) -> None:
    """A file of schema 11 (supervisions with their receipts and answers on their alarms'
    journals only) gets the columns once, filled from the journals: the last receipt, the
    first and the last answer; the hub's `not_sent` line. A second open changes nothing."""
    path = tmp_path / "state.db"
    db = StateDB(path)
    with db.transaction() as con:
        alarm = db.insert_alarm(
            con,
            {
                "tenant": CHEM, "site": "vehicles", "device": "tanker-01",
                "sensor": "tanker-01.speed", "rule": "r", "side": 1, "level": 1,
                "level_name": "alarm", "tier": "yellow", "action": "", "state": "active",
                "started_ts": 1000, "ended_ts": None, "raised_at": 1000, "cleared_at": None,
                "peak_level": 1, "last_ts": 1000, "value": 90.0,
            },
        )  # fmt: skip

        def said(ts: int, actor: str, comment: str) -> None:
            con.execute(
                "INSERT INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, tier, "
                "actor, comment) VALUES (?, 'commented', ?, ?, 1, 'alarm', 'yellow', ?, ?)",
                (alarm, ts, ts, actor, comment),
            )

        for sid in (11, 12, 13, 112):
            con.execute(
                "INSERT INTO alarm_supervisions (id, alarm_id, tenant, vehicle, plate, deadline, "
                "created_at, actor) VALUES (?, ?, ?, 'tanker-01', '苏AD1234', 5000, 2000, 'op')",
                (sid, alarm, CHEM),
            )
        gw = "jt809 (JT/T 809 gateway)"
        said(2100, gw, "督办 #11 待发: acme-gps 未登录 (kept for its next login)")
        said(2200, gw, "督办 #11 已发往 acme-gps (sub link)")
        said(2300, "acme-gps (JT/T 809)", "督办 #11 应答: 0 处理中")
        said(6000, "acme-gps (JT/T 809)", "督办 #11 应答: 1 已处理完毕")
        said(2100, gw, "督办 #12 未发出: 无平台 (no platform of the tenant known to serve it)")
        said(2100, "hub", "督办 #13 未发出 (not sent): the hub is not connected")
        said(2400, "acme-gps (JT/T 809)", "督办 #1 应答: 1 已处理完毕")  # (no #112's)
        said(2500, "zhang", "督办 #112 应答: 1 已处理完毕")  # (a key's comment: no answer)
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of version 11 left it
        con.execute("DROP INDEX alarm_supervisions_tenant")
        con.execute("DROP INDEX alarm_supervisions_due")
        for col in ("receipt", "receipt_at", "answered_at", "result", "result_text",
                    "result_at", "answer_platform", "overdue_at"):  # fmt: skip
            con.execute(f"ALTER TABLE alarm_supervisions DROP COLUMN {col}")
        con.execute("PRAGMA user_version = 11")
    con.close()
    for _ in range(2):
        db = StateDB(path)
        try:
            assert db.query("PRAGMA user_version") == [(VERSION,)] == [(12,)]
            got = {
                sid: (
                    s.status,
                    s.receipt,
                    s.receipt_at,
                    s.answered_at,
                    s.result,
                    s.result_text,
                    s.result_at,
                    s.answer_platform,
                    s.late,
                )
                for sid in (11, 12, 13, 112)
                if (s := get_supervision(db, sid)) is not None
            }
            assert got == {
                11: ("answered", "sent", 2200, 2300, 1, "已处理完毕", 6000, "acme-gps", False),
                12: ("undelivered", "no_platform", 2100, None, None, None, None, None, False),
                13: ("undelivered", "not_sent", 2100, None, None, None, None, None, False),
                112: ("open", None, None, None, None, None, None, None, False),
            }
            plan = db.query(
                "EXPLAIN QUERY PLAN SELECT id FROM alarm_supervisions WHERE tenant IN (?) "
                "ORDER BY id DESC LIMIT 5",
                (CHEM,),
            )
            assert any("alarm_supervisions_tenant" in str(p[3]) for p in plan), plan
        finally:
            db.close()
