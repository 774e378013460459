"""The state database's reads for the API's alarm list: the records (dictionaries) say what the
rows say, for every filter; the quick read on the caller's thread says the same or gives up when
the read would be long; version 3 adds the index that lets a tenant's newest alarms be read
without sorting all of them.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alerts.statedb import AlarmFilter, StateDB
from alerts.stateschema import VERSION

TENANTS = ("north", "south")


def fill(db: StateDB, n: int, events: bool = True) -> None:
    """`n` alarms of varied tenant, site, sensor, side, tier, state and lifecycle; events on
    most of them (none on every fifth)."""
    with db.transaction() as con:
        for i in range(n):
            active = i % 3 != 0
            alarm_id = db.insert_alarm(
                con,
                {
                    "tenant": TENANTS[i % 2],
                    "site": f"site-{i % 3}",
                    "device": "d",
                    "sensor": f"s{i % 7}",
                    "rule": "r",
                    "side": i % 4,
                    "level": 1 + i % 2,
                    "level_name": "alarm",
                    "tier": ("yellow", "orange", "red")[i % 3],
                    "action": "",
                    "state": "active" if active and i >= n - 7 else "cleared",
                    "started_ts": 1000 + i,
                    "ended_ts": None if active else 2000 + i,
                    "raised_at": 1000 + i,
                    "cleared_at": None if active else 2000 + i,
                    "peak_level": 2,
                    "last_ts": 1000 + i,
                    "value": None if i % 11 == 0 else i / 3,
                    "acked": i % 2,
                    "isa_state": ("unack", "ack", "normal", "rtn_unack")[i % 4],
                    "disposal": ("received", "verified", "closed")[i % 3],
                },
            )
            for k in range(i % 5 if events else 0):
                db.insert_event(
                    con,
                    alarm_id,
                    "raised" if k == 0 else "comment",
                    1000 + i + k,
                    1000 + i,
                    1,
                    "alarm",
                    "yellow",
                    None if k else i / 3,
                    "unack",
                    actor=None if k == 0 else "op",
                    comment="" if k == 0 else f"note {k}",
                )


CASES: list[dict[str, Any]] = [
    {},
    {"limit": 3},
    {"before_id": 10, "limit": 4},
    {"state": "active"},
    {"state": "cleared", "site": "site-1"},
    {"sensor": "s3"},
    {"isa_state": ["unack", "rtn_unack"]},
    {"tier": ["red"], "side": 2},
    {"disposal": "closed"},
    {"open_only": True},
    {"open_only": True, "tier": ["orange", "yellow"], "limit": 1000},
]


def as_records(db: StateDB, tenants: list[str] | None, **kw: Any) -> Any:
    rows = db.list_alarms(tenants, **kw)
    events = db.alarm_events([r.id for r in rows])
    return (
        [dataclasses.asdict(r) for r in rows],
        {i: [dataclasses.asdict(e) for e in evs] for i, evs in events.items()},
    )


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("tenants", [None, ["north"], ["north", "south"], []])
def test_records_say_what_the_rows_say(
    tmp_path: Path, kw: dict[str, Any], tenants: list[str] | None
) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        fill(db, 40)
        want = as_records(db, tenants, **kw)
        filters = {k: v for k, v in kw.items() if k != "limit"}
        where, limit = AlarmFilter(tenants, **filters), kw.get("limit", 100)
        assert db.list_alarm_records(where, limit) == want
        assert db.quick_alarm_records(where, limit) == want
    finally:
        db.close()


def test_a_long_quick_read_gives_up_and_the_thread_read_answers(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db", quick_steps=20_000)
    try:
        fill(db, 12_000, events=False)
        # no index on the site: SQLite walks every alarm to find none
        nowhere = AlarmFilter(None, site="nowhere")
        assert db.quick_alarm_records(nowhere) is None
        assert db.list_alarm_records(nowhere) == ([], {})
        # a tenant's newest alarms walk the index and stop at the limit: quick
        north = AlarmFilter(["north"])
        assert db.quick_alarm_records(north, 100) == db.list_alarm_records(north, 100)
        db.quick_steps = 0
        assert db.quick_alarm_records(north, 1) is None
    finally:
        db.close()


def test_version_2_gets_the_tenant_index_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = StateDB(path)
    fill(db, 10)
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of version 2 left it
        con.execute("DROP INDEX alarms_tenant_id")
        con.execute("PRAGMA user_version = 2")
    con.close()
    for _ in range(2):  # a second open changes nothing
        db = StateDB(path)
        try:
            plan = db.query(
                "EXPLAIN QUERY PLAN SELECT id FROM alarms WHERE tenant IN (?) "
                "ORDER BY id DESC LIMIT ?",
                ("north", 3),
            )
            assert any("alarms_tenant_id" in str(p[3]) for p in plan), plan
            assert not any("TEMP B-TREE" in str(p[3]) for p in plan), plan
            assert db.query("PRAGMA user_version") == [(VERSION,)]
            assert len(db.list_alarms(None)) == 10
        finally:
            db.close()


def test_a_batch_names_its_rows_ahead_and_skips_a_process_event_already_recorded(
    tmp_path: Path,
) -> None:
    """`next_ids` numbers past every id given (also after the newest rows are gone, as
    AUTOINCREMENT does); `write_alarms` writes a batch together and returns the ids of the
    process events a retried batch already had."""
    from alerts.statedb import ALARM_COLUMNS

    db = StateDB(tmp_path / "s.db")
    fill(db, 6)
    with db.transaction() as con:
        top = con.execute("SELECT MAX(id) FROM alarm_events").fetchone()[0]
        con.execute("DELETE FROM alarm_events WHERE id = ?", (top,))
        alarm_id, event_id = db.next_ids(con)
        assert alarm_id == 7 and event_id == top + 1
        row = dict.fromkeys(ALARM_COLUMNS)
        row.update(
            id=alarm_id, tenant="north", site="s", device="d", sensor="x", rule="r", side=0,
            level=1, level_name="l1", tier="red", action="", state="active", started_ts=5,
            raised_at=6, peak_level=1, last_ts=5, acked=0, suppressed=0, out_of_service=0,
            disposal="received", overdue=0, isa_state="unack", gateway="", centre_acked=0,
        )  # fmt: skip
        event = (event_id, alarm_id, "raised", 5, 6, 1, "l1", "red", None, None, "", "unack")
        assert db.write_alarms(con, [], [list(row.values())], [event]) == set()
        again = (event_id + 1, *event[1:])  # the same raise, a retried batch
        comment = (event_id + 2, alarm_id, "commented", 5, 7, 1, "l1", "red", None, "op", "x", "")
        assert db.write_alarms(con, [], [], [again, comment]) == {event_id + 1}
        assert db.next_ids(con) == (alarm_id + 1, event_id + 3)
    assert db.get_alarm(alarm_id) is not None
    db.close()


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_runs(tmp_path: Path) -> None:
    """A COMMIT that fails (here a deferred foreign key; in the field SQLITE_BUSY or a full
    disk) raises AlarmStoreError, leaves nothing written, and does not leave the transaction
    open: before, every later BEGIN failed with 'cannot start a transaction within a
    transaction' and the alarm book was stuck until a restart."""
    from alerts.errors import AlarmStoreError

    db = StateDB(tmp_path / "state.db")
    fill(db, 3)
    before = db.query("SELECT COUNT(*) FROM alarm_events")[0][0]
    with pytest.raises(AlarmStoreError, match="FOREIGN KEY"), db.transaction() as con:
        con.execute("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT
        con.execute(
            "INSERT INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, tier) "
            "VALUES (999999, 'raised', 1, 1, 1, 'alarm', 'red')"
        )
    assert db.query("SELECT COUNT(*) FROM alarm_events")[0][0] == before
    with db.transaction() as con:  # the next transaction runs
        con.execute("INSERT INTO notify_cursor (name, last_id) VALUES ('after', 7)")
    assert db.query("SELECT last_id FROM notify_cursor WHERE name = 'after'") == [(7,)]
    db.close()


def test_a_shelve_of_before_schema_5_holds_no_level_above_its_points_alarms(tmp_path: Path) -> None:
    """Shelves of a schema-4 file had no level, and held every level until they ended (up to 7
    days: helper-97): the migration gives each the highest level its point's shelved alarms
    reached; one whose point has none shelved keeps none."""
    path = tmp_path / "state.db"
    db = StateDB(path)
    base = {
        "tenant": "t", "site": "s", "device": "d", "rule": "r", "side": 0, "level_name": "alarm",
        "tier": "yellow", "action": "", "state": "cleared", "started_ts": 1, "ended_ts": 2,
        "raised_at": 1, "cleared_at": 2, "last_ts": 2, "value": 1.1, "acked": 0,
        "isa_state": "shelved", "disposal": "received", "shelved_until": 10**13,
    }  # fmt: skip
    with db.transaction() as con:
        db.insert_alarm(con, {**base, "sensor": "ch4", "level": 1, "peak_level": 1})
        db.insert_alarm(con, {**base, "sensor": "ch4", "level": 2, "peak_level": 2})
        db.insert_alarm(con, {**base, "sensor": "co", "level": 1, "peak_level": 1})
        db.insert_alarm(con, {**base, "sensor": "co", "level": 2, "peak_level": 2,
                              "shelved_until": None, "isa_state": "rtn_unack"})  # fmt: skip
        for sensor in ("ch4", "co", "o2"):
            db.set_shelf(con, (sensor, "r", 0), 10**13, "op", "chatter", 1)
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of schema 4 left it
        con.execute("ALTER TABLE shelves DROP COLUMN level")
        con.execute("PRAGMA user_version = 4")
    con.close()
    db = StateDB(path)
    try:
        got = dict(db.query("SELECT sensor, level FROM shelves ORDER BY sensor"))
        assert got == {"ch4": 2, "co": 1, "o2": None}
        assert db.query("PRAGMA user_version") == [(VERSION,)]
    finally:
        db.close()


def test_a_point_shelved_again_for_an_older_lower_alarm_keeps_the_higher_level(
    tmp_path: Path,
) -> None:
    """The live red shelved, then an old yellow of the same point shelved for longer: the point's
    shelve took the yellow's level and the red's own shelve ended at its next return to red
    (helper-97). While in force, a shelve keeps the higher level; the later end wins."""
    db = StateDB(tmp_path / "state.db")
    try:
        with db.transaction() as con:
            db.set_shelf(con, ("ch4", "r", 0), 5_000, "op", "red chatter", 1_000, level=2)
            db.set_shelf(con, ("ch4", "r", 0), 9_000, "op2", "old yellow", 2_000, level=1)
            (shelf,) = db.shelves(con, 2_500).values()
            assert (shelf.until, shelf.level, shelf.actor) == (9_000, 2, "op2")
            # one that had ended: the new level alone
            db.set_shelf(con, ("co", "r", 0), 3_000, "op", "x", 1_000, level=2)
            db.set_shelf(con, ("co", "r", 0), 9_000, "op", "y", 4_000, level=1)
            assert db.shelves(con, 4_500)[("co", "r", 0)].level == 1
    finally:
        db.close()


def test_version_7_moves_the_data_lost_alarms_and_shelves_off_the_new_core_side(
    tmp_path: Path,
) -> None:
    """A gateway's data-lost alarms were side 8 until the core's 'maintenance' took it: a file of
    version 6 gets them (and their shelves) renumbered once, so that the alarm list's
    `kind=data_lost` still finds them and a restart does not take them for the core's."""
    from alerts.table import DATA_LOST, MAINTENANCE, kind_name

    path = tmp_path / "state.db"
    db = StateDB(path)
    fill(db, 4)
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of version 6 left it: a data-lost alarm, shelved
        con.execute("UPDATE alarms SET side = 8 WHERE id = 1")
        con.execute(
            "INSERT INTO shelves (sensor, rule, side, until, actor, reason, at, level) "
            "SELECT sensor, rule, 8, 99999, 'op', 'spool full', 1, 1 FROM alarms WHERE id = 1"
        )
        con.execute("PRAGMA user_version = 6")
    con.close()
    assert (DATA_LOST, MAINTENANCE) == (15, 8) and kind_name(DATA_LOST) == "data_lost"
    for _ in range(2):  # a second open changes nothing
        db = StateDB(path)
        try:
            assert db.query("PRAGMA user_version") == [(VERSION,)]
            assert db.query("SELECT side FROM alarms WHERE id = 1") == [(DATA_LOST,)]
            assert db.query("SELECT side FROM shelves") == [(DATA_LOST,)]
            assert db.query("SELECT count(*) FROM alarms WHERE side = 8") == [(0,)]
        finally:
            db.close()


@pytest.mark.parametrize("column", [False, True])
def test_version_8_adds_when_a_disposal_step_counts_from(tmp_path: Path, column: bool) -> None:
    """The centre's review counts its deadline from the enterprise's submission, and a return
    the next steps from the return: `disposal_from`, NULL for the alarms of before (their
    deadlines from the raise, as they were). A file of version 7 gets the column once; one
    set back to 7 that has it (`column`) keeps it."""
    path = tmp_path / "state.db"
    db = StateDB(path)
    fill(db, 4)
    with db.transaction() as con:
        db.update_alarm(con, 1, {"disposal_from": 5_000})
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of version 7 left it
        if not column:
            con.execute("ALTER TABLE alarms DROP COLUMN disposal_from")
        con.execute("PRAGMA user_version = 7")
    con.close()
    for _ in range(2):  # a second open changes nothing
        db = StateDB(path)
        try:
            assert db.query("PRAGMA user_version") == [(VERSION,)]
            got = db.query("SELECT id, disposal_from FROM alarms ORDER BY id")
            first = 5_000 if column else None
            assert got == [(1, first), (2, None), (3, None), (4, None)]
            row = db.get_alarm(2)
            assert row is not None and row.disposal_from is None
        finally:
            db.close()


@pytest.mark.parametrize("column", [False, True])
def test_version_9_gives_the_centre_the_acknowledgement_each_alarm_had(
    tmp_path: Path, column: bool
) -> None:
    """The centre acknowledges apart from the enterprise (`centre_acked`): a file of version 8
    gets the column once, each alarm with the acknowledgement it had, so that no alarm
    acknowledged before the upgrade starts repeating to the centre. One set back to 8 that has
    the column (`column`) keeps what it says."""
    path = tmp_path / "state.db"
    db = StateDB(path)
    fill(db, 4)
    with db.transaction() as con:
        db.update_alarm(con, 1, {"acked": 1})
        db.update_alarm(con, 2, {"acked": 0})
        db.update_alarm(con, 3, {"acked": 1, "centre_acked": 0})
        db.update_alarm(con, 4, {"acked": 0, "centre_acked": 1})
    db.close()
    with sqlite3.connect(path) as con:  # as a hub of version 8 left it
        if not column:
            con.execute("ALTER TABLE alarms DROP COLUMN centre_acked")
        con.execute("PRAGMA user_version = 8")
    con.close()
    for _ in range(2):  # a second open changes nothing
        db = StateDB(path)
        try:
            assert db.query("PRAGMA user_version") == [(VERSION,)] == [(12,)]
            got = db.query("SELECT id, acked, centre_acked FROM alarms ORDER BY id")
            if column:
                assert got == [(1, 1, 0), (2, 0, 0), (3, 1, 0), (4, 0, 1)]
            else:
                assert got == [(1, 1, 1), (2, 0, 0), (3, 1, 1), (4, 0, 0)]
            rows = [db.get_alarm(i) for i in (1, 2, 3, 4)]
            assert [(int(r.acked), int(r.centre_acked)) for r in rows if r] == [g[1:] for g in got]
            assert all(r is not None and r.lifecycle.centre_acked == r.centre_acked for r in rows)
        finally:
            db.close()
