"""The gateway's durable spool and its uplink: order, limits, drop reports, broker outages."""

from __future__ import annotations

import asyncio

import aiomqtt
import numpy as np
import orjson

from gateway.spool import Spool
from telemetry.codec import TelemetryBatch, decode, encode

from e2e_helpers import coal_uplink, eventually, mine_registry


def make_spool(path, now, **kw):
    return Spool(path, clock_ms=lambda: now[0], **kw)


def push(spool, device, seq, size=100, readings=3):
    spool.push(f"t/{device}", bytes([seq % 256]) * size, device, 7, seq, readings)


def test_fifo_ack_and_survives_reopen(tmp_path):
    now = [1_000]
    spool = make_spool(tmp_path / "s.db", now)
    for seq in range(5):
        push(spool, "d1", seq)
    items = spool.peek(3)
    assert [i.seq for i in items] == [0, 1, 2]
    spool.ack(items[0])
    spool.ack(items[0])  # twice is harmless
    assert len(spool) == 4 and spool.size_bytes == 400
    spool.close()
    again = make_spool(tmp_path / "s.db", now)  # a restart (or kill -9: every push commits)
    assert [i.seq for i in again.peek(10)] == [1, 2, 3, 4]
    assert again.size_bytes == 400


def test_a_commit_is_fsynced_before_push_returns(tmp_path):
    """synchronous=FULL in WAL mode: the WAL is fsynced at each commit. With NORMAL (before) a
    power cut could lose every commit since the last checkpoint, after the JT/T 808 gateway had
    answered 0x8001 and the terminal deleted its blind-area data (helper-150, finding 6). A pure
    check of the setting: a power cut is not simulated."""
    spool = make_spool(tmp_path / "s.db", [1_000])
    db = spool._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    for seq in range(5):
        push(spool, "d1", seq)
    spool.ack_many(spool.peek(3))  # a window's acknowledgements, one transaction
    spool.ack_many(spool.peek(1)[:0])  # none: harmless
    assert [i.seq for i in spool.peek(10)] == [3, 4]
    assert len(spool) == 2 and spool.size_bytes == 200
    spool.close()


def test_byte_limit_drops_oldest_and_reports_them(tmp_path):
    now = [1_000]
    spool = make_spool(tmp_path / "s.db", now, max_bytes=350)
    for seq in range(6):
        now[0] += 10
        push(spool, "d1" if seq % 2 else "d2", seq)
    assert [i.seq for i in spool.peek(10)] == [3, 4, 5]
    assert spool.size_bytes <= 350
    reports = {r.device: r for r in spool.drop_reports()}
    assert (reports["d2"].batches, reports["d2"].readings) == (2, 6)  # seq 0 and 2
    assert reports["d1"].batches == 1 and reports["d1"].reason == "spool full"
    assert reports["d2"].first_created == 1_010 and reports["d2"].last_created == 1_030
    for r in spool.drop_reports():
        spool.clear_drop_report(r)
    assert spool.drop_reports() == []


def test_dropping_is_logged_once_per_device_until_its_report(tmp_path, caplog):
    now = [1_000]
    spool = make_spool(tmp_path / "s.db", now, max_bytes=250)
    with caplog.at_level("WARNING", logger="gateway.spool"):
        for seq in range(6):
            spool.push("hh/t/face-1/d1/telemetry", b"x" * 100, "d1", 7, seq, 3)
        assert [r.message for r in caplog.records].count(
            "spool: dropping the oldest batches of d1 (spool full); counted, and reported "
            "once the link is back"
        ) == 1
        spool.drop_reports()  # the report is made: the next drop is told again
        spool.push("hh/t/face-1/d1/telemetry", b"x" * 100, "d1", 7, 6, 3)
        assert len(caplog.records) == 2


def test_a_report_is_frozen_until_cleared_and_drops_meanwhile_go_into_the_next(tmp_path):
    """A gateway that dies after publishing a report and before clearing it sends the very same
    report again (the hub records it once), and what it dropped meanwhile as a report of its
    own, with its own gap."""
    now = [1_000]
    spool = make_spool(tmp_path / "s.db", now, max_bytes=250)
    for seq in range(4):
        now[0] += 10
        spool.push("hh/t/face-1/d1/telemetry", b"x" * 100, "d1", 7, seq, 3)
    (first,) = spool.drop_reports()
    assert (first.site, first.device, first.batches, first.first_created) == (
        "face-1",
        "d1",
        2,
        1_010,
    )
    assert first.to_json()["site"] == "face-1"
    for seq in range(4, 6):  # more drops before the first report is cleared
        now[0] += 10
        spool.push("hh/t/face-1/d1/telemetry", b"x" * 100, "d1", 7, seq, 3)
    spool.close()
    spool = make_spool(tmp_path / "s.db", now, max_bytes=250)  # the gateway restarted
    again, second = spool.drop_reports()
    assert again == first
    assert (second.batches, second.first_created, second.last_created) == (2, 1_030, 1_040)
    assert second.id > first.id
    spool.clear_drop_report(first)
    assert spool.drop_reports() == [second]


def test_an_older_gateways_drops_become_reports_at_the_start(tmp_path):
    import sqlite3

    now = [0]
    make_spool(tmp_path / "s.db", now).close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("INSERT INTO dropped VALUES ('d9', 4, 12, 100, 400, 'spool full')")
    (report,) = make_spool(tmp_path / "s.db", now).drop_reports()
    assert (report.site, report.device, report.batches, report.readings) == ("", "d9", 4, 12)
    assert "site" not in report.to_json()


def test_age_limit(tmp_path):
    now = [0]
    spool = make_spool(tmp_path / "s.db", now, max_age_s=10)
    push(spool, "d1", 0)
    now[0] = 5_000
    push(spool, "d1", 1)
    now[0] = 12_000
    push(spool, "d1", 2)
    assert [i.seq for i in spool.peek(10)] == [1, 2]
    (report,) = spool.drop_reports()
    assert report.batches == 1 and "age" in report.reason


def batch(seq: int) -> TelemetryBatch:
    return TelemetryBatch(
        "gw1",
        "kj-sub-3",
        42,
        seq,
        ("ch4_t1",),
        np.zeros(1, np.uint16),
        np.array([1_000 + seq], np.int64),
        np.array([0.5]),
        np.zeros(1, np.uint8),
    )


async def collect(port: int, into: list[tuple[str, bytes]], stop: asyncio.Event) -> None:
    """A persistent-session subscriber that reconnects while the broker is away."""
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="test-sub", clean_session=False
            ) as client:
                await client.subscribe("hazardhub/v1/#", qos=1)
                async for msg in client.messages:
                    into.append((str(msg.topic), bytes(msg.payload)))  # type: ignore[arg-type]
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


async def test_outage_spools_then_drains_in_order_and_reports_drops(mosquitto, tmp_path):
    reg = mine_registry(1502, 1.0)
    device = next(iter(reg.devices.values()))
    now = [1_000]
    size = len(encode(batch(0)))
    spool = Spool(tmp_path / "s.db", clock_ms=lambda: now[0], max_bytes=60 * size)
    pub = coal_uplink(mosquitto.port, spool)
    got: list[tuple[str, bytes]] = []
    stop_sub, stop_pub = asyncio.Event(), asyncio.Event()
    sub = asyncio.create_task(collect(mosquitto.port, got, stop_sub))
    runner = asyncio.create_task(pub.run(stop_pub))
    try:
        await eventually(lambda: _true(pub.connected.is_set()), 5, "the uplink to connect")
        for seq in range(5):
            await pub.submit_batch(device, batch(seq))
        await eventually(lambda: _true(len(spool) == 0), 5, "the first batches to be sent")
        mosquitto.stop()
        for seq in range(5, 100):  # 95 more while the broker is away: the spool keeps ~60
            now[0] += 1
            await pub.submit_batch(device, batch(seq))
        assert len(spool) == 60
        kept = [i.seq for i in spool.peek(1000)]
        mosquitto.start()
        await eventually(lambda: _true(len(spool) == 0), 20, "the spool to drain")
        await eventually(
            lambda: _true(sum(1 for t, _ in got if t.endswith("/telemetry")) >= 5 + len(kept)),
            10,
            "the subscriber to receive every batch",
        )
    finally:
        stop_pub.set()
        await runner
        stop_sub.set()
        sub.cancel()
    seqs = [decode(p).seq for t, p in got if t.endswith("/telemetry")]
    unique = list(dict.fromkeys(seqs))
    assert unique == [0, 1, 2, 3, 4, *kept], "in order, nothing kept was lost"
    reports = [orjson.loads(p) for t, p in got if t.endswith("/gw1/dropped")]
    assert sum(r["batches"] for r in reports) == 95 - len(kept)
    assert spool.drop_reports() == []


async def _true(value: bool) -> bool:
    return value


def test_the_spool_and_its_write_ahead_log_are_its_users_alone(tmp_path):
    """helper-163: a demo's gateway spool (an enterprise's readings) was 0644, readable by every
    local user; one made so before is narrowed at the gateway's next start."""
    now = [1_000]
    path = tmp_path / "spool" / "s.db"
    spool = make_spool(path, now)
    push(spool, "d1", 0)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    assert modes["s.db"] == 0o600 and modes["s.db-wal"] == 0o600, modes
    spool.close()
    path.chmod(0o644)
    make_spool(path, now).close()
    assert path.stat().st_mode & 0o777 == 0o600
