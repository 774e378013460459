"""A terminal back from a blind area (a tunnel) sends a live 0x0200 first and its blind-area
backlog (0x0704) after it; the hub judges no position older than one it judged. The gateway
holds the connection's positions a short while and hands them on in time order
(`gateway.jt808.hold`): the pure hold with a clock passed in, then over real sockets (simulated
terminals -> `Jt808Gateway` -> a real Mosquitto -> a subscriber, and the hub's alarms)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiomqtt
import orjson
import pytest
from jt808_helpers import CST, ONE_TANKER, ROOT, T0, registry_of, until
from positionpayload import records_of

from gateway.jt808 import HoldPolicy, Jt808Gateway
from gateway.jt808.hold import Hold, Source
from simulators.jt808 import Fix, Jt808Terminal
from telemetry.jt808 import Alarm
from telemetry.registry import Registry

from e2e_helpers import HubAccess, eventually, get_json, interrupt, running_hub

TOPIC = "hazardhub/v1/chem-logistics/vehicles/tanker-01/position"


def rec(ts: int, acc: bool = True, flags: int = 0) -> dict[str, object]:
    return {"ts": ts, "lat": 31.0, "lon": 121.0, "acc_on": acc, "alarm_flags": flags}


def times(parts: tuple[bytes, ...]) -> list[int]:
    return [orjson.loads(p)["ts"] for p in parts]


# --- the hold alone, time passed in


def test_a_live_fix_waits_for_the_backlog_and_goes_after_it():
    hold = Hold(HoldPolicy(live_s=15, quiet_s=5))
    hold.arm()
    live = hold.take([rec(1_000_000)], Source.LIVE, now_ms=0)
    assert live.held and hold.deadline == 15_000  # the bound
    blind = hold.take([rec(640_000), rec(650_000)], Source.BLIND, now_ms=300)
    assert blind.held and hold.deadline == 5_300  # quiet after the backlog
    hold.take([rec(660_000)], Source.BLIND, now_ms=900)
    assert hold.due(5_899) is None
    out = hold.due(5_900)
    assert out is not None and (out.why, out.reordered, out.late) == ("quiet", 3, 0)
    assert times(out.parts) == [640_000, 650_000, 660_000, 1_000_000] and out.kept == ()
    assert out.received_ms == 0
    # the hold is over: the next positions pass; one older than those handed on is late
    passed = hold.take([rec(1_010_000)], Source.LIVE, 6_000)
    assert not passed.held and passed.late == 0 and hold.deadline is None
    late = hold.take([rec(670_000), rec(1_020_000)], Source.BLIND, 7_000)
    assert not late.held and late.late == 1


def test_the_bound_and_an_urgent_bit_end_a_hold_and_nothing_is_held_without_arming():
    policy = HoldPolicy(live_s=15, quiet_s=5, urgent_s=3)
    hold = Hold(policy)
    assert not hold.take([rec(1)], Source.LIVE, 0).held  # no authentication seen: as it comes
    hold.arm()
    hold.take([rec(100_000)], Source.LIVE, 1_000)
    out = hold.due(16_000)
    assert out is not None and out.why == "bound" and times(out.parts) == [100_000]
    hold.arm()
    hold.take([rec(200_000)], Source.LIVE, 20_000)
    hold.take([rec(210_000, flags=int(Alarm.EMERGENCY))], Source.LIVE, 21_000)
    assert hold.deadline == 24_000
    out = hold.due(24_000)
    assert out is not None and out.why == "urgent" and times(out.parts) == [200_000, 210_000]
    off = Hold(HoldPolicy(live_s=0))
    off.arm()
    assert not off.take([rec(1)], Source.LIVE, 0).held


def test_a_full_hold_hands_on_its_oldest_and_keeps_the_live_ones():
    hold = Hold(HoldPolicy(max_positions=10))
    hold.arm()
    hold.take([rec(1_000_000)], Source.LIVE, 0)
    taken = hold.take([rec(t * 1000) for t in range(20, 0, -1)], Source.BLIND, 10)
    assert taken.held and taken.full is not None and taken.full.why == "full"
    assert times(taken.full.parts) == [t * 1000 for t in range(1, 17)]
    assert times(taken.full.kept) == [1_000_000, 20_000, 19_000, 18_000, 17_000]
    assert len(hold) == 5
    out = hold.flush()
    assert out is not None and out.why == "closed"
    assert times(out.parts) == [17_000, 18_000, 19_000, 20_000, 1_000_000]
    assert hold.flush() is None


def test_a_silence_after_a_fix_with_acc_on_opens_a_hold_not_a_parked_one():
    hold = Hold(HoldPolicy(gap_s=90))
    assert not hold.take([rec(0)], Source.LIVE, 0).held
    assert not hold.take([rec(60_000)], Source.LIVE, 60_000).held
    tunnel = hold.take([rec(420_000)], Source.LIVE, 420_000)
    assert tunnel.held and tunnel.opened == "gap"
    hold.flush()
    hold.take([rec(430_000, acc=False)], Source.LIVE, 430_000)
    assert not hold.take([rec(3_000_000)], Source.LIVE, 3_000_000).held  # parked, ACC off
    # a backlog's own silence opens nothing: it is older than what came
    assert not hold.take([rec(4_000_000)], Source.BLIND, 3_000_100).held


# --- over real sockets


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, ONE_TANKER)


class Subscriber:
    """The position arrays on the broker, each with the loop time it came."""

    def __init__(self) -> None:
        self.got: list[tuple[float, list[int]]] = []
        self.records: list[dict[str, object]] = []

    @property
    def ts(self) -> list[int]:
        return [t for _, arr in self.got for t in arr]

    async def run(self, port: int, ready: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with aiomqtt.Client("127.0.0.1", port, identifier="hold-test-sub") as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for msg in client.messages:
                records = records_of(bytes(msg.payload))  # type: ignore[arg-type]
                self.records.extend(records)
                self.got.append((loop.time(), [r["ts"] for r in records]))


@contextlib.asynccontextmanager
async def gateway(
    registry: Registry, broker: int, spool: Path, hold: HoldPolicy
) -> AsyncIterator[tuple[Jt808Gateway, Subscriber, asyncio.Event]]:
    gw = Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", broker),
        spool_dir=spool,
        hold=hold,
    )
    sub, ready, stop = Subscriber(), asyncio.Event(), asyncio.Event()
    sub_task = asyncio.create_task(sub.run(broker, ready))
    await asyncio.wait_for(ready.wait(), 5)
    task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        yield gw, sub, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await asyncio.sleep(0.3)  # what the drain sent reaches the subscriber
        sub_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub_task


def tunnel_fix(i: int, speed: float = 90.0, alarm: int = 0) -> Fix:
    """Fix i of a tanker every 10 s (i 0-35 in the tunnel, 36 the live fix after it)."""
    return Fix(T0 + i * 10_000, 31.2 + i * 0.00025, 121.4, speed, 90, 12, alarm=alarm)


async def test_a_blind_area_sent_after_the_live_fix_is_published_before_it(
    mosquitto, registry, tmp_path
):
    """The safety manager's tanker: 6 minutes in a tunnel at 90 km/h, the emergency button
    pressed there; back in coverage it sends a live fix, then the tunnel in two 0x0704, the
    first newest first. The hub gets them in time order, the live fix last; the terminal's
    answers are not delayed."""
    policy = HoldPolicy(live_s=10, quiet_s=1.0)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, _):
        host, port = gw.server.address  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        async with Jt808Terminal(host, port, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            sos = int(Alarm.EMERGENCY)
            start = loop.time()
            await terminal.report(tunnel_fix(36, 60.0, alarm=sos))  # the bit stays till confirmed
            assert loop.time() - start < 2.0, "the live fix is answered at once, not held"
            tunnel = [tunnel_fix(i, alarm=sos if i >= 20 else 0) for i in range(36)]
            await terminal.backfill(tunnel[:20][::-1])
            await terminal.backfill(tunnel[20:])
            sent = loop.time()
            assert sub.got == []
            await until(lambda: len(sub.ts) == 37)
        assert sub.ts == [T0 + i * 10_000 for i in range(37)]
        assert len(sub.got) == 1 and sub.got[0][0] >= sent + 0.9  # after a quiet 1 s
        assert [r["speed_kmh"] for r in sub.records[-2:]] == [90.0, 60.0]
        counters = gw.server.counters
        assert counters["held"] == 37 and counters["reordered"] == 36
        assert counters["hold_quiet"] == 1 and counters["late_positions"] == 0
        assert gw.uplink.published == 1


async def test_a_backlog_longer_than_the_bound_is_published_late_and_counted(
    mosquitto, registry, tmp_path
):
    """What is held goes at the bound; the backlog that comes after it is older than the live
    fix handed on: published (the hub stores it, judges none) and counted."""
    policy = HoldPolicy(live_s=1.0, quiet_s=5)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, _):
        host, port = gw.server.address  # type: ignore[misc]
        async with Jt808Terminal(host, port, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            await terminal.report(tunnel_fix(36, 60.0))
            for k in range(6):  # a slow drain: 6 fixes every 0.3 s
                await terminal.backfill([tunnel_fix(6 * k + j) for j in range(6)])
                await asyncio.sleep(0.3)
            await until(lambda: len(sub.ts) == 37)
        counters = gw.server.counters
        assert counters["hold_bound"] == 1 and counters["hold_quiet"] == 0
        first = sub.got[0][1]
        assert first[-1] == T0 + 360_000 and first == sorted(first)  # the backlog so far, live
        late = 36 - (len(first) - 1)
        assert 0 < late < 36 and counters["late_positions"] == late
        assert sorted(sub.ts) == [T0 + i * 10_000 for i in range(37)]


async def test_an_emergency_is_held_least(mosquitto, registry, tmp_path):
    policy = HoldPolicy(live_s=10, quiet_s=5, urgent_s=0.5)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, _):
        host, port = gw.server.address  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        async with Jt808Terminal(host, port, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            start = loop.time()
            await terminal.report(tunnel_fix(36, 60.0, alarm=int(Alarm.EMERGENCY)))
            await terminal.backfill([tunnel_fix(i) for i in range(36)])
            await until(lambda: len(sub.ts) == 37)
        assert 0.4 < sub.got[0][0] - start < 4.0  # not 5 s (quiet) nor 10 (the bound)
        assert sub.ts == [T0 + i * 10_000 for i in range(37)]
        assert gw.server.counters["hold_urgent"] == 1


async def test_held_positions_go_when_the_terminal_goes_or_the_gateway_stops(
    mosquitto, registry, tmp_path
):
    policy = HoldPolicy(live_s=60)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, stop):
        host, port = gw.server.address  # type: ignore[misc]
        terminal = Jt808Terminal(host, port, "13800000001", "苏A·D1234")
        await terminal.connect()
        await terminal.login()
        await terminal.report(tunnel_fix(0))
        await asyncio.sleep(0.3)
        assert sub.got == [] and gw.server.counters["held"] == 1
        await terminal.close()  # the link drops: what it held goes at once
        await until(lambda: sub.ts == [T0])
        code = terminal.auth_code
        again = Jt808Terminal(host, port, "13800000001")
        await again.connect()
        assert (await again.authenticate(code)).result == 0
        await again.report(tunnel_fix(1))
        await asyncio.sleep(0.3)
        assert sub.ts == [T0]
        stop.set()  # the gateway stops: handed on, and sent in the uplink's drain
        await until(lambda: sub.ts == [T0, T0 + 10_000])
        await again.close()
    assert gw.server.counters["hold_closed"] == 2
    assert len(gw.spool) == 0 and gw.uplink.published == 2


async def test_a_silence_on_an_open_connection_opens_a_hold(mosquitto, registry, tmp_path):
    """A tunnel short enough for the TCP connection to live through it: no authentication,
    but a fix 6 minutes after the last one (ACC on) may be followed by a backlog."""
    policy = HoldPolicy(live_s=5, quiet_s=1.0, gap_s=90)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, _):
        host, port = gw.server.address  # type: ignore[misc]
        async with Jt808Terminal(host, port, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            await terminal.backfill([tunnel_fix(0)])  # ends the authentication's hold soon
            await terminal.report(tunnel_fix(1))
            await until(lambda: sub.ts == [T0, T0 + 10_000])
            await terminal.report(tunnel_fix(2))  # not held
            await until(lambda: len(sub.ts) == 3, 2.0)  # not the bound, 5 s
            await terminal.report(tunnel_fix(38))  # 6 min later
            await terminal.backfill([tunnel_fix(i) for i in range(3, 38)])
            await until(lambda: len(sub.ts) == 39)
        assert sub.ts == [T0 + i * 10_000 for i in range(39)]
        assert gw.server.counters["hold_after_gap"] == 1
        assert gw.server.counters["late_positions"] == 0


async def test_a_long_backlog_holds_a_bounded_number_of_positions(mosquitto, registry, tmp_path):
    policy = HoldPolicy(live_s=10, quiet_s=2.0, max_positions=10)
    async with gateway(registry, mosquitto.port, tmp_path / "spool", policy) as (gw, sub, _):
        host, port = gw.server.address  # type: ignore[misc]
        async with Jt808Terminal(host, port, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            await terminal.report(tunnel_fix(36, 60.0))
            for k in range(4):
                await terminal.backfill([tunnel_fix(9 * k + j) for j in range(9)])
            await until(lambda: len(sub.ts) == 37)
        assert sub.ts == [T0 + i * 10_000 for i in range(37)]
        assert gw.server.counters["hold_full"] >= 3 and gw.server.counters["late_positions"] == 0


def _gateway_process(cfg: Path, broker: int, spool: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "jt808", "-c", str(cfg)),
            *("--listen", "127.0.0.1:0", "--broker", f"127.0.0.1:{broker}"),
            *("--spool-dir", str(spool)),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _listening(log: Path) -> tuple[str, int] | None:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines()[::-1]:
        if "jt808: listening on " in line:
            host, port = line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)
            return host, int(port)
    return None


@pytest.mark.slow
async def test_a_gateway_killed_while_holding_hands_them_on_at_its_next_start(mosquitto, tmp_path):
    """Acknowledged means kept: a position held (answered 0x8001, not yet published) when the
    gateway is killed (kill -9) is published by the next one, in time order."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(ONE_TANKER, encoding="utf-8")
    spool, log = tmp_path / "spool", tmp_path / "jt808.log"
    sub, ready = Subscriber(), asyncio.Event()
    sub_task = asyncio.create_task(sub.run(mosquitto.port, ready))
    await asyncio.wait_for(ready.wait(), 5)
    proc = _gateway_process(cfg, mosquitto.port, spool, log)
    try:
        where = await eventually(lambda: asyncio.sleep(0, _listening(log)), 20, "listening")
        async with Jt808Terminal(*where, "13800000001", "苏A·D1234") as terminal:
            await terminal.login()
            await terminal.report(tunnel_fix(36, 60.0))  # held (15 s by default)
            await terminal.backfill([tunnel_fix(i) for i in (2, 1, 0)])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert sub.got == []
        log.write_text("", encoding="utf-8")
        proc = _gateway_process(cfg, mosquitto.port, spool, log)
        await eventually(lambda: asyncio.sleep(0, len(sub.ts) == 4), 20, "the held positions")
        assert sub.ts == [T0, T0 + 10_000, T0 + 20_000, T0 + 360_000]
        assert "4 positions held by a gateway that stopped" in log.read_text(encoding="utf-8")
    finally:
        interrupt(proc)
        sub_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub_task


# --- the hub's alarms


@pytest.mark.slow
async def test_the_hub_judges_the_tunnel(mosquitto, tmp_path):
    """End to end: the tunnel's speeding and its emergency raise the hub's alarms at the times
    they happened (handed on after the live fix, the hub stored them and judged none)."""
    registry = registry_of(tmp_path, ONE_TANKER)
    access = HubAccess()
    gw = Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", mosquitto.port),
        spool_dir=tmp_path / "spool",
        hold=HoldPolicy(live_s=10, quiet_s=1.0),
    )
    t0 = (int(datetime.now(CST).timestamp()) - 600) * 1000

    def fix(i: int, speed: float, alarm: int = 0) -> Fix:
        return Fix(t0 + i * 10_000, 31.2 + i * 0.00025, 121.4, speed, 90, 12, alarm=alarm)

    sos = int(Alarm.EMERGENCY)
    stop = asyncio.Event()
    async with running_hub(access.hub(registry, tmp_path / "hub", mosquitto.port)):
        task = asyncio.create_task(gw.run(stop))
        client = access.client()
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            host, port = gw.server.address  # type: ignore[misc]
            terminal = Jt808Terminal(host, port, "13800000001", "苏A·D1234")
            await terminal.connect()
            await terminal.login()
            for i in range(6):  # before the tunnel, 50 km/h
                await terminal.report(fix(i, 50.0))
            await terminal.close()  # into the tunnel: the link drops
            tunnel = [fix(i, 90.0, sos if i >= 20 else 0) for i in range(6, 42)]
            await terminal.connect()
            await terminal.authenticate()
            await terminal.report(fix(42, 60.0, sos))  # live first, the bit still set
            await asyncio.sleep(1.5)  # then the backlog (the hub judged the live fix meanwhile)
            await terminal.backfill(tunnel[:18])
            await terminal.backfill(tunnel[18:])

            async def alarm(kind: str) -> dict[str, object] | None:
                rows = await get_json(client, "/api/v1/alarms", kind=kind)
                return rows[0] if rows else None

            sos_alarm = await eventually(lambda: alarm("terminal_emergency"), 20, "the SOS")
            assert sos_alarm["started_ts"] == t0 + 200_000  # pressed in the tunnel
            speeding = await eventually(lambda: alarm("above"), 20, "the tunnel's speeding")
            assert speeding["started_ts"] == t0 + 60_000
            track = await get_json(
                client, "/api/v1/vehicles/tanker-01/track", start=t0 - 1, end=t0 + 430_000
            )
            assert [p["ts"] for p in track] == [t0 + i * 10_000 for i in range(43)]
            await terminal.close()
        finally:
            await client.aclose()
            stop.set()
            await asyncio.wait_for(task, 10)


def test_a_blind_area_larger_than_the_hub_takes_in_one_array_goes_in_several(tmp_path):
    """helper-139's terminal uploaded 12,000 positions in one 0x0704: answered as taken, sent
    as one array of 1.5 MB, refused whole by the hub (at most 10,000 records): the terminal had
    deleted them. The gateway commits them as arrays of at most ARRAY_MAX, in one transaction,
    and so releases a held backlog."""
    from gateway.jt808.directory import VehicleRef
    from gateway.jt808.hold import Release
    from gateway.jt808.uplink import ARRAY_MAX, PositionUplink
    from gateway.spool import Spool
    from telemetry.topics import TopicLayout

    spool = Spool(tmp_path / "spool.db", clock_ms=lambda: 0)
    up = PositionUplink("127.0.0.1", 1, layout=TopicLayout(), spool=spool, clock_ms=lambda: 0)
    ref = VehicleRef("chem", "tanker-01")
    records = tuple({"ts": k, "lat": 32.0, "lon": 118.0} for k in range(2 * ARRAY_MAX + 7))
    up.submit(ref, records, 0)
    sent = spool.peek(100)
    assert [b.readings for b in sent] == [ARRAY_MAX, ARRAY_MAX, 7]
    assert [r["ts"] for b in sent for r in records_of(b.payload)] == list(range(len(records)))
    assert len({b.seq for b in sent}) == 3
    for b in sent:
        spool.ack(b)
    parts = [orjson.dumps(r) for r in records]
    up.hold("k", ref, parts, 0)
    up.release("k", ref, Release(tuple(parts), (), "full", 0, 0, 0))
    assert [b.readings for b in spool.peek(100)] == [ARRAY_MAX, ARRAY_MAX, 7]
    spool.close()
