"""Telemetry published with QoS 0 (docs/mqtt.md asks for QoS 1) is judged and counted, and what
the hub drops of it is counted, never silent: aiomqtt's inbox was unbounded for QoS 0 (the broker
holds back only unacknowledged QoS 1 messages), so a flood while the store was held grew the hub
by hundreds of MB, and the QoS 0 messages queued when a session ended were dropped uncounted
(helper-150). A QoS 1 message is never dropped: it comes again after the session's end."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from test_bad_input import GOOD_TOPIC

from hazardhub.hub import Hub, HubSettings
from ingest.mqttio import HubClient
from telemetry.codec import TelemetryBatch, encode

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port

FLOOD = 2500  # more than the hub holds (1,000 queued, 3 flushes of 256) and the inbox's 20


def _reading(seq: int, now: int) -> bytes:
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            9,
            seq,
            ("ch4_t0",),
            np.zeros(1, np.uint16),
            np.array([now - 3 * FLOOD + seq], np.int64),
            np.array([0.3]),
            np.zeros(1, np.uint8),
        )
    )


async def test_qos0_telemetry_is_judged_and_every_one_dropped_is_counted(
    mosquitto: MosquittoService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HubClient, "qos0_inbox", 20)
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    metrics = hub.metrics

    def dropped() -> float:
        return sum(
            metrics.get("hazardhub_messages_dropped_total", reason=r)
            for r in ("qos0_inbox_full", "qos0_session_end")
        )

    now = time.time_ns() // 1_000_000
    async with running_hub(hub):
        # another writer that locks the store: ingest waits for it, messages pile up
        lock = sqlite3.connect(tmp_path / "hub" / "timeseries.db", isolation_level=None)
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
                await mq.publish(GOOD_TOPIC, _reading(0, now), qos=0)

                async def judged() -> bool:
                    return metrics.get("hazardhub_readings_total") == 1

                await eventually(judged, 10, "the QoS 0 reading judged")
                assert metrics.get("hazardhub_messages_qos0_total", kind="telemetry") == 1

                lock.execute("BEGIN IMMEDIATE")
                for seq in range(1, FLOOD + 1):
                    await mq.publish(GOOD_TOPIC, _reading(seq, now), qos=0)
                await mq.publish(GOOD_TOPIC, _reading(FLOOD + 1, now), qos=1)

                async def inbox_full() -> bool:
                    full = metrics.get("hazardhub_messages_dropped_total", reason="qos0_inbox_full")
                    return full > 0

                await eventually(inbox_full, 20, "QoS 0 messages dropped at the full inbox")
                await asyncio.sleep(1.0)  # the rest of the flood arrives
            # the session ends while the store is held: the flushes in flight end once it
            # takes their readings again, and the QoS 0 messages still queued are gone
            mosquitto.stop()
            await asyncio.sleep(0.5)
        finally:
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()

        async def away() -> bool:
            return not hub.ingest.ready.is_set()

        await eventually(away, 30, "the hub to end its session")
        assert metrics.get("hazardhub_messages_dropped_total", reason="qos0_session_end") > 0
        mosquitto.start()  # the QoS 1 message comes again if it was not judged

        async def stored() -> dict[tuple[int, int], int]:
            found = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return found if (9, FLOOD + 1) in found else {}

        found = await eventually(stored, 30, "the QoS 1 message stored")
        flood = sum(1 for _, seq in found if 1 <= seq <= FLOOD)
        # every QoS 0 message of the flood is stored and judged, or counted as dropped
        assert flood + dropped() == FLOOD, (flood, dropped())
        assert metrics.get("hazardhub_readings_total") == 1 + flood + 1
