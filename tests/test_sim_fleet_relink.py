"""The simulated JT/T 808 terminals behave as real ones across lost links: a terminal registers
once, keeps its auth code and authenticates (0x0102) on each new connection, registering again
only when the platform refuses the code; a message not answered is sent again (same serial)
after T, 2T, ... (parameters 0x0002, 0x0003) before the link is given up. The fleet used to
register on every reconnection and drop its connection after one 5 s timeout: a reconnection
storm against a loaded platform. Real gateway, real Mosquitto, the link cut by a TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jt808_helpers import make_gateway, running

from gateway.jt808.directory import VehicleRef
from hazardhub.settings import load_registry
from simulators.fleet import Jt808Fleet, SimulatedVehicle
from simulators.jt808 import Jt808Terminal, TerminalError
from simulators.relay import UplinkRelay
from simulators.signals import Constant
from telemetry.jt808 import (
    Frame,
    FrameReader,
    Header,
    MsgId,
    PlatformResponse,
    encode_frame,
)

from e2e_helpers import eventually, tanker_registry

ROOT = Path(__file__).resolve().parent.parent
ROUTE = ((31.0, 120.0), (31.01, 120.01))


async def _now(value: bool) -> bool:
    return value


async def test_the_fleet_registers_once_and_authenticates_on_each_new_connection(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    gw = make_gateway(tanker_registry(tmp_path), mosquitto.port, tmp_path / "jt808")
    vehicles = [
        (SimulatedVehicle("chem-logistics", f"tanker-0{k}", ROUTE, Constant(40.0)), phone, plate)
        for k, phone, plate in ((1, "13800000001", "苏A·D1234"), (2, "13800000002", "苏A·D5678"))
    ]
    stop = asyncio.Event()
    async with running(gw, commands=True) as (host, port):
        relay = UplinkRelay(host, port)
        await relay.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            vehicles,
            host="127.0.0.1",
            port=relay.port,
            clock=lambda: loop.time() - t0,
            start_wall_ms=int(time.time() * 1000),
            period_s=0.1,
        )
        run = asyncio.create_task(fleet.run(stop))
        server = gw.server
        try:
            await eventually(lambda: _now(len(server.by_vehicle) == 2), 10, "both logged in")
            for k in range(2):  # the link lost twice: each terminal authenticates again
                relay.cut(for_s=0.3)
                await eventually(lambda n=4 + 2 * k: _now(fleet.logins == n), 10, "back")
            assert fleet.registrations == 2
            # the platform forgets tanker-01's binding: its code refused, it registers again
            server.bindings.unbind(VehicleRef("chem-logistics", "tanker-01"))
            relay.cut(for_s=0.3)
            await eventually(lambda: _now(fleet.logins == 8), 10, "back again")
            await eventually(lambda: _now(len(server.by_vehicle) == 2), 5, "both in")
            bindings = {b.vehicle.vehicle: b for b in server.bindings.all()}
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
            await relay.stop()
    assert fleet.registrations == 3  # tanker-01 twice, tanker-02 once
    assert server.counters["authenticated"] == 8
    assert server.counters["auth_failed"] == 1  # tanker-01's code, after the unbinding
    assert bindings["tanker-02"].registered_ms == bindings["tanker-02"].bound_ms
    assert fleet.waiting == 0 and fleet.sent > 0


class _Deaf:
    """A platform that answers each message's `answer_at`-th copy only (0: never)."""

    def __init__(self, answer_at: int) -> None:
        self.answer_at = answer_at
        self.got: list[tuple[float, Header]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader()
        loop = asyncio.get_running_loop()
        while data := await reader.read(65536):
            for item in frames.feed(data):
                assert isinstance(item, Frame)
                h = item.header
                self.got.append((loop.time(), h))
                copies = sum(1 for _, g in self.got if g.serial == h.serial)
                if copies == self.answer_at:
                    ok = PlatformResponse(h.serial, h.msg_id, PlatformResponse.OK)
                    reply = Header(MsgId.PLATFORM_RESPONSE, 0, h.phone, h.version)
                    writer.write(encode_frame(reply, ok.encode(False)))
        writer.close()


@contextlib.asynccontextmanager
async def _deaf(answer_at: int) -> AsyncIterator[tuple[_Deaf, int]]:
    platform = _Deaf(answer_at)
    server = await asyncio.start_server(platform.serve, "127.0.0.1", 0)
    try:
        yield platform, server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_message_not_answered_is_sent_again_after_t_then_2t() -> None:
    async with _deaf(answer_at=3) as (platform, port):
        terminal = Jt808Terminal(
            "127.0.0.1", port, "013800000001", timeout_s=0.2, retransmissions=2
        )
        async with terminal:
            answer = await terminal.heartbeat()
        assert answer.result == PlatformResponse.OK
        assert [h.serial for _, h in platform.got] == [0, 0, 0]  # the same message, thrice
        times = [t for t, _ in platform.got]
        assert 0.19 <= times[1] - times[0] < 0.39  # T (a loaded machine: late, never early)
        assert 0.39 <= times[2] - times[1] < 0.79  # 2T
        assert terminal.retransmitted == 2


async def test_a_terminal_gives_up_after_its_retransmissions() -> None:
    async with _deaf(answer_at=0) as (platform, port):
        terminal = Jt808Terminal(
            "127.0.0.1", port, "013800000001", timeout_s=0.1, retransmissions=1
        )
        async with terminal:
            started = time.monotonic()
            with pytest.raises(TerminalError, match="sent 2 times"):
                await terminal.heartbeat()
            assert 0.29 <= time.monotonic() - started < 1.5  # T + 2T
        assert len(platform.got) == 2


async def test_a_platform_down_is_one_line_per_interval_not_one_per_terminal_and_retry(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """20 terminals, the platform down 3 s then up: a summary line a second (the interval
    given), then one that they reach it again (1,600 warnings in 17 s for 200 terminals)."""
    caplog.set_level(logging.DEBUG, logger="simulators")
    n = 20
    lines = [
        f"      - {{id: truck-{k:02d}, plate: 苏A·E{k:04d}, class: hazmat, "
        f'terminal: "1380000{k:04d}"}}'
        for k in range(n)
    ]
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(
        "version: 1\ntenants:\n  - id: acme\n    vehicles:\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    with socket.socket() as probe:  # a port nobody listens on: the platform down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vehicles = [
        (SimulatedVehicle("acme", f"truck-{k:02d}", ROUTE, Constant(40.0)), f"1380000{k:04d}", "")
        for k in range(n)
    ]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    fleet = Jt808Fleet(
        vehicles,
        host="127.0.0.1",
        port=port,
        clock=lambda: loop.time() - t0,
        start_wall_ms=int(time.time() * 1000),
        period_s=0.2,
        report_every_s=1.0,
    )
    stop = asyncio.Event()
    run = asyncio.create_task(fleet.run(stop))
    await asyncio.sleep(3.0)
    gw = make_gateway(load_registry(cfg, [ROOT / "profiles"]), mosquitto.port, tmp_path / "jt808")
    gw.listen = ("127.0.0.1", port)
    async with running(gw, commands=True):
        try:
            await eventually(lambda: _now(len(gw.server.by_vehicle) == n), 30, "all in")
            await eventually(lambda: _now(fleet.report.failing == 0), 5, "none failing")
            await asyncio.sleep(1.2)  # the recovery said
        finally:
            stop.set()
            await asyncio.wait_for(run, 30)
    said = [r for r in caplog.records if r.name == "simulators.fleet"]
    warnings = [r.getMessage() for r in said if r.levelno >= logging.WARNING]
    # 3 s down, and up to 5 s of a terminal's backoff: a line a second at most (a line per
    # terminal per retry was 20 a round)
    assert 2 <= len(warnings) <= 10, warnings
    assert all(
        m.startswith(f"fleet: {n} terminals cannot reach 127.0.0.1:{port}: ") for m in warnings
    )
    assert all(m.endswith(" fixes wait") for m in warnings)
    infos = [r.getMessage() for r in said if r.levelno == logging.INFO]
    assert infos == [f"fleet: every terminal reaches 127.0.0.1:{port} again"]
    # each failure still there for who asks (debug)
    assert sum(1 for r in said if r.levelno == logging.DEBUG) >= 2 * n
    assert fleet.waiting == 0
