"""What only the embedded SQLite store does: files, WAL, stable sensor ids, retention, errors.

The shared behaviour (write, read, downsample, idempotence) is in `test_store_contract.py`.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.store.base import (
    Aggregate,
    PositionBatch,
    ReadingBatch,
    StoreError,
    StoreUnavailableError,
)
from ingest.store.retention import DOMAINS, DomainRetention, RetentionPolicy
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry

T0 = 1_700_000_000_000


def registry(device_sensors: dict[str, Sequence[str]], vehicles: Sequence[str] = ()) -> Registry:
    """A registry with one site; `device_sensors` maps device id -> sensor ids (point `p<n>`)."""
    points = [{"name": f"p{i}", "address": i} for i in range(4)]
    devices = [
        {
            "id": dev,
            "profile": "generic",
            "sensors": [
                {"id": sid, "point": f"p{i}", "kind": "other"} for i, sid in enumerate(sensors)
            ],
        }
        for dev, sensors in device_sensors.items()
    ]
    level = {"name": "over", "tier": "orange", "above": 80, "recover": 75}
    config = HubConfig.model_validate(
        {
            "device_profiles": [{"name": "generic", "points": points}],
            "rule_packs": [{"name": "test", "rules": {"speed": {"levels": [level]}}}],
            "tenants": [
                {
                    "id": "acme",
                    "sites": [{"id": "s1", "devices": devices}],
                    "vehicles": [
                        {"id": v, "plate": v.upper(), "class": "coach", "rule": "test.speed"}
                        for v in vehicles
                    ],
                }
            ],
        }
    )
    return build_registry(config)


def idx(reg: Registry, sensor_id: str) -> int:
    info = reg.sensor(sensor_id)
    assert info is not None
    return info.index


def readings(
    sensor: Sequence[int] | int,
    ts: Sequence[int],
    value: Sequence[float],
    seq: Sequence[int] | int = 1,
    quality: Sequence[int] | int = 0,
) -> ReadingBatch:
    n = len(ts)

    def col(x: Sequence[Any] | int, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
        return np.full(n, x, dtype=dtype) if isinstance(x, int) else np.asarray(x, dtype=dtype)

    return ReadingBatch(
        col(sensor, np.int32),
        np.asarray(ts, dtype=np.int64),
        np.asarray(value, dtype=np.float64),
        col(quality, np.uint8),
        np.ones(n, dtype=np.int64),
        col(seq, np.int64),
    )


def positions(vehicle: int, ts: Sequence[int]) -> PositionBatch:
    n = len(ts)
    return PositionBatch(
        np.full(n, vehicle, dtype=np.int32),
        np.asarray(ts, dtype=np.int64),
        np.full(n, 31.0),
        np.full(n, 121.0),
        np.full(n, math.nan),  # a recorder that sends no speed
        np.full(n, 0.0),
    )


@pytest.fixture
def reg() -> Registry:
    return registry({"d1": ["a", "b", "c"]}, vehicles=["bus1"])


async def test_reopen_keeps_data(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "data" / "ts.sqlite"  # the folder is created
    store = SqliteStore(reg, path)
    await store.open()
    await store.write_readings(readings(idx(reg, "a"), [T0, T0 + 1000], [1.0, math.nan]))
    await store.write_positions(positions(idx(reg, "bus1.speed"), [T0]))
    await store.close()
    await store.close()  # twice is harmless

    again = SqliteStore(reg, str(path))
    await again.open()
    try:
        rows = await again.history(idx(reg, "a"), T0, T0 + 2000)
        assert rows[0] == (T0, 1.0)
        assert math.isnan(rows[1][1])
        track = await again.track(idx(reg, "bus1.speed"), T0, T0 + 1)
        assert track.lat.tolist() == [31.0]
        assert math.isnan(float(track.speed_kmh[0]))
    finally:
        await again.close()


async def test_wal_and_synchronous_full(tmp_path: Path, reg: Registry) -> None:
    """WAL with synchronous=FULL: a commit fsyncs the WAL before the write returns, and ingest
    acknowledges the MQTT messages after it. With NORMAL (before) a power cut could lose
    readings already acknowledged (helper-150). Only the setting is checked: no power is cut."""
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path)
    await store.open()
    try:
        sync = await store._run("test", lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert sync == 2  # FULL (1 is NORMAL)
        with sqlite3.connect(path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master")}
            assert {"sensors", "readings", "positions"} <= tables
    finally:
        await store.close()


async def test_renumbered_registry_keeps_rows_with_their_sensor_id(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    first = registry({"d1": ["a", "b", "c"]})
    store = SqliteStore(first, path)
    await store.open()
    await store.write_readings(
        readings([idx(first, s) for s in "abc"], [T0, T0, T0], [1.0, 2.0, 3.0], seq=[1, 2, 3])
    )
    await store.close()

    # A config change: `b` removed, `new` added, `c` moved to another device, order changed.
    second = registry({"d0": ["c"], "d1": ["new", "a"]})
    assert idx(second, "c") == 0
    assert idx(second, "a") == 2
    store = SqliteStore(second, path)
    await store.open()
    latest = await store.latest(range(len(second.sensors)))
    assert {i: v.value for i, v in latest.items()} == {idx(second, "c"): 3.0, idx(second, "a"): 1.0}
    # count_by_seq follows each sensor's last known device; `b`, gone from the config, keeps d1
    assert await store.count_by_seq("acme", "d0") == {(1, 3): 1}
    assert await store.count_by_seq("acme", "d1") == {(1, 1): 1, (1, 2): 1}
    await store.write_readings(readings(idx(second, "new"), [T0], [9.0]))
    await store.close()

    # back to the first config: `b` still has its row, `new` is not visible through it
    store = SqliteStore(first, path)
    await store.open()
    try:
        latest = await store.latest(range(len(first.sensors)))
        assert {i: v.value for i, v in latest.items()} == {0: 1.0, 1: 2.0, 2: 3.0}
    finally:
        await store.close()


async def test_retention_deletes_old_rows(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()
    try:
        ts = [T0 + i * 1000 for i in range(10)]
        await store.write_readings(readings(idx(reg, "a"), ts, [float(i) for i in range(10)]))
        await store.write_readings(readings(idx(reg, "b"), ts[:2], [0.0, 1.0]))
        await store.write_positions(positions(idx(reg, "bus1.speed"), ts[:4]))
        # keep the last 5 s before now = T0 + 10 s: rows with ts < T0 + 5 s go
        assert await store.enforce_retention(T0 + 10_000, 5000) == 5 + 2 + 4
        assert [t for t, _ in await store.history(idx(reg, "a"), 0, T0 * 2)] == ts[5:]
        assert await store.latest([idx(reg, "b")]) == {}
        assert len(await store.track(idx(reg, "bus1.speed"), 0, T0 * 2)) == 0
        assert await store.enforce_retention(T0 + 10_000, 5000) == 0
    finally:
        await store.close()


async def test_duplicate_key_in_one_batch_last_row_wins(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()
    try:
        a, b = idx(reg, "a"), idx(reg, "b")
        # rows are sorted by key before the insert; the sort must keep batch order for equal keys
        await store.write_readings(
            readings([b, a, b, a, a], [T0, T0 + 5, T0, T0, T0 + 5], [1.0, 2.0, 3.0, 4.0, 5.0])
        )
        assert await store.history(a, T0, T0 + 10) == [(T0, 4.0), (T0 + 5, 5.0)]
        assert await store.history(b, T0, T0 + 10) == [(T0, 3.0)]
    finally:
        await store.close()


async def test_concurrent_writes_are_serialised(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()
    try:
        a = idx(reg, "a")
        await asyncio.gather(
            *(store.write_readings(readings(a, [T0 + i], [float(i)])) for i in range(50)),
            *(store.latest([a]) for _ in range(10)),
        )
        assert len(await store.history(a, T0, T0 + 50)) == 50
    finally:
        await store.close()


async def test_index_outside_registry_is_refused(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()
    try:
        for bad in (len(reg.sensors), -1):
            with pytest.raises(StoreError, match="not in the registry") as info:
                await store.write_readings(readings([0, bad], [T0, T0], [1.0, 2.0]))
            assert not info.value.retryable
        assert await store.latest([0]) == {}  # nothing half-written
        assert await store.latest([len(reg.sensors), -1]) == {}
        assert await store.history(len(reg.sensors), 0, T0) == []
        with pytest.raises(ValueError, match="every_ms"):
            await store.history(0, 0, T0, every_ms=0)
    finally:
        await store.close()


async def test_a_full_disk_is_unavailable_not_permanent_and_close_still_closes(
    tmp_path: Path, reg: Registry
) -> None:
    """SQLITE_FULL is the disk's fault, not the readings': `StoreUnavailableError` (retryable,
    cause sqlite_full), where it was permanent (the readings became dead letters, helper-150);
    and a hub stopping while the disk is full closes its store (PRAGMA optimize failed it)."""
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()

    def cap(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")

    await store._run("test", cap)
    rows = 2000
    with pytest.raises(StoreUnavailableError) as info:
        await store.write_readings(readings([0] * rows, list(range(T0, T0 + rows)), [1.0] * rows))
    assert info.value.retryable and info.value.cause == "sqlite_full"
    await store.close()  # no error


async def test_store_not_open(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    with pytest.raises(StoreError, match="not open") as info:
        await store.latest([0])
    assert not info.value.retryable


async def test_locked_database_is_retryable(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path, busy_timeout_s=0.05)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StoreError, match="locked") as info:
            await store.write_readings(readings(0, [T0], [1.0]))
        assert info.value.retryable
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        await store.write_readings(readings(0, [T0], [1.0]))  # the retry succeeds
        assert (await store.latest([0]))[0].value == 1.0
    finally:
        other.close()
        await store.close()


async def test_schema_error_is_not_retryable(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path)
    await store.open()
    try:
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE readings")
        with pytest.raises(StoreError, match="no such table") as info:
            await store.write_readings(readings(0, [T0], [1.0]))
        assert not info.value.retryable
    finally:
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "ts.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA user_version = 99")
    other.close()
    store = SqliteStore(reg, path)
    with pytest.raises(StoreError, match="schema 99"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.latest([0])


# -- downsampling against a plain-Python reference ------------------------------------------


MEASURED = (0, 2)  # the qualities of a measurement: good, out of range


def reference(
    ts: list[int],
    values: list[float],
    every: int,
    aggregate: Aggregate,
    qualities: list[int] | None = None,
) -> list[tuple[int, float]]:
    """Last write wins per ts; windows floor(ts / every) * every, of the measurements only
    (quality good or out of range, with a value: never a calibration gas or a fault's signal);
    a window without one is left out; `last` is the newest measurement."""
    qs = qualities if qualities is not None else [0] * len(ts)
    by_ts = {t: (v, q) for t, v, q in zip(ts, values, qs, strict=True)}
    windows: dict[int, list[tuple[int, float]]] = {}
    for t in sorted(by_ts):
        v, q = by_ts[t]
        if q in MEASURED and not math.isnan(v):
            windows.setdefault(t // every * every, []).append((t, v))
    out = []
    for w, rows in sorted(windows.items()):
        vals = [v for _, v in rows]
        if aggregate == "last":
            out.append((w, rows[-1][1]))
        elif aggregate == "count":
            out.append((w, float(len(vals))))
        elif aggregate == "mean":
            out.append((w, sum(vals) / len(vals)))
        else:
            out.append((w, min(vals) if aggregate == "min" else max(vals)))
    return out


def same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(
        ta == tb and ((math.isnan(va) and math.isnan(vb)) or math.isclose(va, vb, rel_tol=1e-9))
        for (ta, va), (tb, vb) in zip(a, b, strict=True)
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-5_000, 60_000),
            st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan)),
            st.sampled_from([0, 0, 0, 2, 1, 3, 5, 6]),  # quality
        ),
        max_size=40,
    ),
    every=st.integers(1, 20_000),
    aggregate=st.sampled_from(["mean", "min", "max", "last", "count"]),
)
def test_downsample_matches_reference(
    rows: list[tuple[int, float, int]], every: int, aggregate: Aggregate
) -> None:
    ts = [t for t, _, _ in rows]
    values = [v for _, v, _ in rows]
    qualities = [q for _, _, q in rows]
    reg = registry({"d1": ["a"]})

    async def run() -> list[tuple[int, float]]:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(reg, Path(tmp) / "ts.sqlite")
            await store.open()
            try:
                # one row per write, so later duplicates overwrite earlier ones
                for t, v, q in rows:
                    await store.write_readings(readings(0, [t], [v], quality=q))
                return await store.history(0, -10_000, 70_000, every, aggregate)
            finally:
                await store.close()

    got = asyncio.run(run())
    want = reference(ts, values, every, aggregate, qualities)
    assert same(got, want), (got, aggregate)


# -- rollups, retention per domain, schema 1 -> 2 -------------------------------------------


def mixed_registry() -> Registry:
    """One mine site (sensor m), one chemical site (sensor c), one vehicle (bus)."""
    level = {"name": "over", "tier": "orange", "above": 80, "recover": 75}
    config = HubConfig.model_validate(
        {
            "device_profiles": [{"name": "g", "points": [{"name": "p0", "address": 0}]}],
            "rule_packs": [{"name": "test", "rules": {"speed": {"levels": [level]}}}],
            "tenants": [
                {
                    "id": "acme",
                    "sites": [
                        {
                            "id": "mine",
                            "kind": "mine",
                            "devices": [
                                {
                                    "id": "d1",
                                    "profile": "g",
                                    "sensors": [{"id": "m", "point": "p0", "kind": "methane"}],
                                }
                            ],
                        },
                        {
                            "id": "plant",
                            "kind": "chemical",
                            "devices": [
                                {
                                    "id": "d2",
                                    "profile": "g",
                                    "sensors": [{"id": "c", "point": "p0", "kind": "pressure"}],
                                }
                            ],
                        },
                    ],
                    "vehicles": [
                        {"id": "bus", "plate": "B", "class": "coach", "rule": "test.speed"}
                    ],
                }
            ],
        }
    )
    return build_registry(config)


MIN = 60_000
DAY = 86_400_000


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-3 * MIN, 10 * MIN),
            st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(math.nan)),
            st.sampled_from([0, 0, 0, 2, 1, 3, 6]),  # quality
        ),
        max_size=40,
    ),
    every=st.sampled_from([MIN, 2 * MIN, 5 * MIN]),
    start=st.integers(-4 * MIN, 2 * MIN),
    length=st.integers(1, 14 * MIN),
    aggregate=st.sampled_from(["mean", "min", "max", "last", "count"]),
)
def test_rollups_agree_with_raw_rows(
    rows: list[tuple[int, float, int]],
    every: int,
    start: int,
    length: int,
    aggregate: Aggregate,
) -> None:
    """Windows of whole minutes come from the rollups (raw rows at cut minutes); the answer is
    what the raw rows give, whatever was rewritten in between; of the measurements only."""
    reg = registry({"d1": ["a"]})

    async def run() -> list[tuple[int, float]]:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(reg, Path(tmp) / "ts.sqlite", rollup_every_s=0)
            await store.open()
            try:
                half = len(rows) // 2
                for chunk in (rows[:half], rows[half:]):  # a history read in between
                    if chunk:
                        ts, vs, qs = zip(*chunk, strict=True)
                        await store.write_readings(
                            readings(0, list(ts), list(vs), quality=list(qs))
                        )
                    await store.history(0, -5 * MIN, 15 * MIN, MIN, "mean")
                return await store.history(0, start, start + length, every, aggregate)
            finally:
                await store.close()

    got = asyncio.run(run())
    # last write of a time wins in the reference, as in the store (one batch keeps batch order)
    by_ts: dict[int, tuple[float, int]] = {}
    for t, v, q in rows:
        by_ts[t] = (v, q)
    inside = [(t, *by_ts[t]) for t in sorted(by_ts) if start <= t < start + length]
    want = reference(
        [t for t, _, _ in inside],
        [v for _, v, _ in inside],
        every,
        aggregate,
        [q for _, _, q in inside],
    )
    assert same(got, want), (got, want)


async def test_rollups_are_kept_and_used(tmp_path: Path) -> None:
    reg = registry({"d1": ["a"]})
    store = SqliteStore(reg, tmp_path / "ts.sqlite", rollup_every_s=0)
    await store.open()
    try:
        base = T0 - T0 % (3 * MIN)  # 3-minute windows start at multiples of 3 minutes
        ts = [base + i * 10_000 for i in range(18)]  # 3 minutes, 6 readings each
        await store.write_readings(readings(0, ts, [float(i) for i in range(18)]))
        await store.refresh_rollups()
        rows = await store._run("t", lambda c: c.execute("SELECT * FROM rollup_1m").fetchall())
        assert [(r[1] - base, r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
            (0, 6, 6, 15.0, 0.0, 5.0),
            (MIN, 6, 6, 51.0, 6.0, 11.0),
            (2 * MIN, 6, 6, 87.0, 12.0, 17.0),
        ]
        # a rewrite marks its minute dirty; the read brings it up to date first
        await store.write_readings(readings(0, [base + 10_000], [100.0]))
        assert await store.history(0, base, base + 3 * MIN, 3 * MIN, "max") == [(base, 100.0)]
        assert await store.history(0, base, base + 3 * MIN, MIN, "count") == [
            (base, 6.0),
            (base + MIN, 6.0),
            (base + 2 * MIN, 6.0),
        ]
    finally:
        await store.close()


async def test_retention_per_domain_keeps_statistics_longer(tmp_path: Path) -> None:
    reg = mixed_registry()
    m, c, bus = idx(reg, "m"), idx(reg, "c"), idx(reg, "bus.speed")
    now = T0
    ages = [200, 100, 60, 10]  # days
    ts = [now - a * DAY for a in ages]
    store = SqliteStore(reg, tmp_path / "ts.sqlite", rollup_every_s=0)
    await store.open()
    try:
        for s in (m, c, bus):
            await store.write_readings(readings(s, ts, [1.0, 2.0, 3.0, 4.0]))
        await store.write_positions(positions(bus, ts))
        report = await store.apply_retention(now, RetentionPolicy())
        # raw: mine 92 d, chemical 30 d, vehicle 184 d; statistics 731 d for all
        assert [t for t, _ in await store.history(m, 0, now)] == ts[2:]
        assert [t for t, _ in await store.history(c, 0, now)] == ts[3:]
        assert [t for t, _ in await store.history(bus, 0, now)] == ts[1:]
        assert len(await store.track(bus, 0, now)) == 3
        assert (report.readings, report.positions, report.rollups) == (2 + 3 + 1, 1, 0)
        # the minute statistics of the deleted raw rows are still there
        day = await store.history(c, now - 300 * DAY, now, DAY, "mean")
        assert [v for _, v in day] == [1.0, 2.0, 3.0, 4.0]
        short = RetentionPolicy(
            domains={d: DomainRetention(raw_days=1, stats_days=150) for d in DOMAINS}
        )
        report = await store.apply_retention(now, short)
        assert report.rollups == 3  # the 200-day-old minute of each sensor
        assert [v for _, v in await store.history(c, 0, now, DAY, "mean")] == [2.0, 3.0, 4.0]
    finally:
        await store.close()


async def test_retention_job_runs_from_open(tmp_path: Path) -> None:
    reg = mixed_registry()
    c = idx(reg, "c")
    store = SqliteStore(
        reg,
        tmp_path / "ts.sqlite",
        retention=RetentionPolicy(),
        retention_every_s=0.05,
        rollup_every_s=0,
        clock=lambda: T0,
    )
    await store.open()
    try:
        await store.write_readings(readings(c, [T0 - 40 * DAY, T0 - DAY], [1.0, 2.0]))
        for _ in range(100):
            if len(await store.history(c, 0, T0)) == 1:
                break
            await asyncio.sleep(0.02)
        assert await store.history(c, 0, T0) == [(T0 - DAY, 2.0)]
    finally:
        await store.close()


async def test_schema_1_file_gets_rollups(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "ts.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE sensors (sid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
            " idx INTEGER UNIQUE, tenant TEXT NOT NULL, site TEXT NOT NULL, device TEXT NOT NULL);"
            "CREATE TABLE readings (sensor INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL,"
            " quality INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
            " PRIMARY KEY (sensor, ts)) WITHOUT ROWID;"
            "INSERT INTO sensors (id, idx, tenant, site, device)"
            " VALUES ('a', 0, 'acme', 's1', 'd1');"
            "INSERT INTO readings VALUES (1, 0, 1.0, 0, 1, 1), (1, 1000, 3.0, 0, 1, 1);"
            "PRAGMA user_version = 1;"
        )
    old.close()
    store = SqliteStore(reg, path, rollup_every_s=0)
    await store.open()
    try:
        assert await store.history(idx(reg, "a"), 0, MIN, MIN, "mean") == [(0, 2.0)]
        dirty = await store._run(
            "t", lambda c: c.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0]
        )
        assert dirty == 0
    finally:
        await store.close()


async def test_schema_3_rollups_are_made_again_of_measurements(
    tmp_path: Path, reg: Registry
) -> None:
    """The rollups of a schema-3 file took every quality in (a calibration's test gas made a
    minute's max): they are made again at the upgrade, of the measurements only."""
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path, rollup_every_s=0)
    await store.open()
    a = idx(reg, "a")
    try:
        await store.write_readings(readings(a, [0, 1000], [2.0, 60.0], quality=[0, 6]))
        await store.refresh_rollups()
    finally:
        await store.close()
    with sqlite3.connect(path) as old:  # as a schema-3 hub left it
        old.execute("UPDATE rollup_1m SET hi = 60.0, n = 2, total = 62.0")
        old.execute("PRAGMA user_version = 3")
    old.close()
    store = SqliteStore(reg, path, rollup_every_s=0)
    await store.open()
    try:
        assert await store.history(a, 0, MIN, MIN, "max") == [(0, 2.0)]
        assert await store.history(a, 0, MIN, MIN, "mean") == [(0, 2.0)]
    finally:
        await store.close()


async def test_last_calibrations_seek_an_index_made_for_files_without_it(
    tmp_path: Path, reg: Registry
) -> None:
    """A file of a hub before the calibration index (its calibration reading among many others)
    gets it at `open`, and `last_calibrations` seeks it: no scan of a sensor's readings."""
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path, rollup_every_s=0)
    await store.open()
    a, b = idx(reg, "a"), idx(reg, "b")
    try:
        ts = [T0 + i * 1000 for i in range(200)]
        await store.write_readings(readings(a, ts, [0.3] * 200, quality=[0] * 100 + [6] + [0] * 99))
    finally:
        await store.close()
    with sqlite3.connect(path) as old:
        old.execute("DROP INDEX readings_calibration")
    old.close()
    store = SqliteStore(reg, path, rollup_every_s=0)
    await store.open()
    try:
        end = T0 + 200_000
        assert await store.last_calibrations([a, b], T0, end) == {a: T0 + 100_000}
        assert await store.last_calibrations([a], T0 + 100_001, end) == {}
        assert await store.last_calibrations([a], T0, T0 + 100_000) == {}
        from ingest.store.sqlite_sql import LAST_CALIBRATIONS

        plan = await store._run(
            "t",
            lambda c: c.execute(
                "EXPLAIN QUERY PLAN " + LAST_CALIBRATIONS, {"sids": "[1]", "start": 0, "end": 1}
            ).fetchall(),
        )
        assert any("USING INDEX readings_calibration" in str(r[-1]) for r in plan), plan
    finally:
        await store.close()
