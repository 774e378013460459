"""Relational state of the hub (alarms, alarm events, dead letters) behind one module.

SQLite by default (one file under the data folder, WAL). The methods are synchronous and
thread-safe; async callers run them in a worker thread, but for `quick_alarm_records`, which the
API's alarm list runs on its event loop (see there). Keeping every SQL statement here and in its
four siblings (`alerts.stateschema`: the tables; `alerts.alarmquery`: the alarm list's filters;
`alerts.alarmwrites`: the alarm lifecycle's statements inside a transaction;
`alerts.deadletters`: the messages refused) is what lets PostgreSQL replace SQLite when several
hub processes share state. The rows: `alerts.alarmrows`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from alerts.alarmquery import AlarmFilter, events_sql, records
from alerts.alarmrows import (
    ALARM_COLS,
    ALARM_COLUMNS,
    AlarmEventRow,
    AlarmRecords,
    AlarmRow,
    DeadLetter,
    chunks_in,
)
from alerts.alarmwrites import AlarmStatements
from alerts.deadletters import DeadLetterBook
from alerts.errors import AlarmStoreError
from alerts.restoredcopy import renumber_restored
from alerts.stateschema import (
    SCHEMA,
    SCHEMA_V2,
    SCHEMA_V3,
    SCHEMA_V4,
    SCHEMA_V5,
    SCHEMA_V5_FILL,
    SCHEMA_V6,
    SCHEMA_V6_ORIGIN,
    SCHEMA_V7,
    SCHEMA_V8,
    SCHEMA_V9,
    SCHEMA_V10,
    SCHEMA_V11,
    SCHEMA_V12,
    SCHEMA_V12_FILL,
    VERSION,
)
from alerts.stateschemaside import (
    BYPASS_APPROVAL_COLUMNS,
    LOCK_PLAN_COLUMNS,
    SCHEMA_BYPASS_APPROVALS,
    SCHEMA_BYPASS_APPROVALS_KEPT,
    SCHEMA_HAZARDS,
    SCHEMA_LOCK_TESTS,
    SCHEMA_VEHICLE_REPORTS,
)

__all__ = [
    "ALARM_COLUMNS",
    "AlarmEventRow",
    "AlarmFilter",
    "AlarmRecords",
    "AlarmRow",
    "DeadLetter",
    "StateDB",
    "chunks_in",
]
_QUICK_EVERY = 1000  # SQLite steps between two looks at a quick read's budget


@contextmanager
def write_transaction(
    con: sqlite3.Connection, lock: threading.Lock, what: str
) -> Iterator[sqlite3.Connection]:
    """A write transaction on `con` under `lock` (BEGIN IMMEDIATE: all of it or none); SQLite's
    errors as AlarmStoreError naming `what`. Also `alerts.notify.outboxdb`'s."""
    with lock:
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            finally:
                # the body failed, or the COMMIT did (SQLITE_BUSY, a deferred constraint, a full
                # disk): a transaction left open would refuse every later BEGIN
                if con.in_transaction:
                    con.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"{what}: {exc}") from exc


def read_query(
    con: sqlite3.Connection, lock: threading.Lock, what: str, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """A read on `con` under `lock`; SQLite's errors as AlarmStoreError naming `what`."""
    with lock:
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"{what}: {exc}") from exc


class StateDB(AlarmStatements, DeadLetterBook):
    """One SQLite connection; every statement of the relational state."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_dead_letter_bytes: int = 64 * 1024,
        dead_letters_kept: int = 10_000,
        dead_letters_kept_bytes: int = 64 * 1024 * 1024,
        quick_steps: int = 50_000,
    ) -> None:
        """`quick_steps`: how much SQLite work (virtual-machine steps; 50,000 is about 5 ms,
        100 alarms with their events take under 10,000) a `quick_alarm_records` may do before
        it gives up; 0: it always gives up. Dead letters: each payload cut to
        `max_dead_letter_bytes`, the newest `dead_letters_kept` and `dead_letters_kept_bytes` of
        payloads kept (a client sending garbage cannot fill the disk of the alarm database)."""
        self._path = str(path)
        self.quick_steps = quick_steps
        self._lock = threading.Lock()
        self._max_payload = max_dead_letter_bytes
        self._letters_kept = (dead_letters_kept, dead_letters_kept_bytes)
        self._letters: list[int] | None = None  # [rows, payload bytes] held, read at first use
        # lock-out tests recorded through this object (`alerts.locktests.insert_test`), a count
        # that moves with each: the hub's lock-test alarms judge the plans again when it moved,
        # and a tick that finds it where it was reads nothing (`LockTestAlarms.step`)
        self.lock_tests_recorded = 0
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # an alarm recorded is on disk before the hub acknowledges its message: NORMAL may
            # lose the last commits at a power cut (helper-150); FULL costs ~1.5 ms a commit
            # here, once per batch judged (a dead letter, one per bad message, is the exception:
            # `add_dead_letter`)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()
            self._db.executescript(SCHEMA_LOCK_TESTS)
            self._db.executescript(SCHEMA_HAZARDS + SCHEMA_VEHICLE_REPORTS)  # (`alerts.hazards`...)
            self._db.executescript(SCHEMA_BYPASS_APPROVALS)  # (`alerts.bypasses`)
            have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(lock_plans)")}
            for name, decl in LOCK_PLAN_COLUMNS:
                if name not in have:  # (made by a hub of before the column)
                    self._db.execute(f"ALTER TABLE lock_plans ADD COLUMN {name} {decl}")
            have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(bypass_approvals)")}
            for name, decl in BYPASS_APPROVAL_COLUMNS:
                if name not in have:  # (made by a hub of before the column)
                    self._db.execute(f"ALTER TABLE bypass_approvals ADD COLUMN {name} {decl}")
            self._db.executescript(SCHEMA_BYPASS_APPROVALS_KEPT)
            renumber_restored(self._db, self._path)  # a backup's copy: ids from far above
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
        if version > VERSION:  # a newer hub wrote it: its meaning is not ours to guess
            raise AlarmStoreError(
                f"state database has schema {version}, this hub knows {VERSION}: "
                "run the newer hub, or restore a backup"
            )
        if version < 2:
            self._db.executescript(f"BEGIN; {SCHEMA_V2} PRAGMA user_version = 2; COMMIT;")
        if version < 3:
            self._db.executescript(f"BEGIN; {SCHEMA_V3} PRAGMA user_version = 3; COMMIT;")
        if version < 4:
            self._db.executescript(f"BEGIN; {SCHEMA_V4} PRAGMA user_version = 4; COMMIT;")
        if version < 5:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(shelves)").fetchall()}
            add = "" if "level" in cols else SCHEMA_V5  # (a file set back to an older version)
            self._db.executescript(
                f"BEGIN; {add} {SCHEMA_V5_FILL} PRAGMA user_version = 5; COMMIT;"
            )
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(dead_letters)").fetchall()}
        if version < 6 or "origin" not in cols:  # (origin: a file of this version's first days)
            add = "" if "repeats" in cols else SCHEMA_V6
            add += "" if "origin" in cols else SCHEMA_V6_ORIGIN
            self._db.executescript(f"BEGIN; {add} PRAGMA user_version = 6; COMMIT;")
        if version < 7:
            self._db.executescript(f"BEGIN; {SCHEMA_V7} PRAGMA user_version = 7; COMMIT;")
        if version < 8:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(alarms)").fetchall()}
            add = "" if "disposal_from" in cols else SCHEMA_V8  # (a file set back to before)
            self._db.executescript(f"BEGIN; {add} PRAGMA user_version = 8; COMMIT;")
        if version < 9:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(alarms)").fetchall()}
            add = "" if "centre_acked" in cols else SCHEMA_V9  # (a file set back to before)
            self._db.executescript(f"BEGIN; {add} PRAGMA user_version = 9; COMMIT;")
        if version < 10:
            self._db.executescript(f"BEGIN; {SCHEMA_V10} PRAGMA user_version = 10; COMMIT;")
        if version < 11:
            self._db.executescript(f"BEGIN; {SCHEMA_V11} PRAGMA user_version = 11; COMMIT;")
        if version < 12:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(alarm_supervisions)")}
            add = "" if "overdue_at" in cols else SCHEMA_V12  # (a file set back to before)
            self._db.executescript(
                f"BEGIN; {add} {SCHEMA_V12_FILL} PRAGMA user_version = 12; COMMIT;"
            )

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        with self._quick_lock:
            self._quick.close()
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Run statements atomically: all of them or none."""
        return write_transaction(self._db, self._lock, "state database")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Reads that see one committed state, on the reading connection, without the writer's
        lock: the notification pipeline reads what to route here, then writes it in a short
        transaction, so that the alarm book never waits behind its Python work."""
        with self._read_lock:
            try:
                self._reader.execute("BEGIN")
                try:
                    yield self._reader
                finally:
                    self._reader.execute("ROLLBACK")  # nothing written: ends the read
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, on the reading connection."""
        return read_query(self._reader, self._read_lock, "state database", sql, params)

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
        rows = self.query(f"SELECT {ALARM_COLS} FROM alarms WHERE state = 'active'")
        return [AlarmRow(*r) for r in rows]

    def active_of_rule(self, rule: str, sensors: Sequence[str] | None = None) -> list[AlarmRow]:
        """The active alarms of `rule` (of these sensors; None: of every sensor)."""
        sql = f"SELECT {ALARM_COLS} FROM alarms WHERE state = 'active' AND rule = ?"
        if sensors is None:
            return [AlarmRow(*r) for r in self.query(sql, (rule,))]
        out: list[AlarmRow] = []
        for chunk, marks in chunks_in(sorted(set(sensors))):
            rows = self.query(f"{sql} AND sensor IN ({marks})", (rule, *chunk))
            out.extend(AlarmRow(*r) for r in rows)
        return out

    @staticmethod
    def raised_at(con: sqlite3.Connection, sensor: str, rule: str, side: int, ts: int) -> bool:
        """Whether an alarm of the point was raised at event time `ts` (a raise judged again)."""
        row = con.execute(
            "SELECT 1 FROM alarms WHERE sensor = ? AND rule = ? AND side = ? AND started_ts = ? "
            "LIMIT 1",
            (sensor, rule, side, ts),
        ).fetchone()
        return row is not None

    def cleared_until(self, sides: Sequence[int]) -> list[tuple[str, str, str, str, str, int]]:
        """Per tenant, site, device, sensor and rule, the event time of the latest end of an
        alarm of one of `sides` (whose ends are the sensor's own readings): the readings up to
        it were judged, whatever the saved analytics state says (`AlarmBook.restore`). Only ends
        stamped before they arrived: a reading's (a configuration change clears at its arrival
        or later, `AlarmBook.retire`: no reading's time; a device clock ahead of the hub's is
        left out too, on the safe side)."""
        marks = ", ".join("?" * len(sides))
        rows = self.query(
            "SELECT tenant, site, device, sensor, rule, MAX(ended_ts) FROM alarms "
            f"WHERE ended_ts < cleared_at AND side IN ({marks}) "
            "GROUP BY tenant, site, device, sensor, rule",
            tuple(sides),
        )
        return [(str(a), str(b), str(c), str(d), str(e), int(f)) for a, b, c, d, e, f in rows]

    def active_alarm(
        self, con: sqlite3.Connection, sensor: str, rule: str, side: int
    ) -> AlarmRow | None:
        row = con.execute(
            f"SELECT {ALARM_COLS} FROM alarms WHERE sensor = ? AND rule = ? AND side = ? "
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
        """Newest first; `tenants` None means every tenant (the filters: `AlarmFilter`)."""
        where = AlarmFilter(
            tenants, state, sensor, isa_state, tier, site, side, disposal, open_only, before_id
        )
        sql, params = where.select()
        return [AlarmRow(*r) for r in self.query(sql, (*params, limit))]

    def list_alarm_records(self, where: AlarmFilter, limit: int = 100) -> AlarmRecords:
        """The alarms `where` selects and their events, as plain dictionaries (column name ->
        value) rather than row objects: for the API's alarm list, which only turns them into
        JSON (a frozen dataclass of 28 fields costs several times a dictionary)."""
        found = records(self.query, where, limit)
        assert found is not None  # `query` raises rather than giving up
        return found

    def quick_alarm_records(self, where: AlarmFilter, limit: int = 100) -> AlarmRecords | None:
        """`list_alarm_records` on the caller's thread, if it is quick: None when it would take
        more than a few milliseconds of SQLite work (it is interrupted; ask
        `list_alarm_records` in a worker thread then). The alarm list's usual reads (a tenant's
        newest alarms, by an index) take well under a millisecond, less than the trip to a
        worker thread and back, which under load costs about as much again in CPU and more in
        latency; a filter that makes SQLite scan gives up here and goes to the thread."""
        return records(self._quick_query, where, limit)

    def sensors_out_of_service(self, tenants: Sequence[str] | None) -> list[tuple[Any, ...]]:
        rows = self.query("SELECT sensor, tenant, actor, reason, at FROM out_of_service")
        return [r for r in rows if tenants is None or r[1] in tenants]

    def get_alarm(self, alarm_id: int) -> AlarmRow | None:
        rows = self.query(f"SELECT {ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,))
        return AlarmRow(*rows[0]) if rows else None

    def alarm_events(self, alarm_ids: Sequence[int]) -> dict[int, list[AlarmEventRow]]:
        out: dict[int, list[AlarmEventRow]] = {i: [] for i in alarm_ids}
        for r in self._event_rows(alarm_ids):
            out[r[1]].append(AlarmEventRow(*r))
        return out

    def _event_rows(self, alarm_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        if not alarm_ids:
            return []
        return self.query(events_sql(len(alarm_ids)), tuple(alarm_ids))
