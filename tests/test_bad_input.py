"""A corpus of bad input on the hub's MQTT entry points, interleaved with good traffic: each bad
message is rejected with a reason, counted in /metrics and kept as a dead letter; every good
reading is still stored and judged. Bad HTTP requests get a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import httpx
import numpy as np
import orjson
import pytest

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec
from telemetry.quality import Quality
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, mine_registry, running_hub
from services import free_port

L = TopicLayout()
GOOD_TOPIC = L.telemetry("north-coal", "face-1301", "kj-sub-3")


def batch(
    seq: int,
    now: int,
    value: float = 0.4,
    quality: int = Quality.GOOD,
    ts: int | None = None,
    keys: tuple[str, ...] = ("ch4_t1",),
) -> bytes:
    n = len(keys)
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            5,
            seq,
            keys,
            np.arange(n, dtype=np.uint16),
            np.full(n, now + seq if ts is None else ts, np.int64),
            np.full(n, value),
            np.full(n, quality, np.uint8),
        )
    )


def corpus(now: int) -> list[tuple[str, bytes, str]]:
    """(topic, payload, the reason its dead letter gives). A topic outside the layout never
    reaches the hub: its subscriptions do not match it."""
    good = batch(1000, now)
    deep = b"[" * 5000 + b"]" * 5000
    return [
        (GOOD_TOPIC, good[:-7], "decode_error"),  # truncated
        (GOOD_TOPIC, b"\x00" * 64, "decode_error"),  # not our magic
        (GOOD_TOPIC, good + b"tail", "decode_error"),  # trailing bytes
        (GOOD_TOPIC, b"", "decode_error"),
        (L.telemetry("north-coal", "face-1301", "no-such-device"), good, "unknown_device"),
        (L.telemetry("acme-chem", "face-1301", "kj-sub-3"), good, "unknown_device"),  # other tenant
        (
            L.telemetry("north-coal", "face-1301", "kj-sub-3"),
            encode(
                TelemetryBatch(
                    "gw1",
                    "someone-else",
                    5,
                    1,
                    ("ch4_t1",),
                    np.zeros(1, np.uint16),
                    np.array([now]),
                    np.array([0.1]),
                    np.zeros(1, np.uint8),
                )
            ),
            "device_mismatch",
        ),
        (GOOD_TOPIC, batch(2001, now, value=float("nan")), "non_finite"),
        (GOOD_TOPIC, batch(2002, now, value=float("inf")), "non_finite"),
        (GOOD_TOPIC, batch(2003, now, ts=now + 3_600_000), "future_time"),
        (GOOD_TOPIC, batch(2004, now, ts=now - 500 * 86_400_000), "past_time"),
        (GOOD_TOPIC, batch(2005, now, keys=("no_such_point",)), "unknown_sensor"),
        (L.position("acme-chem", "tanker-01"), b"\xff\xfe{not utf-8", "decode_error"),
        (L.position("acme-chem", "tanker-01"), deep, "decode_error"),
        (L.position("acme-chem", "tanker-01"), b'"just a string"', "decode_error"),
        (
            L.position("acme-chem", "tanker-01"),
            orjson.dumps(
                {"ts": "yesterday", "lat": "31", "lon": 120, "speed_kmh": 1, "heading_deg": 2}
            ),
            "bad_record",
        ),
        (
            L.position("acme-chem", "ghost-truck"),
            orjson.dumps({"ts": now, "lat": 31, "lon": 120, "speed_kmh": 1, "heading_deg": 2}),
            "unknown_vehicle",
        ),
    ]


@pytest.mark.slow
async def test_bad_input_is_rejected_counted_kept_and_good_traffic_survives(mosquitto, tmp_path):
    registry = mine_registry(1502, 1.0)
    port = free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[ApiKeySpec(name="a", sha256=hash_key("k-admin"), role="admin")],
    )
    async with running_hub(hub):
        now = time.time_ns() // 1_000_000
        bad = corpus(now)
        good_seqs = list(range(40))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
            for seq in good_seqs:
                value = 1.2 if seq == 20 else 0.4  # one excursion: an alarm must still be raised
                await mq.publish(GOOD_TOPIC, batch(seq, now, value=value), qos=1)
                if seq < len(bad):
                    topic, payload, _ = bad[seq]
                    await mq.publish(topic, payload, qos=1)
            await mq.publish(GOOD_TOPIC, batch(5, now), qos=1)  # a duplicate (device, epoch, seq)

        async def all_stored():
            stored = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return stored if set(good_seqs) <= {s for _, s in stored} else None

        stored = await eventually(all_stored, 15, "every good reading stored")
        assert {s for _, s in stored} == set(good_seqs)  # nothing of the bad ones
        await asyncio.sleep(2)
        await eventually(lambda: _letters(hub, len(bad)), 10, "the dead letters")
        letters = hub.statedb.dead_letters(limit=100)
        reasons = [d.reason for d in letters]
        for _, _, reason in bad:
            assert any(r.startswith(reason) or f"{reason}:" in r for r in reasons), reason
        alarms = hub.statedb.list_alarms(None)
        assert [(a.sensor, a.level) for a in alarms if a.side == 0] == [("ch4-t1", 1)]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k-admin"}
        ) as api:
            metrics = (await api.get("/metrics")).text
            for path, params in (
                ("/api/v1/sensors/ch4-t1/history", {"start": "x", "end": "1"}),
                ("/api/v1/sensors/ch4-t1/history", {"start": "5", "end": "1"}),
                ("/api/v1/alarms", {"limit": "100000"}),
                ("/api/v1/alarms", {"state": "\u0000"}),
                ("/api/v1/alarms/notanumber", {}),
                ("/api/v1/stream", {"kinds": "everything"}),
            ):
                r = await api.get(path, params=params)
                assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
            # an unknown id is 404 (as another tenant's), named cut short
            r = await api.get("/api/v1/latest", params={"sensor": ["x" * 10_000]})
            assert r.status_code == 404 and len(r.text) < 500, r.text
    assert "hazardhub_messages_duplicate_total 1" in metrics
    assert 'hazardhub_messages_rejected_total{reason="decode_error"}' in metrics
    assert 'hazardhub_readings_rejected_total{reason="non_finite"} 2' in metrics
    assert 'hazardhub_messages_rejected_total{reason="unknown_device"} 2' in metrics


async def _letters(hub: Hub, n: int) -> bool:
    # the same topic, source and reason again is counted on the letter kept
    letters = await asyncio.to_thread(hub.statedb.dead_letters, 100)
    return sum(1 + d.repeats for d in letters) >= n
