"""An idle uplink (a JT/T 808 gateway with no vehicle reporting, a gateway whose devices report
on change) whose broker goes away says so at once and reconnects, not at its next message; and
what it then spools reaches the broker. helper-83 saw only "Future exception was never
retrieved" in the log at the gateway's stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import aiomqtt
import pytest
from positionpayload import records_of

from gateway.jt808.directory import VehicleRef
from gateway.jt808.uplink import PositionUplink
from gateway.spool import Spool
from telemetry.topics import TopicLayout


def _ms() -> int:
    return time.time_ns() // 1_000_000


async def _until(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


@pytest.mark.slow
async def test_an_idle_uplink_says_its_broker_went_and_comes_back(mosquitto, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    layout = TopicLayout()
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    uplink = PositionUplink(
        "127.0.0.1",
        mosquitto.port,
        layout=layout,
        spool=spool,
        clock_ms=_ms,
        backoff_max_s=0.5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    ref = VehicleRef("chem-logistics", "tanker-01")
    topic = layout.position(ref.tenant, ref.vehicle)
    watch = {"identifier": "watch", "clean_session": False}
    try:
        assert await _until(uplink.connected.is_set, 10)
        # a session the broker keeps (persistence): what the uplink sends when the broker is
        # back waits there, whoever connects first
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, **watch) as sub:
            await sub.subscribe(topic, qos=1)
        mosquitto.stop()
        # nothing to publish: the link's loss is seen by itself, within the keep-alive's time
        assert await _until(uplink.disconnected.is_set, 10), "the lost broker went unnoticed"
        assert not uplink.connected.is_set()
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]
        where = f"127.0.0.1:{mosquitto.port})"  # the broker's address, said
        assert any("broker unreachable (the connection ended" in m and where in m for m in said), (
            said
        )
        # what comes while the broker is away is spooled, and published once it is back
        uplink.submit(ref, ({"ts": _ms(), "lat": 32.0, "lon": 118.8},), _ms())
        assert uplink.pending == 1
        mosquitto.start()
        assert await _until(lambda: uplink.pending == 0, 15), "not sent after the broker is back"
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, **watch) as sub:
            got = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
            assert records_of(got.payload)[0]["lat"] == 32.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        spool.close()
    gc.collect()
    await asyncio.sleep(0)
    never = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never == [], [r.getMessage() for r in never]


async def test_a_gateways_log_names_its_tenant(tmp_path, caplog):
    """Two tenants' gateways named gw1 in one demo logged "gw1 connected ..." twice: whose
    (helper-133)? The log says tenant/gateway now; the drop report still names the gateway."""
    from gateway.publisher import MqttPublisher

    from services import free_port

    caplog.set_level(logging.WARNING)
    spool = Spool(tmp_path / "spool.db", clock_ms=_ms)
    up = MqttPublisher(
        "127.0.0.1",
        free_port(),  # no broker there
        tenant="acme-chem",
        gateway="gw1",
        layout=TopicLayout(),
        spool=spool,
        backoff_max_s=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:

        def said() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]

        assert await _until(said, 5)
        assert said()[0].startswith("acme-chem/gw1: broker unreachable"), said()
        assert up.name == "gw1"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        spool.close()
