"""The SQL text of the embedded store, spelled out in full (no string building from input).

Schema 2 adds to schema 1 (readings, positions, sensors):

- ``rollup_1m``: per sensor and minute (``w``, the minute's start in epoch ms), the partial
  aggregates of its readings: rows, values (non-NULL), sum, min, max, and the newest row's time and
  value. `history` reads it for windows that are whole multiples of a minute.
- ``rollup_dirty``: the (sensor, minute) pairs written since their rollup was last computed. A
  write only marks its minutes here; `refresh` recomputes them from the raw rows (so a rewritten
  reading, or an at-least-once replay, never counts twice), before a read that needs them and from
  the store's periodic job. Deleting raw rows by retention does not mark anything: statistics
  outlive raw data.
- ``alarm_events``: alarm events, keyed like the InfluxDB series (sensor, rule, side, kind, ts).

Schema 3 adds ``latest``: per sensor, its newest reading by event time (ts, value, quality), kept
in the write's transaction. A write upserts one row per sensor of the batch (its newest, the last
of equal times) and replaces the stored one only when it is not older, so a late batch never
moves it back and a rewrite of the newest time changes it. Retention deletes a sensor's row with
its raw rows: a row older than the cutoff means every reading of the sensor was. Reading it is one
lookup per sensor (or one pass over the table) instead of a search for the maximum and a second
lookup (`SqliteStore.latest` of 10,000 sensors: 44 -> 22 ms of CPU); ``LATEST_RAW`` is what it
must always agree with (tests).

Any schema has the partial index ``readings_calibration`` (sensor, ts) of the calibration readings
(quality 6), made at the first `open` that lacks it (one pass over the readings) and kept by
SQLite at each write of one: `last_calibrations` is a seek a sensor. An older hub opening the file
keeps it up to date without knowing it (no schema version for it).

Window starts are floored toward minus infinity (SQLite's ``/`` and ``%`` truncate toward zero);
``last`` relies on SQLite's documented rule that a bare column beside a single ``max()`` comes from
the row holding that maximum.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 4  # 4: rollups of measurements only (all made again)
MINUTE_MS: Final = 60_000

SCHEMA: Final = """
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
CREATE TABLE IF NOT EXISTS rollup_1m (
    sensor INTEGER NOT NULL,
    w INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    n INTEGER NOT NULL,
    total REAL,
    lo REAL,
    hi REAL,
    last_ts INTEGER NOT NULL,
    last_value REAL,
    PRIMARY KEY (sensor, w)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_dirty (
    sensor INTEGER NOT NULL,
    w INTEGER NOT NULL,
    PRIMARY KEY (sensor, w)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarm_events (
    sensor TEXT NOT NULL,
    rule TEXT NOT NULL,
    side TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    alarm_id INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    level INTEGER NOT NULL,
    level_name TEXT NOT NULL,
    tier TEXT NOT NULL,
    action TEXT NOT NULL,
    value REAL,
    arrival INTEGER NOT NULL,
    PRIMARY KEY (sensor, rule, side, kind, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alarm_events_tenant_ts ON alarm_events (tenant, ts);
CREATE INDEX IF NOT EXISTS alarm_events_ts ON alarm_events (ts);
CREATE TABLE IF NOT EXISTS latest (
    sensor INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_calibration ON readings (sensor, ts) WHERE quality = 6;
"""

# Schema 1 had no rollups: every minute with readings needs one.
MARK_ALL_DIRTY: Final = (
    "INSERT OR IGNORE INTO rollup_dirty (sensor, w)"
    " SELECT DISTINCT sensor, ts - ((ts % 60000) + 60000) % 60000 FROM readings"
)

# Schema 2 had no latest table: fill it from the raw rows (a bare column beside a single max()
# comes from the row holding it).
FILL_LATEST: Final = (
    "INSERT OR REPLACE INTO latest (sensor, ts, value, quality)"
    " SELECT sensor, max(ts), value, quality FROM readings GROUP BY sensor"
)

INSERT_READING: Final = "INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?, ?, ?)"
UPSERT_LATEST: Final = (
    "INSERT INTO latest (sensor, ts, value, quality) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (sensor) DO UPDATE SET"
    " ts = excluded.ts, value = excluded.value, quality = excluded.quality"
    " WHERE excluded.ts >= latest.ts"
)
INSERT_POSITION: Final = "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)"
MARK_DIRTY: Final = "INSERT OR IGNORE INTO rollup_dirty (sensor, w) VALUES (?, ?)"
INSERT_ALARM_EVENT: Final = (
    "INSERT OR REPLACE INTO alarm_events (sensor, rule, side, kind, ts, alarm_id, tenant, site,"
    " device, level, level_name, tier, action, value, arrival)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ALARM_COLUMNS: Final = (
    "SELECT alarm_id, kind, tenant, site, device, sensor, rule, side, level, level_name, tier,"
    " action, value, ts, arrival FROM alarm_events"
)
ALARM_EVENTS_ALL: Final = _ALARM_COLUMNS + " WHERE ts >= :start AND ts < :end ORDER BY ts, alarm_id"
ALARM_EVENTS_OF: Final = (
    _ALARM_COLUMNS  # noqa: S608 - constant text
    + " WHERE tenant IN (SELECT value FROM json_each(:tenants))"
    " AND ts >= :start AND ts < :end ORDER BY ts, alarm_id"
)

LATEST: Final = """
SELECT w.value, l.ts, l.value, l.quality
FROM json_each(?) AS w
JOIN latest AS l ON l.sensor = w.value
"""
LATEST_ALL: Final = "SELECT sensor, ts, value, quality FROM latest"
# the same from the raw rows: what `latest` must agree with (tests)
LATEST_RAW: Final = """
SELECT w.value, r.ts, r.value, r.quality
FROM json_each(?) AS w
JOIN readings AS r
  ON r.sensor = w.value
 AND r.ts = (SELECT max(m.ts) FROM readings AS m WHERE m.sensor = w.value)
"""

# each sensor's newest calibration reading (quality 6) in [:start, :end): a seek in the partial
# index `readings_calibration` a sensor. Named: without statistics the planner takes the primary
# key, and walks every reading of the range; the literal 6 is what lets it use a partial index
LAST_CALIBRATIONS: Final = """
SELECT w.value, (SELECT max(r.ts) FROM readings AS r INDEXED BY readings_calibration
                 WHERE r.sensor = w.value AND r.quality = 6
                 AND r.ts >= :start AND r.ts < :end)
FROM json_each(:sids) AS w
"""

HISTORY_RAW: Final = (
    "SELECT ts, value FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end ORDER BY ts"
)
READINGS_RAW: Final = (
    "SELECT ts, value, quality FROM readings"
    " WHERE sensor = :sensor AND ts >= :start AND ts < :end ORDER BY ts LIMIT :limit"
)
# what aggregates are of: measurements (quality good 0, out of range 2, with a value), not a
# calibration gas, a failed transmitter's signal or a manual value; a window without one is
# left out
_WINDOW: Final = (
    " FROM readings WHERE sensor = :sensor AND ts >= :start AND ts < :end"
    " AND quality IN (0, 2) AND value IS NOT NULL GROUP BY w ORDER BY w"
)
HISTORY_BY_WINDOW: Final[dict[str, str]] = {
    "mean": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, avg(value)" + _WINDOW,
    "min": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, min(value)" + _WINDOW,
    "max": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, max(value)" + _WINDOW,
    "count": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, count(value)" + _WINDOW,
    "last": "SELECT (ts - ((ts % :every) + :every) % :every) AS w, value, max(ts)" + _WINDOW,
}

# Whole minutes [:a, :b) from the rollups, the ragged edges [:start, :a) and [:b, :end) from the
# raw rows, as partial aggregates (w, total, n, lo, hi, last_ts, last_value); `:every` is a
# multiple of a minute, so a minute never straddles two windows.
_PARTS: Final = (
    "WITH parts (w, total, n, lo, hi, lts, lv) AS ("
    " SELECT w, total, n, lo, hi, last_ts, last_value FROM rollup_1m"
    "  WHERE sensor = :sensor AND w >= :a AND w < :b AND n > 0"
    " UNION ALL SELECT ts, value, value IS NOT NULL, value, value, ts, value FROM readings"
    "  WHERE sensor = :sensor AND ts >= :start AND ts < :a"
    "  AND quality IN (0, 2) AND value IS NOT NULL"
    " UNION ALL SELECT ts, value, value IS NOT NULL, value, value, ts, value FROM readings"
    "  WHERE sensor = :sensor AND ts >= :b AND ts < :end"
    "  AND quality IN (0, 2) AND value IS NOT NULL"
    ") SELECT (w - ((w % :every) + :every) % :every) AS bucket, "
)
HISTORY_FROM_ROLLUP: Final[dict[str, str]] = {
    "mean": _PARTS + "sum(total) / sum(n) FROM parts GROUP BY bucket ORDER BY bucket",
    "min": _PARTS + "min(lo) FROM parts GROUP BY bucket ORDER BY bucket",
    "max": _PARTS + "max(hi) FROM parts GROUP BY bucket ORDER BY bucket",
    "count": _PARTS + "sum(n) FROM parts GROUP BY bucket ORDER BY bucket",
    "last": _PARTS + "lv, max(lts) FROM parts GROUP BY bucket ORDER BY bucket",
}

# A minute's rollup: its rows; count, sum, min, max and newest time of its measurements.
_ROLLUP_INSERT: Final = (
    "INSERT INTO rollup_1m (sensor, w, n_rows, n, total, lo, hi, last_ts)"
    " SELECT d.sensor, d.w, count(*),"
    " count(CASE WHEN r.quality IN (0, 2) THEN r.value END),"
    " sum(CASE WHEN r.quality IN (0, 2) THEN r.value END),"
    " min(CASE WHEN r.quality IN (0, 2) THEN r.value END),"
    " max(CASE WHEN r.quality IN (0, 2) THEN r.value END),"
    " coalesce(max(CASE WHEN r.quality IN (0, 2) AND r.value IS NOT NULL THEN r.ts END),"
    " max(r.ts))"
)
# Recompute dirty minutes: of every sensor, or of one sensor in [:a, :b).
REFRESH_ALL: Final = (
    "DELETE FROM rollup_1m WHERE (sensor, w) IN (SELECT sensor, w FROM rollup_dirty)",
    _ROLLUP_INSERT  # noqa: S608 - constant text
    + " FROM (SELECT sensor, w FROM rollup_dirty) AS d"
    " JOIN readings AS r ON r.sensor = d.sensor AND r.ts >= d.w AND r.ts < d.w + 60000"
    " GROUP BY d.sensor, d.w",
    "UPDATE rollup_1m SET last_value = (SELECT r.value FROM readings AS r"
    " WHERE r.sensor = rollup_1m.sensor AND r.ts = rollup_1m.last_ts)"
    " WHERE (sensor, w) IN (SELECT sensor, w FROM rollup_dirty)",
    "DELETE FROM rollup_dirty WHERE (sensor, w) IN (SELECT sensor, w FROM rollup_dirty)",
)
REFRESH_ONE: Final = (
    "DELETE FROM rollup_1m WHERE (sensor, w) IN "
    " (SELECT sensor, w FROM rollup_dirty"
    " WHERE sensor = :sensor AND w >= :a AND w < :b)",
    _ROLLUP_INSERT  # noqa: S608 - constant text
    + " FROM "
    " (SELECT sensor, w FROM rollup_dirty"
    " WHERE sensor = :sensor AND w >= :a AND w < :b) AS d"
    " JOIN readings AS r ON r.sensor = d.sensor AND r.ts >= d.w AND r.ts < d.w + 60000"
    " GROUP BY d.sensor, d.w",
    "UPDATE rollup_1m SET last_value = (SELECT r.value FROM readings AS r"
    " WHERE r.sensor = rollup_1m.sensor AND r.ts = rollup_1m.last_ts)"
    " WHERE (sensor, w) IN "
    " (SELECT sensor, w FROM rollup_dirty"
    " WHERE sensor = :sensor AND w >= :a AND w < :b)",
    "DELETE FROM rollup_dirty WHERE (sensor, w) IN "
    " (SELECT sensor, w FROM rollup_dirty"
    " WHERE sensor = :sensor AND w >= :a AND w < :b)",
)

DELETE_READINGS_OF: Final = (
    "DELETE FROM readings WHERE sensor IN (SELECT value FROM json_each(:sids)) AND ts < :cutoff"
)
# a sensor's newest row older than the cutoff: all its raw rows went
DELETE_LATEST_OF: Final = (
    "DELETE FROM latest WHERE sensor IN (SELECT value FROM json_each(:sids)) AND ts < :cutoff"
)
DELETE_ROLLUPS_OF: Final = (
    "DELETE FROM rollup_1m WHERE sensor IN (SELECT value FROM json_each(:sids)) AND w < :cutoff"
)
DELETE_POSITIONS_OF: Final = (
    "DELETE FROM positions WHERE vehicle IN (SELECT value FROM json_each(:sids)) AND ts < :cutoff"
)
DELETE_ALARM_EVENTS: Final = "DELETE FROM alarm_events WHERE ts < :cutoff"
