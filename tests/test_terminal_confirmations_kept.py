"""An operator's confirmation of a terminal alarm (0x8203) is not lost when its terminal or the
hub's broker connection is away at the acknowledgement: a terminal holds bits 0, 3, 20, 21, 27
and 28 until confirmed, and the alarm, acknowledged, cannot be acknowledged again.

- the gateway keeps a confirmation for a terminal not connected (per vehicle, the types ORed)
  and sends it when the terminal authenticates; a day later it is dropped;
- the hub keeps one it cannot publish (no broker connection) and publishes it, once, when the
  connection is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from alerts.alarmevent import AlarmEvent
from alerts.alarms import TERMINAL_RULE
from gateway.jt808 import Jt808Gateway, Jt808Server, VehicleRef
from gateway.jt808.confirmations import HeldConfirmations
from hazardhub.hub import Hub, HubSettings
from telemetry.jt808 import (
    Alarm,
    AlarmConfirm,
    Authenticate,
    Frame,
    FrameReader,
    Header,
    Message,
    MsgId,
    PlatformResponse,
    Register,
    RegisterResponse,
    decode_body,
    encode_frame,
)
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub, tanker_registry
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"test-secret-0123456789"
PHONE = "013800000001"
COMMAND = "hazardhub/v1/chem-logistics/vehicles/tanker-01/command"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return tanker_registry(tmp_path)


class RawTerminal:
    """A terminal as bytes on a TCP socket: the gateway's frames in the order they came."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader()
        self.got: list[Message] = []
        self.serial = 0

    async def send(self, msg: Message) -> None:
        self.serial += 1
        self.writer.write(encode_frame(Header(msg.msg_id, self.serial, PHONE), msg.encode(False)))
        await self.writer.drain()

    async def next(self) -> Message:
        while not self.got:
            data = await asyncio.wait_for(self.reader.read(4096), 5)
            assert data, "the gateway closed the connection"
            for item in self.frames.feed(data):
                assert isinstance(item, Frame), item
                self.got.append(decode_body(item.header.msg_id, item.body, False))
        return self.got.pop(0)


@contextlib.asynccontextmanager
async def connected(host: str, port: int) -> AsyncIterator[RawTerminal]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        yield RawTerminal(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_gateway_sends_a_confirmation_kept_for_an_offline_terminal_at_its_authentication(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # a second gateway on the broker gets every command too, but never served this terminal:
    # it keeps nothing (it would send the confirmation, stale, if the terminal came to it later)
    gw, other = (
        Jt808Gateway(
            registry,
            listen=("127.0.0.1", 0),
            broker=(mosquitto.host, mosquitto.port),
            spool_dir=tmp_path / name,
            secret=SECRET,
            name=name,
        )
        for name in ("jt808", "jt808-b")
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(g.run(stop)) for g in (gw, other)]
    try:
        for g in (gw, other):
            await asyncio.wait_for(g.ready.wait(), 5)
            await asyncio.wait_for(g.commands.subscribed.wait(), 10)
        host, port = gw.server.address  # type: ignore[misc]
        async with connected(host, port) as terminal:  # served here, then away
            await terminal.send(Register(32, 100, "HZHUB", "RAW-808", "0000001", 2, "苏A·D1234"))
            reg = await terminal.next()
            assert isinstance(reg, RegisterResponse) and reg.result == RegisterResponse.OK
            await terminal.send(Authenticate(reg.auth_code, "", ""))
            assert isinstance(await terminal.next(), PlatformResponse)
        # two acknowledgements (emergency, then danger) while the terminal is offline
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
            for kind in (Alarm.EMERGENCY, Alarm.DANGER):
                command = {"command": "confirm_alarm", "alarm_type": int(kind), "alarm_serial": 0}
                await hub.publish(COMMAND, orjson.dumps(command), qos=1)
        for g in (gw, other):
            await eventually(
                lambda g=g: _now(g.commands.counters["not_connected"] == 2), 10, "the commands"
            )
        assert gw.server.counters["alarm_confirmations"] == 0
        assert len(other.server.held) == 0 and other.server.counters["confirmations_held"] == 0

        async with connected(host, port) as terminal:
            await terminal.send(Authenticate(reg.auth_code, "", ""))
            ok = await terminal.next()
            assert isinstance(ok, PlatformResponse)
            assert (ok.ack_msg_id, ok.result) == (MsgId.AUTHENTICATE, PlatformResponse.OK)
            # right after the answer to its authentication: 0x8203 for both types, serial 0
            confirm = await terminal.next()
            assert confirm == AlarmConfirm(0, int(Alarm.EMERGENCY | Alarm.DANGER))

        counters = gw.server.counters
        assert counters["confirmations_held"] == 2
        assert counters["confirmations_sent_late"] == 1
        assert counters["alarm_confirmations"] == 1
        assert len(gw.server.held) == 0  # sent once: a second connection gets nothing
    finally:
        stop.set()
        for task in tasks:
            await asyncio.wait_for(task, 10)


async def _now(value: bool) -> bool:
    return value


def test_a_kept_confirmation_is_dropped_after_its_age(registry: Registry) -> None:
    class NoUplink:
        def submit(self, *args: object) -> None:
            raise AssertionError("no positions here")

    clock = [1_000_000]
    server = Jt808Server(
        registry,
        NoUplink(),  # type: ignore[arg-type]
        secret=SECRET,
        hold_confirmations_s=3600,
        clock_ms=lambda: clock[0],
    )
    tanker = VehicleRef("chem-logistics", "tanker-01")
    server.served.update({tanker, VehicleRef("chem-logistics", "tanker-02")})  # came before
    assert not server.confirm_alarm("chem-logistics", "tanker-01", 0, int(Alarm.EMERGENCY))
    assert not server.confirm_alarm("chem-logistics", "no-such", 0, int(Alarm.EMERGENCY))
    assert not server.confirm_alarm("chem-logistics", "tanker-02", 0, int(Alarm.DANGER))
    assert len(server.held) == 2  # an unknown vehicle keeps nothing
    clock[0] += 3000 * 1000
    # a newer request for the vehicle renews its age
    assert not server.confirm_alarm("chem-logistics", "tanker-01", 0, int(Alarm.AREA))
    clock[0] += 1000 * 1000
    assert server.expire_confirmations() == 1  # tanker-02's, 4000 s old
    assert server.counters["confirmations_expired"] == 1
    assert server.held.take(tanker, clock[0]) == (
        int(Alarm.EMERGENCY | Alarm.AREA),
        1000 * 1000,
    )


@pytest.mark.slow
async def test_hub_publishes_a_confirmation_once_when_its_broker_connection_is_back(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    layout = TopicLayout()
    # a persistent subscriber (as the gateway is): what is published while it is away waits
    sub_id = "confirmations-test-sub"
    async with aiomqtt.Client(
        mosquitto.host, mosquitto.port, identifier=sub_id, clean_session=False
    ) as client:
        await client.subscribe(layout.vehicle_commands(), qos=1)

    def ack(alarm_id: int, vehicle: str, kind: str) -> AlarmEvent:
        return AlarmEvent(
            alarm_id,
            "acknowledged",
            "chem-logistics",
            "vehicles",
            vehicle,
            f"{vehicle}.speed",
            TERMINAL_RULE,
            kind,
            1,
            "high",
            "red",
            "",
            1.0,
            1_000,
            1_000,
            actor="op",
        )

    async with running_hub(hub):
        mosquitto.stop()
        await eventually(
            lambda: _now(not hub.ingest.ready.is_set()), 15, "the hub to lose its broker"
        )
        await hub.on_events([ack(1, "tanker-01", "terminal_emergency")])
        failures = "hazardhub_terminal_confirmation_failures_total"
        assert hub.metrics.total(failures) >= 1
        mosquitto.start()
        published = "hazardhub_terminal_confirmations_total"
        await eventually(lambda: _now(hub.metrics.total(published) == 1), 30, "the republish")
        # then an acknowledgement with the connection up: it comes after, and nothing between
        await hub.on_events([ack(2, "tanker-02", "terminal_danger")])
        got: list[tuple[str, object]] = []
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, identifier=sub_id, clean_session=False
        ) as client:
            await client.subscribe(layout.vehicle_commands(), qos=1)
            async with asyncio.timeout(10):
                async for msg in client.messages:
                    got.append((str(msg.topic), orjson.loads(msg.payload)))  # type: ignore[arg-type]
                    if "tanker-02" in str(msg.topic):
                        break
    assert got == [
        (COMMAND, {"command": "confirm_alarm", "alarm_type": 1, "alarm_serial": 0}),
        (
            "hazardhub/v1/chem-logistics/vehicles/tanker-02/command",
            {"command": "confirm_alarm", "alarm_type": int(Alarm.DANGER), "alarm_serial": 0},
        ),
    ]
    assert hub.metrics.total("hazardhub_terminal_confirmations_total") == 2


def _spooled_gateway(registry: Registry, mosquitto, tmp_path: Path) -> Jt808Gateway:  # type: ignore[no-untyped-def]
    """A JT/T 808 gateway with its spool folder in `tmp_path` (what it keeps over a restart)."""
    return Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=(mosquitto.host, mosquitto.port),
        spool_dir=tmp_path / "jt808",
        secret=SECRET,
    )


async def _served_once(gw: Jt808Gateway) -> str:
    """tanker-01's terminal registers and authenticates at `gw`, then goes; its auth code."""
    async with connected(*gw.server.address) as terminal:  # type: ignore[misc]
        await terminal.send(Register(32, 100, "HZHUB", "RAW-808", "0000001", 2, "苏A·D1234"))
        reg = await terminal.next()
        assert isinstance(reg, RegisterResponse) and reg.result == RegisterResponse.OK
        await terminal.send(Authenticate(reg.auth_code, "", ""))
        assert isinstance(await terminal.next(), PlatformResponse)
    return str(reg.auth_code)


async def test_a_gateway_restarted_still_keeps_a_confirmation_for_a_terminal_it_served(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    """The only gateway restarts; the operator acknowledges meanwhile (the command waits at the
    broker and comes before the terminal is back): the vehicles it served are kept in its
    spool folder, so it keeps the confirmation and sends it at the terminal's authentication."""

    def gateway() -> Jt808Gateway:
        return _spooled_gateway(registry, mosquitto, tmp_path)

    gw, stop = gateway(), asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await asyncio.wait_for(gw.ready.wait(), 5)
    await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
    code = await _served_once(gw)
    stop.set()
    await asyncio.wait_for(task, 10)  # the gateway stops (an upgrade, a crash)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
        emergency = {"command": "confirm_alarm", "alarm_type": int(Alarm.EMERGENCY)}
        await hub.publish(COMMAND, orjson.dumps({**emergency, "alarm_serial": 0}), qos=1)
    gw, stop = gateway(), asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        await eventually(
            lambda: _now(gw.commands.counters["not_connected"] == 1), 10, "the command"
        )
        assert len(gw.server.held) == 1
        async with connected(*gw.server.address) as terminal:  # type: ignore[misc]
            await terminal.send(Authenticate(code, "", ""))
            assert isinstance(await terminal.next(), PlatformResponse)
            assert await terminal.next() == AlarmConfirm(0, int(Alarm.EMERGENCY))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_kept_confirmation_outlives_a_restart_of_the_gateway(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    """The operator acknowledges while the terminal is away: the gateway keeps the confirmation,
    then restarts before the terminal comes back; the confirmation was kept in its spool folder
    and goes at the terminal's authentication."""

    def gateway() -> Jt808Gateway:
        return _spooled_gateway(registry, mosquitto, tmp_path)

    gw, stop = gateway(), asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
        code = await _served_once(gw)
        await eventually(lambda: _now(not gw.server.by_vehicle), 5, "the terminal gone")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
            emergency = {"command": "confirm_alarm", "alarm_type": int(Alarm.EMERGENCY)}
            await hub.publish(COMMAND, orjson.dumps({**emergency, "alarm_serial": 0}), qos=1)
        await eventually(lambda: _now(len(gw.server.held) == 1), 10, "the confirmation kept")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # the gateway restarts before the terminal is back
    gw, stop = gateway(), asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        assert len(gw.server.held) == 1
        async with connected(*gw.server.address) as terminal:  # type: ignore[misc]
            await terminal.send(Authenticate(code, "", ""))
            assert isinstance(await terminal.next(), PlatformResponse)
            assert await terminal.next() == AlarmConfirm(0, int(Alarm.EMERGENCY))
        assert len(gw.server.held) == 0
        assert (tmp_path / "jt808" / "held-jt808-jt808.json").read_bytes() == b"[]"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_kept_confirmations_round_trip_and_a_bad_file_is_refused() -> None:
    held = HeldConfirmations(86_400_000)
    held.hold(VehicleRef("acme-chem", "tanker-01"), 1, 1_000)
    held.hold(VehicleRef("acme-chem", "tanker-01"), 8, 2_000)
    again = HeldConfirmations(86_400_000)
    assert again.load(held.dump()) == 1
    assert again.take(VehicleRef("acme-chem", "tanker-01"), 5_000) == (9, 3_000)
    for bad in (b"{", b"[[1]]", b'[["t", "v", 0, 1]]', b'[["t", "v", 4294967296, 1]]'):
        with pytest.raises(ValueError):
            HeldConfirmations(1).load(bad)


def test_the_jt808_command_takes_how_long_confirmations_are_kept(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`hazardhub jt808 --hold-confirmations-s N` reaches the gateway (the gateway itself stands
    in for one that records what it was given; nothing is run)."""
    import gateway.jt808
    from hazardhub import cli

    given: dict[str, object] = {}

    class Recorded:
        def __init__(self, *args: object, **kw: object) -> None:
            given.update(kw)

        def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
            return {}, {}

    monkeypatch.setattr(gateway.jt808, "Jt808Gateway", Recorded)
    monkeypatch.setattr(cli, "_run", lambda main: 0)
    config = ROOT / "examples" / "demo.yaml"
    assert cli.main(["jt808", "-c", str(config), "--hold-confirmations-s", "3600"]) == 0
    assert given["hold_confirmations_s"] == 3600.0
    assert cli.main(["jt808", "-c", str(config)]) == 0
    assert given["hold_confirmations_s"] == 86400.0
