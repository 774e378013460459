"""The notification outbox's own database: the outbox rows and the routing cursor, in a SQLite
file beside the state database (`state.db` -> `state-outbox.db`).

Routing writes a batch of outbox rows and its cursor, delivery takes what is due and settles it:
several writes for every batch of alarm transitions. In the state database they waited for the
alarm book's writer lock (a notifier in a process of its own spent about 70 % of its time in
`BEGIN IMMEDIATE`); in a file of their own the two never wait for each other. The cursor lives
with the rows it stands for, so that "routed" is still one transaction: a crash routes the same
journal events again or not at all.

A state database of before the split (schema 3 and older kept both tables) hands its rows and
cursor over at start (`adopt`), once; the tables stay there, empty.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alerts.errors import AlarmStoreError
from alerts.statedb import StateDB

__all__ = ["OUTBOX_COLUMNS", "OutboxDB", "outbox_path"]

log = logging.getLogger(__name__)

VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, site TEXT NOT NULL,
    subscription TEXT NOT NULL, channel TEXT NOT NULL, subject TEXT NOT NULL,
    events TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
    open_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    last_error TEXT NOT NULL DEFAULT '', delivered_at INTEGER, first_event INTEGER,
    arrival INTEGER  -- the earliest `arrival` of its events (the latency metric)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (subscription, tenant, site, open_until)
    WHERE open_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_done ON outbox (created_at) WHERE status != 'pending';
CREATE TABLE IF NOT EXISTS notify_cursor (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
"""
# the columns of the state database's outbox (`adopt`): all but `arrival`
OUTBOX_COLUMNS = (
    "id, key, tenant, site, subscription, channel, subject, events, created_at, due_at, "
    "open_until, attempts, status, last_error, delivered_at, first_event"
)
_ADOPT_CHUNK = 5000
_OLD_ROWS = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?"
_COPY_ROWS = f"INSERT OR IGNORE INTO outbox ({OUTBOX_COLUMNS}) VALUES ({','.join('?' * 16)})"


def outbox_path(state: Path | str) -> Path:
    """The outbox file of a state database: `state.db` -> `state-outbox.db`."""
    p = Path(state)
    return p.with_name(f"{p.stem}-outbox{p.suffix or '.db'}")


class OutboxDB:
    """One writing connection (behind a lock) and one reading connection (the API's outbox
    list), WAL, as `StateDB`."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > VERSION:
                raise AlarmStoreError(
                    f"outbox database has schema {version}, this hub knows {VERSION}: "
                    "run the newer hub, or restore a backup"
                )
            self._db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;")
            self._reader = sqlite3.connect(
                Path(self.path).resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"cannot open outbox database {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically: all of them or none."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                finally:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"outbox database: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, on the reading connection."""
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"outbox database: {exc}") from exc

    def start(self, state: StateDB) -> int:
        """Before the first routing: take over what a state database of before the split held
        (`adopt`), start a new pipeline after what was journaled before it, and bring back a
        cursor that is ahead of the journal (the state database was restored from a backup
        older than this file: the events journaled since would never be routed). Returns the
        routing cursor."""
        self.adopt(state)
        # the last id the journal gave (AUTOINCREMENT: its next is above it)
        (row,) = state.query(
            "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM alarm_events), "
            "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alarm_events'), 0))"
        )
        last = int(row[0])
        with self.transaction() as con:
            row = con.execute("SELECT last_id FROM notify_cursor WHERE name = 'route'").fetchone()
            cursor = last if row is None else int(row[0])
            if cursor > last:
                log.warning(
                    "the outbox's routing cursor (event %d) is ahead of the state database's "
                    "journal (event %d): the state database is older than the outbox (restored "
                    "from a backup?); routing goes on from event %d",
                    cursor,
                    last,
                    last,
                )
                cursor = last
            con.execute(
                "INSERT OR REPLACE INTO notify_cursor (name, last_id) VALUES ('route', ?)",
                (cursor,),
            )
        return cursor

    def adopt(self, state: StateDB) -> int:
        """Move the outbox rows and the routing cursor of a state database of before the split
        here, with their ids and status. Copied first (a row already here stays as it is), then
        deleted there: a crash in between copies again and changes nothing. Returns the rows
        copied."""
        cursor = state.query("SELECT last_id FROM notify_cursor WHERE name = 'route'")
        if not cursor and not state.query("SELECT 1 FROM outbox LIMIT 1"):
            return 0
        copied, after = 0, -1
        while rows := state.query(_OLD_ROWS, (after, _ADOPT_CHUNK)):
            with self.transaction() as con:
                before = con.total_changes
                con.executemany(_COPY_ROWS, rows)
                copied += con.total_changes - before
            after = int(rows[-1][0])
        with self.transaction() as con:
            if cursor:
                con.execute(
                    "INSERT INTO notify_cursor (name, last_id) VALUES ('route', ?) "
                    "ON CONFLICT (name) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
                    (int(cursor[0][0]),),
                )
        with state.transaction() as con:
            con.execute("DELETE FROM outbox WHERE id <= ?", (after,))
            con.execute("DELETE FROM notify_cursor WHERE name = 'route'")
        log.info("notification outbox moved from %s to %s: %d rows", state.path, self.path, copied)
        return copied
