"""The chaos run of issue 10: its accounting (pure, fast), the GPS recorder's buffer against a
real mosquitto restarted under it, and the short form end to end (slow: mosquitto, influxd, the
simulator, the recorders, two gateways and two hubs as processes, ~100 s)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from chaos.account import account_alarms, account_positions, account_readings, catch_up_ms
from chaos.collect import AlarmEvent, Position, Published
from chaos.procs import Proc, free_port, mosquitto
from chaos.recorder import Uplink

ROOT = Path(__file__).resolve().parent.parent
SENSORS = {("d", "p"): "s", ("d", "q"): "s2"}


def _batches() -> dict[tuple[str, int, int], Published]:
    return {
        ("d", 1, 0): Published([("p", 100), ("q", 100), ("faults", 100)]),
        ("d", 1, 1): Published([("p", 200), ("q", 200)], deliveries=2),
        ("d", 2, 0): Published([("p", 300), ("q", 300)]),
    }


def test_every_published_reading_stored_once_is_clean():
    rows = [("s", 100, 1, 0), ("s2", 100, 1, 0), ("s", 200, 1, 1), ("s2", 200, 1, 1)]
    rows += [("s", 300, 2, 0), ("s2", 300, 2, 0)]
    acc = account_readings(_batches(), SENSORS, rows)
    assert (acc.sent, acc.stored, acc.lost, acc.duplicated, acc.unexpected) == (6, 6, 0, 0, 0)
    assert (acc.epochs, acc.batch_redeliveries, acc.seq_gaps) == (2, 1, 0)


def test_missing_restamped_and_gapped_readings_are_counted():
    batches = _batches()
    batches[("d", 2, 2)] = Published([("p", 500)])  # seq 1 of epoch 2 never published
    rows = [("s", 100, 1, 0), ("s2", 100, 1, 0), ("s", 200, 1, 1)]  # s2 at 200 lost
    rows += [("s", 300, 2, 0), ("s", 301, 2, 0), ("s2", 300, 2, 0), ("s", 500, 2, 2)]
    acc = account_readings(batches, SENSORS, rows)
    assert acc.seq_gaps == 1
    assert acc.lost == 2  # the missing row and the gap
    assert acc.duplicated == 1  # (s, epoch 2, seq 0) stored at two times
    assert acc.unexpected == 1  # s at 301 was never published
    assert any("s2 at 200" in x for x in acc.lost_sample)


def _ev(kind: str, level: str, ts: int, sensor: str = "t1") -> AlarmEvent:
    return AlarmEvent(sensor, "coal-methane.face-t1", "above", kind, level, ts, ts)


def test_alarms_match_within_tolerance_and_differences_are_named():
    want = [_ev("raised", "alarm", 1000), _ev("escalated", "power_cut", 6000)]
    assert account_alarms(want, [_ev("raised", "alarm", 1200), want[1]], 350).ok
    late = account_alarms(want, [_ev("raised", "alarm", 2000), want[1]], 350)
    assert not late.ok and "expected 1000" in late.differences[0]
    extra = account_alarms(want, [*want, _ev("raised", "alarm", 9000, "t0")], 350)
    assert not extra.ok and "extra raised" in extra.differences[0]
    wrong = account_alarms(want, [want[0], _ev("escalated", "alarm", 6000)], 350)
    assert not wrong.ok and wrong.matched == 1


def test_catch_up_is_the_first_sample_with_every_reading_and_position():
    samples = [(1100, 5, 3), (1600, 10, 2), (2100, 10, 3)]
    assert catch_up_ms(samples, 10, 3, 1000) == 1100
    assert catch_up_ms(samples[:2], 10, 3, 1000) is None


def _positions() -> dict[tuple[str, int], Position]:
    return {
        ("tk", 1000): Position(0, 37.7, 112.5, 50.0),
        ("tk", 2000): Position(1, 37.7001, 112.5002, 50.0, deliveries=2),
        ("bus", 1000): Position(0, 37.8, 112.6, 80.0),
    }


def test_every_recorded_position_stored_once_is_clean():
    recorded = [("tk", 1000, 0), ("tk", 2000, 1), ("bus", 1000, 0)]
    rows = [("tk", 1000, 37.7, 112.5, 50.0), ("tk", 2000, 37.7001, 112.5002, 50.0)]
    rows.append(("bus", 1000, 37.8, 112.6, 80.0))
    speeds = [("tk", 1000, 0), ("tk", 2000, 1), ("bus", 1000, 0)]
    acc = account_positions(recorded, _positions(), rows, speeds)
    assert (acc.recorded, acc.not_sent, acc.sent, acc.stored, acc.speed_readings) == (3, 0, 3, 3, 3)
    assert (acc.lost, acc.duplicated, acc.unexpected, acc.altered) == (0, 0, 0, 0)
    assert acc.redeliveries == 1


def test_unsent_missing_moved_and_altered_positions_are_counted():
    recorded = [("tk", 1000, 0), ("tk", 2000, 1), ("bus", 1000, 0), ("tk", 3000, 2)]  # 3000 unsent
    rows = [("tk", 1000, 37.7, 112.5, 50.0), ("tk", 2001, 37.7001, 112.5002, 50.0)]  # moved
    rows.append(("bus", 1000, 37.8, 112.6, 81.0))  # altered speed
    speeds = [("tk", 1000, 0), ("tk", 2000, 1), ("tk", 2001, 1)]  # bus speed reading missing
    acc = account_positions(recorded, _positions(), rows, speeds)
    assert acc.not_sent == 1
    assert acc.lost == 2  # tk at 2000 (no position row), bus at 1000 (no speed reading)
    assert acc.unexpected == 2  # the position row and the speed reading at 2001
    assert acc.duplicated == 1  # (tk, seq 1) stored as two speed readings
    assert acc.altered == 1
    assert any("tk at 3000" in x and "never on the broker" in x for x in acc.lost_sample)


def test_a_full_recorder_buffer_drops_its_oldest_and_counts_them():
    up = Uplink("a", "127.0.0.1", 1, limit=5)
    for i in range(8):
        up.put("t", str(i).encode())
    assert up.dropped == 3
    assert [p for _, p in up.buffer] == [b"3", b"4", b"5", b"6", b"7"]


async def _subscribe(port: int, got: list[bytes], ready: asyncio.Event) -> None:
    """A persistent QoS 1 subscriber that reconnects across the broker's restart."""
    while True:
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="t-sub", clean_session=False
            ) as client:
                await client.subscribe("chaos/test/#", qos=1)
                ready.set()
                async for msg in client.messages:
                    got.append(bytes(msg.payload))
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)


async def _through_restart(broker: Proc, port: int) -> tuple[Uplink, list[bytes]]:
    got: list[bytes] = []
    ready = asyncio.Event()
    sub = asyncio.create_task(_subscribe(port, got, ready))
    await asyncio.wait_for(ready.wait(), 10)
    up, done = Uplink("a", "127.0.0.1", port, limit=1000), asyncio.Event()
    sender = asyncio.create_task(up.run(done))
    for i in range(40):
        if i == 10:
            await asyncio.to_thread(broker.stop)  # SIGTERM: mosquitto saves its sessions
        if i == 30:
            assert len(up) >= 15  # kept while the broker was away
            await asyncio.to_thread(broker.start)
        up.put("chaos/test/p", b"%d" % i)
        await asyncio.sleep(0.1)
    done.set()
    up.wake.set()
    await asyncio.wait_for(sender, 20)
    for _ in range(100):
        if len(set(got)) >= 40:
            break
        await asyncio.sleep(0.1)
    sub.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sub
    return up, got


def test_recorder_keeps_its_positions_across_a_broker_restart(tmp_path):
    port = free_port()
    broker = mosquitto(tmp_path / "mq", port)
    broker.start()
    try:
        up, got = asyncio.run(_through_restart(broker, port))
    finally:
        broker.stop()
    assert {int(p) for p in got} == set(range(40))
    assert (up.acked, up.dropped, len(up)) == (40, 0, 0)
    assert up.connects >= 2


@pytest.mark.slow
def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--short", "--report", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(report_path.read_text())
    readings, alarms = report["readings"], report["alarms"]
    assert readings["sent"] > 1000
    assert readings["lost"] == 0
    assert readings["duplicated"] == 0
    assert readings["unexpected"] == 0
    positions = report["positions"]
    assert positions["sent"] > 300
    assert positions["sent"] == positions["recorded"] == positions["stored"]
    assert positions["not_sent"] == positions["lost"] == 0
    assert positions["duplicated"] == positions["unexpected"] == positions["altered"] == 0
    assert alarms["ok"] and alarms["expected"] >= 4
    assert alarms["fleet_expected"] == alarms["fleet_matched"] >= 4
    assert all(f["catch_up_s"] is not None for f in report["faults"])
