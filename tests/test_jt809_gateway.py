"""The JT/T 809 gateway over real sockets: a lower platform played by the test (the codec over
TCP) -> `Jt809Gateway` -> a real Mosquitto -> the position records the hub reads."""

from __future__ import annotations

import calendar
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
    gnss_2019,
    make_gateway,
    running,
)

from gateway.jt809 import load_platforms
from telemetry.errors import ConfigError
from telemetry.jt809 import (
    ExgMsg,
    Header,
    LoginResponse,
    MsgId,
    RealLocation,
    SubId,
    WarnInfo,
    WarnMsg,
    encode_frame,
)
from telemetry.registry import Registry

T0 = datetime(2026, 11, 30, 1, 0, 0, tzinfo=UTC)  # 09:00 in China


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


def result(frame: object) -> int:
    assert frame is not None
    assert frame.header.msg_id == MsgId.LOGIN_RESPONSE  # type: ignore[attr-defined]
    return LoginResponse.decode(frame.body).result  # type: ignore[attr-defined]


async def test_platform_positions_reach_the_broker(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jt809")
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS, encrypt=True)  # its frames encrypted
        await p.connect(host, port)
        # nothing is taken before a login: no answer, counted (not as the platform's: anyone
        # may write its access code)
        await p.send(0x1005)
        await p.positions("苏AD1234", [gnss_2011(T0, 31.5, 120.3, 60)])
        await until(lambda: gw.server.counters["unauthenticated.before_login"] == 2)
        # the login, right
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.send(0x1005)
        ka = await p.answer()
        assert ka is not None and ka.header.msg_id == 0x1006 and ka.header.access_code == 20180920
        # a real-time position of tanker-01 (plate written without its dot) and a backfill of
        # tanker-02's three
        await p.positions("苏AD1234", [gnss_2011(T0, 31.5, 120.3, 60, alarm=1)])
        await p.positions(
            "苏A·D5678", [gnss_2011(T0.replace(minute=m), 31.6, 120.4, 50 + m) for m in (1, 2, 3)]
        )
        # an unknown plate, a frame with a bad CRC, garbage between frames: counted, link kept
        await p.positions("粤Z99999", [gnss_2011(T0, 31.5, 120.3, 60)])
        bad = bytearray(p.frame(0x1005, b""))
        bad[-2] ^= 0x55
        await p.send_raw(b"\x00\x01junk" + bytes(bad))
        await p.send(0x1005)
        assert (await p.answer()) is not None  # still answered
        await until(lambda: sum(len(r) for _, r in got) == 4)
        await p.close()
    by_topic = {t.rsplit("/", 2)[-2]: r for t, r in got}
    one = by_topic["tanker-01"][0]
    # the position's own time: 09:00:00 China time is 01:00:00 UTC
    assert one["ts"] == calendar.timegm((2026, 11, 30, 1, 0, 0)) * 1000
    assert (one["lat"], one["lon"], one["speed_kmh"], one["alarm_flags"]) == (31.5, 120.3, 60, 1)
    assert one["acc_on"] is True and one["heading_deg"] == 90
    assert [r["speed_kmh"] for r in by_topic["tanker-02"]] == [51, 52, 53]
    c = gw.server.counters
    assert c["acme-gps.positions"] == 4 and c["acme-gps.logins"] == 1
    assert c["acme-gps.unknown_vehicle"] == 1 and c["acme-gps.bad_frame"] == 1
    assert c["acme-gps.skipped_bytes"] == 6
    assert gw.uplink.published == 2  # two messages (one a vehicle), acknowledged by the broker
    assert "s3cret" not in caplog.text
    assert "unknown_vehicle: plate 粤Z99999" in caplog.text


async def test_logins_refused_with_their_codes(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.jt809")
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        cases = [
            (LowerPlatform(55555555), 7001, b"s3cret!8", 2),  # unknown access code
            (LowerPlatform(44000001), 9001, b"pw", 1),  # not from 10.0.0.0/8
            (LowerPlatform(20180920), 7002, b"s3cret!8", 3),  # another user id
            (LowerPlatform(20180920), 7001, b"s3cret!9", 4),  # wrong password
        ]
        for p, user, password, code in cases:
            await p.connect(host, port)
            assert result(await p.login(user, password)) == code
            assert await p.answer() is None  # and the link closed
            await p.close()
        # 2019: the login's access code must be the header's
        p = LowerPlatform(33000001, v2019=True)
        await p.connect(host, port)
        assert result(await p.login(8001, b"pw2019", access_code=1)) == 2
        await p.close()
    c = gw.server.counters
    # counted as the links' (not logged in), not as the platforms' they claimed to be
    assert c["unauthenticated.unknown_access_code"] == 1
    assert c["unauthenticated.login_refused"] == 4
    assert not [k for k in c if k.startswith(("acme-gps.", "far-away.", "coach-gps."))]
    assert "(claims acme-gps)" in caplog.text
    assert "s3cret" not in caplog.text and "pw2019" not in caplog.text
    assert "BAD_PASSWORD" in caplog.text


async def test_2019_platform(mosquitto, registry: Registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    ts = int(T0.timestamp() * 1000)
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(33000001, v2019=True)
        await p.connect(host, port)
        answer = await p.login(8001, b"pw2019")
        assert result(answer) == 0
        assert answer is not None and answer.header.time_s is not None  # a 2019 header
        await p.positions("苏B·K5678", [gnss_2019(ts, 32.0, 118.8, 95)])
        await p.positions("苏BK5678", [gnss_2019(ts + 1000 * i, 32.0, 118.8, 90) for i in (1, 2)])
        await until(lambda: sum(len(r) for _, r in got) == 3)
        await p.close()
    topic, records = got[0]
    assert topic == "hazardhub/v1/coach-co/vehicles/coach-07/position"
    assert records[0]["ts"] == ts and records[0]["speed_kmh"] == 95


async def test_silent_links_closed(mosquitto, registry: Registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(
        config(),
        registry,
        mosquitto.port,
        tmp_path / "spool",
        login_timeout_s=0.3,
        idle_timeout_s=0.5,
    )
    async with running(gw) as (host, port):
        never = LowerPlatform(20180920, keys=KEYS)
        await never.connect(host, port)
        assert await never.answer() is None  # closed: no login within 0.3 s
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.send(0x1005)
        assert await p.answer() is not None
        assert await p.answer(within_s=3) is None  # silent 0.5 s: closed
        await never.close()
        await p.close()
    assert gw.server.counters["unauthenticated.login_timeout"] == 1
    assert gw.server.counters["acme-gps.idle_closed"] == 1


async def test_a_second_login_replaces_the_first(
    mosquitto, registry: Registry, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with running(gw) as (host, port):
        a, b = LowerPlatform(20180920), LowerPlatform(20180920)
        await a.connect(host, port)
        assert result(await a.login(7001, b"s3cret!8")) == 0
        await b.connect(host, port)
        assert result(await b.login(7001, b"s3cret!8")) == 0
        assert await a.answer() is None
        await b.send(0x1007, b"\x00")  # "my main link broke": counted, nothing else
        await until(lambda: gw.server.counters["acme-gps.disconnect_notice"] == 1)
        await b.send(0x1003, bytes(12))  # logout: answered 0x1004, closed
        bye = await b.answer()
        assert bye is not None and bye.header.msg_id == 0x1004
        assert await b.answer() is None
        await a.close()
        await b.close()
    assert gw.server.counters["acme-gps.replaced"] == 1


def test_platforms_file(tmp_path: Path) -> None:
    f = tmp_path / "jt809.yaml"
    f.write_text(
        "platforms:\n  - {name: a, access_code: 1, user_id: 1, password: '123456789', tenant: t}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="1 to 8 expected") as err:
        load_platforms(f)
    assert "123456789" not in str(err.value)
    f.write_text(
        "platforms:\n"
        "  - {name: a, access_code: 1, user_id: 1, password: x, tenant: t}\n"
        "  - {name: b, access_code: 1, user_id: 2, password: y, tenant: t}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="access_code given twice"):
        load_platforms(f)
    f.write_text(
        "platforms:\n  - {name: a, access_code: 1, user_id: 1, password: x, tenant: t, "
        "allow_from: [192.0.2.0/24]}\n",
        encoding="utf-8",
    )
    p = load_platforms(f).platforms[0]
    assert p.allows("192.0.2.7") and p.allows("::ffff:192.0.2.7") and not p.allows("192.0.3.1")
    assert p.password_matches(b"x\x00\x00\x00\x00\x00\x00\x00") and not p.password_matches(b"y")
    assert "x" not in repr(p.password)


def test_encode_frame_header_sanity() -> None:
    assert encode_frame(Header(0x1005, 1, 1), b"")[0] == 0x5B


async def test_status_in_every_tenant_with_vehicles(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # the hub watches each of jt808_gateways in every tenant with vehicles: the gateway says
    # it is online in each (not only in its platforms' tenants)
    one = config(platforms=[PLATFORMS["platforms"][0]])  # chem-logistics only
    gw = make_gateway(one, registry, mosquitto.port, tmp_path / "spool")
    async with running(gw):
        await until(lambda: gw.presence.online == {"chem-logistics", "coach-co"}, within_s=10)


async def test_warnings_logged_and_counted(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.jt809")
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    t = int(T0.timestamp())
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        info = WarnInfo(0x0002, t, "疲劳驾驶\x07", source=2, info_id=9)
        await p.send(0x1400, WarnMsg("苏AD1234", 2, SubId.WARN_INFO, info.encode()).encode())
        await p.send(0x1400, WarnMsg("苏AD1234", 2, 0x1403, b"").encode())  # not built
        q = LowerPlatform(33000001, v2019=True)
        await q.connect(host, port)
        assert result(await q.login(8001, b"pw2019")) == 0
        info19 = WarnInfo(0x0001, t, "超速", source_platform="32010000001", plate="苏B·K5678")
        await q.send(0x1400, WarnMsg("", 0, SubId.WARN_INFO, info19.encode(True)).encode(True))
        await until(lambda: gw.server.counters["coach-gps.warnings"] == 1)
        await until(lambda: gw.server.counters["acme-gps.unsupported"] == 1)
        await p.close()
        await q.close()
    assert gw.server.counters["acme-gps.warnings"] == 1
    said = [r.getMessage() for r in caplog.records if "warning type" in r.getMessage()]
    assert said == [
        "jt809: acme-gps: warning type 0x0002 of chem-logistics/tanker-01 at "
        "2026-11-30T09:00:00+08:00 (source 2): 疲劳驾驶?",
        "jt809: coach-gps: warning type 0x0001 of coach-co/coach-07 at "
        "2026-11-30T09:00:00+08:00 (source 32010000001): 超速",
    ]


async def test_frames_of_one_read_go_in_one_message(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # a platform forwarding a fleet sends hundreds of messages a second, answered by none: what
    # one read brought is committed at once, a vehicle's records in one array (one fsync, not
    # one a message: 200 messages a second became 4,000)
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool")
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        burst = b""
        for k in range(5):
            fix = gnss_2011(T0 + timedelta(seconds=k), 31.5, 120.3, 60 + k)
            exg = ExgMsg("苏AD1234", 2, SubId.REAL_LOCATION, RealLocation(fix).encode())
            burst += p.frame(0x1200, exg.encode())
        await p.send_raw(burst)
        await until(lambda: got)
        await p.close()
    assert len(got) == 1 and [r["speed_kmh"] for r in got[0][1]] == [60, 61, 62, 63, 64]
    assert gw.server.counters["acme-gps.positions"] == 5


async def test_a_login_again_on_its_link_and_too_many_links(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(config(), registry, mosquitto.port, tmp_path / "spool", max_links=1)
    async with running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        # its answer lost, a platform logs in again on the same link: checked and answered
        assert result(await p.login(7001, b"s3cret!8")) == 0
        assert result(await p.login(7001, b"wrong")) == 4  # ... and refused as any login
        assert await p.answer() is None
        await until(lambda: not gw.server.links)
        one = LowerPlatform(20180920)
        await one.connect(host, port)
        await until(lambda: len(gw.server.links) == 1)
        more = LowerPlatform(20180920)
        await more.connect(host, port)
        assert await more.answer() is None  # a second link: closed at once
        await one.close()
        await more.close()
        await p.close()
    c = gw.server.counters
    assert c["acme-gps.logins"] == 2 and c["acme-gps.login_refused"] == 1
    assert c["unauthenticated.refused_full"] == 1


async def test_a_vehicle_added_while_it_runs_is_found(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    # the configuration the hub runs, followed (hazardhub jt809 --data-dir): a vehicle added
    # through the hub's API is found once the gateway has it, not only after a restart
    added = TWO_TENANTS.replace(
        "      - {id: tanker-02,",
        "      - {id: tanker-09, plate: 苏A·D9999, class: hazmat}\n      - {id: tanker-02,",
    )
    (tmp_path / "after").mkdir()
    after = registry_of(tmp_path / "after", added)
    changed = False

    def follow() -> Registry | None:
        return after if changed else None

    gw = make_gateway(
        config(), registry, mosquitto.port, tmp_path / "spool", follow=follow, follow_every_s=0.1
    )
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        p = LowerPlatform(20180920, keys=KEYS)
        await p.connect(host, port)
        assert result(await p.login(7001, b"s3cret!8")) == 0
        await p.positions("苏AD9999", [gnss_2011(T0, 31.5, 120.3, 60)])
        await until(lambda: gw.server.counters["acme-gps.unknown_vehicle"] == 1)
        changed = True
        server = gw.server
        await until(lambda: not isinstance(server.book.find("chem-logistics", "苏AD9999"), str))
        await p.positions("苏AD9999", [gnss_2011(T0, 31.5, 120.3, 61)])
        await until(lambda: got)
        await p.close()
    assert got[0][0] == "hazardhub/v1/chem-logistics/vehicles/tanker-09/position"


async def test_broker_problems_named_by_the_gateway(caplog: pytest.LogCaptureFixture) -> None:
    # the status connections (shared with the JT/T 808 gateway) say which gateway they are
    import asyncio

    from gateway.jt808.presence import Presence
    from telemetry.topics import TopicLayout

    from services import free_port

    up, stop = asyncio.Event(), asyncio.Event()
    up.set()  # (the uplink connected: then the status connections are tried)
    presence = Presence(
        "127.0.0.1",
        free_port(),  # no broker there
        layout=TopicLayout(),
        tenants=["chem-logistics"],
        gateway="jt809",
        uplink_connected=up,
        uplink_lost=asyncio.Event(),
    )
    task = asyncio.create_task(presence.run(stop))
    try:
        await until(lambda: "broker unreachable" in caplog.text)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert "jt809: status in chem-logistics: broker unreachable" in caplog.text
    assert "jt808 status" not in caplog.text
