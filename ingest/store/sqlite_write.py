"""The embedded store's write path: readings, positions and alarm events turned into rows and
inserted, one transaction a batch. The inserts run on the store's worker thread
(`ingest.store.sqlite`), which builds the rows there so a large batch does not hold up the loop."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import PositionBatch, ReadingBatch
from ingest.store.sqlite_db import transaction
from ingest.store.sqlite_sql import (
    INSERT_ALARM_EVENT,
    INSERT_POSITION,
    INSERT_READING,
    MARK_DIRTY,
    MINUTE_MS,
    UPSERT_LATEST,
)

__all__ = [
    "AlarmEventRow",
    "alarm_event_rows",
    "insert_alarm_events",
    "insert_positions",
    "insert_readings",
]

AlarmEventRow = tuple[
    str, str, str, str, int, int, str, str, str, int, str, str, str, float | None, int
]


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


def _minutes(sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Distinct (sid, minute start) of rows already in key order."""
    w = ts - ts % MINUTE_MS  # numpy's % floors, as the SQL does
    if sids.shape[0] == 0:
        return []
    new = np.empty(sids.shape[0], dtype=np.bool_)
    new[0] = True
    new[1:] = (sids[1:] != sids[:-1]) | (w[1:] != w[:-1])
    return list(zip(sids[new].tolist(), w[new].tolist(), strict=True))


def insert_readings(
    conn: sqlite3.Connection, sids: npt.NDArray[np.int64], batch: ReadingBatch
) -> None:
    """Insert readings (`sids`: the stable sid of each row), mark their minutes dirty for the
    rollups and bring the latest table up to date; idempotent on (sensor, ts)."""
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
    with transaction(conn):
        conn.executemany(INSERT_READING, rows)
        conn.executemany(MARK_DIRTY, _minutes(sids[o], batch.ts[o]))
        conn.executemany(UPSERT_LATEST, _newest(sids[o], batch, o))


def insert_positions(
    conn: sqlite3.Connection, sids: npt.NDArray[np.int64], batch: PositionBatch
) -> None:
    """Insert positions (`sids`: the stable sid of each row's vehicle); idempotent on
    (vehicle, ts)."""
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
    with transaction(conn):
        conn.executemany(INSERT_POSITION, rows)


def alarm_event_rows(events: Sequence[AlarmEvent]) -> list[AlarmEventRow]:
    """The rows of `INSERT_ALARM_EVENT`, NaN values as NULL."""
    return [
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


def insert_alarm_events(conn: sqlite3.Connection, rows: Sequence[AlarmEventRow]) -> None:
    """Insert alarm events; idempotent on (sensor, rule, side, kind, ts)."""
    with transaction(conn):
        conn.executemany(INSERT_ALARM_EVENT, rows)
