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
import json
import math
import pathlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from ingest.store.base import (
    Aggregate,
    LatestValue,
    PositionBatch,
    ReadingBatch,
    StoreError,
)
from telemetry.registry import Registry

__all__ = ["SqliteStore"]

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sensors (
    sid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idx INTEGER UNIQUE,
    tenant TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sensors_device ON sensors (tenant, device);
CREATE TABLE IF NOT EXISTS readings (
    sensor INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (sensor, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    vehicle INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    lat REAL,
    lon REAL,
    speed_kmh REAL,
    heading_deg REAL,
    PRIMARY KEY (vehicle, ts)
) WITHOUT ROWID;
"""

_WAL_CHECKPOINT_PAGES: Final = 8192
_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

# Primary result codes (the low byte of the extended code) worth trying again.
_RETRYABLE_CODES: Final = frozenset({5, 6, 10})  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR
_RETRYABLE_WORDS: Final = ("locked", "busy", "disk i/o")

_INSERT_READING: Final = "INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_POSITION: Final = "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)"

_LATEST: Final = """
SELECT w.value, r.ts, r.value, r.quality
FROM json_each(?) AS w
JOIN readings AS r
  ON r.sensor = w.value
 AND r.ts = (SELECT max(m.ts) FROM readings AS m WHERE m.sensor = w.value)
"""

# Spelled out in full (no string building). The window start is floored toward minus infinity
# (SQLite's `/` and `%` truncate toward zero); `last` relies on SQLite's documented rule that a
# bare column beside a single max() comes from the row holding that max.
_HISTORY_RAW: Final = (
    "SELECT ts, value FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end ORDER BY ts"
)
_HISTORY_BY_WINDOW: Final[dict[str, str]] = {
    "mean": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, avg(value) FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end GROUP BY w ORDER BY w",
    "min": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, min(value) FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end GROUP BY w ORDER BY w",
    "max": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, max(value) FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end GROUP BY w ORDER BY w",
    "count": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, count(value) FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end GROUP BY w ORDER BY w",
    "last": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, value, max(ts) FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end GROUP BY w ORDER BY w",
}


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
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. on SQLITE_FULL)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


class SqliteStore:
    """`TimeSeriesStore` over one SQLite file (WAL, synchronous=NORMAL)."""

    def __init__(
        self, registry: Registry, path: pathlib.Path | str, *, busy_timeout_s: float = 5.0
    ) -> None:
        self._registry = registry
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
                    for stmt in _SCHEMA.split(";"):  # not executescript: it COMMITs on its own
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("UPDATE sensors SET idx = NULL")
                    conn.executemany(
                        "INSERT INTO sensors (id, idx, tenant, site, device) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (id) DO UPDATE SET idx = excluded.idx,"
                        " tenant = excluded.tenant, site = excluded.site, device = excluded.device",
                        rows,
                    )
                    mapping = conn.execute(
                        "SELECT idx, sid FROM sensors WHERE idx IS NOT NULL"
                    ).fetchall()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return [(int(i), int(s)) for i, s in mapping]

        try:
            mapping = await self._submit("open", do_open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        sid = np.full(len(self._registry.sensors), -1, dtype=np.int64)
        for idx, s in mapping:
            sid[idx] = s
        self._sid = sid

    async def close(self) -> None:
        """Close the connection (after every job already submitted) and stop the worker."""
        executor = self._executor
        if executor is None:
            return

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
                conn.executemany(_INSERT_READING, rows)

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
                conn.executemany(_INSERT_POSITION, rows)

        await self._run("write positions", do)

    # -- reads ------------------------------------------------------------------------------

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        """The newest reading by event time of each sensor that has one, in one query."""
        self._check_open("latest")
        by_sid = {s: i for i in sensors if (s := self._sid_of(int(i))) is not None}
        if not by_sid:
            return {}
        want = json.dumps(list(by_sid))

        def do(conn: sqlite3.Connection) -> list[tuple[int, int, float | None, int]]:
            return conn.execute(_LATEST, (want,)).fetchall()

        rows = await self._run("latest", do)
        return {
            by_sid[sid]: LatestValue(int(ts), _float(value), int(quality))
            for sid, ts, value, quality in rows
        }

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
        Bad `every_ms` or `aggregate` raise ValueError (a caller's mistake, not the store's)."""
        self._check_open("history")
        if every_ms is not None and every_ms <= 0:
            raise ValueError(f"every_ms must be positive, not {every_ms}")
        if aggregate not in _HISTORY_BY_WINDOW:
            raise ValueError(f"unknown aggregate {aggregate!r}")
        sid = self._sid_of(sensor)
        if sid is None or end_ms <= start_ms:
            return []
        params: dict[str, int] = {"sensor": sid, "start": start_ms, "end": end_ms}
        if every_ms is None:
            sql = _HISTORY_RAW
        else:
            params["every"] = every_ms
            sql = _HISTORY_BY_WINDOW[aggregate]

        def do(conn: sqlite3.Connection) -> list[tuple[int, float]]:
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
            return int(n)

        return await self._run("retention", do)
