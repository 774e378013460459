"""A flush that fails leaves its successors unjudged and unacknowledged, so that the broker
delivers them all again in order (real Mosquitto, real dispatcher and stores): the older readings
are not judged after newer ones, which would make them late."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import numpy as np
import pytest
from test_hub_clock import CONFIG

from alerts.statedb import StateDB
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.service import IngestService
from ingest.store.sqlite import SqliteStore
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually


def message(seq: int, ts: int) -> bytes:
    return encode(
        TelemetryBatch(
            "gw",
            "d",
            1,
            seq,
            ("gas",),
            np.zeros(1, np.uint16),
            np.array([ts], np.int64),
            np.array([5.0]),
            np.zeros(1, np.uint8),
        )
    )


async def test_a_failed_flush_holds_back_the_flushes_after_it(mosquitto, tmp_path):
    reg = build_registry(parse_document(CONFIG, HubConfig, "order.yaml"))
    layout, metrics = TopicLayout(), Metrics()
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    dispatcher = Dispatcher(reg, store, db, metrics)
    real_write = dispatcher.write
    calls = 0

    async def first_write_fails(readings, positions):
        nonlocal calls
        calls += 1
        if calls == 1:  # slow, then failing: the flushes after it have stored meanwhile
            await asyncio.sleep(0.5)
            raise RuntimeError("injected: the first flush fails")
        return await real_write(readings, positions)

    dispatcher.write = first_write_fails  # type: ignore[method-assign]

    def service() -> IngestService:
        return IngestService(
            Pipeline(reg, layout, metrics),
            dispatcher,
            db,
            metrics,
            layout,
            host="127.0.0.1",
            port=mosquitto.port,
            client_id="order-hub",
            flush_messages=1,
            max_flushes=3,
        )

    try:
        first, stop = service(), asyncio.Event()
        run = asyncio.create_task(first.run(stop))
        await asyncio.wait_for(first.ready.wait(), 10)
        now = time.time_ns() // 1_000_000
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for seq in range(3):
                topic = layout.telemetry("t", "s", "d")
                await pub.publish(topic, message(seq, now + 1000 * seq), qos=1)
                await asyncio.sleep(0.05)  # one flush each
        with pytest.raises(RuntimeError, match="injected"):
            await asyncio.wait_for(run, 10)
        # nothing judged (or acknowledged) after the failed flush
        assert metrics.total("hazardhub_readings_total") == 0
        # the hub again, same session: the broker delivers all three, in order
        second, stop = service(), asyncio.Event()
        run = asyncio.create_task(second.run(stop))

        async def judged() -> bool:
            return metrics.total("hazardhub_readings_total") >= 3

        await eventually(judged, 10, "the three readings judged")
        stop.set()
        await asyncio.wait_for(run, 10)
        assert metrics.total("hazardhub_readings_total") == 3
        assert metrics.total("hazardhub_readings_late_total") == 0
    finally:
        await store.close()
        db.close()
