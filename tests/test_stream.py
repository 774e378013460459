"""The live stream: server-sent events of readings and alarm transitions, tenant-scoped."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import httpx
import numpy as np
import orjson
import pytest

from alerts.alarms import AlarmEvent
from api.auth import Principal, hash_key
from api.stream import Broadcaster, Subscription, TooManyStreamsError
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_profiles
from ingest.store.base import ReadingBatch
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, running_hub
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
                 levels: [{name: level1, tier: yellow, above: 25, recover: 23}]}
  - id: other
"""


def _hub(tmp_path, broker_port: int, *tenants: str) -> tuple[Hub, int]:
    """A hub of CONFIG with an enterprise key `k-{tenant}` for each tenant, and its API port."""
    keys = [
        ApiKeySpec(name=t, sha256=hash_key(f"k-{t}"), role="enterprise", tenants=(t,))
        for t in tenants
    ]
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    port = free_port()
    settings = HubSettings(data_dir=tmp_path, broker_port=broker_port, api_port=port)
    return Hub(registry, settings, extra_keys=keys), port


async def read_events(client: httpx.AsyncClient, key: str, out: list, n: int) -> None:
    async with client.stream(
        "GET", "/api/v1/stream", headers={"Authorization": f"Bearer {key}"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                out.append((kind, orjson.loads(line[6:])))
                if len(out) >= n and any(k == "alarm" for k, _ in out):
                    return


async def test_stream_sends_readings_and_alarms_of_the_callers_tenants(mosquitto, tmp_path):
    hub, port = _hub(tmp_path, mosquitto.port, "chem", "other")
    mine: list = []
    theirs: list = []
    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        unauth = await client.get("/api/v1/stream")
        assert unauth.status_code == 401
        reader = asyncio.create_task(read_events(client, "k-chem", mine, 2))
        other = asyncio.create_task(read_events(client, "k-other", theirs, 1))
        await eventually(lambda: _subs(hub, 2), 5, "both subscribers")
        now = time.time_ns() // 1_000_000
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
            for seq, value in enumerate((10.0, 30.0)):
                batch = TelemetryBatch(
                    "gw",
                    "d",
                    1,
                    seq,
                    ("gas",),
                    np.zeros(1, np.uint16),
                    np.array([now + seq], np.int64),
                    np.array([value]),
                    np.zeros(1, np.uint8),
                )
                await mq.publish(TopicLayout().telemetry("chem", "s", "d"), encode(batch), qos=1)
        await asyncio.wait_for(reader, 10)
        await asyncio.sleep(0.5)
        other.cancel()
    kinds = [k for k, _ in mine]
    assert kinds.count("alarm") == 1 and kinds.count("reading") >= 1
    alarm = next(d for k, d in mine if k == "alarm")
    assert alarm["sensor"] == "gas-1" and alarm["kind"] == "raised" and alarm["ts"] == now + 1
    # the newest reading per sensor and flush: both messages may come in one flush
    assert [d["value"] for k, d in mine if k == "reading"][-1] == 30.0
    assert theirs == []  # another enterprise sees nothing of chem


async def _subs(hub: Hub, n: int) -> bool:
    return hub.stream.subscribers >= n


async def test_a_stopping_hub_ends_each_stream_saying_so_and_stops_at_once(mosquitto, tmp_path):
    """An open stream (a dashboard, the early-warning system) held the stop up for the API's
    whole grace, then was cut, logged as an error with a traceback, and the client was told
    nothing (helper-71): now each is told and ends first."""
    hub, port = _hub(tmp_path, mosquitto.port, "chem")
    stop = asyncio.Event()
    run = asyncio.create_task(hub.run(stop))
    lines: list[str] = []

    async def listen(client: httpx.AsyncClient) -> None:
        headers = {"Authorization": "Bearer k-chem"}
        async with client.stream("GET", "/api/v1/stream", headers=headers) as r:
            async for line in r.aiter_lines():
                lines.append(line)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        await eventually(lambda: _ready(hub), 10, "the hub")
        reader = asyncio.create_task(listen(client))
        await eventually(lambda: _subs(hub, 1), 5, "the subscriber")
        stop.set()
        await asyncio.wait_for(run, 10)
        await asyncio.wait_for(reader, 5)  # the stream ended: no reconnect left hanging
    assert "event: end" in lines
    assert 'data: {"reason":"the hub is stopping"}' in lines


async def _ready(hub: Hub) -> bool:
    return hub.ingest.ready.is_set() and hub.api_started.is_set()


async def test_the_end_survives_a_full_queue_and_a_stream_that_starts_after_it():
    """The end of a stopping hub's streams is queued alone, and stays: the last flush's
    readings pushed it out of a full queue, and a stream opened meanwhile never ended
    (helper-78)."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry, queue_size=3)
    chem = Principal("chem", "enterprise", frozenset({"chem"}))
    sub = hub_stream.subscribe(chem, frozenset({"alarm", "reading"}))
    for _ in range(3):
        sub.offer("reading", "chem", b"{}")
    hub_stream.close()
    for _ in range(5):  # the final flush
        sub.offer("reading", "chem", b"{}")

    async def drain(stream):  # a stream that does not end fails here, within 5 s
        return await asyncio.wait_for(_chunks(stream), 5)

    assert (await drain(hub_stream.events(sub)))[-1].startswith(b"event: end")
    late = hub_stream.subscribe(chem, frozenset({"alarm"}))
    got = await drain(hub_stream.events(late, heartbeat_s=0.05))
    assert got[-1] == b'event: end\ndata: {"reason":"the hub is stopping"}\n\n'
    assert hub_stream.subscribers == 0


async def test_what_was_queued_before_the_stop_is_sent_before_the_end():
    """An alarm queued for a stream when the hub began to stop went nowhere: the end was queued
    alone (helper-80). It goes first now; in a full queue the oldest makes room, counted."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry, queue_size=3)
    chem = Principal("chem", "enterprise", frozenset({"chem"}))
    sub = hub_stream.subscribe(chem, frozenset({"alarm"}))
    sub.offer("alarm", "chem", b'{"n":1}')
    sub.offer("alarm", "chem", b'{"n":2}')
    hub_stream.close()
    got = await asyncio.wait_for(_chunks(hub_stream.events(sub)), 5)
    assert got[1:] == [
        b'event: alarm\ndata: {"n":1}\n\n',
        b'event: alarm\ndata: {"n":2}\n\n',
        b'event: end\ndata: {"reason":"the hub is stopping"}\n\n',
    ]
    full = hub_stream.subscribe(chem, frozenset({"alarm"}))  # after close: ends at once
    assert (await asyncio.wait_for(_chunks(hub_stream.events(full)), 5))[-1].startswith(
        b"event: end"
    )
    again = Broadcaster(registry, queue_size=3)
    sub = again.subscribe(chem, frozenset({"alarm"}))
    for n in range(3):
        sub.offer("alarm", "chem", b'{"n":%d}' % n)
    again.close()
    got = await asyncio.wait_for(_chunks(again.events(sub)), 5)
    assert got[1:] == [
        b'event: lagged\ndata: {"dropped":1}\n\n',
        b'event: alarm\ndata: {"n":1}\n\n',
        b'event: alarm\ndata: {"n":2}\n\n',
        b'event: end\ndata: {"reason":"the hub is stopping"}\n\n',
    ]


async def _chunks(stream):
    return [chunk async for chunk in stream]


def _gas_reading(registry) -> ReadingBatch:
    """One reading of chem's gas-1."""
    i = registry.sensor("gas-1").index
    one = np.zeros(1, np.int64)
    return ReadingBatch(
        np.array([i], np.int32), one + 1, np.array([0.5]), one.astype(np.uint8), one, one
    )


def test_streams_are_capped_per_key_and_in_all():
    """3,000 streams of one viewer key, never read, made another tenant's alarm 1.9 s late and
    would run a hub out of its 1,024 file descriptors (security audit, helper-107): a key holds
    at most `max_per_key`, the hub at most `max_total`; one closed frees its place."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry, max_per_key=2, max_total=3)
    chem = Principal("chem", "enterprise", frozenset({"chem"}))
    kinds = frozenset({"alarm"})
    first = hub_stream.subscribe(chem, kinds, key="a")
    hub_stream.subscribe(chem, kinds, key="a")
    with pytest.raises(TooManyStreamsError, match="this key has 2 live streams open"):
        hub_stream.subscribe(chem, kinds, key="a")
    hub_stream.subscribe(chem, kinds, key="b")  # another key has its own
    with pytest.raises(TooManyStreamsError, match="the hub has 3 live streams open"):
        hub_stream.subscribe(chem, kinds, key="c")
    hub_stream.unsubscribe(first)
    hub_stream.unsubscribe(first)  # twice: counted once
    hub_stream.subscribe(chem, kinds, key="a")
    assert hub_stream.subscribers == 3


def test_an_event_is_offered_to_the_streams_of_its_tenant_only(monkeypatch):
    """Every reading was offered to every stream of every tenant (a thousand streams of one
    tenant slowed all the others'): subscribers are indexed by tenant."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry, max_per_key=100)
    other = Principal("other", "enterprise", frozenset({"other"}))
    for _ in range(50):
        hub_stream.subscribe(other, frozenset({"reading"}))
    mine = hub_stream.subscribe(
        Principal("chem", "viewer", frozenset({"chem"})), frozenset({"reading"})
    )
    centre = hub_stream.subscribe(Principal("ops", "operator", None), frozenset({"reading"}))
    offered = []
    real = Subscription.offer
    monkeypatch.setattr(Subscription, "offer", lambda sub, *a: (offered.append(sub), real(sub, *a)))
    hub_stream.on_readings(_gas_reading(registry))
    assert sorted(map(id, offered)) == sorted(map(id, (mine, centre)))
    assert mine.queue.qsize() == centre.queue.qsize() == 1


async def test_a_stream_whose_key_gains_a_tenant_hears_it_after_the_recheck():
    """The index follows the key: a new configuration giving the key a tenant brings that
    tenant's events from the key's next check (a heartbeat here), as before the index."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry)
    now = Principal("w", "viewer", frozenset({"other"}))
    sub = hub_stream.subscribe(now, frozenset({"reading"}), recheck=lambda: now)
    stream = hub_stream.events(sub, heartbeat_s=0.01)
    assert await anext(stream) == b"retry: 2000\n\n"
    now = Principal("w", "viewer", frozenset({"other", "chem"}))
    assert await anext(stream) == b": keep-alive\n\n"
    hub_stream.on_readings(_gas_reading(registry))
    assert (await asyncio.wait_for(anext(stream), 5)).startswith(b"event: reading\n")
    await stream.aclose()
    assert hub_stream.subscribers == 0


NAMED = """
version: 1
device_profiles:
  - name: one
    points: [{name: gas, address: 0, dtype: uint16}]
tenants:
  - id: chem
    name: 华兴化工
    sites:
      - id: s
        name: 液氯罐区
        devices:
          - id: d
            name: 1 号检测仪
            profile: one
            sensors:
              - {id: gas-1, point: gas, kind: flammable_gas, location: T101 罐顶,
                 levels: [{name: level1, tier: yellow, above: 25, recover: 23}]}
    vehicles:
      - {id: tk-1, plate: 苏A·D1234, class: hazmat}
"""


async def test_a_streamed_alarm_names_its_enterprise_site_device_and_place():
    """The live stream sent an alarm with its ids alone (`ev.to_json()`), where the MQTT alarm
    topic names them: a wall display said `tk-1`, not the tanker's plate. It carries `location`
    (a vehicle's plate) and the enterprise's, site's and device's names, as configured now."""
    profiles, packs = load_profiles(ROOT / "profiles")  # the vehicle's speed rule
    registry = build_registry(parse_document(NAMED, HubConfig, "named.yaml"), profiles, packs)
    hub_stream = Broadcaster(registry)
    sub = hub_stream.subscribe(Principal("ops", "operator", None), frozenset({"alarm"}))

    def event(sensor: str, site: str, device: str) -> AlarmEvent:
        return AlarmEvent(
            1,
            "raised",
            "chem",
            site,
            device,
            sensor,
            "inline",
            "above",
            1,
            "level1",
            "yellow",
            "",
            30.0,
            1,
            2,
        )

    await hub_stream.on_alarms([event("gas-1", "s", "d"), event("tk-1.speed", "vehicles", "tk-1")])
    gas, truck = (orjson.loads(sub.queue.get_nowait()[2]) for _ in range(2))
    assert (gas["tenant_name"], gas["site_name"], gas["device_name"], gas["location"]) == (
        "华兴化工",
        "液氯罐区",
        "1 号检测仪",
        "T101 罐顶",
    )
    assert (truck["location"], truck["tenant_name"], truck["site"]) == (
        "苏A·D1234",
        "华兴化工",
        "vehicles",
    )
    # a vehicle's name is its plate, as the alarm API says it (helper-241: "" on the stream)
    assert truck["device_name"] == "苏A·D1234"
    # a new configuration's names from then on
    hub_stream.set_registry(build_registry(parse_document(CONFIG, HubConfig, "stream.yaml")))
    await hub_stream.on_alarms([event("gas-1", "s", "d")])
    again = orjson.loads(sub.queue.get_nowait()[2])
    assert (again["tenant_name"], again["location"]) == ("", "")


async def test_a_stream_whose_client_leaves_as_an_event_comes_ends():
    """The client went away (its task cancelled) in the loop's turn an event was queued:
    Python 3.11's `asyncio.wait_for` returned the event and lost the cancellation, and the
    stream went on for a client that was gone, its slot of the key's streams held (helper-132
    found the same in the hub's ingest)."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "stream.yaml"))
    hub_stream = Broadcaster(registry, heartbeat_s=30)
    chem = Principal("chem", "enterprise", frozenset({"chem"}))
    sub = hub_stream.subscribe(chem, frozenset({"alarm"}))
    stream = hub_stream.events(sub)
    assert await anext(stream) == b"retry: 2000\n\n"

    async def client() -> list[bytes]:
        return [chunk async for chunk in stream]

    task = asyncio.create_task(client())
    await asyncio.sleep(0)  # waiting for an event
    await asyncio.sleep(0)
    sub.offer("alarm", "chem", b'{"n":1}')
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 2)
    assert hub_stream.subscribers == 0
