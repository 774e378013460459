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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

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
from ingest.store.retention import DOMAINS, RetentionPolicy, domain_of
from ingest.store.sqlite_sql import (
    ALARM_EVENTS_ALL,
    ALARM_EVENTS_OF,
    DELETE_ALARM_EVENTS,
    DELETE_LATEST_OF,
    DELETE_POSITIONS_OF,
    DELETE_READINGS_OF,
    DELETE_ROLLUPS_OF,
    FILL_LATEST,
    HISTORY_BY_WINDOW,
    HISTORY_FROM_ROLLUP,
    HISTORY_RAW,
    INSERT_ALARM_EVENT,
    INSERT_POSITION,
    INSERT_READING,
    LATEST,
    LATEST_ALL,
    MARK_ALL_DIRTY,
    MARK_DIRTY,
    MINUTE_MS,
    REFRESH_ALL,
    REFRESH_ONE,
    SCHEMA,
    SCHEMA_VERSION,
    UPSERT_LATEST,
)
from telemetry.registry import Registry

__all__ = ["RetentionReport", "SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_WAL_CHECKPOINT_PAGES: Final = 8192
_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

# Primary result codes (the low byte of the extended code) worth trying again.
_RETRYABLE_CODES: Final = frozenset({5, 6, 10})  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR
_RETRYABLE_WORDS: Final = ("locked", "busy", "disk i/o")


def _is_retryable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _RETRYABLE_CODES:
        return True
    text = str(exc).lower()
    return any(word in text for word in _RETRYABLE_WORDS)


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Translate sqlite3 errors into `StoreError` at the edge of the store."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {action}: {exc}", retryable=_is_retryable(exc)) from exc


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
    """One explicit transaction (the connection runs in autocommit mode otherwise)."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    finally:
        # the body or the COMMIT failed (SQLITE_BUSY, a full disk): roll back what is still
        # open (SQLite may already have), or every later BEGIN would fail
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _nan_to_none(column: npt.NDArray[np.float64]) -> list[float | None]:
    """The column as Python floats, NaN as None (stored as NULL); cheap when NaN is rare."""
    out: list[float | None] = list(column.tolist())
    for i in np.flatnonzero(np.isnan(column)).tolist():
        out[i] = None
    return out


def _key_order(sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Rows in primary-key order: each B-tree leaf is then visited once per batch (about 1.5x
    faster for interleaved sensors). The sort is stable, so of two rows with the same key the
    later one in the batch is still written last, and wins."""
    return np.lexsort((ts, sids))


def _newest(
    sids: npt.NDArray[np.int64], batch: ReadingBatch, order: npt.NDArray[np.intp]
) -> list[tuple[int, int, float | None, int]]:
    """Per sensor of a batch in key order (`sids` already ordered by `order`), its newest row:
    the last of its run, so of two rows with the same time the one written last, as in
    `readings`. Rows of (sid, ts, value, quality) for `UPSERT_LATEST`."""
    if sids.shape[0] == 0:
        return []
    last = np.empty(sids.shape[0], dtype=np.bool_)
    last[-1] = True
    last[:-1] = sids[1:] != sids[:-1]
    pick = order[last]
    return list(
        zip(
            sids[last].tolist(),
            batch.ts[pick].tolist(),
            _nan_to_none(batch.value[pick]),
            batch.quality[pick].tolist(),
            strict=True,
        )
    )


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _minutes(sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Distinct (sid, minute start) of rows already in key order."""
    w = ts - ts % MINUTE_MS  # numpy's % floors, as the SQL does
    if sids.shape[0] == 0:
        return []
    new = np.empty(sids.shape[0], dtype=np.bool_)
    new[0] = True
    new[1:] = (sids[1:] != sids[:-1]) | (w[1:] != w[:-1])
    return list(zip(sids[new].tolist(), w[new].tolist(), strict=True))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """Rows deleted by one `SqliteStore.apply_retention`."""

    readings: int
    rollups: int
    positions: int
    alarm_events: int


class SqliteStore:
    """`TimeSeriesStore` over one SQLite file (WAL, synchronous=NORMAL)."""

    def __init__(
        self,
        registry: Registry,
        path: pathlib.Path | str,
        *,
        busy_timeout_s: float = 5.0,
        retention: RetentionPolicy | None = None,
        retention_every_s: float = 3600.0,
        rollup_every_s: float = 60.0,
        clock: Callable[[], int] = _now_ms,
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
            with _mapped(action):
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
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"sqlite open: WAL refused (mode {mode})", retryable=False)
                conn.execute("PRAGMA synchronous = NORMAL")
                # Checkpoint every ~32 MiB of WAL rather than every 4 MiB: a batch of interleaved
                # sensors dirties one page per sensor, and checkpoints (with their fsync) were
                # a third of the insert time. The WAL file is truncated back after a checkpoint.
                conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"sqlite open: {self._path} has schema {version}, this hub knows "
                        f"{SCHEMA_VERSION}",
                        retryable=False,
                    )
                with _transaction(conn, "BEGIN IMMEDIATE"):
                    for stmt in SCHEMA.split(";"):  # not executescript: it COMMITs on its own
                        if stmt.strip():
                            conn.execute(stmt)
                    if 0 < version < 2:
                        conn.execute(MARK_ALL_DIRTY)  # readings from before the rollups
                    if 0 < version < 3:
                        conn.execute(FILL_LATEST)  # readings from before the latest table
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    mapping = _map_sensors(conn, rows)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return mapping

        try:
            mapping = await self._submit("open", do_open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._sid = _sid_array(len(self._registry.sensors), mapping)
        if self._retention is not None or self._rollup_every_s > 0:
            self._job = asyncio.create_task(self._jobs(), name="sqlite-store-jobs")

    async def prepare_reload(self, registry: Registry) -> Callable[[], None]:
        """Number the sensors of a new configuration (new ones get their stable sid) and return
        the step that switches to it; the caller runs that step with nothing in flight."""
        rows = [(s.id, s.index, s.tenant, s.site, s.device) for s in registry.sensors]

        def do(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                return _map_sensors(conn, rows)

        sid = _sid_array(len(registry.sensors), await self._run("reload", do))
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
                with _mapped("close"):
                    try:
                        conn.execute("PRAGMA optimize")
                    finally:
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

        def do(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the worker, so a large batch does not hold up the loop.
            o = _key_order(sids, batch.ts)
            rows = zip(
                sids[o].tolist(),
                batch.ts[o].tolist(),
                _nan_to_none(batch.value[o]),
                batch.quality[o].tolist(),
                batch.epoch[o].tolist(),
                batch.seq[o].tolist(),
                strict=True,
            )
            with _transaction(conn):
                conn.executemany(INSERT_READING, rows)
                conn.executemany(MARK_DIRTY, _minutes(sids[o], batch.ts[o]))
                conn.executemany(UPSERT_LATEST, _newest(sids[o], batch, o))

        await self._run("write readings", do)

    async def write_positions(self, batch: PositionBatch) -> None:
        """Store positions; idempotent on (vehicle, ts)."""
        self._check_open("write positions")
        if len(batch) == 0:
            return
        sids = self._sids(batch.vehicle, "positions")

        def do(conn: sqlite3.Connection) -> None:
            o = _key_order(sids, batch.ts)
            rows = zip(
                sids[o].tolist(),
                batch.ts[o].tolist(),
                _nan_to_none(batch.lat[o]),
                _nan_to_none(batch.lon[o]),
                _nan_to_none(batch.speed_kmh[o]),
                _nan_to_none(batch.heading_deg[o]),
                strict=True,
            )
            with _transaction(conn):
                conn.executemany(INSERT_POSITION, rows)

        await self._run("write positions", do)

    # -- reads ------------------------------------------------------------------------------

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        """The newest reading by event time of each sensor that has one, in one query of the
        latest table: a lookup per sensor, or one pass over the table when most are asked for."""
        self._check_open("latest")
        index = np.fromiter(sensors, dtype=np.int64, count=len(sensors))
        index = index[(index >= 0) & (index < self._sid.shape[0])]
        by_sid = dict(zip(self._sid[index].tolist(), index.tolist(), strict=True))
        if not by_sid:
            return {}
        whole = len(by_sid) * 2 >= self._sid.shape[0]

        def do(conn: sqlite3.Connection) -> dict[int, LatestValue]:
            # the answer is built here, on the worker: 10,000 values do not hold up the loop
            if whole:
                rows = conn.execute(LATEST_ALL).fetchall()
            else:
                rows = conn.execute(LATEST, (json.dumps(list(by_sid)),)).fetchall()
            return {
                i: LatestValue(ts, math.nan if value is None else value, quality)
                for sid, ts, value, quality in rows
                if (i := by_sid.get(sid)) is not None
            }

        return await self._run("latest", do)

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
        params: dict[str, int] = {"sensor": sid, "start": start_ms, "end": end_ms}
        rollup = every_ms is not None and every_ms % MINUTE_MS == 0
        if every_ms is None:
            sql = HISTORY_RAW
        elif rollup:
            # whole minutes [a, b) from the rollups, the cut minutes at both ends from raw rows
            a = min(-(-start_ms // MINUTE_MS) * MINUTE_MS, end_ms)
            b = max(end_ms // MINUTE_MS * MINUTE_MS, a)
            params.update(every=every_ms, a=a, b=b)
            sql = HISTORY_FROM_ROLLUP[aggregate]
        else:
            params["every"] = every_ms
            sql = HISTORY_BY_WINDOW[aggregate]

        def do(conn: sqlite3.Connection) -> list[tuple[int, float]]:
            if rollup:
                with _transaction(conn):
                    for stmt in REFRESH_ONE:
                        conn.execute(stmt, params)
            return [(int(r[0]), _float(r[1])) for r in conn.execute(sql, params)]

        return await self._run("history", do)

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        """Positions of one vehicle with start <= ts < end, oldest first."""
        self._check_open("track")
        sid = self._sid_of(vehicle)
        rows: list[tuple[int, float | None, float | None, float | None, float | None]] = []
        if sid is not None and end_ms > start_ms:

            def do(
                conn: sqlite3.Connection,
            ) -> list[tuple[int, float | None, float | None, float | None, float | None]]:
                return conn.execute(
                    "SELECT ts, lat, lon, speed_kmh, heading_deg FROM positions"
                    " WHERE vehicle = ? AND ts >= ? AND ts < ? ORDER BY ts",
                    (sid, start_ms, end_ms),
                ).fetchall()

            rows = await self._run("track", do)

        def col(i: int) -> npt.NDArray[np.float64]:
            return np.array([_float(r[i]) for r in rows], dtype=np.float64)

        return PositionBatch(
            vehicle=np.full(len(rows), vehicle, dtype=np.int32),
            ts=np.array([r[0] for r in rows], dtype=np.int64),
            lat=col(1),
            lon=col(2),
            speed_kmh=col(3),
            heading_deg=col(4),
        )

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        """Readings stored per (epoch, seq) for the sensors of one device (by id, across sites
        and across config changes)."""

        def do(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
            return conn.execute(
                "SELECT r.epoch, r.seq, count(*) FROM sensors AS s"
                " JOIN readings AS r ON r.sensor = s.sid"
                " WHERE s.tenant = ? AND s.device = ? GROUP BY r.epoch, r.seq",
                (tenant, device),
            ).fetchall()

        rows = await self._run("count by seq", do)
        return {(int(e), int(s)): int(n) for e, s, n in rows}

    # -- retention --------------------------------------------------------------------------

    async def enforce_retention(self, now_ms: int, keep_ms: int) -> int:
        """Delete readings and positions with ts < now - keep; return how many rows went."""
        if keep_ms < 0:
            raise ValueError(f"keep_ms must not be negative, not {keep_ms}")
        cutoff = now_ms - keep_ms

        def do(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                n = conn.execute("DELETE FROM readings WHERE ts < ?", (cutoff,)).rowcount
                n += conn.execute("DELETE FROM positions WHERE ts < ?", (cutoff,)).rowcount
                conn.execute("DELETE FROM latest WHERE ts < ?", (cutoff,))
            return int(n)

        return await self._run("retention", do)

    async def apply_retention(self, now_ms: int, policy: RetentionPolicy) -> RetentionReport:
        """Delete what `policy` no longer keeps, per domain: raw readings (and a vehicle's
        positions) older than the domain's raw time, 1-minute statistics older than its
        statistics time, alarm events older than the alarm time. The rollups are brought up to
        date first, so the statistics of deleted raw rows stay. Sensors no longer configured
        keep the longest raw and statistics times of any domain."""
        by_domain: dict[str, list[int]] = {d: [] for d in DOMAINS}
        for index, domain in enumerate(self._domain_of):
            if index < self._sid.shape[0] and self._sid[index] >= 0:
                by_domain[domain].append(int(self._sid[index]))
        known = {sid for sids in by_domain.values() for sid in sids}
        longest_raw = max(policy.raw_ms(d) for d in DOMAINS)
        longest_stats = max(policy.stats_ms(d) for d in DOMAINS)

        def do(conn: sqlite3.Connection) -> RetentionReport:
            gone = [
                int(r[0])
                for r in conn.execute("SELECT sid FROM sensors WHERE idx IS NULL").fetchall()
            ]
            groups = [
                (json.dumps(by_domain[d]), policy.raw_ms(d), policy.stats_ms(d), d == "vehicle")
                for d in DOMAINS
            ]
            groups.append(
                (json.dumps([g for g in gone if g not in known]), longest_raw, longest_stats, True)
            )
            counts = [0, 0, 0, 0]
            with _transaction(conn):
                for stmt in REFRESH_ALL:
                    conn.execute(stmt)
                for sids, raw_ms, stats_ms, has_positions in groups:
                    raw = {"sids": sids, "cutoff": now_ms - raw_ms}
                    counts[0] += conn.execute(DELETE_READINGS_OF, raw).rowcount
                    conn.execute(DELETE_LATEST_OF, raw)
                    stats = {"sids": sids, "cutoff": now_ms - stats_ms}
                    counts[1] += conn.execute(DELETE_ROLLUPS_OF, stats).rowcount
                    if has_positions:
                        counts[2] += conn.execute(DELETE_POSITIONS_OF, raw).rowcount
                cutoff = {"cutoff": now_ms - policy.alarm_days * 86_400_000}
                counts[3] = conn.execute(DELETE_ALARM_EVENTS, cutoff).rowcount
            return RetentionReport(*counts)

        return await self._run("retention", do)

    async def refresh_rollups(self) -> None:
        """Bring every 1-minute rollup up to date with the raw rows written since."""

        def do(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                for stmt in REFRESH_ALL:
                    conn.execute(stmt)

        await self._run("refresh rollups", do)

    async def _jobs(self) -> None:
        """Refresh rollups every `rollup_every_s` and apply retention every
        `retention_every_s`, until `close` cancels it. A failure is logged and tried again at
        the next turn: the job never takes the store down."""
        loop = asyncio.get_running_loop()
        next_retention = loop.time()
        tick = min(
            x
            for x in (self._rollup_every_s, self._retention_every_s if self._retention else 0)
            if x > 0
        )
        while True:
            try:
                if self._retention is not None and loop.time() >= next_retention:
                    report = await self.apply_retention(self._clock(), self._retention)
                    next_retention = loop.time() + self._retention_every_s
                    if any((report.readings, report.rollups, report.positions)):
                        log.info("sqlite retention: %s", report)
                elif self._rollup_every_s > 0:
                    await self.refresh_rollups()
            except StoreError as exc:
                log.warning("sqlite store job failed: %s", exc)
            await asyncio.sleep(tick)

    # -- alarm events -----------------------------------------------------------------------

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        """Store alarm events; idempotent on (sensor, rule, side, kind, ts)."""
        self._check_open("write alarm events")
        if not events:
            return
        rows = [
            (
                e.sensor,
                e.rule,
                e.side,
                e.kind,
                int(e.ts),
                int(e.alarm_id),
                e.tenant,
                e.site,
                e.device,
                int(e.level),
                e.level_name,
                e.tier,
                e.action,
                None if math.isnan(e.value) else float(e.value),
                int(e.arrival),
            )
            for e in events
        ]

        def do(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(INSERT_ALARM_EVENT, rows)

        await self._run("write alarm events", do)

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

        rows = await self._run("alarm events", do)
        return [
            AlarmEvent(
                alarm_id=int(r[0]),  # type: ignore[call-overload]
                kind=str(r[1]),
                tenant=str(r[2]),
                site=str(r[3]),
                device=str(r[4]),
                sensor=str(r[5]),
                rule=str(r[6]),
                side=str(r[7]),
                level=int(r[8]),  # type: ignore[call-overload]
                level_name=str(r[9]),
                tier=str(r[10]),
                action=str(r[11]),
                value=math.nan if r[12] is None else float(r[12]),  # type: ignore[arg-type]
                ts=int(r[13]),  # type: ignore[call-overload]
                arrival=int(r[14]),  # type: ignore[call-overload]
            )
            for r in rows
        ]


def _map_sensors(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, int, str, str, str]]
) -> list[tuple[int, int]]:
    """Give the configured sensors their registry index (`idx`; NULL for the others) and a
    stable sid; returns (idx, sid) pairs. Inside the caller's transaction."""
    conn.execute("UPDATE sensors SET idx = NULL")
    conn.executemany(
        "INSERT INTO sensors (id, idx, tenant, site, device) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET idx = excluded.idx,"
        " tenant = excluded.tenant, site = excluded.site, device = excluded.device",
        rows,
    )
    mapping = conn.execute("SELECT idx, sid FROM sensors WHERE idx IS NOT NULL").fetchall()
    return [(int(i), int(s)) for i, s in mapping]


def _sid_array(n: int, mapping: Sequence[tuple[int, int]]) -> npt.NDArray[np.int64]:
    sid = np.full(n, -1, dtype=np.int64)
    for idx, s in mapping:
        sid[idx] = s
    return sid
