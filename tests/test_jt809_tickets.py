"""The JT/T 809 gateway's side of the centre's 督办 (`gateway.jt809.tickets`, `commands`): the
ticket goes on the sub link when it is up, which platform gets it, a command that cannot be read,
one of a tenant none of its platforms serves, and the JT/T 808 gateway leaving it alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiomqtt
import orjson
import pytest
from jt808_helpers import TWO_TENANTS, registry_of, until
from jt809_helpers import KEYS, PLATFORMS, LowerPlatform, config, make_gateway, running
from test_jt809_sublink import down_link, with_sub_link

from gateway.jt808.commands import CommandListener
from telemetry.jt809 import DownWarnMsg, SuperviseRequest
from telemetry.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


def _command(sid: int, **changes: object) -> dict[str, object]:
    now = int(time.time() * 1000)
    return {
        "command": "supervise_alarm", "supervision_id": sid, "alarm_id": 17, "kind": "fatigue",
        "ts": now - 60_000, "deadline": now + 3_600_000, "level": "normal",
        "supervisor": "张三", "tel": "12345678901", "email": "duty@centre.example",
        "at": now,
    } | changes  # fmt: skip


async def test_a_ticket_goes_on_the_sub_link_when_it_is_up(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(config(**with_sub_link()), registry, mosquitto.port, tmp_path / "spool")
    async with down_link() as (down_port, got), running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert await p.login(7001, b"s3cret!8", down_port=down_port) is not None
        await until(lambda: gw.server.counters["acme-gps.sublink_up"] == 1)
        # the tenant's only platform: it gets the ticket before any position of the vehicle
        out = gw.server.tickets.take("chem-logistics", "tanker-01", _command(4711))
        assert out == "supervise_sent"
        await until(lambda: any(f.header.msg_id == 0x9400 for f in got))
        (frame,) = [f for f in got if f.header.msg_id == 0x9400]
        msg = DownWarnMsg.decode(frame.body)
        assert (msg.plate, msg.color) == ("苏AD1234", 2)
        req = SuperviseRequest.decode(msg.data)
        assert (req.supervision_id, req.warn_type, req.warn_src, req.level) == (4711, 2, 3, 1)
        assert (req.supervisor, req.tel, req.email) == (
            "张三",
            "12345678901",
            "duty@centre.example",
        )
        with pytest.raises(TimeoutError):  # not on the main link too
            await p.answer(0.5)
        assert gw.server.tickets.take("chem-logistics", "tanker-01", _command(4711)) == (
            "supervise_duplicate"
        )
        await p.close()


async def _main_tickets(p: LowerPlatform, within_s: float) -> int:
    """How many 0x9400 the platform got on its main link within `within_s`."""
    n = 0
    with contextlib.suppress(TimeoutError):
        while True:
            f = await p.answer(within_s)
            n += f is not None and f.header.msg_id == 0x9400
    return n


@pytest.mark.parametrize("refused", [False, True])
async def test_a_kept_ticket_waits_for_the_sub_link_at_login(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, refused: bool
) -> None:
    # kept for acme-gps (not logged in): at its login the sub link is not up yet; the ticket
    # goes on it once it is, or on the main link after the sub link's timeout_s if it is refused
    cfg = config(**with_sub_link(timeout_s=1.0))
    gw = make_gateway(cfg, registry, mosquitto.port, tmp_path / "spool")
    async with down_link(result=int(refused)) as (down_port, got), running(gw) as (host, port):
        assert gw.server.tickets.take("chem-logistics", "tanker-01", _command(4711)) == (
            "supervise_kept"
        )
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert await p.login(7001, b"s3cret!8", down_port=down_port) is not None
        if refused:
            assert await _main_tickets(p, 2.5) == 1
            assert not [f for f in got if f.header.msg_id == 0x9400]
        else:
            await until(lambda: any(f.header.msg_id == 0x9400 for f in got))
            assert await _main_tickets(p, 0.5) == 0
        assert gw.server.counters["acme-gps.supervise_sent"] == 1
        await p.close()


async def test_which_platform_and_what_is_refused(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # chem-logistics has two platforms (acme-gps, far-away): the one that sent the vehicle's
    # positions gets it, none before
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    t = gw.server.tickets
    receipts: list[tuple[int, str, str | None]] = []
    t.receipt = lambda ticket, outcome, platform, link: receipts.append(
        (ticket.request.supervision_id, outcome, platform)
    )
    assert t.take("chem-logistics", "tanker-01", _command(1)) == "supervise_no_platform"
    assert t.take("chem-logistics", "nobody", _command(2)) == "supervise_no_platform"
    assert t.take("chem-logistics", "tanker-01", _command(3, level="high")) == "supervise_rejected"
    assert t.take("chem-logistics", "tanker-01", _command(4, supervisor="x" * 17)) == (
        "supervise_rejected"
    )
    assert t.take("chem-logistics", "tanker-01", _command(5, supervision_id=2**32)) == (
        "supervise_rejected"
    )
    # coach-co has one platform (coach-gps, 2019), not logged in: kept, then past its end
    assert t.take("coach-co", "coach-07", _command(6)) == "supervise_kept"
    assert t.take("coach-co", "coach-07", _command(7, deadline=1000)) == "supervise_expired"
    assert gw.server.counters["coach-gps.supervise_kept"] == 1
    assert gw.server.counters["supervise_no_platform"] == 2
    assert gw.server.counters["supervise_rejected"] == 3
    # what became of each ticket that could be read, for the hub's journal
    assert receipts == [
        (1, "no_platform", None),
        (2, "no_platform", None),
        (6, "kept", "coach-gps"),
        (7, "expired", "coach-gps"),
    ]


async def test_a_command_of_a_tenant_without_a_platform_is_not_taken(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # only acme-gps (chem-logistics): the gateway never subscribes to coach-co's commands
    cfg = config(platforms=[PLATFORMS["platforms"][0]])
    gw = make_gateway(cfg, registry, mosquitto.port, tmp_path / "spool")
    async with running(gw):
        await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for tenant, vehicle, sid in (
                ("coach-co", "coach-07", 8),
                ("chem-logistics", "tanker-01", 9),
            ):
                topic = f"hazardhub/v1/{tenant}/vehicles/{vehicle}/command"
                await client.publish(topic, orjson.dumps(_command(sid)), qos=1)
            await client.publish(
                "hazardhub/v1/chem-logistics/vehicles/tanker-01/command",
                orjson.dumps({"command": "remind", "alarm_id": 1, "text": "x", "at": 1}),
                qos=1,
            )
        await until(lambda: gw.server.counters["acme-gps.supervise_kept"] == 1)
        await asyncio.sleep(0.3)
    c = gw.server.counters
    tickets = {k: v for k, v in c.items() if "supervise" in k and "answers" not in k}
    assert sum(tickets.values()) == 1  # tanker-01's only (its receipt: supervise_answers_...)


def test_the_jt808_gateway_leaves_a_supervision_alone() -> None:
    listener = CommandListener(object(), "127.0.0.1", 1)  # type: ignore[arg-type]
    topic = "hazardhub/v1/chem-logistics/vehicles/tanker-01/command"
    assert listener.handle(topic, orjson.dumps(_command(1))) == "not_for_jt808"
