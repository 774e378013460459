"""The JT/T 808 gateway over real sockets: simulated terminals -> `Jt808Gateway` -> a real
Mosquitto -> the JSON records on the position topics, which the hub's position decoder accepts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from jt808_helpers import (
    T0,
    TWO_TENANTS,
    fix,
    make_gateway,
    positions,
    registry_of,
    running,
    until,
)

from simulators.jt808 import Jt808Terminal, TerminalError
from telemetry.jt808 import (
    Alarm,
    DriverIdentity,
    Header,
    PlatformResponse,
    RegisterResponse,
    encode_frame,
)
from telemetry.registry import Registry

SECRET = b"test-secret-0123456789"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, TWO_TENANTS)


async def test_terminals_to_broker(mosquitto, registry: Registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # each message as it comes (holding: test_jt808_hold.py)
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool", secret=SECRET)
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        # a 2013 terminal configured by phone number; a 2019 one found by its plate
        a = Jt808Terminal(host, port, "013800000001", "苏A·D1234")
        b = Jt808Terminal(host, port, "0000000013900000002", "苏A·D5678", v2019=True)
        c = Jt808Terminal(host, port, "013912344329", "whatever")
        # b has an IC card reader with a driver's card in: asked for it (0x8702) at its
        # authentication, it says the driver (0x0702), and its positions carry him
        b.card = DriverIdentity(
            1,
            "250301075500",
            0,
            "李四",
            "320100199001010011",
            "南京市交通局",
            "20300101",
            "320100199001010011",
        )
        for t in (a, b, c):
            await t.connect()
            await t.login()
        # positions before authentication are refused (a fresh connection of a)
        async with Jt808Terminal(host, port, "013800000001") as early:
            answer = await early.report(fix(0))
            assert answer is not None and answer.result == PlatformResponse.FAILED
        # an unknown plate is refused with "vehicle not in the database"
        async with Jt808Terminal(host, port, "013700000000", "粤Z99999") as stranger:
            assert (await stranger.register()).result == RegisterResponse.NO_VEHICLE

        answer = await a.report(fix(0, mileage_km=1234.5, signal=25, satellites=11))
        assert answer is not None and (answer.ack_msg_id, answer.result) == (0x0200, 0)
        assert (await a.heartbeat()).result == 0
        await a.backfill([fix(3), fix(1), fix(2)])  # blind-area backfill: in time order
        # terminal b sends garbage, a frame with a bad check code, and a bad body ...
        await b.send_raw(b"\x00\x01garbage")
        bad = bytearray(encode_frame(Header(0x0200, 999, b.phone, 1), b"\x00" * 28))
        bad[-2] ^= 0x55
        await b.send_raw(bytes(bad))
        await b.send_raw(encode_frame(Header(0x0200, 1000, b.phone, 1), b"\x00" * 5))
        # ... while a and c go on undisturbed
        await c.report(fix(5, alarm=int(Alarm.EMERGENCY | Alarm.OVERSPEED)))
        answer = await b.report(fix(7))
        assert answer is not None and answer.result == 0
        await a.report(fix(8))

        await until(lambda: len(got) == 5)
        by_vehicle: dict[str, list[list[dict[str, object]]]] = {}
        for topic, records in got:
            by_vehicle.setdefault(topic, []).append(records)
        ta = "hazardhub/v1/chem-logistics/vehicles/tanker-01/position"
        tb = "hazardhub/v1/chem-logistics/vehicles/tanker-02/position"
        tc = "hazardhub/v1/coach-co/vehicles/coach-07/position"
        assert [[r["ts"] for r in recs] for recs in by_vehicle[ta]] == [
            [T0],
            [T0 + 10_000, T0 + 20_000, T0 + 30_000],
            [T0 + 80_000],
        ]
        first = by_vehicle[ta][0][0]
        assert first == {
            "ts": 1740787200000,  # 2025-03-01 08:00:00 GMT+8 = 00:00:00 UTC
            "lat": 31.2,
            "lon": 121.4,
            "speed_kmh": 60.0,
            "heading_deg": 90,
            "acc_on": True,
            "alarm_flags": 0,
            "alt_m": 12,
        }
        assert by_vehicle[tb] == [[{**by_vehicle[tb][0][0], "ts": T0 + 70_000}]]
        assert by_vehicle[tb][0][0]["driver_id"] == "320100199001010011"
        assert "driver_id" not in first  # a has no card reader: it answered 0x8702 with 3
        assert by_vehicle[tc][0][0]["alarm_flags"] == 3

        counters = gw.server.counters
        assert counters["bad_frame"] == 2 and counters["bad_body"] == 1
        assert counters["not_authenticated"] == 1 and counters["unknown_terminal"] == 1
        assert counters["positions"] == 7 and counters["internal_error"] == 0

        # the platform confirms c's alarms (0x8203); the terminal answers 0x0001 (a and c
        # answered the driver request 0x8702 so, too: not supported)
        await until(lambda: counters["terminal_acks"] == 2)
        assert counters["driver_card_in"] == 1
        assert gw.server.confirm_alarm("coach-co", "coach-07", 0, int(Alarm.EMERGENCY))
        await until(lambda: counters["terminal_acks"] == 3)
        assert [(m.alarm_serial, m.alarm_type) for m in c.confirmations] == [(0, 1)]
        assert not gw.server.confirm_alarm("chem-logistics", "no-such", 0, 1)

        # re-connecting with the known auth code needs no new registration
        code = a.auth_code
        await a.close()
        a2 = Jt808Terminal(host, port, "013800000001")
        await a2.connect()
        assert (await a2.authenticate(code)).result == 0
        for t in (a2, b, c):
            await t.close()
    assert gw.uplink.published == 5
    # a publish the broker refuses is counted with the server's counters (and reported)
    assert gw.uplink.counters is gw.server.counters


async def test_idle_terminal_is_closed(mosquitto, registry: Registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(
        registry, mosquitto.port, tmp_path / "spool", secret=SECRET, idle_timeout_s=0.4, hold=None
    )
    async with running(gw) as (host, port):
        quiet = Jt808Terminal(host, port, "013800000001")
        chatty = Jt808Terminal(host, port, "013912344329")
        for t in (quiet, chatty):
            await t.connect()
            await t.login()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not quiet.closed.is_set():
            assert loop.time() - start < 3
            await chatty.heartbeat()
            await asyncio.sleep(0.1)
        assert loop.time() - start >= 0.3
        assert not chatty.closed.is_set()
        assert gw.server.counters["idle_closed"] == 1
        with pytest.raises((TerminalError, ConnectionError, OSError)):
            await quiet.heartbeat()
        await quiet.close()
        await chatty.close()
