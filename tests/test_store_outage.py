"""InfluxDB away for 60 s under a steady stream of readings: nothing is lost, nothing doubles.

A producer writes every 50 ms one reading of each of 20 sensors through
`BufferedStore(InfluxStore)`. After 2 s the fixture's influxd is stopped for 60 s, then started
again on the same port with the same data; the producer keeps going for 3 s more. Afterwards every
reading is in InfluxDB exactly once (counted per series and per time, values checked) and the
spool is empty. This is the one long test of the suite (about 70 s).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest.store.base import ReadingBatch
from ingest.store.buffered import BufferedStore
from ingest.store.influx import InfluxStore
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry

from services import InfluxService

SENSORS = 20
TICK_S = 0.05
BEFORE_S = 2.0
OUTAGE_S = 60.0
AFTER_S = 3.0


def registry() -> Registry:
    points = [{"name": f"p{i}", "address": i} for i in range(SENSORS)]
    config = HubConfig.model_validate(
        {
            "device_profiles": [{"name": "gen", "points": points}],
            "tenants": [
                {
                    "id": "outage",
                    "sites": [
                        {
                            "id": "s1",
                            "kind": "mine",
                            "devices": [
                                {
                                    "id": "d1",
                                    "profile": "gen",
                                    "sensors": [
                                        {"id": f"out.s{i}", "point": f"p{i}", "kind": "methane"}
                                        for i in range(SENSORS)
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    return build_registry(config)


def tick(k: int, t0: int) -> ReadingBatch:
    """Reading k of every sensor: time t0 + 50 ms * k, value k + sensor / 100, seq k."""
    sensor = np.arange(SENSORS, dtype=np.int32)
    return ReadingBatch(
        sensor,
        np.full(SENSORS, t0 + 50 * k, np.int64),
        k + sensor / 100,
        np.zeros(SENSORS, np.uint8),
        np.ones(SENSORS, np.int64),
        np.full(SENSORS, k, np.int64),
    )


@pytest.mark.outage
async def test_sixty_second_outage_loses_nothing(influxdb: InfluxService, tmp_path: Path) -> None:
    reg = registry()
    database = f"outage_{uuid.uuid4().hex[:8]}"
    inner = InfluxStore(reg, influxdb.url, database, timeout_s=1.0)
    store = BufferedStore(inner, reg, tmp_path / "spool", retry_initial_s=0.2, retry_max_s=1.0)
    await store.open()
    t0 = time.time_ns() // 1_000_000 // 1000 * 1000
    written = 0
    slowest = 0.0
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal written, slowest
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not stop.is_set():
            began = loop.time()
            await store.write_readings(tick(written, t0))  # must never raise
            slowest = max(slowest, loop.time() - began)
            written += 1
            await asyncio.sleep(max(0.0, start + written * TICK_S - loop.time()))

    producer = asyncio.create_task(produce(), name="producer")
    try:
        await asyncio.sleep(BEFORE_S)
        await asyncio.to_thread(influxdb.stop)
        try:
            await asyncio.sleep(OUTAGE_S)
            during = store.stats()
            assert not during.inner_up
            assert during.spool.pending_records > 1000  # about 20 a second went to the spool
        finally:
            await asyncio.to_thread(influxdb.start)
        await asyncio.sleep(AFTER_S)
        stop.set()
        await producer
        assert await store.wait_drained(60), store.stats()

        stats = store.stats()
        assert stats.spool.pending_records == 0 and stats.spool.pending_bytes == 0
        assert stats.written_rows + stats.drained_rows == written * SENSORS
        assert stats.refused_lines == stats.rejected_rows == stats.unknown_rows == 0
        assert not list((tmp_path / "spool").glob("*.seg"))
        assert slowest < 1.0, f"a write waited {slowest:.2f} s"
        assert written > (BEFORE_S + OUTAGE_S + AFTER_S) / TICK_S * 0.9

        # exactly once, per series and per time
        async with httpx.AsyncClient(base_url=influxdb.url) as client:
            resp = await client.get(
                "/query",
                params={
                    "db": database,
                    "epoch": "ms",
                    "q": 'SELECT count("value"), sum("value") FROM "reading" GROUP BY "sensor"',
                },
            )
            series = resp.json()["results"][0]["series"]
        got = {s["tags"]["sensor"]: s["values"][0][1:] for s in series}
        ks = np.arange(written)
        for i in range(SENSORS):
            count, total = got[f"out.s{i}"]
            assert count == written, (i, count, written)
            assert abs(total - float(np.sum(ks + i / 100))) < 1e-6 * written * written
        counts = await store.count_by_seq("outage", "d1")
        assert counts == {(1, k): SENSORS for k in range(written)}
        history = await store.history(3, t0, t0 + 50 * written)
        assert [t for t, _ in history] == [t0 + 50 * k for k in range(written)]
        assert [v for _, v in history] == [k + 0.03 for k in range(written)]
    finally:
        stop.set()
        if not producer.done():
            producer.cancel()
        await store.close()
        if not influxdb.running:
            influxdb.start()
