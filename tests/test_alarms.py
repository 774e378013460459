"""Alarms from transitions: raise, escalate, clear, persistence across a restart."""

from __future__ import annotations

import numpy as np

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, evaluate
from alerts.statedb import StateDB
from alerts.table import compile_table

from e2e_helpers import mine_registry


def feed(book, table, state, sensor, values, t0=1_000, arrival=5):
    n = len(values)
    state, tr, _ = evaluate(
        table,
        state,
        np.full(n, sensor, np.int32),
        t0 + np.arange(n, dtype=np.int64) * 1000,
        np.array(values, float),
        np.zeros(n, np.uint8),
    )
    return state, book.apply(tr, arrival)


def test_alarm_lifecycle_and_one_active_alarm_per_sensor(tmp_path):
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    t1 = reg.sensor("ch4-t1").index
    state, events = feed(
        book, table, CoreState.empty(len(reg.sensors)), t1, [0.3, 1.1, 1.6, 1.2, 0.8]
    )
    assert [(e.kind, e.level_name, e.tier) for e in events] == [
        ("raised", "alarm", "yellow"),
        ("escalated", "power_cut", "red"),
        ("cleared", "normal", "none"),
    ]
    assert events[0].ts == 2_000 and events[-1].ts == 5_000
    rows = db.list_alarms(None)
    assert len(rows) == 1
    row = rows[0]
    assert (row.state, row.started_ts, row.ended_ts, row.peak_level) == ("cleared", 2_000, 5_000, 2)
    assert row.level_name == "power_cut"  # the last level it had
    assert [e.kind for e in db.alarm_events([row.id])[row.id]] == ["raised", "escalated", "cleared"]
    # a second excursion is a new alarm
    state, events = feed(book, table, state, t1, [1.3], t0=10_000)
    assert events[0].kind == "raised" and events[0].alarm_id != row.id
    assert len(db.list_alarms(None, state="active")) == 1


def test_restart_restores_active_alarms_and_raises_nothing_twice(tmp_path):
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    t1 = reg.sensor("ch4-t1").index
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    feed(book, table, CoreState.empty(len(reg.sensors)), t1, [1.6])
    db.close()

    db2 = StateDB(tmp_path / "state.db")
    book2 = AlarmBook(db2, reg, table)
    state = book2.restore(CoreState.empty(len(reg.sensors)))
    assert state.level[t1, 0] == 2
    # the same reading replayed (at-least-once) is late and changes nothing
    state, events = feed(book2, table, state, t1, [1.6])
    assert events == []
    state, events = feed(book2, table, state, t1, [1.7, 0.5], t0=20_000)
    assert [e.kind for e in events] == ["cleared"]
    assert len(db2.list_alarms(None)) == 1


def test_tenant_scoping_of_alarm_queries(tmp_path):
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    feed(book, table, CoreState.empty(len(reg.sensors)), reg.sensor("ch4-t0").index, [2.0])
    assert len(db.list_alarms(["north-coal"])) == 1
    assert db.list_alarms(["acme-chem"]) == []
    assert db.list_alarms([]) == []


def test_dead_letters_keep_reason_and_bounded_payload(tmp_path):
    db = StateDB(tmp_path / "state.db", max_dead_letter_bytes=8)
    db.add_dead_letter(1, "telemetry", "a/b", "decode_error: bad magic", b"0123456789")
    (dl,) = db.dead_letters()
    assert dl.reason == "decode_error: bad magic"
    assert dl.payload == b"01234567" and dl.size == 10
