"""A publish the broker refuses (its ACL: a site added to the configuration, the broker's ACL not
regenerated) stays in the gateway's spool, counted and logged, and is delivered once the ACL lets
it through; it was acknowledged and deleted (helper-150, finding 4). Real brokers: Mosquitto with
the users and ACL `hazardhub mqtt-credentials` writes (MQTT 5: PUBACK 0x87 not authorized), and
amqtt, the demo's broker, which speaks MQTT 3.1.1 only (the uplink falls back to it)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import aiomqtt
import numpy as np

from gateway.publisher import MqttPublisher
from gateway.spool import Spool
from hazardhub.mqttauth import plan_users, write_files
from hazardhub.settings import load
from telemetry.codec import TelemetryBatch, encode
from telemetry.topics import TopicLayout

from services import MosquittoService, free_port

ROOT = Path(__file__).resolve().parent.parent
GW_USER = "north-coal.gw1"


def _ms() -> int:
    return time.time_ns() // 1_000_000


async def _until(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def _batch(seq: int) -> bytes:
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            1,
            seq,
            ("ch4_t1",),
            np.zeros(1, np.uint16),
            np.array([_ms()], np.int64),
            np.array([0.5]),
            np.zeros(1, np.uint8),
        )
    )


def _acl_broker(tmp_path: Path) -> tuple[MosquittoService, dict[str, str], TopicLayout]:
    """Mosquitto with the users and ACL `hazardhub mqtt-credentials` writes for the demo."""
    layout = TopicLayout()
    users = plan_users(load(ROOT / "examples" / "demo.yaml").registry(), layout)
    auth = tmp_path / "auth"
    write_files(users, auth)
    passwords = {u.name: u.password for u in users}
    broker = MosquittoService(tmp_path / "mq", auth=(auth / "passwd", auth / "acl")).launch()
    return broker, passwords, layout


def _gateway_uplink(
    host: str, port: int, spool: Spool, layout: TopicLayout, password: str
) -> MqttPublisher:
    """The Modbus gateway gw1's uplink, as its user, pausing a refused topic 0.5 s at most."""
    return MqttPublisher(
        host,
        port,
        tenant="north-coal",
        gateway="gw1",
        layout=layout,
        spool=spool,
        username=GW_USER,
        password=password,
        refused_backoff_max_s=0.5,
    )


async def test_a_publish_the_acl_refuses_stays_in_the_spool_until_allowed(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    broker, passwords, layout = _acl_broker(tmp_path)
    allowed = layout.telemetry("north-coal", "face-1301", "kj-sub-3")
    denied = layout.telemetry("north-coal", "face-new", "kj-sub-3")  # a site the ACL lacks
    got: list[str] = []
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    pub = _gateway_uplink(broker.host, broker.port, spool, layout, passwords[GW_USER])
    stop = asyncio.Event()

    async def hub() -> None:
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username="hazardhub-hub",
            password=passwords["hazardhub-hub"],
            identifier="t-hub",
        ) as c:
            await c.subscribe("hazardhub/v1/north-coal/+/+/telemetry", qos=1)
            async for m in c.messages:
                got.append(str(m.topic))

    listener = asyncio.create_task(hub())
    runner = asyncio.create_task(pub.run(stop))
    try:
        assert await _until(pub.connected.is_set, 10)
        await asyncio.sleep(0.3)  # the hub's subscription in place
        spool.push(denied, _batch(0), "kj-sub-3", 1, 0, 1)
        spool.push(allowed, _batch(1), "kj-sub-3", 1, 1, 1)
        pub.wake()
        # the allowed batch goes on past the refused one; the refused one stays, counted
        assert await _until(lambda: allowed in got, 10), got
        assert await _until(lambda: pub.counters["publish_refused"] >= 2, 10)  # retried
        assert len(spool) == 1 and spool.peek()[0].topic == denied
        assert denied not in got
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]
        refusals = [m for m in said if "refused a publish" in m]
        assert len(refusals) == 1, said  # once per topic and reason, not at every retry
        assert denied in refusals[0] and "0x87" in refusals[0] and GW_USER in refusals[0]
        assert all(passwords[GW_USER] not in r.getMessage() for r in caplog.records)
        line = pub.report_counters()
        assert line is not None and "publish_refused +" in line, line
        # the ACL regenerated (here: the site's line added) and the broker told to reload it
        acl = (tmp_path / "auth" / "acl").read_text()
        block = f"user {GW_USER}\n"
        assert block in acl
        (tmp_path / "auth" / "acl").write_text(
            acl.replace(block, f"{block}topic write hazardhub/v1/north-coal/face-new/+/telemetry\n")
        )
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGHUP)
        assert await _until(lambda: len(spool) == 0, 15), "not delivered once allowed"
        assert await _until(lambda: denied in got, 10), got
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]
        assert any("takes publishes to " + denied + " again" in m for m in said), said
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)
        listener.cancel()
        spool.close()
        broker.stop()


async def test_a_broker_without_mqtt5_is_spoken_to_in_3_1_1(tmp_path, caplog):
    """amqtt (the demo's embedded broker) refuses an MQTT 5 CONNECT: the uplink falls back to
    3.1.1, says what that costs, and delivers."""
    from hazardhub.demo import _start_broker

    caplog.set_level(logging.WARNING)
    port = free_port()
    broker = await _start_broker(port)
    layout = TopicLayout()
    topic = layout.telemetry("north-coal", "face-1301", "kj-sub-3")
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    pub = MqttPublisher(
        "127.0.0.1", port, tenant="north-coal", gateway="gw1", layout=layout, spool=spool
    )
    pub.connack_retry_s = 1.0  # (its second try's wait: 10 s in service)
    stop = asyncio.Event()
    runner = asyncio.create_task(pub.run(stop))
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier="t-sub") as sub:
            await sub.subscribe(topic, qos=1)
            spool.push(topic, _batch(0), "kj-sub-3", 1, 0, 1)
            pub.wake()
            got = await asyncio.wait_for(anext(aiter(sub.messages)), 15)
            assert str(got.topic) == topic
        assert await _until(lambda: len(spool) == 0, 10)
        assert pub.protocol is aiomqtt.ProtocolVersion.V311
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]
        assert any("does not speak MQTT 5" in m for m in said), said
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)
        spool.close()
        await broker.shutdown()


async def test_the_modbus_gateway_logs_its_uplinks_counters(mosquitto, tmp_path, caplog):
    """`publish_refused` of a Modbus gateway is reported at info level every `report_every_s`
    (docs/operations.md), as the JT/T 808 gateway reports its counters."""
    from gateway.runner import Gateway

    from e2e_helpers import mine_registry

    caplog.set_level(logging.INFO, logger="gateway.uplink")
    gw = Gateway(
        mine_registry(free_port(), 1.0),  # (no device answers there: comm loss, published)
        tenant="north-coal",
        gateway="gw1",
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        layout=TopicLayout(),
        spool_dir=tmp_path / "spool",
        report_every_s=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        gw.publisher.counters["publish_refused"] += 3  # as `_refused` counts them
        assert await _until(
            lambda: any("publish_refused +3 (3 in all)" in r.getMessage() for r in caplog.records),
            5,
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    said = [r.getMessage() for r in caplog.records if "since the last report" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("north-coal/gw1: "), said


async def test_a_slow_first_connack_keeps_mqtt5_and_the_refusals(tmp_path, caplog):
    """helper-158: a real MQTT 5 broker whose first CONNACK came 4 s late (a slow link) made the
    uplink speak 3.1.1 for the rest of the process, and a publish the ACL refused was deleted
    from the spool as sent. An unanswered MQTT 5 CONNECT is tried again with the whole timeout
    before the uplink falls back: it stays MQTT 5 and keeps the refused batch."""
    caplog.set_level(logging.INFO)
    broker, passwords, layout = _acl_broker(tmp_path)
    first = [True]

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        br, bw = await asyncio.open_connection(broker.host, broker.port)
        late, first[0] = first[0], False  # the first connection's first answer, 4 s late

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, delay: bool) -> None:
            try:
                while data := await r.read(65536):
                    if delay:
                        await asyncio.sleep(4.0)
                        delay = False
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, bw, False), pipe(br, writer, late))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    pub = _gateway_uplink("127.0.0.1", port, spool, layout, passwords[GW_USER])
    stop = asyncio.Event()
    runner = asyncio.create_task(pub.run(stop))
    try:
        assert await _until(pub.connected.is_set, 20)
        assert pub.protocol is aiomqtt.ProtocolVersion.V5
        denied = layout.telemetry("north-coal", "face-new", "kj-sub-3")  # the ACL lacks it
        spool.push(denied, _batch(0), "kj-sub-3", 1, 0, 1)
        pub.wake()
        assert await _until(lambda: pub.counters["publish_refused"] >= 1, 10)
        assert len(spool) == 1
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)
        server.close()
        spool.close()
        broker.stop()
