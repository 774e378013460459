"""The JT/T 809 sub link over real sockets: after a platform's login the gateway connects to the
down-link address it named, logs in with the 0x1002's verify code, tests the link, logs out
with the main link; a down link that cannot be reached is said on the main link (0x9007)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jt808_helpers import TWO_TENANTS, registry_of, until
from jt809_helpers import KEYS, PLATFORMS, LowerPlatform, config, make_gateway, running

from telemetry.jt809 import (
    DownConnect,
    DownConnectResponse,
    Frame,
    FrameSplitter,
    Header,
    Login,
    LoginResponse,
    decode_frame,
    encode_frame,
)
from telemetry.registry import Registry

from services import free_port


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


def with_sub_link(**sub: object) -> dict[str, object]:
    acme = dict(PLATFORMS["platforms"][0]) | {"sub_link": {"keepalive_s": 0.2, **sub}}
    return {"platforms": [acme]}


@contextlib.asynccontextmanager
async def down_link(result: int = 0) -> AsyncIterator[tuple[int, list[Frame]]]:
    """The lower platform's sub-link server: every frame it got; 0x9001 answered `result`,
    0x9005 answered 0x9006, 0x9003 answered 0x9004."""
    got: list[Frame] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        splitter, sn = FrameSplitter(), 0
        while data := await reader.read(65536):
            for item in splitter.feed(data):
                assert isinstance(item, bytes)
                frame = decode_frame(item, False, KEYS)
                got.append(frame)
                answer = {
                    0x9001: (0x9002, bytes((result,))),
                    0x9005: (0x9006, b""),
                    0x9003: (0x9004, b""),
                }
                if frame.header.msg_id in answer:
                    sn += 1
                    mid, body = answer[frame.header.msg_id]
                    writer.write(encode_frame(Header(mid, sn, 20180920), body))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], got
    finally:
        server.close()
        for w in writers:  # (a server closed keeps its connections)
            w.close()


async def test_sub_link_up_tested_and_logged_out(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    cfg = config(**with_sub_link())
    gw = make_gateway(cfg, registry, mosquitto.port, tmp_path / "spool")
    async with down_link() as (down_port, got), running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        answer = await p.login(7001, b"s3cret!8", down_port=down_port)
        assert answer is not None
        verify = LoginResponse.decode(answer.body).verify_code
        await until(lambda: sum(f.header.msg_id == 0x9005 for f in got) >= 2)
        first = got[0]
        assert first.header.msg_id == 0x9001 and first.header.access_code == 20180920
        assert DownConnect.decode(first.body).verify_code == verify
        await p.send(0x1003, bytes(12))  # the main link logs out: so does the sub link
        await until(lambda: got[-1].header.msg_id == 0x9003)
        assert DownConnect.decode(got[-1].body).verify_code == verify
        await p.close()
    c = gw.server.counters
    assert c["acme-gps.sublink_up"] == 1 and c["acme-gps.sublink_failed"] == 0


async def test_a_down_link_out_of_reach_is_said_on_the_main_link(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    nobody = free_port()
    cfg = config(**with_sub_link(address=f"127.0.0.1:{nobody}", timeout_s=1))
    gw = make_gateway(cfg, registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert await p.login(7001, b"s3cret!8", down_port=1) is not None  # (the address pinned)
        notice = await p.answer(within_s=8)  # after two failures: 0x9007, reason 0
        assert notice is not None and notice.header.msg_id == 0x9007 and notice.body == b"\x00"
        await p.close()
    c = gw.server.counters
    assert c["acme-gps.sublink_failed"] >= 2 and c["acme-gps.sublink_down_notices"] == 1


async def test_a_refused_sub_link_is_counted(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(config(**with_sub_link()), registry, mosquitto.port, tmp_path / "spool")
    async with down_link(result=1) as (down_port, got), running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert await p.login(7001, b"s3cret!8", down_port=down_port) is not None
        await until(lambda: gw.server.counters["acme-gps.sublink_refused"] >= 1)
        assert got[0].header.msg_id == 0x9001
        assert DownConnectResponse(1).encode() == b"\x01"
        await p.close()
    assert gw.server.counters["acme-gps.sublink_up"] == 0


async def test_a_broken_sub_link_is_said_after_two_reconnections(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(
        config(**with_sub_link(timeout_s=1)), registry, mosquitto.port, tmp_path / "spool"
    )
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        async with down_link() as (down_port, _):
            assert await p.login(7001, b"s3cret!8", down_port=down_port) is not None
            await until(lambda: gw.server.counters["acme-gps.sublink_up"] == 1)
        # the lower platform's sub-link server is gone: the link breaks, two reconnections fail
        notice = await p.answer(within_s=10)
        assert notice is not None and notice.header.msg_id == 0x9007 and notice.body == b"\x01"
        await p.close()
    assert gw.server.counters["acme-gps.sublink_failed"] >= 3


async def test_a_down_link_address_cannot_forge_a_log_line(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the down-link IP is the platform's word (its 0x1002 login): shown escaped, one line
    gw = make_gateway(
        config(**with_sub_link(timeout_s=1)), registry, mosquitto.port, tmp_path / "s"
    )
    forged = "127.0.0.1\n2026-12-02 INFO ok"  # (32 bytes at most)
    caplog.set_level("INFO", logger="gateway")
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        await p.send(0x1001, Login(7001, b"s3cret!8", forged, 9809, 20180920).encode(False))
        assert await p.answer() is not None
        await until(lambda: gw.server.counters["acme-gps.sublink_failed"] >= 1)
        await p.close()
    said = [r.getMessage() for r in caplog.records if "sub link to" in r.getMessage()]
    assert said and all("\n" not in m for m in said), said
    assert any("127.0.0.1\\n2026-12-02" in m for m in said), said
