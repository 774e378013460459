"""The embedded time-series store: one SQLite file, used when no InfluxDB is configured.

Rows are keyed by a *stable sensor number* (`sid`), not by the registry index: the `sensors`
table maps each sensor id string to its `sid` (assigned once, never reused) and to the index the
current registry gives it (`idx`, refreshed at every `open`, NULL for sensors no longer
configured). A config change that renumbers the registry therefore leaves every stored row attached
to the same sensor id. Positions are keyed the same way, through the vehicle's speed sensor.

All database work runs on one dedicated worker thread that owns the connection. Jobs run in the
order they were submitted, so a caller cancelled while its job runs cannot let a second job touch
the connection at the same time (an `asyncio.Lock` around `asyncio.to_thread` would be released on
cancellation while the thread is still busy). The event loop never waits on SQLite.

This module is the store's face (lifecycle, the worker, the sensor map; the periodic job and
retention are in `ingest.store.sqlite_upkeep`); the work it hands the worker is in
`ingest.store.sqlite_db` (the file, its schema and transactions), `ingest.store.sqlite_write`,
`ingest.store.sqlite_read` and `ingest.store.sqlite_retention` (rollups and retention), with the
SQL text in `ingest.store.sqlite_sql`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import (
    Aggregate,
    LatestValue,
    PositionBatch,
    ReadingBatch,
    StoreError,
)
from ingest.store.retention import RetentionPolicy, domain_of
from ingest.store.sqlite_db import map_sensors, mapped, open_database, sid_array
from ingest.store.sqlite_db import transaction as _transaction  # tests import it from here
from ingest.store.sqlite_read import (
    TrackRow,
    alarm_events_of,
    history_query,
    select_count_by_seq,
    select_history,
    select_last_calibrations,
    select_last_positions,
    select_latest,
    select_readings,
    select_track,
    track_batch,
)
from ingest.store.sqlite_retention import (
    RetentionReport,
)
from ingest.store.sqlite_sql import (
    ALARM_EVENTS_ALL,
    ALARM_EVENTS_OF,
    HISTORY_BY_WINDOW,
)
from ingest.store.sqlite_upkeep import SqliteUpkeep
from ingest.store.sqlite_write import (
    alarm_event_rows,
    insert_alarm_events,
    insert_positions,
    insert_readings,
)
from telemetry.clock import wall_ms
from telemetry.registry import Registry

__all__ = ["RetentionReport", "SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteStore(SqliteUpkeep):
    """`TimeSeriesStore` over one SQLite file (WAL, synchronous=FULL: a reading acknowledged is
    on disk)."""

    def __init__(
        self,
        registry: Registry,
        path: pathlib.Path | str,
        *,
        busy_timeout_s: float = 5.0,
        retention: RetentionPolicy | None = None,
        retention_every_s: float = 3600.0,
        rollup_every_s: float = 60.0,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        """With `retention`, `open` starts a job that applies it every `retention_every_s`; the
        same job brings the rollups up to date every `rollup_every_s` (0: only when read).
        `clock` gives the time retention counts from, in epoch ms."""
        self._registry = registry
        self._retention = retention
        self._retention_every_s = retention_every_s
        self._rollup_every_s = rollup_every_s
        self._clock = clock
        self._job: asyncio.Task[None] | None = None
        self._domain_of = [domain_of(registry, s) for s in registry.sensors]
        self._path = pathlib.Path(path)
        self._busy_timeout_ms = max(0, int(busy_timeout_s * 1000))
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        # registry index -> stable sid; filled by open()
        self._sid: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    # -- plumbing ---------------------------------------------------------------------------

    async def _submit(self, action: str, fn: Callable[[], T]) -> T:
        """Run `fn` on the worker thread, sqlite3 errors mapped to `StoreError`."""
        self._check_open(action)
        executor = self._executor
        assert executor is not None

        def job() -> T:
            with mapped(action):
                return fn()

        return await asyncio.get_running_loop().run_in_executor(executor, job)

    async def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the worker thread."""

        def job() -> T:
            conn = self._conn
            if conn is None:
                raise StoreError(f"sqlite {action}: the store is closed", retryable=False)
            return fn(conn)

        return await self._submit(action, job)

    def _check_open(self, action: str) -> None:
        if self._executor is None:
            raise StoreError(f"sqlite {action}: the store is not open", retryable=False)

    def _sids(self, indices: npt.NDArray[np.int32], what: str) -> npt.NDArray[np.int64]:
        """Map registry indices to stable sids; an index outside the registry is refused."""
        n = self._sid.shape[0]
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
            bad = indices[(indices < 0) | (indices >= n)]
            raise StoreError(
                f"sqlite write {what}: sensor index {int(bad[0])} is not in the registry "
                f"({n} sensors)",
                retryable=False,
            )
        return self._sid[indices]

    def _by_sid(self, sensors: Sequence[int]) -> dict[int, int]:
        """Stable sid -> registry index of the `sensors` in the registry."""
        index = np.fromiter(sensors, dtype=np.int64, count=len(sensors))
        index = index[(index >= 0) & (index < self._sid.shape[0])]
        return dict(zip(self._sid[index].tolist(), index.tolist(), strict=True))

    def _sid_of(self, index: int) -> int | None:
        if 0 <= index < self._sid.shape[0]:
            return int(self._sid[index])
        return None

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the file, set WAL, create the schema and refresh the sensor map."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        rows = [(s.id, s.index, s.tenant, s.site, s.device) for s in self._registry.sensors]

        def do_open() -> list[tuple[int, int]]:
            conn, mapping = open_database(self._path, self._busy_timeout_ms, rows)
            self._conn = conn
            return mapping

        try:
            mapping = await self._submit("open", do_open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._sid = sid_array(len(self._registry.sensors), mapping)
        if self._retention is not None or self._rollup_every_s > 0:
            self._job = asyncio.create_task(self._jobs(), name="sqlite-store-jobs")

    async def prepare_reload(self, registry: Registry) -> Callable[[], None]:
        """Number the sensors of a new configuration (new ones get their stable sid) and return
        the step that switches to it; the caller runs that step with nothing in flight."""
        rows = [(s.id, s.index, s.tenant, s.site, s.device) for s in registry.sensors]

        def do(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                return map_sensors(conn, rows)

        sid = sid_array(len(registry.sensors), await self._run("reload", do))
        domains = [domain_of(registry, s) for s in registry.sensors]

        def commit() -> None:
            self._registry, self._sid, self._domain_of = registry, sid, domains

        return commit

    async def close(self) -> None:
        """Stop the periodic job, close the connection (after every job already submitted)
        and stop the worker."""
        executor = self._executor
        if executor is None:
            return
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

        def do_close() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.execute("PRAGMA optimize")
                except sqlite3.Error as exc:  # a full disk, a locked file: the hub stops anyway
                    log.warning(
                        "sqlite close: PRAGMA optimize failed (%s); closing all the same", exc
                    )
                with mapped("close"):
                    conn.close()

        try:
            await asyncio.get_running_loop().run_in_executor(executor, do_close)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    # -- writes -----------------------------------------------------------------------------

    async def write_readings(self, batch: ReadingBatch) -> None:
        """Store readings; idempotent on (sensor, ts). NaN values are stored as NULL."""
        self._check_open("write readings")
        if len(batch) == 0:
            return
        sids = self._sids(batch.sensor, "readings")  # validates on the caller's side
        # Rows are built on the worker, so a large batch does not hold up the loop.
        await self._run("write readings", lambda conn: insert_readings(conn, sids, batch))

    async def write_positions(self, batch: PositionBatch) -> None:
        """Store positions; idempotent on (vehicle, ts)."""
        self._check_open("write positions")
        if len(batch) == 0:
            return
        sids = self._sids(batch.vehicle, "positions")
        await self._run("write positions", lambda conn: insert_positions(conn, sids, batch))

    # -- reads ------------------------------------------------------------------------------

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        """The newest reading by event time of each sensor that has one, in one query of the
        latest table: a lookup per sensor, or one pass over the table when most are asked for."""
        self._check_open("latest")
        by_sid = self._by_sid(sensors)
        if not by_sid:
            return {}
        whole = len(by_sid) * 2 >= self._sid.shape[0]
        # the answer is built on the worker: 10,000 values do not hold up the loop
        return await self._run("latest", lambda conn: select_latest(conn, by_sid, whole))

    async def history(
        self,
        sensor: int,
        start_ms: int,
        end_ms: int,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[tuple[int, float]]:
        """Readings with start <= ts < end, oldest first; with `every_ms`, one row per window
        that has readings: (window start aligned to epoch 0, aggregate of the non-NaN values:
        NaN when there are none, 0 for `count`; `last` is the value at the newest ts, even NaN).
        Bad `every_ms` or `aggregate` raise ValueError (a caller's mistake, not the store's).

        A window that is a whole number of minutes is read from the 1-minute rollups (brought up
        to date for this sensor and range first), with the raw rows only for the minutes the
        range cuts; the mean is then sum / count, equal to the raw mean up to rounding."""
        self._check_open("history")
        if every_ms is not None and every_ms <= 0:
            raise ValueError(f"every_ms must be positive, not {every_ms}")
        if aggregate not in HISTORY_BY_WINDOW:
            raise ValueError(f"unknown aggregate {aggregate!r}")
        sid = self._sid_of(sensor)
        if sid is None or end_ms <= start_ms:
            return []
        sql, params, rollup = history_query(sid, start_ms, end_ms, every_ms, aggregate)
        return await self._run("history", lambda conn: select_history(conn, sql, params, rollup))

    async def readings(
        self, sensor: int, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[tuple[int, float, int]]:
        """Readings with start <= ts < end, oldest first, with their quality (NULL as NaN)."""
        self._check_open("readings")
        sid = self._sid_of(sensor)
        if sid is None or end_ms <= start_ms:
            return []
        return await self._run(
            "readings", lambda conn: select_readings(conn, sid, start_ms, end_ms, limit)
        )

    async def last_calibrations(
        self, sensors: Sequence[int], start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """Each sensor's newest calibration reading with start <= ts < end: one query, a seek
        in the partial index of the calibration readings a sensor."""
        self._check_open("last calibrations")
        by_sid = self._by_sid(sensors)
        return await self._run(
            "last calibrations",
            lambda conn: select_last_calibrations(conn, by_sid, start_ms, end_ms),
        )

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        """Positions of one vehicle with start <= ts < end, oldest first."""
        self._check_open("track")
        sid = self._sid_of(vehicle)
        rows: list[TrackRow] = []
        if sid is not None and end_ms > start_ms:
            rows = await self._run("track", lambda conn: select_track(conn, sid, start_ms, end_ms))
        return track_batch(vehicle, rows)

    async def last_positions(self, vehicles: Sequence[int]) -> PositionBatch:
        """The newest position by event time of each vehicle that has one: one query, a seek
        in the positions' primary key (vehicle, ts) a vehicle."""
        self._check_open("last positions")
        by_sid = self._by_sid(vehicles)
        if not by_sid:
            return track_batch(0, [])
        return await self._run("last positions", lambda conn: select_last_positions(conn, by_sid))

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        """Readings stored per (epoch, seq) for the sensors of one device (by id, across sites
        and across config changes)."""
        rows = await self._run(
            "count by seq", lambda conn: select_count_by_seq(conn, tenant, device)
        )
        return {(int(e), int(s)): int(n) for e, s, n in rows}

    # -- alarm events -----------------------------------------------------------------------

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        """Store alarm events; idempotent on (sensor, rule, side, kind, ts)."""
        self._check_open("write alarm events")
        if not events:
            return
        rows = alarm_event_rows(events)
        await self._run("write alarm events", lambda conn: insert_alarm_events(conn, rows))

    async def alarm_events(
        self, tenants: Sequence[str] | None, start_ms: int, end_ms: int
    ) -> list[AlarmEvent]:
        """Alarm events with start <= ts < end of `tenants` (all with None), by (ts, alarm_id)."""
        self._check_open("alarm events")
        params: dict[str, object] = {"start": start_ms, "end": end_ms}
        if tenants is None:
            sql = ALARM_EVENTS_ALL
        else:
            sql = ALARM_EVENTS_OF
            params["tenants"] = json.dumps(list(tenants))

        def do(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
            return conn.execute(sql, params).fetchall()

        return alarm_events_of(await self._run("alarm events", do))
