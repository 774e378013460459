"""Relational state of the hub (alarms, alarm events, dead letters) behind one module.

SQLite by default (one file under the data folder, WAL). The methods are synchronous and
thread-safe; async callers run them in a worker thread. Keeping every SQL statement here is what
lets PostgreSQL replace SQLite when several hub processes share state.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.errors import AlarmStoreError

__all__ = ["AlarmEventRow", "AlarmRow", "DeadLetter", "StateDB"]

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

_ALARM_COLS = (
    "id, tenant, site, device, sensor, rule, side, level, level_name, tier, action, state, "
    "started_ts, ended_ts, raised_at, cleared_at, peak_level, last_ts, value"
)


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

    def __init__(self, path: Path | str, *, max_dead_letter_bytes: int = 64 * 1024) -> None:
        self._path = str(path)
        self._lock = threading.Lock()
        self._max_payload = max_dead_letter_bytes
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"cannot open state database {self._path}: {exc}") from exc

    def close(self) -> None:
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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"state database: {exc}") from exc

    # alarms -------------------------------------------------------------------------------
    def active_alarms(self) -> list[AlarmRow]:
        rows = self._query(f"SELECT {_ALARM_COLS} FROM alarms WHERE state = 'active'")
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
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AlarmRow]:
        """Newest first; `tenants` None means every tenant."""
        where, params = [], []  # type: list[str], list[Any]
        if tenants is not None:
            where.append(f"tenant IN ({','.join('?' * len(tenants))})")
            params.extend(tenants)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if sensor is not None:
            where.append("sensor = ?")
            params.append(sensor)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._query(
            f"SELECT {_ALARM_COLS} FROM alarms {clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [AlarmRow(*r) for r in rows]

    def get_alarm(self, alarm_id: int) -> AlarmRow | None:
        rows = self._query(f"SELECT {_ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,))
        return AlarmRow(*rows[0]) if rows else None

    def alarm_events(self, alarm_ids: Sequence[int]) -> dict[int, list[AlarmEventRow]]:
        if not alarm_ids:
            return {}
        rows = self._query(
            "SELECT id, alarm_id, kind, ts, arrival, level, level_name, tier, value "
            f"FROM alarm_events WHERE alarm_id IN ({','.join('?' * len(alarm_ids))}) ORDER BY id",
            tuple(alarm_ids),
        )
        out: dict[int, list[AlarmEventRow]] = {i: [] for i in alarm_ids}
        for r in rows:
            out[r[1]].append(AlarmEventRow(*r))
        return out

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
        rows = self._query(
            "SELECT id, at, source, topic, reason, payload, size FROM dead_letters "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*r) for r in rows]
