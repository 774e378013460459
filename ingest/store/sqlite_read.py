"""The embedded store's reads: the latest values, history (raw, by window, or from the 1-minute
rollups), vehicle tracks, readings per sequence number and alarm events. The queries run on the
store's worker thread (`ingest.store.sqlite`), which builds the answers there too."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import numpy.typing as npt

from alerts.alarms import AlarmEvent
from ingest.store.base import Aggregate, LatestValue, PositionBatch
from ingest.store.sqlite_db import transaction
from ingest.store.sqlite_sql import (
    HISTORY_BY_WINDOW,
    HISTORY_FROM_ROLLUP,
    HISTORY_RAW,
    LAST_CALIBRATIONS,
    LATEST,
    LATEST_ALL,
    MINUTE_MS,
    READINGS_RAW,
    REFRESH_ONE,
)

__all__ = [
    "TrackRow",
    "alarm_events_of",
    "history_query",
    "select_count_by_seq",
    "select_history",
    "select_last_calibrations",
    "select_last_positions",
    "select_latest",
    "select_readings",
    "select_track",
    "track_batch",
]

TrackRow = tuple[int, float | None, float | None, float | None, float | None]
# the newest position of each vehicle asked (by sid), a seek in the primary key (vehicle, ts) each
_LAST_POSITIONS = (
    "SELECT p.vehicle, p.ts, p.lat, p.lon, p.speed_kmh, p.heading_deg"
    " FROM json_each(?) AS j JOIN positions AS p ON p.vehicle = j.value"
    " AND p.ts = (SELECT MAX(ts) FROM positions WHERE vehicle = j.value)"
)


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def select_latest(
    conn: sqlite3.Connection, by_sid: dict[int, int], whole: bool
) -> dict[int, LatestValue]:
    """The latest value of each sid of `by_sid` (sid -> registry index) that has one, by
    registry index: a lookup per sensor, or one pass over the table when `whole`."""
    if whole:
        rows = conn.execute(LATEST_ALL).fetchall()
    else:
        rows = conn.execute(LATEST, (json.dumps(list(by_sid)),)).fetchall()
    return {
        i: LatestValue(ts, math.nan if value is None else value, quality)
        for sid, ts, value, quality in rows
        if (i := by_sid.get(sid)) is not None
    }


def history_query(
    sid: int, start_ms: int, end_ms: int, every_ms: int | None, aggregate: Aggregate
) -> tuple[str, dict[str, int], bool]:
    """The statement, its parameters and whether it reads the rollups (which `select_history`
    then brings up to date first), for a range already checked."""
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
    return sql, params, rollup


def select_history(
    conn: sqlite3.Connection, sql: str, params: dict[str, int], rollup: bool
) -> list[tuple[int, float]]:
    """Run a statement of `history_query`: (ts or window start, value) rows, NULL as NaN."""
    if rollup:
        with transaction(conn):
            for stmt in REFRESH_ONE:
                conn.execute(stmt, params)
    return [(int(r[0]), _float(r[1])) for r in conn.execute(sql, params)]


def select_readings(
    conn: sqlite3.Connection, sid: int, start_ms: int, end_ms: int, limit: int | None = None
) -> list[tuple[int, float, int]]:
    """Raw readings of one sensor (by sid) with start <= ts < end and their quality, oldest
    first (the first `limit`), NULL as NaN."""
    params = {
        "sensor": sid,
        "start": start_ms,
        "end": end_ms,
        "limit": -1 if limit is None else limit,
    }
    return [(int(t), _float(v), int(q)) for t, v, q in conn.execute(READINGS_RAW, params)]


def select_last_calibrations(
    conn: sqlite3.Connection, by_sid: dict[int, int], start_ms: int, end_ms: int
) -> dict[int, int]:
    """The newest calibration reading's time with start <= ts < end of each sid of `by_sid`
    (sid -> registry index) that has one, by registry index."""
    params = {"sids": json.dumps(list(by_sid)), "start": start_ms, "end": end_ms}
    rows = conn.execute(LAST_CALIBRATIONS, params)
    return {by_sid[sid]: int(ts) for sid, ts in rows if ts is not None and sid in by_sid}


def select_track(conn: sqlite3.Connection, sid: int, start_ms: int, end_ms: int) -> list[TrackRow]:
    """Positions of one vehicle (by sid) with start <= ts < end, oldest first."""
    return conn.execute(
        "SELECT ts, lat, lon, speed_kmh, heading_deg FROM positions"
        " WHERE vehicle = ? AND ts >= ? AND ts < ? ORDER BY ts",
        (sid, start_ms, end_ms),
    ).fetchall()


def track_batch(vehicle: int, rows: list[TrackRow]) -> PositionBatch:
    """The rows of `select_track` as the positions of registry index `vehicle`, NULL as NaN."""

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


def select_last_positions(conn: sqlite3.Connection, by_sid: dict[int, int]) -> PositionBatch:
    """The newest position by event time of each sid of `by_sid` (sid -> registry index) that
    has one, as positions of the registry indices, NULL as NaN: one query."""
    rows = conn.execute(_LAST_POSITIONS, (json.dumps(list(by_sid)),)).fetchall()

    def col(i: int) -> npt.NDArray[np.float64]:
        return np.array([_float(r[i]) for r in rows], dtype=np.float64)

    return PositionBatch(
        vehicle=np.array([by_sid[r[0]] for r in rows], dtype=np.int32),
        ts=np.array([r[1] for r in rows], dtype=np.int64),
        lat=col(2),
        lon=col(3),
        speed_kmh=col(4),
        heading_deg=col(5),
    )


def select_count_by_seq(
    conn: sqlite3.Connection, tenant: str, device: str
) -> list[tuple[int, int, int]]:
    """(epoch, seq, readings) of the sensors of one device (by id, across sites and across
    config changes)."""
    return conn.execute(
        "SELECT r.epoch, r.seq, count(*) FROM sensors AS s"
        " JOIN readings AS r ON r.sensor = s.sid"
        " WHERE s.tenant = ? AND s.device = ? GROUP BY r.epoch, r.seq",
        (tenant, device),
    ).fetchall()


def alarm_events_of(rows: list[tuple[object, ...]]) -> list[AlarmEvent]:
    """Rows of `ALARM_EVENTS_ALL` or `ALARM_EVENTS_OF` as alarm events, NULL values as NaN."""
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
