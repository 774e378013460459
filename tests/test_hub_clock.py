"""The hub's clock runs the core even when nothing arrives: a sensor that goes silent raises its
no-data alarm, and alarm events reach the time-series store too."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import numpy as np

from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
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
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: one
            sensors:
              - id: gas-1
                point: gas
                kind: flammable_gas
                no_data_s: 1
                levels: [{name: level1, tier: yellow, above: 25, recover: 23}]
"""


async def test_silence_raises_no_data_without_any_message(mosquitto, tmp_path):
    registry = build_registry(parse_document(CONFIG, HubConfig, "clock.yaml"))
    hub = Hub(
        registry, HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port())
    )
    async with running_hub(hub):
        now = time.time_ns() // 1_000_000
        batch = TelemetryBatch(
            "gw",
            "d",
            1,
            0,
            ("gas",),
            np.zeros(1, np.uint16),
            np.array([now], np.int64),
            np.array([30.0]),
            np.zeros(1, np.uint8),
        )
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(TopicLayout().telemetry("t", "s", "d"), encode(batch), qos=1)

        async def kinds():
            rows = await asyncio.to_thread(hub.statedb.list_alarms, None)
            return {r.side for r in rows} >= {0, 3} and rows

        rows = await eventually(kinds, 10, "a level alarm and then a no-data alarm")
        no_data = next(r for r in rows if r.side == 3 and r.sensor == "gas-1")
        assert no_data.state == "active"
        # the device's only sensor is silent: the device itself is in comm loss
        device = next(r for r in rows if r.sensor == "device:t/s/d")
        assert device.state == "active" and device.rule == "comm_loss"
        # raised by the clock about 1 s after the last reading, with nothing arriving
        assert no_data.raised_at - now >= 1000

        async def stored():
            events = await hub.store.alarm_events(["t"], now - 1, now + 60_000)
            return events if {e.side for e in events} >= {"above", "no_data"} else None

        await eventually(stored, 5, "the alarm events in the time-series store")
