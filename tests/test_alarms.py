"""Alarms from transitions: raise, escalate, clear, persistence across a restart."""

from __future__ import annotations

import dataclasses
import sqlite3

import numpy as np
import pytest

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, Readings, evaluate
from alerts.statedb import StateDB
from alerts.table import compile_table
from telemetry.config import EarlyWarningSpec, FrozenSpec, RateSpec, VerifySpec

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


def test_calibration_due_is_raised_restored_after_a_restart_and_cleared_by_a_calibration(
    tmp_path,
):
    """The coal-methane pack asks a calibration every 15 days (标校超期): a face sensor read once
    a day from day 0 raises 'calibration_due' (yellow, its value the days since) at day 15.
    The hub restarted without its saved state: the alarm stays (the last calibration taken from
    the alarm, not the next reading), nothing is raised twice, and a calibration clears it."""
    from telemetry.quality import Quality

    day = 86_400_000
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    t1 = reg.sensor("ch4-t1").index
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)

    def read(book, state, days, quality=0):
        n = len(days)
        state, tr, _ = evaluate(
            table,
            state,
            np.full(n, t1, np.int32),
            np.array(days, np.int64) * day,
            np.full(n, 0.3),
            np.full(n, quality, np.uint8),
        )
        return state, book.apply(tr, 5)

    _, events = read(book, CoreState.empty(len(reg.sensors)), list(range(16)))
    assert [(e.kind, e.side, e.level_name, e.tier, e.ts) for e in events] == [
        ("raised", "calibration_due", "calibration_overdue", "yellow", 15 * day)
    ]
    (row,) = db.list_alarms(None, state="active")
    assert row.value == 15.0 and "标校超期" in row.action and "15 天" in row.action
    db.close()
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    state = book.restore(CoreState.empty(len(reg.sensors)))
    assert state.calib_at[t1] == 0
    state, events = read(book, state, [16, 17])
    assert events == []
    state, events = read(book, state, [18], Quality.CALIBRATION)
    assert [(e.kind, e.ts) for e in events] == [("cleared", 18 * day)]
    state, events = read(book, state, [19, 32])
    assert events == []
    assert len(db.list_alarms(None)) == 1


def test_a_message_judged_again_after_a_kill_raises_nothing_twice(tmp_path):
    """helper-150: the hub killed after recording a message's alarms and before acknowledging
    it; the broker delivers it again to a hub whose saved state is older (or none). An alarm it
    raised and cleared was recorded a second time (and notified twice under other idempotency
    keys): the readings up to the latest end of a sensor's alarms were judged, and are late now.
    An end that is not a reading's (a configuration change's, at its arrival) moves nothing."""
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    t0 = reg.sensor("ch4-t0").index
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    arrival = 10**12
    message = (t0, [1.3, 0.4, 0.3])
    state, events = feed(book, table, CoreState.empty(len(reg.sensors)), *message, arrival=arrival)
    assert [e.kind for e in events] == ["raised", "cleared"]
    db.close()
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    state = book.restore(CoreState.empty(len(reg.sensors)))
    assert (state.last_ts[t0], state.last_data[t0]) == (2_000, 2_000)
    state, events = feed(book, table, state, *message, arrival=arrival + 1)
    assert events == []
    assert len(db.list_alarms(None)) == 1
    # the next excursion is judged as ever
    state, events = feed(book, table, state, t0, [1.2], t0=4_000, arrival=arrival + 2)
    assert [e.kind for e in events] == ["raised"]
    # an alarm a configuration change retired (ended at its arrival) says nothing of readings
    (retired,) = book.retire(arrival + 3, {"ch4-t0"})
    assert retired.kind == "cleared"
    db.close()
    db = StateDB(tmp_path / "state.db")
    state = AlarmBook(db, reg, table).restore(CoreState.empty(len(reg.sensors)))
    assert state.last_ts[t0] == 2_000
    db.close()


def test_the_state_database_is_on_disk_before_a_commit_returns(tmp_path):
    """An alarm recorded goes to disk before the hub acknowledges its message (synchronous FULL:
    NORMAL may lose the last commits at a power cut, helper-150; a power cut is not simulated
    here); a dead letter's commit alone does not wait for the disk, and leaves it FULL."""
    db = StateDB(tmp_path / "state.db")
    sync = db._db.execute("PRAGMA synchronous").fetchone()[0]
    assert sync == 2  # FULL
    db.add_dead_letter(1, "telemetry", "a/b", "decode_error: bad magic", b"x")
    assert db._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    db.close()


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


def test_a_batch_the_store_refused_keeps_every_payload(tmp_path):
    """A letter like one kept in the hour before is counted on it, its payload not kept (a
    flood); a batch the store refused for its own data is the only copy of its readings: each
    is kept (helper-153)."""
    db = StateDB(tmp_path / "state.db")
    for i in range(3):
        db.add_dead_letter(i, "telemetry", "a/b", "decode_error: bad magic", b"x%d" % i)
        db.add_dead_letter(i, "telemetry", "a/b", "store_refused: field type conflict", b"r%d" % i)
    letters = db.dead_letters()
    refused = sorted(d.payload for d in letters if d.reason.startswith("store_refused"))
    assert refused == [b"r0", b"r1", b"r2"]
    (bad,) = [d for d in letters if d.reason.startswith("decode_error")]
    assert (bad.payload, bad.repeats) == (b"x0", 2)
    db.close()


@pytest.mark.parametrize("limit", ["rows", "bytes"])
def test_dead_letters_keep_the_newest_within_their_limits(tmp_path, limit):
    """A client sending garbage cannot fill the disk: beyond the kept number of letters or
    bytes of payload, the oldest go (down to 90 % of the limit), counted; across a reopen too."""
    rows, size = (10, 10**9) if limit == "rows" else (10**6, 1000)

    def open_db() -> StateDB:
        return StateDB(
            tmp_path / "state.db",
            max_dead_letter_bytes=100,
            dead_letters_kept=rows,
            dead_letters_kept_bytes=size,
        )

    db = open_db()
    pruned = [db.add_dead_letter(i, "telemetry", "a/b", f"bad {i}", b"x" * 150) for i in range(15)]
    db.close()
    db = open_db()  # the counts are read again from the file
    pruned += [
        db.add_dead_letter(i, "telemetry", "a/b", f"bad {i}", b"x" * 150) for i in range(15, 30)
    ]
    kept = db.dead_letters(limit=1000)
    # 100 bytes kept of each: either limit holds 10 of them; pruned down to 9, then filled again
    assert 9 <= len(kept) <= 10
    assert sum(len(d.payload) for d in kept) <= 1000
    assert [d.at for d in kept] == list(range(29, 29 - len(kept), -1))  # the newest
    assert sum(pruned) == 30 - len(kept)
    assert all(d.size == 150 and len(d.payload) == 100 for d in kept)
    db.close()


def feed_batch(book, table, state, sensors, ts, values, qualities, now, arrival=5):
    batch = Readings(
        np.asarray(sensors, np.int32),
        np.asarray(ts, np.int64),
        np.asarray(values, float),
        np.asarray(qualities, np.uint8),
    )
    state, tr, _ = evaluate(table, batch, state, now)
    return state, book.apply(tr, arrival)


def test_fault_no_data_and_power_cut_failed_are_alarms_of_their_own_kind(tmp_path):
    reg = mine_registry(1502, 1.0)
    # the face T1 sensor with a feed verification (2 s) and a 10 s no-data timeout
    t1 = reg.sensor("ch4-t1")
    feed_s = reg.sensor("feed")
    sensors = list(reg.sensors)
    sensors[t1.index] = dataclasses.replace(
        t1, no_data_s=10, verify=VerifySpec(sensor="feed", expect_below=0.5, within_s=2)
    )
    table = compile_table(sensors)
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    state = CoreState.empty(len(sensors))
    i, f = t1.index, feed_s.index
    # methane to the power-cut level at 1 s, the feed stays on: 'action_failed' at 3 s
    state, events = feed_batch(
        book, table, state, [i, f, i, f], [1000, 1000, 3500, 3500], [1.6, 1, 1.6, 1], [0] * 4, 3600
    )
    kinds = [(e.kind, e.side, e.level_name, e.tier, e.ts) for e in events]
    assert kinds == [
        ("raised", "above", "power_cut", "red", 1000),
        ("raised", "action_failed", "action_failed", "red", 3000),
    ]
    # a sensor fault is not a process alarm; silence raises no data
    state, events = feed_batch(book, table, state, [i], [4000], [float("nan")], [1], 4100)
    assert [(e.kind, e.side) for e in events] == [("raised", "fault")]
    state, events = feed_batch(book, table, state, [], [], [], [], 14_001)
    assert [(e.kind, e.side, e.ts, e.to_json()["value"]) for e in events] == [
        ("raised", "no_data", 14_000, None)
    ]
    assert len(db.list_alarms(None, state="active")) == 4
    db.close()

    # restart: nothing is raised twice, and good data clears fault and no data
    db2 = StateDB(tmp_path / "state.db")
    book2 = AlarmBook(db2, reg, table)
    state = book2.restore(CoreState.empty(len(sensors)))
    state, events = feed_batch(book2, table, state, [], [], [], [], 20_000)
    assert events == []
    state, events = feed_batch(
        book2, table, state, [i, f], [21_000, 21_000], [1.2, 0], [0, 0], 21_100
    )
    assert sorted((e.kind, e.side) for e in events) == [
        ("cleared", "action_failed"),
        ("cleared", "fault"),
        ("cleared", "no_data"),
    ]
    state, events = feed_batch(book2, table, state, [i], [22_000], [0.5], [0], 22_100)
    assert [(e.kind, e.side) for e in events] == [("cleared", "above")]
    assert db2.list_alarms(None, state="active") == []


def _book_with(tmp_path, sensor_id, **options):
    """The mine's alarm book with one sensor's rules given `options` (a rate of rise, a frozen
    check ...): (registry, sensors, table, state database, book, the sensor's index)."""
    reg = mine_registry(1502, 1.0)
    info = reg.sensor(sensor_id)
    sensors = list(reg.sensors)
    sensors[info.index] = dataclasses.replace(info, **options)
    table = compile_table(sensors)
    db = StateDB(tmp_path / "state.db")
    return reg, sensors, table, db, AlarmBook(db, reg, table), info.index


def test_rate_and_early_warning_are_alarms_of_their_own_kind_and_survive_a_restart(tmp_path):
    reg, sensors, table, db, book, i = _book_with(
        tmp_path,
        "ch4-t1",
        rate=RateSpec(per_min=0.3, window_s=60, tier="orange"),
        early_warning=EarlyWarningSpec(window_s=60, horizon_s=30),
    )
    # +0.1 %/s: 6 %/min, and 1.0 % within 30 s from 0.75 % on
    ts = [1000, 2000, 3000, 4000]
    batch = Readings(
        np.full(4, i, np.int32), np.asarray(ts, np.int64), np.array([0.6, 0.7, 0.8, 0.9]),
        np.zeros(4, np.uint8),
    )  # fmt: skip
    state, tr, _ = evaluate(table, batch, CoreState.empty(len(sensors)), 4100)
    events = book.apply(tr, 5, state)  # with the core's state, as the hub applies them
    got = [(e.kind, e.side, e.level, e.level_name, e.tier, e.ts) for e in events]
    assert got == [
        ("raised", "rate", 1, "rate_of_rise", "orange", 2000),
        ("raised", "early_warning", 1, "early_warning", "blue", 2000),
    ]
    assert "alarm" in events[1].action
    # the projection as the core made it: 0.1 % a second from 0.7 %, 1.0 % in 3 s (helper-92)
    assert events[1].comment == "预计约 3 s 后达到 alarm 1: projected in about 3 s"
    db.close()
    db2 = StateDB(tmp_path / "state.db")
    book2 = AlarmBook(db2, reg, table)
    state = book2.restore(CoreState.empty(len(sensors)))
    # after the restart the buffers are empty: one reading decides no rate (the alarm stays)
    # and no projection (the warning clears)
    state, events = feed_batch(book2, table, state, [i], [5000], [0.9], [0], 5100)
    assert [(e.kind, e.side) for e in events] == [("cleared", "early_warning")]
    state, events = feed_batch(book2, table, state, [i], [65_000], [0.9], [0], 65_100)
    assert [(e.kind, e.side) for e in events] == [("cleared", "rate")]
    assert db2.list_alarms(None, state="active") == []


def test_a_frozen_alarm_stays_over_a_restart_without_a_state_file(tmp_path):
    """The alarm says when the run of unmoved values made it: after a restart with no saved
    state, the next unmoved reading keeps it (not a run afresh) and the first that moves ends
    it."""
    reg, sensors, table, db, book, i = _book_with(
        tmp_path, "co", frozen=FrozenSpec(after_s=30, band=0.5)
    )
    ts = [1000, 11_000, 21_000, 31_000]
    state, events = feed_batch(
        book, table, CoreState.empty(len(sensors)), [i] * 4, ts, [3, 3.2, 3.1, 3.3], [0] * 4, 31_100
    )
    assert [(e.kind, e.side, e.level_name, e.ts) for e in events] == [
        ("raised", "frozen", "frozen_value", 31_000)
    ]
    db.close()
    db2 = StateDB(tmp_path / "state.db")
    book2 = AlarmBook(db2, reg, table)
    state = book2.restore(CoreState.empty(len(sensors)))
    state, events = feed_batch(book2, table, state, [i], [41_000], [3.3], [0], 41_100)
    assert events == []
    state, events = feed_batch(book2, table, state, [i], [51_000], [5.0], [0], 51_100)
    assert [(e.kind, e.side, e.ts) for e in events] == [("cleared", "frozen", 51_000)]


def test_a_state_database_of_before_the_lifecycle_is_migrated_once(tmp_path):
    """Version 1 had no lifecycle: its cleared alarms become history (normal, disposal closed),
    its active ones wait for an acknowledgement; nothing of it is notified as new."""
    import sqlite3

    from alerts.stateschema import SCHEMA

    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    row = (
        "INSERT INTO alarms (tenant, site, device, sensor, rule, side, level, level_name, "
        "tier, action, state, started_ts, raised_at, peak_level, last_ts) VALUES "
        "('t', 's', 'd', ?, 'r', 0, 1, 'alarm', 'yellow', '', ?, 1, 1, 1, 1)"
    )
    con.execute(row, ("old", "cleared"))
    con.execute(row, ("now", "active"))
    con.execute(
        "INSERT INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, tier) "
        "VALUES (1, 'raised', 1, 1, 1, 'alarm', 'yellow')"
    )
    con.commit()
    con.close()
    for _ in range(2):  # a second open changes nothing
        db = StateDB(path)
        got = {a.sensor: (a.isa_state, a.acked, a.disposal) for a in db.list_alarms(None)}
        assert got == {"old": ("normal", 1, "closed"), "now": ("unack", 0, "received")}
        assert [e.kind for e in db.alarm_events([1])[1]] == ["raised"]
        db.close()


def test_a_state_database_of_a_newer_hub_is_refused(tmp_path):
    import sqlite3

    import pytest

    from alerts.errors import AlarmStoreError
    from alerts.statedb import StateDB

    StateDB(tmp_path / "state.db").close()
    con = sqlite3.connect(tmp_path / "state.db")
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(AlarmStoreError, match="schema 99"):
        StateDB(tmp_path / "state.db")


def test_a_dead_letter_like_the_last_of_its_topic_is_counted_on_it(tmp_path):
    """A deleted sensor's device sending its point twice a second pushed every other dead letter
    out of the kept 10,000 in 1.4 h (helper-91): the same topic, source and reason within the
    hour is counted on the letter kept (`repeats`, `last_at`), not kept again."""
    db = StateDB(tmp_path / "state.db", dead_letters_kept=10)
    flood, other = "hazardhub/v1/t/s/d9/telemetry", "hazardhub/v1/t/s/d1/telemetry"
    said = "unknown_sensor: name sensor keys not configured: ['ch4_t9']"
    db.add_dead_letter(500, "telemetry", other, "decode_error: bad magic", b"evidence")
    for k in range(7200):  # an hour at two a second
        db.add_dead_letter(1000 + 500 * k, "telemetry", flood, said, b"p%d" % k)
    db.add_dead_letter(2000, "telemetry", flood, "decode_error: bad magic", b"other reason")
    letters = db.dead_letters(limit=100)
    assert [(d.topic, d.reason[:12], d.repeats) for d in letters] == [  # by their last
        (flood, "unknown_sens", 7199),
        (flood, "decode_error", 0),
        (other, "decode_error", 0),  # still there
    ]
    assert (letters[0].at, letters[0].last_at, letters[0].payload) == (1000, 3_600_500, b"p0")
    # an hour after the first: a letter of its own (the next hour's evidence), then its repeats
    db.add_dead_letter(3_601_000, "telemetry", flood, said, b"next hour")
    db.add_dead_letter(3_601_500, "telemetry", flood, said, b"next")
    newest = db.dead_letters(limit=1)[0]
    assert (newest.at, newest.repeats, newest.last_at, newest.payload) == (
        3_601_000,
        1,
        3_601_500,
        b"next hour",
    )
    db.close()


def test_dead_letters_of_schema_5_take_repeats(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as con:  # as a hub of schema 5 left it
        con.executescript(
            "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
            " source TEXT NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,"
            " payload BLOB NOT NULL, size INTEGER NOT NULL);"
            "INSERT INTO dead_letters (at, source, topic, reason, payload, size)"
            " VALUES (7, 'telemetry', 'a/b', 'decode_error', x'00', 1);"
        )
    con.close()
    db = StateDB(path)
    db.add_dead_letter(8, "telemetry", "a/b", "decode_error", b"\x01")
    (letter,) = db.dead_letters()
    assert (letter.at, letter.repeats, letter.last_at) == (7, 1, 8)
    db.close()


def test_one_tenants_flood_of_dead_letters_pushes_out_its_own_oldest_first(tmp_path):
    """helper-107: 11,000 one-byte messages of acme-chem's gateway under as many device names
    (its ACL lets it name any) pushed north-coal's one dead letter out of the kept 10,000: beyond
    the limits, the oldest letters of the tenant holding most go first."""
    db = StateDB(tmp_path / "state.db", dead_letters_kept=100)
    db.add_dead_letter(
        1, "telemetry", "hazardhub/v1/north-coal/f/kj/telemetry", "x", b"!", "north-coal"
    )
    pruned = 0
    for k in range(1000):
        topic = f"hazardhub/v1/acme-chem/tank-farm/x{k}/telemetry"
        pruned += db.add_dead_letter(
            2 + k, "telemetry", topic, f"unknown_device: x{k}", b"?", "acme-chem"
        )
    kept = db.dead_letters(limit=1000)
    assert [d.at for d in kept if "north-coal" in d.topic] == [1]  # still there
    flood = [d.at for d in kept if "acme-chem" in d.topic]
    assert flood == sorted(flood, reverse=True) and flood[0] == 1001  # its newest kept
    assert len(kept) <= 100 and pruned == 1001 - len(kept)
    db.close()


def test_a_points_flood_of_changes_in_one_batch_is_recorded_as_first_peak_and_last(tmp_path):
    """helper-107: one message of 100,000 readings of one head alternating 60 and 1 %LEL made
    50,000 alarms that held every tenant's judging for minutes. Beyond 16 changes of a point in
    one batch the book records the first, the first at the peak and the last, which says how
    many there were; a few changes are recorded one by one as before."""
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, table)
    t1 = reg.sensor("ch4-t1").index
    values = [1.2, 0.5] * 200  # 400 readings, 400 changes at 1 s
    values[101] = 1.7  # once at the power-cut level
    state, events = feed(book, table, CoreState.empty(len(reg.sensors)), t1, values)
    assert [(e.kind, e.level_name) for e in events] == [
        ("raised", "alarm"),
        ("escalated", "power_cut"),
        ("cleared", "normal"),
    ]
    assert events[-1].comment.startswith("抖动 chattering: 399 changes of this point in one batch")
    assert len(db.list_alarms(None)) == 1
    # a few are recorded one by one
    state, events = feed(book, table, state, t1, [1.2, 0.5] * 3, t0=1_000_000)
    assert [e.kind for e in events] == ["raised", "cleared"] * 3
    db.close()
