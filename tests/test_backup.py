"""`hazardhub backup`: a consistent copy of a running hub's data folder (helper-149: while the hub
runs, state.db holds a few pages and the rest is in state.db-wal; a copy of state.db alone opened
with no tables)."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, evaluate
from alerts.notify.outboxdb import OutboxDB, outbox_path
from alerts.statedb import StateDB
from alerts.table import compile_table
from api.registrydb import RegistryDB
from gateway.jt808.bindings import BINDINGS_FILE, Bindings, Terminal
from gateway.jt808.directory import VehicleRef
from hazardhub.cli import main
from hazardhub.private import keep_private

from e2e_helpers import mine_registry


def feed(book, table, state, sensor, values, t0=1_000):
    """Readings of one sensor a second apart, judged and recorded (as tests/test_alarms.py)."""
    n = len(values)
    state, tr, _ = evaluate(
        table,
        state,
        np.full(n, sensor, np.int32),
        t0 + np.arange(n, dtype=np.int64) * 1000,
        np.array(values, float),
        np.zeros(n, np.uint8),
    )
    return state, book.apply(tr, 5)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _count(path: Path, sql: str) -> int:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_a_running_hubs_data_folder_is_copied_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    keep_private(data)  # as the hub makes its databases
    reg = mine_registry(1502, 1.0)
    table = compile_table(reg.sensors)
    db = StateDB(data / "state.db")
    outbox = OutboxDB(outbox_path(data / "state.db"))
    rdb = RegistryDB(data / "registry.db")
    other = sqlite3.connect(data / "state.db", isolation_level=None)
    try:
        book = AlarmBook(db, reg, table)
        t1 = reg.sensor("ch4-t1").index
        state, _ = feed(book, table, CoreState.empty(len(reg.sensors)), t1, [0.3, 1.1, 1.6, 1.2])
        feed(book, table, state, reg.sensor("ch4-t2").index, [1.2], t0=20_000)
        alarms = db.list_alarms(None)
        assert len(alarms) == 2
        outbox.start(db)
        rev = rdb.add_revision(
            {"version": 1}, actor="test", comment="c", source="api", now_ms=1_000
        )
        np.savez(data / "analytics-state.npz", x=np.arange(3))
        (data / "ingest-seqs.jsonl").write_text('{"d": 1}\n')  # not kept: see below
        (data / "spool").mkdir()
        (data / "spool" / "0000000000000001.seg").write_bytes(b"frame")
        # the hub's commits are in the -wal files: state.db alone has none of them
        assert (data / "state.db-wal").stat().st_size > 0
        plain = tmp_path / "plain.db"
        shutil.copy(data / "state.db", plain)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            _count(plain, "SELECT count(*) FROM alarms")
        # a write of the hub's under way: not committed, not in the copy
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE half_done (x)")
        other.execute("INSERT INTO half_done VALUES (1)")

        to = tmp_path / "backup" / "2026-12-01"
        assert main(["backup", "--data-dir", str(data), "--to", str(to)]) == 0
    finally:
        other.close()
        rdb.close()
        outbox.close()
        db.close()

    said = capsys.readouterr().out
    names = ["registry.db", "state.db", "state-outbox.db", "timeseries.db"]
    lines = said.splitlines()
    # the alarm book before its outbox (docs/alarms.md)
    assert [ln.split()[0] for ln in lines[:3]] == [str(to / n) for n in names[:3]]
    assert "(sqlite)" in lines[1] and "copied 6 files" in lines[-1]
    for name in [*names, "analytics-state.npz", "spool/0000000000000001.seg"]:
        assert _mode(to / name) == 0o600, name
        assert str(to / name) in said
    assert _mode(to) == 0o700
    assert not list(to.glob("*-wal")) and not list(to.glob("*-shm"))
    assert (to / "spool" / "0000000000000001.seg").read_bytes() == b"frame"
    assert np.load(to / "analytics-state.npz")["x"].tolist() == [0, 1, 2]
    # the newest batch of each device, restored, would count every batch since as missing
    assert not (to / "ingest-seqs.jsonl").exists()

    # each copy opens alone, as the hub opens it, with the rows recorded
    assert _count(to / "state.db", "SELECT count(*) FROM alarms") == 2
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _count(to / "state.db", "SELECT count(*) FROM half_done")
    copy = StateDB(to / "state.db")
    try:
        assert [a.id for a in copy.list_alarms(None)] == [a.id for a in alarms]
    finally:
        copy.close()
    assert _count(to / "state-outbox.db", "SELECT count(*) FROM installation") == 1
    # marked a backup's copy (a hub started on it begins a new key series), the hub's own not
    assert _count(to / "state-outbox.db", "SELECT count(*) FROM restored_copy") == 1
    assert _count(data / "state-outbox.db", "SELECT count(*) FROM restored_copy") == 0
    rcopy = RegistryDB(to / "registry.db")
    try:
        latest = rcopy.latest_revision()
        assert latest is not None and latest.rev == rev
    finally:
        rcopy.close()


def test_a_jt808_gateways_bindings_are_copied_from_its_spool_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    bindings = Bindings(spool / BINDINGS_FILE)
    try:
        code = bindings.register(
            VehicleRef("acme", "tanker-1"), Terminal("70111", "M1", "T000001", "13800000001"), 1
        )
        assert isinstance(code, str)
        to = tmp_path / "copy"
        assert main(["backup", "--spool-dir", str(spool), "--to", str(to)]) == 0
    finally:
        bindings.close()
    assert "jt808-bindings.db" in capsys.readouterr().out
    copy = Bindings(to / BINDINGS_FILE)
    try:
        assert copy.authenticate(code) is not None
    finally:
        copy.close()


def test_it_never_writes_into_an_older_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    keep_private(data)
    older = tmp_path / "older"
    older.mkdir()
    (older / "state.db").write_bytes(b"older")
    assert main(["backup", "--data-dir", str(data), "--to", str(older)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert (older / "state.db").read_bytes() == b"older"
    assert main(["backup", "--data-dir", str(data), "--to", str(data / "bk")]) == 2
    assert "is inside" in capsys.readouterr().err
    assert not (data / "bk").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["backup", "--data-dir", str(data), "--to", str(empty)]) == 0
