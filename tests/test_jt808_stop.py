"""The JT/T 808 gateway stopping: terminals that connect or register while it stops are refused
cleanly, never answered from a closed bindings database (a traceback on every such one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import pytest
from jt808_helpers import make_gateway

from simulators.jt808 import MAKER, MODEL, terminal_id
from telemetry.jt808 import Header, MsgId, Register, encode_frame
from telemetry.registry import Registry

from e2e_helpers import tanker_registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return tanker_registry(tmp_path)


def registration(serial: int) -> bytes:
    reg = Register(44, 300, MAKER, MODEL, terminal_id("t"), 2, "苏A·D1234")
    return encode_frame(Header(MsgId.REGISTER, serial, "013800000001"), reg.encode(False))


async def test_terminals_registering_as_the_gateway_stops(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool", hold=None)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await asyncio.wait_for(gw.ready.wait(), 5)
    assert gw.server.address is not None
    caplog.set_level(logging.INFO)
    # connected and registering before the loop has accepted them: the gateway takes them
    # while it stops
    socks = []
    for i in range(30):
        sock = socket.create_connection(gw.server.address, timeout=5)
        sock.sendall(registration(i))
        socks.append(sock)
    stop.set()
    await asyncio.wait_for(task, 10)
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []
        assert gw.server.counters["internal_error"] == 0
        assert gw.server.counters["refused_stopping"] > 0  # the case was there
        for sock in socks:  # each closed by the gateway (refused, or as it stopped), none left open
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(4096):
                    pass
    finally:
        for sock in socks:
            sock.close()
