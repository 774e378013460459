"""Two copies of one message taken before the first is judged: a gateway's reconnect re-sends
its unacknowledged QoS 1 messages, often in the same second, so both copies reach the hub
within one flush (or while two flushes overlap). The hub compared them only with the flushes
that had finished, and judged both: `hazardhub_readings_total`, the per-sensor analytics and
the N-in-a-row counters counted the reading twice (helper-170). Now the second copy is a
duplicate, counted, acknowledged and not judged, like one that comes after its flush. And a copy
sent again after a hub restart of a batch judged before it: the hub knew the newest seq of each
device alone and judged it again, late; now the last 128 seqs are kept. Real hubs over a real
Mosquitto, the copies published back to back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import numpy as np
import orjson
from test_bad_input import GOOD_TOPIC

from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.posenvelope import encode_envelope
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port

POSITION_TOPIC = TopicLayout().position("acme-chem", "tanker-01")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _hub(tmp_path: Path, port: int) -> Hub:
    return Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=port, api_port=free_port()),
    )


def _telemetry(epoch: int, seq: int, ts: int) -> bytes:
    keys = ("ch4_t0", "ch4_t1", "co")
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            epoch,
            seq,
            keys,
            np.arange(len(keys), dtype=np.uint16),
            np.full(len(keys), ts, np.int64),
            np.array([0.4, 0.3, 5.0]),
            np.zeros(len(keys), np.uint8),
        )
    )


def _envelope(epoch: int, seq: int, ts: int) -> bytes:
    rec = {"ts": ts, "lat": 31.62, "lon": 120.33, "speed_kmh": 40.0, "heading_deg": 90.0}
    return encode_envelope(epoch, seq, orjson.dumps([rec]))


async def test_a_copy_taken_before_its_first_is_judged_is_a_duplicate(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    hub = _hub(tmp_path, mosquitto.port)
    m = hub.metrics
    t = now_ms()
    epoch = t - 60_000
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        for seq in range(3):  # each one twice, back to back: a reconnect's re-send
            data = _telemetry(epoch, seq, t - 3000 + 1000 * seq)
            await mq.publish(GOOD_TOPIC, data, qos=1)
            await mq.publish(GOOD_TOPIC, data, qos=1)
        envelope = _envelope(epoch, 0, t - 2000)
        await mq.publish(POSITION_TOPIC, envelope, qos=1)
        await mq.publish(POSITION_TOPIC, envelope, qos=1)

        async def handled() -> bool:
            return (
                m.get("hazardhub_messages_total", kind="telemetry") >= 6
                and m.get("hazardhub_messages_total", kind="position") >= 2
                and m.get("hazardhub_readings_total") >= 9
                and m.get("hazardhub_positions_total") >= 1
            )

        await eventually(handled, 15, "both copies of every message taken, one judged")
        await asyncio.sleep(1.0)  # the flushes in flight end: a second judging would show now
        assert m.get("hazardhub_readings_total") == 9 + 1  # 3 batches of 3, a position's speed
        assert m.get("hazardhub_positions_total") == 1
        assert m.get("hazardhub_messages_duplicate_total") == 3
        assert m.get("hazardhub_positions_duplicate_total") == 1
        assert m.get("hazardhub_readings_late_total") == 0
        assert m.get("hazardhub_telemetry_batches_missing_total") == 0
        assert m.total("hazardhub_messages_rejected_total") == 0
        assert hub.statedb.dead_letters() == []
        # a copy of a judged one, later, is a duplicate as before; the next one is judged
        await mq.publish(GOOD_TOPIC, _telemetry(epoch, 2, t - 1000), qos=1)
        await mq.publish(GOOD_TOPIC, _telemetry(epoch, 3, t), qos=1)

        async def next_judged() -> bool:
            return m.get("hazardhub_readings_total") >= 13

        await eventually(next_judged, 15, "seq 3 judged")
        await asyncio.sleep(0.5)
        assert m.get("hazardhub_readings_total") == 13
        assert m.get("hazardhub_messages_duplicate_total") == 4
    # every copy acknowledged: a hub started again on the same session gets none of them
    again = _hub(tmp_path, mosquitto.port)
    async with running_hub(again):
        await asyncio.sleep(1.5)
        assert again.metrics.get("hazardhub_messages_total", kind="telemetry") == 0
        assert again.metrics.get("hazardhub_messages_total", kind="position") == 0


async def test_a_copy_sent_again_after_a_hub_restart_is_a_duplicate(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    t = now_ms()
    epoch = t - 60_000
    first = _hub(tmp_path, mosquitto.port)
    async with running_hub(first), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        for seq in range(5):
            await mq.publish(GOOD_TOPIC, _telemetry(epoch, seq, t - 5000 + 1000 * seq), qos=1)
        for seq in range(3):
            await mq.publish(POSITION_TOPIC, _envelope(epoch, seq, t - 3000 + 1000 * seq), qos=1)

        async def judged() -> bool:
            m = first.metrics
            return m.get("hazardhub_readings_total") >= 15 + 3

        await eventually(judged, 15, "seq 0-4 and the envelopes 0-2 judged")
    second = _hub(tmp_path, mosquitto.port)
    m = second.metrics
    async with running_hub(second), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        # a gateway's re-send of its window after a reconnect, the newest first judged too
        for seq in (2, 3, 4, 5):
            await mq.publish(GOOD_TOPIC, _telemetry(epoch, seq, t - 5000 + 1000 * seq), qos=1)
        for seq in (1, 3):
            await mq.publish(POSITION_TOPIC, _envelope(epoch, seq, t - 3000 + 1000 * seq), qos=1)

        async def taken() -> bool:
            return (
                m.get("hazardhub_messages_total", kind="telemetry") >= 4
                and m.get("hazardhub_messages_total", kind="position") >= 2
                and m.get("hazardhub_readings_total") >= 3 + 1
            )

        await eventually(taken, 15, "the copies and the new ones taken")
        await asyncio.sleep(1.0)
        assert m.get("hazardhub_messages_duplicate_total") == 3
        assert m.get("hazardhub_positions_duplicate_total") == 1
        assert m.get("hazardhub_readings_total") == 3 + 1  # seq 5, envelope 3
        assert m.get("hazardhub_readings_late_total") == 0
        assert m.get("hazardhub_readings_rewound_total") == 0
        assert m.get("hazardhub_telemetry_batches_missing_total") == 0
        assert m.get("hazardhub_position_batches_missing_total") == 0
