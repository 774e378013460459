"""The JT/T 808 gateway's counters are visible: the counters that changed are logged at info level
every `report_every_s` (and once more at stop), and a connection closed for too many bad frames
is a warning. Real gateway, real sockets, simulated terminals."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from jt808_helpers import make_gateway, running, until

from simulators.jt808 import Jt808Terminal
from telemetry.jt808 import Header, encode_frame

from e2e_helpers import tanker_registry
from services import MosquittoService

LOGGER = "gateway.jt808.server"


def bad_checksum(phone: str, serial: int) -> bytes:
    frame = bytearray(encode_frame(Header(0x0002, serial, phone), b""))
    frame[-2] ^= 0x55
    return bytes(frame)


async def test_changed_counters_are_logged_and_a_bad_frames_close_is_a_warning(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    gw = make_gateway(
        tanker_registry(tmp_path), mosquitto.port, tmp_path / "spool", hold=None, report_every_s=0.3
    )

    def lines(level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]

    def reports() -> list[str]:
        return [m for m in lines() if "since the last report" in m]

    async with running(gw) as (host, port):
        async with Jt808Terminal(host, port, "13800000001") as a:
            await a.login()
            await a.send_raw(b"\x00junk" + bad_checksum(a.phone, 100) + bad_checksum(a.phone, 101))
            assert (await a.heartbeat()).result == 0  # the bad frames came before it
            await until(lambda: any("bad_frame +3" in m for m in reports()))
            (first,) = (m for m in reports() if "bad_frame +3" in m)
            assert first.startswith("jt808: 1 connections, 1 authenticated; since the last report")
            assert "bad_frame +3 (3 in all)" in first
            assert any("authenticated +1 (1 in all)" in m for m in reports())
            # nothing changed: nothing logged; then only what changed, with its total
            n = len(reports())
            await asyncio.sleep(0.8)
            assert len(reports()) == n
            await a.send_raw(bad_checksum(a.phone, 102))
            assert (await a.heartbeat()).result == 0
            await until(lambda: len(reports()) == n + 1)
            assert reports()[-1].endswith("since the last report: bad_frame +1 (4 in all)")

            # another terminal sends nothing but bad frames: closed after 20, as a warning
            async with Jt808Terminal(host, port, "13800000002") as b:
                await b.send_raw(b"".join(bad_checksum(b.phone, i) for i in range(25)))
                await asyncio.wait_for(b.closed.wait(), 5)
            assert not a.closed.is_set()
        (warning,) = lines(logging.WARNING)
        assert "bad_frames_closed: 20 bad frames in a row: closing the connection" in warning
        await until(lambda: "bad_frames_closed +1 (1 in all)" in reports()[-1])
    assert gw.server.counters["bad_frame"] == 4 + 20
