"""A hub restarted with a changed rule, over a real broker: the readings its gateway published
while it was down (QoS 1, the hub's persistent session) wait in the broker and keep their
sensors heard, so no no-data (and no device comm-loss) alarm is raised at the start for them;
a sensor really silent while the hub was down is still raised, about one timeout after its
last reading counted on the hub's connected time (h236's commissioning, alarm #79)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import numpy as np

from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub
from services import free_port

TIMEOUT_MS = 2000
DEVICES = ("live-new", "live-same", "dead-new", "dead-same")  # -new: its rule changed


def config(above: float) -> str:
    """Devices of one gas sensor each, a 2 s no-data timeout, behind gateway `gw`; `above`: the
    level's limit of the `-new` sensors (changed between the runs, as the engineer's rule was)."""
    devices = "\n".join(
        f"""          - id: {d}
            profile: one
            gateway: gw
            sensors:
              - id: {d}-gas
                point: gas
                kind: flammable_gas
                no_data_s: {TIMEOUT_MS // 1000}
                levels: [{{name: level1, tier: yellow, above: {a}, recover: {a - 2}}}]"""
        for d in DEVICES
        for a in [above if d.endswith("-new") else 25.0]
    )
    return f"""version: 1
gateway_offline_s: 1
gateway_never_connected_s: 2
device_profiles:
  - name: one
    points: [{{name: gas, address: 0, dtype: uint16}}]
tenants:
  - id: t
    sites:
      - id: s
        devices:
{devices}
"""


def registry(above: float) -> Registry:
    return build_registry(parse_document(config(above), HubConfig, "restart.yaml"))


class Feed:
    """A gateway's publisher of one device: a reading each `step_s`, numbered, QoS 1."""

    def __init__(self, port: int, device: str) -> None:
        self.port, self.device, self.seq, self.last = port, device, 0, 0

    async def run(self, seconds: float, step_s: float = 0.25) -> None:
        topic = TopicLayout().telemetry("t", "s", self.device)
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batch = TelemetryBatch(
                    "gw",
                    self.device,
                    1,
                    self.seq,
                    ("gas",),
                    np.zeros(1, np.uint16),
                    np.array([now := time.time_ns() // 1_000_000], np.int64),
                    np.array([5.0]),
                    np.zeros(1, np.uint8),
                )
                self.seq, self.last = self.seq + 1, now
                await client.publish(topic, encode(batch), qos=1)
                await asyncio.sleep(step_s)


def hub_of(reg: Registry, data: Path, port: int) -> Hub:
    return Hub(reg, HubSettings(data_dir=data, broker_port=port, api_port=free_port()))


async def gateway_online(port: int) -> None:
    """The gateway's retained status, as its uplink publishes it (its last will: offline)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        topic = TopicLayout().gateway_status("t", "gw")
        await client.publish(topic, b"online", qos=1, retain=True)


async def test_a_restarted_hub_raises_no_no_data_for_readings_waiting_in_the_broker(
    mosquitto, tmp_path
):
    """The live devices' gateway publishes a reading every 0.25 s throughout; the hub is down
    for 2.5 timeouts, restarted with one rule changed. Nothing is raised for the live devices,
    their sensors, or the gateway; each dead device's sensor is raised about one timeout after
    the restart: the changed rule's started afresh (silent from the start, `alerts.nodata`),
    the unchanged one's stamped its last reading + the timeout (its clock resumed where it
    stood at the stop, `ingest.links`)."""
    data = tmp_path / "hub"
    feeds = {d: Feed(mosquitto.port, d) for d in DEVICES}
    live = [feeds["live-new"], feeds["live-same"]]
    await gateway_online(mosquitto.port)
    first = hub_of(registry(25.0), data, mosquitto.port)
    async with running_hub(first):
        await asyncio.gather(*(f.run(1.5) for f in feeds.values()))
        await asyncio.sleep(0.5)  # judged
    # the hub is down for 2.5 timeouts; the live devices' gateway keeps publishing (the
    # broker keeps it for the hub's persistent session), the dead devices are gone
    await asyncio.gather(*(f.run(TIMEOUT_MS * 2.5 / 1000) for f in live))
    second = hub_of(registry(30.0), data, mosquitto.port)
    started = time.time_ns() // 1_000_000
    async with running_hub(second):
        feeding = asyncio.gather(*(f.run(TIMEOUT_MS * 2 / 1000) for f in live))

        async def dead_raised():
            rows = await asyncio.to_thread(second.statedb.list_alarms, None)
            got = {r.sensor: r for r in rows if r.side == 3 and r.sensor.startswith("dead-")}
            return got if len(got) == 2 else None

        raised = await eventually(dead_raised, 10, "the dead devices' no-data alarms")
        await feeding
        await asyncio.sleep(0.5)  # the last readings judged
        rows = await asyncio.to_thread(second.statedb.list_alarms, None)
    ours = [(r.sensor, r.side, r.rule) for r in rows if "live-" in r.sensor or "gw" in r.sensor]
    assert ours == [], ours
    new, same = raised["dead-new-gas"], raised["dead-same-gas"]
    assert new.state == same.state == "active"
    assert same.started_ts == feeds["dead-same"].last + TIMEOUT_MS
    # (the hub's start, its first tick and a loaded machine's delays: a few seconds)
    assert started + TIMEOUT_MS <= new.started_ts < started + TIMEOUT_MS + 5000
    for row in (new, same):  # on the hub's clock: about one timeout after the start
        assert started < row.raised_at < started + TIMEOUT_MS + 5000, row.raised_at - started
