"""Relational state of the hub (alarms, alarm events, dead letters) behind one module.

SQLite by default (one file under the data folder, WAL). The methods are synchronous and
thread-safe; async callers run them in a worker thread, but for `quick_alarm_records`, which the
API's alarm list runs on its event loop (see there). Keeping every SQL statement here is what lets
PostgreSQL replace SQLite when several hub processes share state.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.errors import AlarmStoreError
from alerts.lifecycle import Lifecycle

__all__ = ["ALARM_COLUMNS", "AlarmEventRow", "AlarmRecords", "AlarmRow", "DeadLetter", "StateDB"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, site TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL,
    rule TEXT NOT NULL, side INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, action TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'cleared')),
    started_ts INTEGER NOT NULL, ended_ts INTEGER, raised_at INTEGER NOT NULL,
    cleared_at INTEGER, peak_level INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    value REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_alarm
    ON alarms (sensor, rule, side) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS alarms_tenant ON alarms (tenant, started_ts);
CREATE TABLE IF NOT EXISTS alarm_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    kind TEXT NOT NULL, ts INTEGER NOT NULL, arrival INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, value REAL,
    UNIQUE (alarm_id, kind, ts, level)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
    payload BLOB NOT NULL, size INTEGER NOT NULL
);
"""

# version 2: the alarm lifecycle (ISA-18.2 states, disposal), audited events, shelves, sensors
# out of service, subscriptions, escalation policies, silences and the notification outbox
_SCHEMA_V2 = """
ALTER TABLE alarms ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN shelved_until INTEGER;
ALTER TABLE alarms ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN out_of_service INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN disposal TEXT NOT NULL DEFAULT 'received';
ALTER TABLE alarms ADD COLUMN disposal_due INTEGER;
ALTER TABLE alarms ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN isa_state TEXT NOT NULL DEFAULT 'unack';
ALTER TABLE alarms ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
-- alarms of before the lifecycle: the cleared ones are history (normal, disposal closed), the
-- active ones wait for an acknowledgement like any new one
UPDATE alarms SET acked = 1, isa_state = 'normal', disposal = 'closed' WHERE state = 'cleared';
CREATE INDEX alarms_open ON alarms (isa_state) WHERE isa_state != 'normal';
CREATE INDEX alarms_due ON alarms (disposal_due) WHERE disposal != 'closed' AND overdue = 0;
CREATE INDEX alarms_shelved ON alarms (shelved_until) WHERE shelved_until IS NOT NULL;
CREATE INDEX alarms_sensor ON alarms (sensor, rule, side);
CREATE TABLE alarm_events_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    kind TEXT NOT NULL, ts INTEGER NOT NULL, arrival INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, value REAL,
    actor TEXT, comment TEXT NOT NULL DEFAULT '', isa_state TEXT NOT NULL DEFAULT ''
);
INSERT INTO alarm_events_v2 (id, alarm_id, kind, ts, arrival, level, level_name, tier, value)
    SELECT id, alarm_id, kind, ts, arrival, level, level_name, tier, value FROM alarm_events;
DROP TABLE alarm_events;
ALTER TABLE alarm_events_v2 RENAME TO alarm_events;
CREATE UNIQUE INDEX alarm_events_once ON alarm_events (alarm_id, kind, ts, level)
    WHERE actor IS NULL;
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id);
CREATE TABLE shelves (
    sensor TEXT NOT NULL, rule TEXT NOT NULL, side INTEGER NOT NULL,
    until INTEGER NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (sensor, rule, side)
);
CREATE TABLE out_of_service (
    sensor TEXT PRIMARY KEY, tenant TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE notify_objects (
    kind TEXT NOT NULL CHECK (kind IN ('subscription', 'escalation', 'silence')),
    tenant TEXT NOT NULL, id TEXT NOT NULL, spec TEXT NOT NULL, origin TEXT NOT NULL,
    actor TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, tenant, id)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, site TEXT NOT NULL,
    subscription TEXT NOT NULL, channel TEXT NOT NULL, subject TEXT NOT NULL,
    events TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
    open_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    last_error TEXT NOT NULL DEFAULT '', delivered_at INTEGER, first_event INTEGER
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE status = 'pending';
CREATE INDEX outbox_group ON outbox (subscription, tenant, site, open_until)
    WHERE open_until IS NOT NULL;
CREATE TABLE notify_cursor (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
"""
# version 3: the alarm list (a tenant's alarms, newest first) walks an index and stops at its
# limit, instead of sorting every alarm of the tenant (200,000 alarms: 65 ms -> 0.6 ms)
_SCHEMA_V3 = """
CREATE INDEX alarms_tenant_id ON alarms (tenant, id);
"""
_VERSION = 3
_QUICK_EVERY = 1000  # SQLite steps between two looks at a quick read's budget

_ALARM_COLS = (
    "id, tenant, site, device, sensor, rule, side, level, level_name, tier, action, state, "
    "started_ts, ended_ts, raised_at, cleared_at, peak_level, last_ts, value, "
    "acked, shelved_until, suppressed, out_of_service, disposal, disposal_due, overdue, "
    "isa_state, gateway"
)
_MUTABLE = (
    "level",
    "level_name",
    "tier",
    "action",
    "state",
    "ended_ts",
    "cleared_at",
    "peak_level",
    "last_ts",
    "value",
    "acked",
    "shelved_until",
    "suppressed",
    "out_of_service",
    "disposal",
    "disposal_due",
    "overdue",
    "isa_state",
)
_EVENT_COLS = (
    "id, alarm_id, kind, ts, arrival, level, level_name, tier, value, actor, comment, isa_state"
)
_ALARM_NAMES = tuple(c.strip() for c in _ALARM_COLS.split(","))
ALARM_COLUMNS = _ALARM_NAMES  # the order of an alarm row's values (`AlarmRow`, `active_rows`)
_MUTABLE_AT = tuple(_ALARM_NAMES.index(c) for c in _MUTABLE)
_INSERT_ALARMS = f"INSERT INTO alarms ({_ALARM_COLS}) VALUES ({','.join('?' * len(_ALARM_NAMES))})"
_UPDATE_ALARMS = f"UPDATE alarms SET {', '.join(f'{c} = ?' for c in _MUTABLE)} WHERE id = ?"
_INSERT_EVENTS = (
    f"INSERT OR IGNORE INTO alarm_events ({_EVENT_COLS}) "
    f"VALUES ({','.join('?' * len(_EVENT_COLS.split(',')))})"
)
_EVENT_NAMES = tuple(c.strip() for c in _EVENT_COLS.split(","))

# alarms as dictionaries (column -> value), newest first, and the events of each by alarm id
AlarmRecords = tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    tenant: str
    site: str
    device: str
    sensor: str
    rule: str
    side: int
    level: int
    level_name: str
    tier: str
    action: str
    state: str
    started_ts: int
    ended_ts: int | None
    raised_at: int
    cleared_at: int | None
    peak_level: int
    last_ts: int
    value: float | None
    acked: bool
    shelved_until: int | None
    suppressed: bool
    out_of_service: bool
    disposal: str
    disposal_due: int | None
    overdue: bool
    isa_state: str
    gateway: str

    @property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            active=self.state == "active",
            acked=bool(self.acked),
            shelved_until=self.shelved_until,
            suppressed=bool(self.suppressed),
            out_of_service=bool(self.out_of_service),
            disposal=self.disposal,
            overdue=bool(self.overdue),
        )


@dataclass(frozen=True, slots=True)
class AlarmEventRow:
    id: int
    alarm_id: int
    kind: str
    ts: int
    arrival: int
    level: int
    level_name: str
    tier: str
    value: float | None
    actor: str | None
    comment: str
    isa_state: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at: int
    source: str
    topic: str
    reason: str
    payload: bytes
    size: int


class StateDB:
    """One SQLite connection; every statement of the relational state."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_dead_letter_bytes: int = 64 * 1024,
        quick_steps: int = 50_000,
    ) -> None:
        """`quick_steps`: how much SQLite work (virtual-machine steps; 50,000 is about 5 ms,
        100 alarms with their events take under 10,000) a `quick_alarm_records` may do before
        it gives up; 0: it always gives up."""
        self._path = str(path)
        self.quick_steps = quick_steps
        self._lock = threading.Lock()
        self._max_payload = max_dead_letter_bytes
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
            # reads (the API, analytics) on a connection of their own: under WAL they see what
            # is committed and never wait for the writer's lock, nor hold it up
            self._reader = sqlite3.connect(
                Path(self._path).resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            self._read_lock = threading.Lock()
            # and the quick reads of the event loop on one more: they never wait behind a long
            # read (alarm statistics) on the other
            self._quick = sqlite3.connect(
                Path(self._path).resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            self._quick_lock = threading.Lock()
            self._quick_left = 0
            self._quick.set_progress_handler(self._quick_step, _QUICK_EVERY)
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"cannot open state database {self._path}: {exc}") from exc

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > _VERSION:  # a newer hub wrote it: its meaning is not ours to guess
            raise AlarmStoreError(
                f"state database has schema {version}, this hub knows {_VERSION}: "
                "run the newer hub, or restore a backup"
            )
        if version < 2:
            self._db.executescript(f"BEGIN; {_SCHEMA_V2} PRAGMA user_version = 2; COMMIT;")
        if version < _VERSION:
            self._db.executescript(f"BEGIN; {_SCHEMA_V3} PRAGMA user_version = {_VERSION}; COMMIT;")

    def close(self) -> None:
        with self._quick_lock:
            self._quick.close()
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
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, on the reading connection."""
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    def _quick_step(self) -> int:
        """SQLite's progress handler on the quick connection: non-zero interrupts the query."""
        self._quick_left -= _QUICK_EVERY
        return 1 if self._quick_left <= 0 else 0

    def _quick_query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """A read on the quick connection; None when it would take more than `quick_steps`
        steps (interrupted) or the connection is busy."""
        if self.quick_steps <= 0 or not self._quick_lock.acquire(blocking=False):
            return None
        try:
            self._quick_left = self.quick_steps
            return self._quick.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                return None
            raise AlarmStoreError(f"state database: {exc}") from exc
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"state database: {exc}") from exc
        finally:
            self._quick_lock.release()

    def data_version(self) -> int:
        """A number that changes whenever a change is committed (by the writing connection, or
        another process): what was read while it stayed the same is still what the database
        holds. Read on the quick connection, for the API's event loop."""
        with self._quick_lock:
            try:
                return int(self._quick.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    # alarms -------------------------------------------------------------------------------
    def active_alarms(self) -> list[AlarmRow]:
        rows = self.query(f"SELECT {_ALARM_COLS} FROM alarms WHERE state = 'active'")
        return [AlarmRow(*r) for r in rows]

    def active_alarm(
        self, con: sqlite3.Connection, sensor: str, rule: str, side: int
    ) -> AlarmRow | None:
        row = con.execute(
            f"SELECT {_ALARM_COLS} FROM alarms WHERE sensor = ? AND rule = ? AND side = ? "
            "AND state = 'active'",
            (sensor, rule, side),
        ).fetchone()
        return AlarmRow(*row) if row else None

    def list_alarms(
        self,
        tenants: Sequence[str] | None,
        *,
        state: str | None = None,
        sensor: str | None = None,
        isa_state: Sequence[str] | None = None,
        tier: Sequence[str] | None = None,
        site: str | None = None,
        side: int | None = None,
        disposal: str | None = None,
        open_only: bool = False,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AlarmRow]:
        """Newest first; `tenants` None means every tenant. `open_only`: not yet returned to
        normal and acknowledged, or with its disposal not closed."""
        sql, params = _alarm_list_sql(
            tenants, state, sensor, isa_state, tier, site, side, disposal, open_only, before_id
        )
        return [AlarmRow(*r) for r in self.query(sql, (*params, limit))]

    def list_alarm_records(
        self,
        tenants: Sequence[str] | None,
        *,
        state: str | None = None,
        sensor: str | None = None,
        isa_state: Sequence[str] | None = None,
        tier: Sequence[str] | None = None,
        site: str | None = None,
        side: int | None = None,
        disposal: str | None = None,
        open_only: bool = False,
        limit: int = 100,
        before_id: int | None = None,
    ) -> AlarmRecords:
        """`list_alarms` and `alarm_events` of the alarms found, as plain dictionaries (column
        name -> value) rather than row objects: for the API's alarm list, which only turns them
        into JSON (a frozen dataclass of 28 fields costs several times a dictionary)."""
        sql, params = _alarm_list_sql(
            tenants, state, sensor, isa_state, tier, site, side, disposal, open_only, before_id
        )
        found = _records(self.query, sql, [*params, limit])
        assert found is not None  # `query` raises rather than giving up
        return found

    def quick_alarm_records(
        self,
        tenants: Sequence[str] | None,
        *,
        state: str | None = None,
        sensor: str | None = None,
        isa_state: Sequence[str] | None = None,
        tier: Sequence[str] | None = None,
        site: str | None = None,
        side: int | None = None,
        disposal: str | None = None,
        open_only: bool = False,
        limit: int = 100,
        before_id: int | None = None,
    ) -> AlarmRecords | None:
        """`list_alarm_records` on the caller's thread, if it is quick: None when it would take
        more than a few milliseconds of SQLite work (it is interrupted; ask
        `list_alarm_records` in a worker thread then). The alarm list's usual reads (a tenant's
        newest alarms, by an index) take well under a millisecond, less than the trip to a
        worker thread and back, which under load costs about as much again in CPU and more in
        latency; a filter that makes SQLite scan gives up here and goes to the thread."""
        sql, params = _alarm_list_sql(
            tenants, state, sensor, isa_state, tier, site, side, disposal, open_only, before_id
        )
        return _records(self._quick_query, sql, [*params, limit])

    # the lifecycle, inside a transaction ---------------------------------------------------
    def alarm_in(self, con: sqlite3.Connection, alarm_id: int) -> AlarmRow | None:
        row = con.execute(f"SELECT {_ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        return AlarmRow(*row) if row else None

    def alarms_where(
        self, con: sqlite3.Connection, clause: str, params: Sequence[Any] = ()
    ) -> list[AlarmRow]:
        """Alarms by a condition written in this package (never from user text)."""
        rows = con.execute(f"SELECT {_ALARM_COLS} FROM alarms WHERE {clause}", params).fetchall()
        return [AlarmRow(*r) for r in rows]

    def active_for(self, con: sqlite3.Connection, sensors: set[str]) -> list[AlarmRow]:
        """The active alarms of these sensors."""
        return [AlarmRow(*r) for r in self.active_rows(con, sensors)]

    def active_rows(self, con: sqlite3.Connection, sensors: set[str]) -> list[list[Any]]:
        """The active alarms of these sensors as lists of values (`ALARM_COLUMNS`): what the
        alarm book changes in place and writes back with `write_alarms`."""
        ids = sorted(sensors)
        out: list[list[Any]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = con.execute(
                f"SELECT {_ALARM_COLS} FROM alarms WHERE state = 'active' "
                f"AND sensor IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            out.extend(list(r) for r in rows)
        return out

    @staticmethod
    def next_ids(con: sqlite3.Connection) -> tuple[int, int]:
        """The ids the next alarm and the next journal event get (AUTOINCREMENT: above any id
        ever given), so that a batch can name its rows before writing them together."""
        row = con.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM alarms), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'alarms'), "
            "(SELECT COALESCE(MAX(id), 0) FROM alarm_events), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'alarm_events')"
        ).fetchone()
        return max(row[0], row[1] or 0) + 1, max(row[2], row[3] or 0) + 1

    @staticmethod
    def write_alarms(
        con: sqlite3.Connection,
        changed: Sequence[Sequence[Any]],
        new: Sequence[Sequence[Any]],
        events: Sequence[Sequence[Any]],
    ) -> set[int]:
        """Write a batch: the changed columns of alarms that were there (first, so that a clear
        makes room for the point's next active alarm), the new alarms, then their journal
        events (`_EVENT_COLS`, ids from `next_ids`); a process event already recorded (a retried
        batch) is skipped. Returns the ids of the events skipped."""
        if changed:
            con.executemany(_UPDATE_ALARMS, [(*(r[i] for i in _MUTABLE_AT), r[0]) for r in changed])
        if new:
            con.executemany(_INSERT_ALARMS, new)
        if not events:
            return set()
        before = con.total_changes
        con.executemany(_INSERT_EVENTS, events)
        if con.total_changes - before == len(events):
            return set()
        there = con.execute(
            "SELECT id FROM alarm_events WHERE id BETWEEN ? AND ?", (events[0][0], events[-1][0])
        ).fetchall()
        return {int(e[0]) for e in events} - {int(r[0]) for r in there}

    def shelves_until(self, con: sqlite3.Connection, now: int) -> dict[tuple[str, str, int], int]:
        rows = con.execute("SELECT sensor, rule, side, until FROM shelves WHERE until > ?", (now,))
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows.fetchall()}

    def sensors_out(self, con: sqlite3.Connection) -> set[str]:
        return {r[0] for r in con.execute("SELECT sensor FROM out_of_service").fetchall()}

    def update_alarms(self, con: sqlite3.Connection, rows: Sequence[AlarmRow]) -> None:
        """Write the changeable columns of alarms changed in memory."""
        if not rows:
            return
        sets = ", ".join(f"{c} = ?" for c in _MUTABLE)
        con.executemany(
            f"UPDATE alarms SET {sets} WHERE id = ?",
            [(*(getattr(r, c) for c in _MUTABLE), r.id) for r in rows],
        )

    def insert_alarm(self, con: sqlite3.Connection, fields: dict[str, Any]) -> int:
        names = ", ".join(fields)
        cur = con.execute(
            f"INSERT INTO alarms ({names}) VALUES ({','.join('?' * len(fields))})",
            tuple(fields.values()),
        )
        return int(cur.lastrowid or 0)

    def update_alarm(self, con: sqlite3.Connection, alarm_id: int, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        con.execute(f"UPDATE alarms SET {sets} WHERE id = ?", (*fields.values(), alarm_id))

    def insert_event(
        self,
        con: sqlite3.Connection,
        alarm_id: int,
        kind: str,
        ts: int,
        arrival: int,
        level: int,
        level_name: str,
        tier: str,
        value: float | None,
        isa_state: str,
        actor: str | None = None,
        comment: str = "",
    ) -> int | None:
        """Append to the alarm's journal; a process event (no actor) is recorded once, so a
        retried batch adds nothing. Returns the event id, None when it was already there."""
        cur = con.execute(
            "INSERT OR IGNORE INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, "
            "tier, value, actor, comment, isa_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alarm_id,
                kind,
                ts,
                arrival,
                level,
                level_name,
                tier,
                value,
                actor,
                comment,
                isa_state,
            ),
        )
        return int(cur.lastrowid or 0) if cur.rowcount else None

    def shelf_until(
        self, con: sqlite3.Connection, sensor: str, rule: str, side: int, now: int
    ) -> int | None:
        row = con.execute(
            "SELECT until FROM shelves WHERE sensor = ? AND rule = ? AND side = ? AND until > ?",
            (sensor, rule, side, now),
        ).fetchone()
        return int(row[0]) if row else None

    def set_shelf(
        self,
        con: sqlite3.Connection,
        key: tuple[str, str, int],
        until: int | None,
        actor: str = "",
        reason: str = "",
        at: int = 0,
    ) -> None:
        """Shelve the alarm point (sensor, rule, side) until a time, or unshelve it (None):
        an activation while it is shelved starts shelved."""
        if until is None:
            con.execute("DELETE FROM shelves WHERE sensor = ? AND rule = ? AND side = ?", key)
        else:
            con.execute(
                "INSERT OR REPLACE INTO shelves (sensor, rule, side, until, actor, reason, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, until, actor, reason, at),
            )

    def out_of_service(self, con: sqlite3.Connection, sensor: str) -> bool:
        row = con.execute("SELECT 1 FROM out_of_service WHERE sensor = ?", (sensor,)).fetchone()
        return row is not None

    def set_out_of_service(
        self,
        con: sqlite3.Connection,
        sensor: str,
        tenant: str,
        actor: str | None,
        reason: str = "",
        at: int = 0,
    ) -> None:
        """Take a sensor out of service (actor given) or return it to service (actor None)."""
        if actor is None:
            con.execute("DELETE FROM out_of_service WHERE sensor = ?", (sensor,))
        else:
            con.execute(
                "INSERT OR REPLACE INTO out_of_service (sensor, tenant, actor, reason, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (sensor, tenant, actor, reason, at),
            )

    def sensors_out_of_service(self, tenants: Sequence[str] | None) -> list[tuple[Any, ...]]:
        rows = self.query("SELECT sensor, tenant, actor, reason, at FROM out_of_service")
        return [r for r in rows if tenants is None or r[1] in tenants]

    def get_alarm(self, alarm_id: int) -> AlarmRow | None:
        rows = self.query(f"SELECT {_ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,))
        return AlarmRow(*rows[0]) if rows else None

    def alarm_events(self, alarm_ids: Sequence[int]) -> dict[int, list[AlarmEventRow]]:
        out: dict[int, list[AlarmEventRow]] = {i: [] for i in alarm_ids}
        for r in self._event_rows(alarm_ids):
            out[r[1]].append(AlarmEventRow(*r))
        return out

    def _event_rows(self, alarm_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        if not alarm_ids:
            return []
        return self.query(_events_sql(len(alarm_ids)), tuple(alarm_ids))

    # dead letters -------------------------------------------------------------------------
    def add_dead_letter(
        self, at: int, source: str, topic: str, reason: str, payload: bytes
    ) -> None:
        """Keep a rejected message with the reason (payload cut to the configured size)."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO dead_letters (at, source, topic, reason, payload, size) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        at,
                        source,
                        topic[:1024],
                        reason[:2000],
                        payload[: self._max_payload],
                        len(payload),
                    ),
                )
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self.query(
            "SELECT id, at, source, topic, reason, payload, size FROM dead_letters "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*r) for r in rows]


def _alarm_list_sql(
    tenants: Sequence[str] | None,
    state: str | None,
    sensor: str | None,
    isa_state: Sequence[str] | None,
    tier: Sequence[str] | None,
    site: str | None,
    side: int | None,
    disposal: str | None,
    open_only: bool,
    before_id: int | None,
) -> tuple[str, list[Any]]:
    """The alarm list's SELECT (newest first, `LIMIT ?` last) and its parameters but the limit."""
    where, params = [], []  # type: list[str], list[Any]

    def among(column: str, values: Sequence[Any]) -> None:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)

    if tenants is not None:
        among("tenant", tenants)
    for column, value in (
        ("state", state),
        ("sensor", sensor),
        ("site", site),
        ("side", side),
        ("disposal", disposal),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if isa_state:
        among("isa_state", isa_state)
    if tier:
        among("tier", tier)
    if open_only:
        where.append("(isa_state != 'normal' OR disposal != 'closed')")
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return f"SELECT {_ALARM_COLS} FROM alarms {clause} ORDER BY id DESC LIMIT ?", params


def _events_sql(n: int) -> str:
    return (
        f"SELECT {_EVENT_COLS} FROM alarm_events "
        f"WHERE alarm_id IN ({','.join('?' * n)}) ORDER BY id"
    )


def _records(
    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]] | None],
    sql: str,
    params: Sequence[Any],
) -> AlarmRecords | None:
    """The alarms of `sql` and their events, as dictionaries; None if `query` gave up."""
    rows = query(sql, params)
    if rows is None:
        return None
    alarms = [dict(zip(_ALARM_NAMES, r, strict=True)) for r in rows]
    events: dict[int, list[dict[str, Any]]] = {a["id"]: [] for a in alarms}
    if alarms:
        found = query(_events_sql(len(alarms)), list(events))
        if found is None:
            return None
        for r in found:
            events[r[1]].append(dict(zip(_EVENT_NAMES, r, strict=True)))
    return alarms, events
