"""Every SQLite transaction helper rolls back when its COMMIT fails, so that the next one runs.

A COMMIT can fail (SQLITE_BUSY, a full disk, a deferred constraint). Before, the helpers of the
gateway's spool, the API's registry database and the embedded time-series store left the
transaction open, and every later BEGIN failed with 'cannot start a transaction within a
transaction' until the process restarted. A deferred foreign key stands in for the failure: it
is checked at COMMIT only. (The state database's own helper: tests/test_statedb_reads.py.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from api.registrydb import RegistryDB
from gateway.spool import Spool
from ingest.store.sqlite import _transaction


def _orphan_at_commit(
    con: sqlite3.Connection, tx: Callable[[], AbstractContextManager[Any]]
) -> None:
    """Run a transaction whose COMMIT fails, then one that must succeed."""
    con.execute("PRAGMA foreign_keys = ON")
    con.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    con.execute(
        "CREATE TEMP TABLE child (pid INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(Exception, match="FOREIGN KEY"), tx():
        con.execute("INSERT INTO child (pid) VALUES (42)")
    assert not con.in_transaction
    assert con.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    with tx():
        con.execute("INSERT INTO parent (id) VALUES (42)")
        con.execute("INSERT INTO child (pid) VALUES (42)")
    assert con.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 1


def test_the_gateway_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", clock_ms=lambda: 0)
    _orphan_at_commit(spool._db, spool._tx)
    spool.push("t", b"x", "dev", 1, 1, 1)  # and the spool goes on
    assert len(spool) == 1
    spool.close()


def test_the_registry_database(tmp_path: Path) -> None:
    db = RegistryDB(tmp_path / "registry.db")
    _orphan_at_commit(db._conn, db._tx)
    db.close()


def test_the_embedded_time_series_store(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "ts.db", isolation_level=None)
    _orphan_at_commit(con, lambda: _transaction(con, "BEGIN IMMEDIATE"))
    con.close()
