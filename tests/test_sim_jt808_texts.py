"""The simulated JT/T 808 terminal answers the platform as a real one does: a text message 0x8300
(the hub's reminder to the driver) is shown and read to the driver (logged with the plate and the
text, counted) and answered 0x0001 result 0 with the platform's serial and id; a request it does
not carry out is answered result 3 (not supported), one it cannot read result 2, and the
platform's own answers never. It used to ignore every platform message but 0x8203 and 0x8702.

Over real sockets: the real JT/T 808 gateway, a real Mosquitto and the fleet simulator's
terminals (2013 and 2019); the hub's side publishes `remind` commands and the gateway counts the
terminals' acknowledgements (`reminders_ok`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest
import yaml
from jt808_helpers import ROOT, make_gateway, running

from simulators.fleet import Jt808Fleet, SimulatedVehicle
from simulators.jt808 import Jt808Terminal
from simulators.signals import Constant
from telemetry.config import HubConfig
from telemetry.jt808 import (
    Frame,
    FrameReader,
    Header,
    MsgId,
    PlatformResponse,
    TerminalResponse,
    TextMessage,
    decode_body,
    encode_frame,
)

from e2e_helpers import eventually, tanker_registry

OVERSPEED = "您已超速，请减速行驶"
COMMAND = "hazardhub/v1/chem-logistics/vehicles/{}/command"


async def _now(value: bool) -> bool:
    return value


def _remind(alarm_id: int, text: str) -> bytes:
    at = int(time.time() * 1000)
    return orjson.dumps(
        {"command": "remind", "alarm_id": alarm_id, "kind": "overspeed", "text": text,
         "ts": at - 1000, "at": at}
    )  # fmt: skip


async def test_the_fleets_terminals_show_the_hubs_reminders_and_the_gateway_counts_their_ok(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway(tanker_registry(tmp_path), mosquitto.port, tmp_path / "jt808")
    caplog.set_level(logging.INFO, logger="simulators.jt808")
    route = ((31.0, 120.0), (31.01, 120.01))
    old = SimulatedVehicle("chem-logistics", "tanker-01", route, Constant(40.0))
    new = SimulatedVehicle("chem-logistics", "tanker-02", route, Constant(40.0))
    new.jt808_version = 2019
    stop = asyncio.Event()
    async with running(gw, commands=True) as (host, port):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            [(old, "13800000001", "苏A·D1234"), (new, "13800000002", "苏A·D5678")],
            host=host,
            port=port,
            clock=lambda: loop.time() - t0,
            start_wall_ms=int(time.time() * 1000),
            period_s=0.2,
        )
        run = asyncio.create_task(fleet.run(stop))
        try:
            await eventually(lambda: _now(len(gw.server.by_vehicle) == 2), 10, "both logged in")
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
                await hub.publish(COMMAND.format("tanker-01"), _remind(1, OVERSPEED), qos=1)
                await hub.publish(COMMAND.format("tanker-02"), _remind(2, "请系好安全带"), qos=1)
            counters = gw.server.counters
            await eventually(lambda: _now(counters["reminders_ok"] == 2), 10, "both 0x0001 OK")
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
    assert fleet.texts == 2
    assert counters["reminders_sent"] == 2
    assert counters["reminders_unsupported"] == counters["reminders_failed"] == 0
    assert counters["reminders_bad"] == 0
    heard = [r.getMessage() for r in caplog.records if r.name == "simulators.jt808"]
    heard = [m for m in heard if "to the driver" in m]
    assert sorted(heard) == [
        f"terminal 13800000001 苏A·D1234: to the driver (shown, read aloud): {OVERSPEED}",
        "terminal 13800000002 苏A·D5678: to the driver (shown, read aloud): 请系好安全带",
    ]


class _Platform:
    """A platform that sends the terminal raw frames and keeps the terminal's messages."""

    def __init__(self) -> None:
        self.got: list[tuple[Header, object]] = []
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        frames = FrameReader()
        while data := await reader.read(65536):
            for item in frames.feed(data):
                assert isinstance(item, Frame)
                h = item.header
                self.got.append((h, decode_body(h.msg_id, item.body, h.is_2019)))

    def send(self, msg_id: int, serial: int, body: bytes, *, v2019: bool = False) -> None:
        assert self.writer is not None
        phone = "00000000013800000001" if v2019 else "013800000001"
        self.writer.write(encode_frame(Header(msg_id, serial, phone, 1 if v2019 else None), body))


@contextlib.asynccontextmanager
async def _platform() -> AsyncIterator[tuple[_Platform, int]]:
    platform = _Platform()
    server = await asyncio.start_server(platform.serve, "127.0.0.1", 0)
    try:
        yield platform, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        if platform.writer is not None:
            platform.writer.close()


@pytest.mark.parametrize("v2019", [False, True])
async def test_the_terminal_answers_what_it_does_not_carry_out_and_never_an_answer(
    v2019: bool,
) -> None:
    async with _platform() as (platform, port):
        heard: list[TextMessage] = []
        phone = "00000000013800000001" if v2019 else "013800000001"
        terminal = Jt808Terminal("127.0.0.1", port, phone, "苏A·D1234", v2019=v2019)
        terminal.on_text = heard.append
        async with terminal:
            await platform.connected.wait()
            text = TextMessage(0x0F if v2019 else 0x0C, OVERSPEED, 1)
            platform.send(MsgId.TEXT_MESSAGE, 7, text.encode(v2019), v2019=v2019)
            platform.send(0x8103, 8, b"\x01\x00\x00\x00\x01\x04\x00\x00\x00\x1e", v2019=v2019)
            platform.send(0x8105, 9, b"\x04", v2019=v2019)  # terminal control: reset
            platform.send(MsgId.TEXT_MESSAGE, 10, b"\x0c" if v2019 else b"", v2019=v2019)
            platform.send(0x0200, 11, b"", v2019=v2019)  # a terminal's message, sent back
            # answers: none is answered (to an unknown serial; the server time, never asked)
            answer = PlatformResponse(99, 2, 0).encode(v2019)
            platform.send(MsgId.PLATFORM_RESPONSE, 12, answer, v2019=v2019)
            platform.send(0x8004, 13, b"\x25\x01\x01\x00\x00\x00", v2019=v2019)
            platform.send(MsgId.PLATFORM_RESPONSE, 14, b"\x00", v2019=v2019)  # unreadable
            platform.send(MsgId.TEXT_MESSAGE, 15, text.encode(v2019), v2019=v2019)
            await eventually(lambda: _now(len(platform.got) == 6), 5, "six answers")
            await asyncio.sleep(0.2)  # time for an answer that should not come
        answers = [
            (h.is_2019, m.ack_serial, m.ack_msg_id, m.result)
            for h, m in platform.got
            if isinstance(m, TerminalResponse)
        ]
        assert answers == [
            (v2019, 7, 0x8300, 0),
            (v2019, 8, 0x8103, 3),
            (v2019, 9, 0x8105, 3),
            (v2019, 10, 0x8300, 2),
            (v2019, 11, 0x0200, 3),
            (v2019, 15, 0x8300, 0),
        ]
        assert [h.serial for h, _ in platform.got] == list(range(6))  # its own serials
        assert heard == list(terminal.texts) == [text, text]
        assert terminal.texts_heard == 2 and terminal.unsupported == 3
        assert terminal.ignored == 2  # the 0x8001 to serial 99, the 0x8004
        assert terminal.bad_frames == 2  # the short 0x8300, the short 0x8001


def test_the_documented_configuration_reminds_the_demos_tanker_of_its_overspeed() -> None:
    """docs/simulators.md makes its configuration from the demo's with `sed`: still one that
    loads and reminds the tanker's driver (the demo's `fleet:` line moved, it would not)."""
    doc = (ROOT / "docs" / "simulators.md").read_text(encoding="utf-8")
    (line,) = [x for x in doc.splitlines() if x.startswith("sed 's/^fleet:$/")]
    match = re.fullmatch(r"sed 's/(.+?)/(.+?)/' examples/demo\.yaml > hub\.yaml", line)
    assert match is not None
    pattern, replacement = match.groups()
    demo = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
    text, n = re.subn(pattern, replacement.replace("\\n", "\n"), demo, flags=re.MULTILINE)
    assert n == 1
    config = HubConfig.model_validate(yaml.safe_load(text))
    (tanker,) = [v for t in config.tenants for v in t.vehicles if v.id == "tanker-01"]
    assert config.fleet.reminder(tanker.vehicle_class, tanker.remind, "overspeed") == OVERSPEED
