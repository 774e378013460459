"""The JT/T 809 gateway against peers that do not play fair, over real sockets (other peers are
other addresses of 127.0.0.0/8): idle links, floods of bad frames, password guessing, text
that would forge a log line, the counters of a link not logged in, a login of the other
version, positions dropped silently or dated ahead."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jt808_helpers import TWO_TENANTS, positions, registry_of, until
from jt809_helpers import (
    KEYS,
    PLATFORMS,
    LowerPlatform,
    config,
    gnss_2011,
    make_gateway,
    running,
)
from test_jt809_gateway import result

from gateway.jt809 import Limits
from telemetry.jt809 import ExgMsg, LoginResponse, MsgId, SubId, WarnInfo, WarnMsg
from telemetry.registry import Registry

T0 = datetime(2026, 11, 30, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


async def _closed(host: str, port: int, source: str, within_s: float = 3.0) -> bool:
    """Whether a link from `source` is closed by the gateway without a word."""
    r, w = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        return await asyncio.wait_for(r.read(), within_s) == b""
    except TimeoutError:
        return False
    finally:
        w.close()


async def test_idle_links_do_not_keep_a_platform_out(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # 16 idle sockets used to fill --max-links (16 here): the platform's login was refused
    limits = Limits(pending=8, pending_per_address=4)
    gw = make_gateway(
        config(), registry, mosquitto.port, tmp_path / "spool", max_links=16, limits=limits
    )
    async with running(gw) as (host, port):
        idle = []
        for k in range(16):
            w = (
                await asyncio.open_connection(host, port, local_addr=(f"127.0.0.{2 + k // 4}", 0))
            )[1]
            idle.append(w)
        # 8 taken; then room made by closing the oldest of the busiest address, or refused
        c = gw.server.counters
        await until(
            lambda: c["unauthenticated.evicted"] + c["unauthenticated.refused_pending"] == 8
        )
        assert len(gw.server.guard.pending) == 8
        p = LowerPlatform(33000001, v2019=True)
        await p.connect(host, port)
        assert result(await p.login(8001, b"pw2019")) == 0
        # a fifth link from one address is refused at once
        for _ in range(4):
            idle.append((await asyncio.open_connection(host, port, local_addr=("127.0.0.9", 0)))[1])
        assert await _closed(host, port, "127.0.0.9")
        await p.close()
        for w in idle:
            w.close()
    c = gw.server.counters
    assert c["coach-gps.logins"] == 1 and c["unauthenticated.refused_full"] == 0
    assert c["unauthenticated.refused_pending"] >= 1


async def test_an_address_in_no_allow_from_is_closed_at_once(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    fenced = [p | {"allow_from": ["127.0.0.1/32"]} for p in PLATFORMS["platforms"]]
    gw = make_gateway(config(platforms=fenced), registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        assert await _closed(host, port, "127.0.0.2", within_s=1.0)
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port, "127.0.0.1")
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.close()
    assert gw.server.counters["unauthenticated.refused_address"] == 1


async def test_a_flood_of_bad_frames_is_cut_off(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jt809")
    limits = Limits(bad_frames=20, bad_window_s=10.0)
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool", limits=limits)
    async with running(gw) as (host, port):
        # not logged in: closed after a few
        flood = LowerPlatform(20180920)
        await flood.connect(host, port)
        await flood.send_raw(b"\x5b\x5d" * 50_000)
        assert await flood.answer() is None
        await flood.close()
        # logged in: after 20 bad frames within 10 s
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.send_raw(b"\x5b\x5d" * 50_000)
        assert await p.answer() is None
        await p.close()
    c = gw.server.counters
    assert 3 <= c["unauthenticated.bad_frame"] < 10
    assert c["unauthenticated.too_many_bad_frames"] == 1
    assert 20 <= c["acme-gps.bad_frame"] < 40 and c["acme-gps.too_many_bad_frames"] == 1
    lines = [r for r in caplog.records if "bad_frame" in r.getMessage()]
    assert len(lines) <= 20  # not one a frame


async def test_password_guessing_backs_off(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(failed_logins=3, failed_window_s=60.0, backoff_s=60.0)
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool", limits=limits)
    async with running(gw) as (host, port):
        good = LowerPlatform(20180920, keys=KEYS)  # it logged in from 127.0.0.1 before
        await good.connect(host, port, "127.0.0.1")
        assert result(await good.login(7001, b"s3cret!8")) == 0
        await good.close()
        for k in range(3):
            g = LowerPlatform(20180920)
            await g.connect(host, port, "127.0.0.2")
            assert result(await g.login(7001, f"guess{k}".encode())) == 4
            await g.close()
        # the address is held back: closed at once
        assert await _closed(host, port, "127.0.0.2", within_s=1.0)
        # the access code too, from another address: closed unchecked, no answer
        g = LowerPlatform(20180920)
        await g.connect(host, port, "127.0.0.3")
        assert await g.login(7001, b"s3cret!8") is None
        await g.close()
        # ... but not from the address it logged in rightly from
        again = LowerPlatform(20180920, keys=KEYS)
        await again.connect(host, port, "127.0.0.1")
        assert result(await again.login(7001, b"s3cret!8")) == 0
        await again.close()
    c = gw.server.counters
    assert c["unauthenticated.login_refused"] == 3
    assert c["unauthenticated.refused_backoff"] == 1 and c["unauthenticated.login_held"] == 1
    assert c["unauthenticated.login_backoff"] == 2  # the address's and the access code's
    assert "3 failed logins from address 127.0.0.2" in caplog.text
    assert c["acme-gps.logins"] == 2


async def test_peer_text_cannot_forge_a_log_line(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jt809")
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.positions("A\nWARNING pwn", [gnss_2011(T0, 31.5, 120.3, 60)])
        info = WarnInfo(0x0002, int(T0.timestamp()), "x", source=2)
        await p.send(0x1400, WarnMsg("B\rERROR pwn", 2, SubId.WARN_INFO, info.encode()).encode())
        await until(lambda: gw.server.counters["acme-gps.warnings"] == 1)
        await p.close()
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "\n" in m or "\r" in m]
    assert any("plate A\\nWARNING pwn" in m for m in said)
    assert any("of plate B\\rERROR pwn" in m for m in said)


async def test_a_login_of_the_other_version_is_answered(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jt809")
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        # a 2019 login to acme-gps (2011): answered in 2019, result 6 (other), closed
        p = LowerPlatform(20180920, v2019=True)
        await p.connect(host, port)
        answer = await p.login(7001, b"s3cret!8", access_code=20180920)
        assert result(answer) == 6
        assert answer is not None and answer.header.time_s is not None
        assert await p.answer() is None
        await p.close()
        # a 2011 login to coach-gps (2019): answered in 2011
        q = LowerPlatform(33000001)
        await q.connect(host, port)
        answer = await q.login(8001, b"pw2019")
        assert answer is not None and LoginResponse.decode(answer.body).result == 6
        await q.close()
    assert "is a JT/T 809-2019 login: the platform's entry says version 2011" in caplog.text
    assert "is a JT/T 809-2011 login: the platform's entry says version 2019" in caplog.text
    assert gw.server.counters["unauthenticated.bad_login"] == 2


async def test_positions_dropped_are_counted(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool", max_frame=300)
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        # a 0x1203 of no positions
        await p.send(0x1200, ExgMsg("苏AD1234", 2, SubId.HISTORY_LOCATION, b"\x00").encode())
        await until(lambda: gw.server.counters["acme-gps.bad_body"] == 1)
        # a position, then a stream that overflows, in one read: the position is taken
        fix = p.frame(0x1200, _real("苏AD1234", 0))
        await p.send_raw(fix + b"\x5b" + b"\x01" * 400)
        assert await p.answer() is None
        await until(lambda: got)
        await p.close()
        # frames after a logout in the same read: counted
        q = LowerPlatform(20180920, keys=KEYS)
        await q.connect(host, port)
        assert result(await q.login(7001, b"s3cret!8")) == 0
        await q.send_raw(
            q.frame(MsgId.LOGOUT, b"\x00" * 12) + q.frame(0x1200, _real("苏AD1234", 1))
        )
        await q.answer()
        assert await q.answer() is None
        await q.close()
    c = gw.server.counters
    assert c["acme-gps.positions"] == 1 and c["acme-gps.overflow"] == 1
    assert c["acme-gps.frames_dropped"] == 1


async def test_positions_ahead_are_counted_and_published(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    ahead = datetime.now(UTC) + timedelta(days=1)
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.positions("苏AD1234", [gnss_2011(ahead, 31.5, 120.3, 60)])
        await p.positions("苏AD1234", [gnss_2011(T0, 31.5, 120.3, 61)])
        await until(lambda: sum(len(r) for _, r in got) == 2)
        await p.close()
    c = gw.server.counters
    assert c["acme-gps.future_positions"] == 1 and c["acme-gps.positions"] == 2
    assert "ahead of the gateway's clock" in caplog.text


def _real(plate: str, minute: int) -> bytes:
    from telemetry.jt809 import RealLocation

    fix = gnss_2011(T0.replace(minute=minute), 31.5, 120.3, 60)
    return ExgMsg(plate, 2, SubId.REAL_LOCATION, RealLocation(fix).encode()).encode()


async def test_a_platform_in_its_allow_from_is_not_held_by_its_access_code(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # after a restart no address has logged in rightly yet: a stranger's guesses must not keep
    # the platform out when it connects from its own allow_from
    fenced = [PLATFORMS["platforms"][0] | {"allow_from": ["127.0.0.0/8"]}]
    limits = Limits(failed_logins=3, failed_window_s=60.0, backoff_s=60.0)
    gw = make_gateway(
        config(platforms=fenced), registry, mosquitto.port, tmp_path / "spool", limits=limits
    )
    async with running(gw) as (host, port):
        for k in range(3):
            g = LowerPlatform(20180920)
            await g.connect(host, port, "127.0.0.2")
            assert result(await g.login(7001, f"guess{k}".encode())) == 4
            await g.close()
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port, "127.0.0.3")
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.close()
    assert gw.server.counters["acme-gps.logins"] == 1
