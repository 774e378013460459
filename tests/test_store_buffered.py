"""BufferedStore around the real InfluxDB (the `influxdb` fixture), taken away and brought back.

The short outages here check the mechanics (spool, order, limit, restart, partial writes); the
60-second outage under a steady stream is `test_store_outage.py`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_store_influx import acme_registry, idx

from ingest.store.base import PositionBatch, ReadingBatch, StoreError, StoreUnavailableError
from ingest.store.buffered import BufferedStore
from ingest.store.influx import InfluxStore
from ingest.store.spool import SpoolFullError
from telemetry.registry import Registry

from services import InfluxService, free_port

T0 = 1_700_000_000_000


def batch(sensor: int, start: int, n: int, seq: int, value: float | None = None) -> ReadingBatch:
    ts = T0 + np.arange(start, start + n, dtype=np.int64)
    values = ts.astype(np.float64) / 1000 if value is None else np.full(n, value)
    return ReadingBatch(
        np.full(n, sensor, np.int32),
        ts,
        values,
        np.zeros(n, np.uint8),
        np.ones(n, np.int64),
        np.full(n, seq, np.int64),
    )


@pytest.fixture(scope="module")
def registry() -> Registry:
    return acme_registry()


@pytest.fixture
async def database(influxdb: InfluxService) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    if not influxdb.running:
        influxdb.start()
    async with httpx.AsyncClient(base_url=influxdb.url) as client:
        await client.post("/query", params={"q": f'DROP DATABASE "{name}"'})


def buffered(
    influxdb: InfluxService, registry: Registry, database: str, spool: Path, **kw: object
) -> BufferedStore:
    inner = InfluxStore(registry, influxdb.url, database, timeout_s=2.0)
    options: dict[str, object] = {"retry_initial_s": 0.05, "retry_max_s": 0.2, **kw}
    return BufferedStore(inner, registry, spool, **options)  # type: ignore[arg-type]


async def test_outage_spools_then_drains_in_order(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    ch4 = idx(registry, "ch4.1")
    store = buffered(influxdb, registry, database, tmp_path / "spool")
    await store.open()
    try:
        await store.write_readings(batch(ch4, 0, 100, seq=1))
        assert store.stats().written_rows == 100
        influxdb.stop()
        try:
            await store.write_readings(batch(ch4, 100, 100, seq=2))  # returns: spooled
            await store.write_readings(batch(ch4, 200, 100, seq=3))
            # a newer value for times already spooled: must win after the drain
            await store.write_readings(batch(ch4, 150, 10, seq=4, value=-1.0))
            stats = store.stats()
            assert stats.spooled_rows == 210 and not stats.inner_up
            assert stats.spool.pending_records == 3
        finally:
            influxdb.start()
        # once the server is back, new writes queue behind the spool
        await store.write_readings(batch(ch4, 300, 100, seq=5))
        assert await store.wait_drained(20)
        stats = store.stats()
        assert stats.drained_rows + stats.written_rows == 410
        assert stats.spool.pending_records == 0
        counts = await store.count_by_seq("acme", "gas-1")
        assert counts == {(1, 1): 100, (1, 2): 90, (1, 3): 100, (1, 4): 10, (1, 5): 100}
        rows = await store.history(ch4, T0, T0 + 400)
        assert len(rows) == 400
        assert [v for _, v in rows[150:160]] == [-1.0] * 10
    finally:
        await store.close()
    assert not list((tmp_path / "spool").glob("*.seg"))


async def test_a_restart_drains_what_was_spooled(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    ch4 = idx(registry, "ch4.1")
    influxdb.stop()
    try:
        store = buffered(influxdb, registry, database, tmp_path / "spool", close_drain_s=0.2)
        await store.open()  # opens although InfluxDB is away
        await store.write_readings(batch(ch4, 0, 500, seq=1))
        await store.close()  # the spool keeps it
    finally:
        influxdb.start()
    again = buffered(influxdb, registry, database, tmp_path / "spool")
    await again.open()
    try:
        assert len(again.spool) == 1
        assert await again.wait_drained(20)
        assert await again.count_by_seq("acme", "gas-1") == {(1, 1): 500}
    finally:
        await again.close()


async def test_full_spool_refuses_retryably_and_loses_nothing(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    ch4 = idx(registry, "ch4.1")
    store = buffered(
        influxdb, registry, database, tmp_path / "spool", max_spool_bytes=12_000, batch_lines=100
    )
    await store.open()
    try:
        influxdb.stop()
        try:
            await store.write_readings(batch(ch4, 0, 200, seq=1))  # 2 records of ~3.8 kB
            with pytest.raises(SpoolFullError) as info:
                await store.write_readings(batch(ch4, 200, 200, seq=2))
            assert info.value.retryable  # ingest holds the MQTT acks and tries again
            assert store.stats().spool.full_refusals == 1
        finally:
            influxdb.start()
        for _ in range(200):  # ingest retries with backoff until the spool has room
            try:
                await store.write_readings(batch(ch4, 200, 200, seq=2))
                break
            except SpoolFullError:
                await asyncio.sleep(0.05)
        assert await store.wait_drained(20)
        assert await store.count_by_seq("acme", "gas-1") == {(1, 1): 200, (1, 2): 200}
    finally:
        await store.close()


async def test_partial_write_keeps_the_rest_and_counts_the_refused(
    influxdb: InfluxService,
    registry: Registry,
    database: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """InfluxDB 1.x keeps the valid points of a partial write: here `speed_kmh` was first written
    as a string, so lines with a speed are refused and lines without one (NaN) are kept."""
    truck = registry.vehicles[("acme", "truck-1")].speed_sensor
    store = buffered(influxdb, registry, database, tmp_path / "spool")
    await store.open()
    try:
        async with httpx.AsyncClient(base_url=influxdb.url) as client:
            resp = await client.post(
                "/write",
                params={"db": database, "precision": "ms"},
                # field types are per shard: the same week as the points below
                content=b'position,tenant=acme,vehicle=other lat=1.0,speed_kmh="fast" %d'
                % (T0 - 1),
            )
            assert resp.status_code == 204
        n = 6
        pos = PositionBatch(
            np.full(n, truck, np.int32),
            T0 + np.arange(n, dtype=np.int64),
            np.full(n, 30.0),
            np.full(n, 120.0),
            np.array([math.nan, 10.0, math.nan, 20.0, 30.0, math.nan]),
            np.full(n, 90.0),
        )
        with caplog.at_level(logging.ERROR, logger="ingest.store.buffered"):
            await store.write_positions(pos)  # no exception: the rest is stored
        assert store.stats().refused_lines == 3
        assert "field type conflict" in caplog.text
        assert "position,tenant=acme,vehicle=truck-1" in caplog.text  # a refused line, logged
        track = await store.track(truck, T0, T0 + n)
        assert track.ts.tolist() == [T0, T0 + 2, T0 + 5]
    finally:
        await store.close()


async def test_permanent_error_reaches_the_caller(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    store = buffered(influxdb, registry, database, tmp_path / "spool")
    await store.open()
    try:
        ch4 = idx(registry, "ch4.1")
        not_a_vehicle = PositionBatch(
            np.array([ch4], np.int32),
            np.array([T0], np.int64),
            np.array([1.0]),
            np.array([1.0]),
            np.array([1.0]),
            np.array([1.0]),
        )
        with pytest.raises(StoreError, match="not vehicles") as info:
            await store.write_positions(not_a_vehicle)
        assert not info.value.retryable
        with pytest.raises(StoreError, match="outside") as info:
            await store.write_readings(batch(999, 0, 1, seq=1))
        assert store.stats().failed_writes == 1
        assert len(store.spool) == 0
    finally:
        await store.close()


async def test_an_unreadable_record_behind_good_ones_is_set_aside_alone(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    """Two spooled batches, then a damaged record: the two are drained, the damaged one is set
    aside once. (The damaged record used to pop the oldest record in its place: the good
    batches were lost uncounted and the damaged one set aside three times.)"""
    ch4 = idx(registry, "ch4.1")
    influxdb.stop()
    try:
        store = buffered(influxdb, registry, database, tmp_path / "spool", close_drain_s=0.2)
        await store.open()
        await store.write_readings(batch(ch4, 0, 50, seq=1))
        await store.write_readings(batch(ch4, 50, 50, seq=2))
        store.spool.append(b"\x00 not a record")
        await store.close()
    finally:
        influxdb.start()
    again = buffered(influxdb, registry, database, tmp_path / "spool")
    await again.open()
    try:
        assert len(again.spool) == 3
        assert await again.wait_drained(20)
        assert await again.count_by_seq("acme", "gas-1") == {(1, 1): 50, (1, 2): 50}
        assert again.stats().drained_rows == 100
    finally:
        await again.close()
    kept = sorted((tmp_path / "spool" / "rejected").glob("*.rec"))
    assert [p.read_bytes() for p in kept] == [b"\x00 not a record"]


async def test_spooled_rows_of_a_removed_sensor_are_counted_once_however_many_retries(
    influxdb: InfluxService, registry: Registry, database: str, tmp_path: Path
) -> None:
    """A sensor deleted while its readings waited in the spool: they are not written (its id is
    gone), counted and said once when their records leave the spool, not at every retry of the
    drain while InfluxDB is still away (227 counted for 41 rows, helper-91)."""
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry

    doc = registry.config.model_dump(mode="json", by_alias=True, exclude_none=True)
    devices = doc["tenants"][0]["sites"][0]["devices"]
    doc["tenants"][0]["sites"][0]["devices"] = [d for d in devices if d["id"] != "gas-2"]
    smaller = build_registry(HubConfig.model_validate(doc))
    influxdb.stop()
    try:
        store = buffered(influxdb, registry, database, tmp_path / "spool", close_drain_s=0.2)
        await store.open()
        await store.write_readings(batch(idx(registry, "ch4-2"), 0, 41, seq=1))
        await store.write_readings(batch(idx(registry, "ch4.1"), 0, 10, seq=2))
        await store.close()
        again = buffered(influxdb, smaller, database, tmp_path / "spool")
        await again.open()
        await asyncio.sleep(1.0)  # the drain tries, and fails, again and again
    finally:
        influxdb.start()
    try:
        assert await again.wait_drained(20)
        stats = again.stats()
        assert (stats.unknown_rows, stats.drained_rows) == (41, 10)
    finally:
        await again.close()


async def test_a_server_limit_holds_the_writes_in_the_spool_until_it_is_raised(
    registry: Registry, tmp_path: Path
) -> None:
    """InfluxDB refusing the lines of new series for its `max-series-per-database`: the server's
    setting, not the data. The lines were refused for good (counted, the readings lost to the
    store); now the write is spooled until the limit is raised, then stored."""
    server = InfluxService(tmp_path / "influx", max_series=1).launch()  # (1.6 takes none)
    try:
        store = buffered(server, registry, "limited", tmp_path / "spool")
        await store.open()
        try:
            ch4 = idx(registry, "ch4.1")
            await store.write_readings(batch(ch4, 0, 5, seq=1))
            refusal = store.unavailable()
            assert refusal is not None and refusal.cause == "influxdb_limit", refusal
            stats = store.stats()
            assert (stats.refused_lines, stats.spooled_rows) == (0, 5)
            assert stats.unavailable_failures == 1
            server.stop()
            server.max_series = 0  # the operator lifts the limit
            server._write_conf()
            server.start()
            assert await store.wait_drained(20)
            assert store.unavailable() is None
            assert len(await store.readings(ch4, T0, T0 + 100)) == 5
        finally:
            await store.close()
    finally:
        server.stop()


async def test_a_wrong_password_at_start_spools_instead_of_failing(
    registry: Registry, tmp_path: Path
) -> None:
    """A hub started with a wrong password (rotated while it was down) starts and spools: it used
    to fail to start (no alarm judged at all) with a permanent 401."""
    server = InfluxService(tmp_path / "influx", auth=True).launch()
    try:
        server.create_admin("hub", "right")
        url = server.url.replace("http://", "http://hub:wrong@")
        inner = InfluxStore(registry, url, "secured", timeout_s=2.0)
        store = BufferedStore(inner, registry, tmp_path / "spool", retry_max_s=0.2)
        await store.open()
        try:
            refusal = store.unavailable()
            assert refusal is not None and refusal.cause == "influxdb_auth"
            await store.write_readings(batch(idx(registry, "ch4.1"), 0, 3, seq=1))
            assert store.stats().spooled_rows == 3
            assert "wrong" not in str(refusal)
        finally:
            await store.close()
    finally:
        server.stop()


async def test_a_full_disk_under_the_spool_holds_the_write(
    registry: Registry, tmp_path: Path
) -> None:
    """InfluxDB away and the spool's disk full (its segment on /dev/full: the kernel's ENOSPC): the
    write fails with a retryable StoreUnavailableError (spool_disk), so ingest holds the messages
    unacknowledged and `/readyz` says why. The OSError went through as it was, a bug's error:
    ingest's session ended on it, and again on every delivery."""
    away = InfluxStore(registry, f"http://127.0.0.1:{free_port()}", "x", timeout_s=0.5)
    spool = tmp_path / "spool"
    store = BufferedStore(away, registry, spool, retry_initial_s=0.05, retry_max_s=0.2)
    await store.open()
    try:
        (spool / f"{1:016d}.seg").symlink_to("/dev/full")  # the first segment the spool makes
        with pytest.raises(StoreUnavailableError) as info:
            await store.write_readings(batch(idx(registry, "ch4.1"), 0, 3, seq=1))
        assert info.value.retryable and info.value.cause == "spool_disk", info.value
        assert "No space left" in str(info.value)
    finally:
        await store.close()
