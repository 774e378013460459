"""Position envelopes over real Mosquitto: the JT/T 808 gateway's uplink and the simulated fleet
number them per vehicle and send one again unchanged after a cut link (spool, buffer); what
the gateway's spool dropped is the gap in the seqs and its drop report says as many; the hub
judges an envelope delivered twice once, counts a missing seq, keeps its marks across a
restart and dead-letters a malformed envelope with the reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import orjson
import pytest
from positionpayload import numbered, records_of

from gateway.jt808.directory import VehicleRef
from gateway.jt808.uplink import PositionUplink
from gateway.spool import Spool
from hazardhub.hub import Hub, HubSettings
from simulators.fleet import FleetPublisher, SimulatedVehicle
from simulators.relay import UplinkRelay
from simulators.signals import Constant
from telemetry.numbering import Numbering
from telemetry.posenvelope import encode_envelope
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, mine_registry, running_hub
from services import free_port

TOPIC = "hazardhub/v1/acme-chem/vehicles/tanker-01/position"
EPOCH = 1_795_000_000_000


def test_a_session_numbers_each_device_from_zero():
    n = Numbering(1_795_932_000_000)
    assert [n.take("a"), n.take("b"), n.take("a"), n.take("a")] == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        Numbering(-1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rec(ts: int, flags: int = 0) -> dict[str, object]:
    return {
        "ts": ts,
        "lat": 31.62,
        "lon": 120.33,
        "speed_kmh": 40.0,
        "heading_deg": 90.0,
        "alarm_flags": flags,
    }


@asynccontextmanager
async def listening(port: int, *topics: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """What the broker delivers on `topics`, in arrival order, while the block runs."""
    got: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", port) as sub:
        for t in topics:
            await sub.subscribe(t, qos=1)

        async def listen() -> None:
            async for m in sub.messages:
                assert isinstance(m.payload, bytes)
                got.append((str(m.topic), m.payload))

        task = asyncio.create_task(listen())
        try:
            yield got
        finally:
            task.cancel()


def by_vehicle(got: list[tuple[str, bytes]]) -> dict[str, dict[int, list[bytes]]]:
    """vehicle -> seq -> the payloads that came with it (more than one: sent again)."""
    out: dict[str, dict[int, list[bytes]]] = {}
    for topic, payload in got:
        if topic.endswith("/position"):
            num = numbered(payload)
            assert num is not None, payload  # every one in an envelope
            out.setdefault(topic.split("/")[-2], {}).setdefault(num[1], []).append(payload)
    return out


def sent_once_each(seqs: dict[int, list[bytes]]) -> None:
    """A seq that came twice came unchanged (sent again, not numbered again)."""
    for copies in seqs.values():
        assert len(set(copies)) == 1, copies


async def _uplink_run(
    mosquitto_port: int, spool: Spool, body: Callable[[PositionUplink, UplinkRelay], Any]
) -> list[tuple[str, bytes]]:
    relay = UplinkRelay("127.0.0.1", mosquitto_port)
    await relay.start()
    up = PositionUplink(
        "127.0.0.1", relay.port, layout=TopicLayout(), spool=spool, clock_ms=now_ms, epoch=EPOCH
    )
    async with listening(
        mosquitto_port, "hazardhub/v1/+/vehicles/+/position", "hazardhub/v1/+/gateways/+/dropped"
    ) as got:
        stop = asyncio.Event()
        task = asyncio.create_task(up.run(stop))
        try:
            await body(up, relay)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await asyncio.sleep(0.3)
    await relay.stop()
    return got


REFS = (VehicleRef("acme-chem", "tanker-01"), VehicleRef("acme-chem", "tanker-02"))


def sync(probe: Callable[[], Any]) -> Callable[[], Any]:
    async def probed() -> Any:
        return probe()

    return probed


async def test_the_jt808_uplink_numbers_per_vehicle_and_keeps_the_numbers_across_an_outage(
    mosquitto, tmp_path
):
    spool = Spool(tmp_path / "spool.db", clock_ms=now_ms)

    async def body(up: PositionUplink, relay: UplinkRelay) -> None:
        t = now_ms()
        for k in range(4):
            for ref in REFS:
                up.submit(ref, (rec(t + k),), now_ms())
            await asyncio.sleep(0.05)
        await eventually(sync(lambda: len(spool) == 0), 10, "the first ones sent")
        relay.cut()
        for k in range(4, 10):  # committed while the broker is away, sent after
            for ref in REFS:
                up.submit(ref, (rec(t + k),), now_ms())
        await asyncio.sleep(0.5)
        assert len(spool) > 0
        relay.restore()
        await eventually(sync(lambda: len(spool) == 0), 15, "the spool sent")

    got = await _uplink_run(mosquitto.port, spool, body)
    spool.close()
    seqs = by_vehicle(got)
    assert set(seqs) == {"tanker-01", "tanker-02"}
    for vehicle, numbers in seqs.items():
        assert sorted(numbers) == list(range(10)), (vehicle, sorted(numbers))
        sent_once_each(numbers)
        first = records_of(numbers[0][0])[0]["ts"]
        for seq, (payload, *_) in numbers.items():
            assert numbered(payload) == (EPOCH, seq)
            assert [r["ts"] for r in records_of(payload)] == [first + seq]


async def test_what_the_spool_dropped_is_a_gap_in_the_seqs_and_its_drop_report_says_so(
    mosquitto, tmp_path
):
    # room for about ten envelopes of one position: the oldest of the 40 go
    spool = Spool(tmp_path / "spool.db", clock_ms=now_ms, max_bytes=1500)

    async def body(up: PositionUplink, relay: UplinkRelay) -> None:
        relay.cut()
        t = now_ms()
        for k in range(20):
            for ref in REFS:
                up.submit(ref, (rec(t + k),), now_ms())
        relay.restore()
        await eventually(sync(lambda: len(spool) == 0), 15, "the spool sent")
        await eventually(sync(lambda: not spool.drop_reports()), 15, "the drop reports sent")

    got = await _uplink_run(mosquitto.port, spool, body)
    spool.close()
    reports = {orjson.loads(p)["device"]: orjson.loads(p) for t, p in got if t.endswith("/dropped")}
    seqs = by_vehicle(got)
    assert set(reports) == {"acme-chem/tanker-01", "acme-chem/tanker-02"}
    for vehicle, numbers in seqs.items():
        kept = sorted(numbers)
        # the newest kept, in one run up to the last; the oldest dropped, each counted
        assert kept == list(range(kept[0], 20)) and kept[0] > 0
        assert reports[f"acme-chem/{vehicle}"]["batches"] == kept[0]
        assert reports[f"acme-chem/{vehicle}"]["site"] == "vehicles"


async def test_the_fleet_sends_an_envelope_again_unchanged_after_a_cut_link(mosquitto):
    relay = UplinkRelay("127.0.0.1", mosquitto.port)
    await relay.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    route = ((31.60, 120.30), (31.62, 120.40))
    vehicles = [
        SimulatedVehicle("acme", f"truck-{k}", route, Constant(60.0), seed=k) for k in (0, 1)
    ]
    fleet = FleetPublisher(
        vehicles,
        host="127.0.0.1",
        port=relay.port,
        layout=TopicLayout(),
        clock=lambda: loop.time() - t0,
        start_wall_ms=1_800_000_000_000,
        period_s=0.05,
        backfill_max=10,
        epoch=EPOCH,
    )
    async with listening(mosquitto.port, "hazardhub/v1/+/vehicles/+/position") as got:
        stop = asyncio.Event()
        task = asyncio.create_task(fleet.run(stop))
        await asyncio.sleep(0.6)
        relay.cut(for_s=1.5)
        await asyncio.sleep(2.2)
        stop.set()
        await task
        await asyncio.sleep(0.3)
    await relay.stop()
    seqs = by_vehicle(got)
    assert set(seqs) == {"truck-0", "truck-1"}
    assert fleet.dropped == 0
    for numbers in seqs.values():
        assert sorted(numbers) == list(range(len(numbers)))  # none lost, none numbered twice
        sent_once_each(numbers)
        assert all(numbered(copies[0]) == (EPOCH, s) for s, copies in numbers.items())
        # the fixes in seq order are the fixes in time order, each once
        stamps = [r["ts"] for s in sorted(numbers) for r in records_of(numbers[s][0])]
        assert stamps == sorted(set(stamps))
    assert sum(len(records_of(c[0])) for n in seqs.values() for c in n.values()) == fleet.sent


def _hub(tmp_path: Any, mqtt_port: int) -> Hub:
    return Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mqtt_port, api_port=free_port()),
    )


async def test_the_hub_judges_an_envelope_once_counts_what_is_missing_across_a_restart(
    mosquitto, tmp_path
):
    async def publish(*payloads: bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
            for p in payloads:
                await mq.publish(TOPIC, p, qos=1)

    def env(seq: int, *records: dict[str, object]) -> bytes:
        return encode_envelope(EPOCH, seq, orjson.dumps(records))

    t = now_ms() - 10_000
    raised = env(0, rec(t, flags=1))  # the emergency bit: a terminal_emergency alarm
    bad = {
        b'{"epoch": 5, "records": []}': "bad_envelope: an envelope needs seq",
        b'{"epoch": -5, "seq": 1, "records": []}': "bad_envelope: epoch must be an integer 0",
        b'{"epoch": 5, "seq": 1, "records": {}}': "bad_envelope: records must be an array",
        b'{"epoch": 5, "seq": 1, "records": [], "n": 1}': "bad_envelope: unknown envelope key",
    }
    async with (
        listening(mosquitto.port, "hazardhub/v1/acme-chem/alarms/#") as alarms,
        running_hub(_hub(tmp_path, mosquitto.port)) as hub,
    ):
        m = hub.metrics

        async def judged(n: int) -> bool:
            return m.get("hazardhub_positions_total") >= n

        await publish(raised)
        await eventually(lambda: judged(1), 15, "seq 0 judged")
        await publish(env(1, rec(t + 1000, flags=0)))  # cleared
        await eventually(lambda: judged(2), 15, "seq 1 judged")
        await publish(raised)  # delivered again (a gateway's re-send, a broker's redelivery)

        async def duplicate() -> bool:
            return m.get("hazardhub_positions_duplicate_total") == 1

        await eventually(duplicate, 15, "the duplicate counted")
        await publish(env(3, rec(t + 3000)))  # seq 2 never comes

        async def gap() -> float:
            return m.get("hazardhub_position_batches_missing_total")

        assert await eventually(gap, 15, "the gap counted") == 1
        await publish(orjson.dumps(rec(t + 4000)), *bad)  # a bare one; malformed ones

        async def letters() -> list[str] | None:
            got = [d.reason for d in hub.statedb.dead_letters(limit=100)]
            return got if len(got) >= len(bad) else None

        reasons = await eventually(letters, 15, "the dead letters")
        assert m.get("hazardhub_positions_unsequenced_total") == 1
        assert m.get("hazardhub_telemetry_batches_missing_total") == 0  # a sibling of its own
        await asyncio.sleep(1.0)  # the alarms published
    for said in bad.values():
        assert sum(r.startswith(said) for r in reasons) == 1, (said, reasons)
    assert m.get("hazardhub_messages_rejected_total", reason="bad_envelope") == len(bad)
    assert m.get("hazardhub_positions_total") == 4  # 0, 1, 3 and the bare one: not 0 again
    events = [orjson.loads(p) for _, p in alarms]
    kinds = [e["kind"] for e in events if e["side"] == "terminal_emergency"]
    assert kinds == ["raised", "cleared"], events
    # after a restart: seq 4 and 5 went while the hub was away
    async with running_hub(_hub(tmp_path, mosquitto.port)) as hub:
        await publish(env(6, rec(t + 6000)))

        async def gap_after() -> float:
            return hub.metrics.get("hazardhub_position_batches_missing_total")

        assert await eventually(gap_after, 15, "the gap across the restart") == 2
