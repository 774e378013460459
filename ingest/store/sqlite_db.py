"""The embedded store's SQLite file: opening it (WAL, the schema and its migrations), the map of
sensor ids to stable sensor numbers, explicit transactions, and sqlite3 errors mapped to
`StoreError`. Everything here runs on the store's worker thread (`ingest.store.sqlite`)."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import numpy as np
import numpy.typing as npt

from ingest.store.base import StoreError, StoreUnavailableError
from ingest.store.sqlite_sql import FILL_LATEST, MARK_ALL_DIRTY, SCHEMA, SCHEMA_VERSION

__all__ = ["map_sensors", "mapped", "open_database", "sid_array", "transaction"]

_WAL_CHECKPOINT_PAGES: Final = 8192
_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

# Primary result codes (the low byte of the extended code) worth trying again.
_RETRYABLE_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_RETRYABLE_WORDS: Final = ("locked", "busy")
# Refusals of the surroundings, not of the data (`StoreUnavailableError`): every write fails
# alike until an operator frees space, makes the file writable again or mends the disk. They
# were permanent (but for IOERR): valid readings kept unjudged as dead letters (helper-150).
_UNAVAILABLE_CODES: Final = {
    3: "sqlite_perm",  # SQLITE_PERM
    8: "sqlite_readonly",  # SQLITE_READONLY
    10: "sqlite_ioerr",  # SQLITE_IOERR
    13: "sqlite_full",  # SQLITE_FULL (the disk, or max_page_count)
    14: "sqlite_cantopen",  # SQLITE_CANTOPEN
}
_UNAVAILABLE_WORDS: Final = (
    ("disk i/o", "sqlite_ioerr"),
    ("database or disk is full", "sqlite_full"),
    ("readonly database", "sqlite_readonly"),
    ("unable to open database", "sqlite_cantopen"),
)


def _is_retryable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _RETRYABLE_CODES:
        return True
    text = str(exc).lower()
    return any(word in text for word in _RETRYABLE_WORDS)


def _unavailable(exc: sqlite3.Error) -> str | None:
    """The cause when `exc` is a refusal of the surroundings, else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _UNAVAILABLE_CODES:
        return _UNAVAILABLE_CODES[code & 0xFF]
    text = str(exc).lower()
    return next((cause for word, cause in _UNAVAILABLE_WORDS if word in text), None)


@contextmanager
def mapped(action: str) -> Iterator[None]:
    """Translate sqlite3 errors into `StoreError` at the edge of the store."""
    try:
        yield
    except sqlite3.Error as exc:
        cause = _unavailable(exc)
        if cause is not None:
            raise StoreUnavailableError(f"sqlite {action}: {exc}", cause=cause) from exc
        raise StoreError(f"sqlite {action}: {exc}", retryable=_is_retryable(exc)) from exc


@contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
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


def open_database(
    path: pathlib.Path,
    busy_timeout_ms: int,
    rows: Sequence[tuple[str, int, str, str, str]],
) -> tuple[sqlite3.Connection, list[tuple[int, int]]]:
    """Open (or create) the file, set WAL, create or migrate the schema and map the configured
    sensors (`rows` for `map_sensors`); the connection and the (idx, sid) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"sqlite open: WAL refused (mode {mode})", retryable=False)
        # FULL: every commit fsyncs the WAL before it returns, and ingest acknowledges the MQTT
        # messages (PUBACK) after it: with NORMAL a power cut could take readings already
        # acknowledged (helper-150). One transaction a write, so one fsync a flush: 1-4 ms each
        # on the test VM, lost in the batching at any real rate (docs/storage.md).
        conn.execute("PRAGMA synchronous = FULL")
        # Checkpoint every ~32 MiB of WAL rather than every 4 MiB: a batch of interleaved
        # sensors dirties one page per sensor, and checkpoints (with their fsync) were
        # a third of the insert time. The WAL file is truncated back after a checkpoint.
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"sqlite open: {path} has schema {version}, this hub knows {SCHEMA_VERSION}",
                retryable=False,
            )
        with transaction(conn, "BEGIN IMMEDIATE"):
            for stmt in SCHEMA.split(";"):  # not executescript: it COMMITs on its own
                if stmt.strip():
                    conn.execute(stmt)
            if 0 < version < 4:
                # readings from before the rollups (1), rollups of every quality (2, 3): made
                # again, of the measurements only
                conn.execute(MARK_ALL_DIRTY)
            if 0 < version < 3:
                conn.execute(FILL_LATEST)  # readings from before the latest table
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            mapping = map_sensors(conn, rows)
    except BaseException:
        conn.close()
        raise
    return conn, mapping


def map_sensors(
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


def sid_array(n: int, mapping: Sequence[tuple[int, int]]) -> npt.NDArray[np.int64]:
    """Registry index -> stable sid (-1 for an index without one) of `n` sensors."""
    sid = np.full(n, -1, dtype=np.int64)
    for idx, s in mapping:
        sid[idx] = s
    return sid
