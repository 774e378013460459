"""A JT/T 809 gateway restarted keeps what it held for later (`gateway.jt809.waiting`): the
centre's ticket kept for a platform not logged in goes to it at its login after the restart,
and the receipt that waited for the broker is published by the gateway started again. A file
that does not read is set aside, the gateway starts all the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import orjson
import pytest
from jt808_helpers import TWO_TENANTS, registry_of, until
from jt809_helpers import LowerPlatform, config, make_gateway, running
from test_jt809_tickets import _command

from telemetry.jt809 import DownWarnMsg, SuperviseRequest
from telemetry.registry import Registry

from services import free_port


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


async def test_a_restart_keeps_the_tickets_and_the_receipts(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # no broker at first: the receipt waits
    gw = make_gateway(config(), registry, free_port(), spool)
    async with running(gw):
        assert gw.server.tickets.take("coach-co", "coach-07", _command(4711)) == "supervise_kept"
        assert len(gw.commands.waiting) == 1
        await asyncio.sleep(1.2)  # saved within a second
    assert (spool / "waiting-jt809-jt809.json").exists()

    got: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("hazardhub/v1/coach-co/gateways/+/supervision", qos=1)

        async def read() -> None:
            async for m in sub.messages:
                got.append(orjson.loads(bytes(m.payload)))  # type: ignore[arg-type]

        reader = asyncio.create_task(read())
        gw2 = make_gateway(config(), registry, mosquitto.port, spool)
        async with running(gw2) as (host, port):
            assert sum(len(k) for k in gw2.server.tickets.kept.values()) == 1
            coach = LowerPlatform(33000001, v2019=True)
            await coach.connect(host, port)
            assert (await coach.login(8001, b"pw2019")) is not None
            while (frame := await coach.answer(5)).header.msg_id != 0x9400:
                pass
            req = SuperviseRequest.decode(DownWarnMsg.decode(frame.body, True).data)
            assert req.supervision_id == 4711
            await until(lambda: len(got) == 2, 10)
            await coach.close()
        reader.cancel()
    assert [(g["supervision_id"], g["receipt"]) for g in got] == [
        (4711, "kept"),  # the first gateway's, published by the second
        (4711, "sent"),
    ]
    # sent: nothing kept any more, once saved
    assert orjson.loads((spool / "waiting-jt809-jt809.json").read_bytes())["tickets"] == []


async def test_a_file_that_does_not_read_is_set_aside(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "waiting-jt809-jt809.json").write_text('{"version": 1, "tickets": [{}]}')
    gw = make_gateway(config(), registry, mosquitto.port, spool)
    assert gw.server.tickets.kept == {}
    assert (spool / "waiting-jt809-jt809.bad").exists()
