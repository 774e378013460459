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
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.errors import AlarmStoreError
from alerts.restoredcopy import mark_copy
from alerts.statedb import StateDB, chunks_in, read_query, write_transaction

__all__ = ["OUTBOX_COLUMNS", "OutboxDB", "mark_restored", "outbox_path"]

log = logging.getLogger(__name__)

VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, site TEXT NOT NULL,
    subscription TEXT NOT NULL, channel TEXT NOT NULL, subject TEXT NOT NULL,
    events TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
    open_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    last_error TEXT NOT NULL DEFAULT '', delivered_at INTEGER, first_event INTEGER,
    arrival INTEGER,  -- the earliest `arrival` of its events (the latency metric)
    -- the installation id its key goes out with, when not the file's: a row made before a
    -- restore keeps the id it was made under (`OutboxDB._installation`); NULL: the file's
    series TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (subscription, tenant, site, open_until)
    WHERE open_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_done ON outbox (created_at) WHERE status != 'pending';
-- 'route': the last journal event routed; 'alarm': the highest alarm id routed or timed (the
-- ids in the keys: a state database restored from an older backup must not give them again)
CREATE TABLE IF NOT EXISTS notify_cursor (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
-- the repeats and escalation steps sent (their keys) of each alarm still waiting: the outbox
-- rows are pruned, these go when the alarm is acknowledged or cleared (version 3)
CREATE TABLE IF NOT EXISTS timer_sent (key TEXT PRIMARY KEY, alarm INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS timer_sent_alarm ON timer_sent (alarm);
-- the alarms whose raise a subscription was not told of: held back by a device's comm-loss or
-- a gateway's offline alarm (`holder`, its sensor id) or by the `above` alarm of its sensor
-- (`higher:<sensor>`), told when that one clears; '' when nothing holds it any more but it
-- was never told (acknowledged, silenced), its next news told as a raise
-- (`alerts.notify.routing`); added without a new version: an older hub leaves the table alone
CREATE TABLE IF NOT EXISTS held (
    alarm INTEGER NOT NULL, subscription TEXT NOT NULL, holder TEXT NOT NULL,
    PRIMARY KEY (alarm, subscription)
);
CREATE INDEX IF NOT EXISTS held_holder ON held (holder);
-- this installation's id, made with the file: it ends every key sent (`NotifyStore.sent_key`),
-- so that the keys of a hub started afresh never repeat an earlier one's
CREATE TABLE IF NOT EXISTS installation (id TEXT NOT NULL);
-- a copy `hazardhub backup` made (taken_at: when, ms) or a data folder `hazardhub restored`
-- marked (NULL): the next start makes a new installation id for the keys of new rows
CREATE TABLE IF NOT EXISTS restored_copy (taken_at INTEGER);
"""
OUTBOX_COLUMNS = (
    "id, key, tenant, site, subscription, channel, subject, events, created_at, due_at, "
    "open_until, attempts, status, last_error, delivered_at, first_event"
)
_V1_COLUMNS = set(OUTBOX_COLUMNS.replace(" ", "").split(","))
_ADOPT_CHUNK = 5000
_OLD_ROWS = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?"
# copied by key, with new ids: a key already here is the same notification (kept as it is
# here); an id already taken is another one (a hub rolled back and forward again)
_COPY_COLUMNS = OUTBOX_COLUMNS.removeprefix("id, ")
_COPY_ROWS = f"INSERT OR IGNORE INTO outbox ({_COPY_COLUMNS}) VALUES ({','.join('?' * 15)})"


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
            # version 1 (a development version) lacked `arrival` in its first form
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
            add = "ALTER TABLE outbox ADD COLUMN arrival INTEGER;" if columns == _V1_COLUMNS else ""
            if columns and "series" not in columns:  # added without a new version
                add += "ALTER TABLE outbox ADD COLUMN series TEXT;"
            made = secrets.token_hex(5)  # hex: safe in the statement
            self._db.executescript(
                f"BEGIN; {SCHEMA} {add} INSERT INTO installation (id) SELECT '{made}' "
                "WHERE NOT EXISTS (SELECT 1 FROM installation); "
                f"PRAGMA user_version = {VERSION}; COMMIT;"
            )
            self.installation: str = self._installation()
            self._reader = sqlite3.connect(
                Path(self.path).resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
        except (sqlite3.Error, AlarmStoreError) as exc:
            self._close_quietly()
            if isinstance(exc, AlarmStoreError):
                raise
            raise AlarmStoreError(f"cannot open outbox database {self.path}: {exc}") from exc

    def _installation(self) -> str:
        """The installation id the keys of new rows go out with (`sent_key`), new on a restored
        copy. A restored copy (`restored_copy`: `hazardhub backup` marks its copy, `hazardhub
        restored` a folder put back otherwise) numbers its events and alarms again from where
        the backup stood, so its new rows would get keys the receivers already had for other
        notifications after the backup (and dropped them as repeats): the file gets a new
        installation id, for the keys of the rows made from now on. The rows already here keep
        the id they were made under (`series`): a notification pending in the backup goes out
        with its key, which a receiver that had it drops. An open group is closed: on a clock
        behind the old hub's, what is added to it now could go out under a key the old hub sent.
        One transaction: of two processes opening the file, one makes the new series and both
        use it."""
        new = secrets.token_hex(5)
        with self.transaction() as con:
            old = str(con.execute("SELECT id FROM installation").fetchone()[0])
            taken = [r[0] for r in con.execute("SELECT taken_at FROM restored_copy")]
            if not taken:
                return old
            con.execute("UPDATE outbox SET series = ? WHERE series IS NULL", (old,))
            con.execute("UPDATE outbox SET open_until = NULL WHERE open_until IS NOT NULL")
            con.execute("UPDATE installation SET id = ?", (new,))
            con.execute("DELETE FROM restored_copy")
        stamps = [int(t) for t in taken if t is not None]
        at = datetime.fromtimestamp(max(stamps, default=0) / 1000, UTC)
        when = (
            f"a backup taken at {at:%Y-%m-%d %H:%M:%S} UTC"
            if stamps
            else "a data folder marked restored (`hazardhub restored`)"
        )
        log.warning(
            "%s started from %s: new notifications get keys of a new series (@%s; those made "
            "before keep @%s)",
            self.path,
            when,
            new,
            old,
        )
        return new

    def _close_quietly(self) -> None:
        for name in ("_reader", "_db"):
            con = getattr(self, name, None)
            if con is not None:
                con.close()

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Run statements atomically: all of them or none."""
        return write_transaction(self._db, self._lock, "outbox database")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, on the reading connection."""
        return read_query(self._reader, self._read_lock, "outbox database", sql, params)

    def start(self, state: StateDB) -> int:
        """Before the first routing: take over what a state database of before the split held
        (`adopt`), and start a new pipeline after what was journaled before it. A state
        database behind this file (restored from an older backup, its last commits lost in a
        power cut, deleted) would give again the event and alarm ids the outbox's keys hold:
        its AUTOINCREMENT counters are raised past them, so that what it journals from now on
        is routed, under keys of its own. Returns the routing cursor."""
        self.adopt(state)
        events, alarms = _last_ids(state)
        with self.transaction() as con:
            seen = dict(con.execute("SELECT name, last_id FROM notify_cursor").fetchall())
            cursor = int(seen.get("route", events))
            alarm = max(int(seen.get("alarm", 0)), alarms if "alarm" not in seen else 0)
            for name, last in (("route", cursor), ("alarm", alarm)):
                con.execute(
                    "INSERT OR REPLACE INTO notify_cursor (name, last_id) VALUES (?, ?)",
                    (name, last),
                )
        if cursor > events or alarm > alarms:
            events, alarms = _last_ids(state)  # again: another notifier may have routed since
        if cursor > events or alarm > alarms:
            log.warning(
                "the state database %s is behind the outbox %s (journal event %d, alarm %d; "
                "the outbox has routed up to event %d, alarm %d): restored from an older "
                "backup, or its last writes lost? Its ids go on after the outbox's, and what "
                "it journals from now on is routed",
                state.path,
                self.path,
                events,
                alarms,
                cursor,
                alarm,
            )
            with state.transaction() as con:
                for table, last in (("alarm_events", cursor), ("alarms", alarm)):
                    found = con.execute(
                        "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?",
                        (last, table),
                    )
                    if found.rowcount == 0:
                        con.execute(
                            "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, last)
                        )
        return cursor

    @staticmethod
    def see_alarms(con: sqlite3.Connection, alarm_ids: Iterable[int]) -> None:
        """Remember the highest alarm id routed or timed (in the open transaction)."""
        top = max(alarm_ids, default=0)
        if top:
            con.execute(
                "UPDATE notify_cursor SET last_id = MAX(last_id, ?) WHERE name = 'alarm'", (top,)
            )

    @staticmethod
    def claim_timer_keys(con: sqlite3.Connection, sent: Iterable[tuple[int, str]]) -> set[str]:
        """Record the timer keys (alarm, key) about to be sent, in the open transaction; returns
        those not recorded before. A repeat's key (`...:r{alarm}:{n}`) replaces the alarm's
        earlier repeats of the same subscription: only the latest n is ever tried again, and an
        alarm repeated every minute for a month would otherwise keep 43,200 keys."""
        fresh = set()
        for alarm, key in sent:
            if con.execute(
                "INSERT OR IGNORE INTO timer_sent (key, alarm) VALUES (?, ?)", (key, alarm)
            ).rowcount:
                fresh.add(key)
                head, sep, _ = key.rpartition(f":r{alarm}:")
                if sep:
                    prefix = head + sep
                    con.execute(
                        "DELETE FROM timer_sent WHERE alarm = ? AND substr(key, 1, ?) = ? "
                        "AND key != ?",
                        (alarm, len(prefix), prefix, key),
                    )
        return fresh

    @staticmethod
    def hold(con: sqlite3.Connection, holds: Iterable[tuple[int, str, str]]) -> None:
        """Record (alarm, subscription, holder) holds, in the open transaction; an alarm held
        again from the same subscription keeps the latest holder."""
        con.executemany(
            "INSERT OR REPLACE INTO held (alarm, subscription, holder) VALUES (?, ?, ?)", holds
        )

    @staticmethod
    def unhold(con: sqlite3.Connection, holds: Iterable[tuple[int, str]]) -> None:
        """Drop (alarm, subscription) holds, in the open transaction."""
        con.executemany("DELETE FROM held WHERE alarm = ? AND subscription = ?", holds)

    def all_holds(self) -> dict[tuple[int, str], str]:
        """Every (alarm, subscription) hold and its holder (a few: those of devices and
        gateways down now, of trend alarms under their threshold alarm, and of active alarms
        never told)."""
        rows = self.query("SELECT alarm, subscription, holder FROM held")
        return {(int(a), str(sub)): str(h) for a, sub, h in rows}

    def holds_of(self, alarms: set[int]) -> dict[tuple[int, str], str]:
        """The (alarm, subscription) holds of these alarms and their holders."""
        out: dict[tuple[int, str], str] = {}
        for chunk, marks in chunks_in(sorted(alarms)):
            rows = self.query(
                f"SELECT alarm, subscription, holder FROM held WHERE alarm IN ({marks})", chunk
            )
            out.update(((int(a), str(sub)), str(h)) for a, sub, h in rows)
        return out

    def held_by(self, holders: Sequence[str]) -> list[tuple[int, str, str]]:
        """The holds of these holders: (alarm, subscription, holder)."""
        out: list[tuple[int, str, str]] = []
        for chunk, marks in chunks_in(holders):
            out += self.query(
                "SELECT alarm, subscription, holder FROM held "
                f"WHERE holder IN ({marks}) ORDER BY alarm",
                chunk,
            )
        return out

    def forget_timer_keys(self, waiting: set[int], active: set[int] | None = None) -> int:
        """Drop the timer keys of alarms not in `waiting` and the holds of alarms not in
        `active` (`waiting` when not given); returns how many timer keys."""
        with self.transaction() as con:
            alarms = [r[0] for r in con.execute("SELECT DISTINCT alarm FROM timer_sent")]
            gone = [(a,) for a in alarms if a not in waiting]
            before = con.total_changes
            con.executemany("DELETE FROM timer_sent WHERE alarm = ?", gone)
            forgotten = con.total_changes - before
            # and the holds of alarms no longer active: nothing to tell when their holder
            # clears, no next news to tell as a raise (an acknowledged one keeps its hold: its
            # escalation, unacknowledged again, is the first its subscription hears of it)
            keep = waiting if active is None else active
            held = [r[0] for r in con.execute("SELECT DISTINCT alarm FROM held")]
            con.executemany(
                "DELETE FROM held WHERE alarm = ?", [(a,) for a in held if a not in keep]
            )
            return forgotten

    def adopt(self, state: StateDB) -> int:
        """Move the outbox rows and the routing cursor of a state database of before the split
        here, with their status. Copied first by key (a key already here is kept as it is),
        then deleted there: a crash in between copies again and changes nothing. Returns the
        rows copied."""
        cursor = state.query("SELECT last_id FROM notify_cursor WHERE name = 'route'")
        if not cursor and not state.query("SELECT 1 FROM outbox LIMIT 1"):
            return 0
        copied, after = 0, -1
        while rows := state.query(_OLD_ROWS, (after, _ADOPT_CHUNK)):
            with self.transaction() as con:
                before = con.total_changes
                con.executemany(_COPY_ROWS, [r[1:] for r in rows])
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


def mark_restored(path: Path, taken_at: int | None) -> bool:
    """Mark an outbox file as a restored copy (`restored_copy`): the next hub to open it starts
    a new key series (`OutboxDB._installation`). `taken_at`: when the backup was taken (ms;
    None: not known). False when `path` is no outbox database (nothing marked)."""
    return mark_copy(path, taken_at, frozenset({"outbox", "installation"}))


def _last_ids(state: StateDB) -> tuple[int, int]:
    """The last journal event id and alarm id the state database gave (the ids before those
    the alarm book names its next rows with, `next_ids`)."""
    with state.snapshot() as ro:
        alarm, event = state.next_ids(ro)
    return event - 1, alarm - 1
