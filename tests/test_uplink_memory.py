"""The Modbus gateway's uplink keeps nothing per batch it sent: `MqttPublisher.published` kept a
record of every batch ever acknowledged, about 129 bytes each, some 560 MB a day at 50 devices a
second, read only by tests (helper-150, finding 7). Tests watch the broker instead
(`e2e_helpers.TelemetryWatch`)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from gateway.publisher import MqttPublisher
from gateway.spool import Spool
from telemetry.codec import TelemetryBatch, encode
from telemetry.topics import TopicLayout

from e2e_helpers import TelemetryWatch

N = 2000


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _batch(seq: int) -> bytes:
    one = np.zeros(1, np.uint16)
    ts = np.array([_ms()], np.int64)
    return encode(
        TelemetryBatch("gw1", "kj-sub-3", 1, seq, ("ch4_t1",), one, ts, np.array([0.5]), one)
    )


def _held(value: object, depth: int = 0) -> int:
    """The items in the containers `value` holds (lists, dicts, sets, and theirs), 3 deep."""
    if depth > 3 or isinstance(value, (str, bytes, Spool)):
        return 0
    if isinstance(value, dict):
        return len(value) + sum(_held(v, depth + 1) for v in value.values())
    if isinstance(value, (list, set, tuple, frozenset)):
        return len(value) + sum(_held(v, depth + 1) for v in value)
    return 0


@pytest.mark.slow
async def test_the_uplink_keeps_nothing_per_batch_sent(mosquitto, tmp_path):
    layout = TopicLayout()
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    topic = layout.telemetry("north-coal", "face-1301", "kj-sub-3")
    pub = MqttPublisher(
        "127.0.0.1", mosquitto.port, tenant="north-coal", gateway="gw1", layout=layout, spool=spool
    )
    stop = asyncio.Event()
    async with TelemetryWatch(mosquitto.port) as watch:
        task = asyncio.create_task(pub.run(stop))
        try:
            spool.push_many([(topic, _batch(i), "kj-sub-3", 1, i, 1) for i in range(N)])
            pub.wake()
            end = time.monotonic() + 30
            while len(spool) and time.monotonic() < end:
                await asyncio.sleep(0.05)
            assert len(spool) == 0
            await watch.quiet()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            spool.close()
    assert len(watch.published["kj-sub-3"]) == N  # all sent (seen at the broker)
    held = {k: _held(v) for k, v in vars(pub).items()}
    assert max(held.values()) < 50, held
