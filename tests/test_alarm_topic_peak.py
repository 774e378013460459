"""The alarm topic tells each event with the highest tier its alarm had reached (`peak_tier`),
as the live stream does: an early-warning system subscribed to `{root}/{tenant}/alarms/#` that
keeps red alarms took a red alarm's step down (yellow) and its clear (tier none) for a minor
alarm's, and an operator's comment on it after the step down too (docs/mqtt.md)."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import httpx
import numpy as np
import orjson

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub
from services import free_port

CONFIG = """
version: 1
device_profiles:
  - name: one
    points: [{name: gas, address: 0, dtype: uint16}]
tenants:
  - id: chem
    sites:
      - id: s
        devices:
          - id: d
            profile: one
            sensors:
              - {id: gas-1, point: gas, kind: flammable_gas,
                 levels: [{name: level1, tier: yellow, above: 25, recover: 23},
                          {name: level2, tier: red, above: 50, recover: 48}]}
"""


async def test_a_red_alarms_step_down_comment_and_clear_carry_peak_tier_red(mosquitto, tmp_path):
    registry = build_registry(parse_document(CONFIG, HubConfig, "peak.yaml"))
    port = free_port()
    key = ApiKeySpec(name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("chem",))
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[key],
    )
    layout = TopicLayout()
    got: list[dict] = []
    seq = 0

    async def send(mq: aiomqtt.Client, value: float) -> None:
        nonlocal seq
        seq += 1
        ts = time.time_ns() // 1_000_000 + seq  # each reading after the last
        batch = TelemetryBatch(
            "gw",
            "d",
            1,
            seq,
            ("gas",),
            np.zeros(1, np.uint16),
            np.array([ts], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
        )
        await mq.publish(layout.telemetry("chem", "s", "d"), encode(batch), qos=1)

    async def listen(sub: aiomqtt.Client) -> None:
        async for message in sub.messages:
            assert isinstance(message.payload, bytes)
            got.append(orjson.loads(message.payload))

    async def kinds(n: int) -> bool:
        return len(got) >= n

    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as sub,
    ):
        await sub.subscribe(f"{layout.root}/chem/alarms/#", qos=1)
        listener = asyncio.create_task(listen(sub))
        try:
            await send(mq, 30.0)  # raised, yellow
            await eventually(lambda: kinds(1), 10, "the raise")
            await send(mq, 60.0)  # escalated, red
            await eventually(lambda: kinds(2), 10, "the escalation")
            await send(mq, 30.0)  # down to yellow
            await eventually(lambda: kinds(3), 10, "the step down")
            r = await api.post(
                f"/api/v1/alarms/{got[0]['alarm_id']}/comment",
                json={"note": "patrol sent"},
                headers={"Authorization": "Bearer k-chem"},
            )
            assert r.status_code == 200, r.text
            await eventually(lambda: kinds(4), 10, "the comment")
            await send(mq, 10.0)  # cleared
            await eventually(lambda: kinds(5), 10, "the clear")
        finally:
            listener.cancel()
    told = [(e["kind"], e["tier"], e["peak_tier"]) for e in got]
    assert told == [
        ("raised", "yellow", "yellow"),
        ("escalated", "red", "red"),
        ("deescalated", "yellow", "red"),
        ("commented", "yellow", "red"),
        ("cleared", "none", "red"),
    ]
    assert len({e["alarm_id"] for e in got}) == 1
