"""A JT/T 809 platform's report of a vehicle (driver, e-waybill, registration) goes to the hub
through the gateway's spool. It went in as one reading under the vehicle's device key: dropped
by the spool's limits, its drop report counted it as a position lost, and the hub raised (or
inflated) the vehicle's data_lost alarm for data that was never a position (helper-247). It is
a message now: counted `reports_dropped`, never in a drop report."""

from __future__ import annotations

from pathlib import Path

from gateway.jt808.directory import VehicleRef
from gateway.jt809.reports import Report
from gateway.jt809.uplink import PlatformUplink
from gateway.spool import MESSAGE, Spool
from telemetry.topics import TopicLayout

TANKER = VehicleRef("acme-chem", "tanker-01")


def _uplink(tmp_path: Path, max_bytes: int) -> tuple[PlatformUplink, Spool]:
    now = [1_800_000_000_000]

    def clock() -> int:
        now[0] += 1
        return now[0]

    spool = Spool(tmp_path / "spool.db", max_bytes=max_bytes, clock_ms=clock)
    up = PlatformUplink(
        "127.0.0.1", 1, layout=TopicLayout(), spool=spool, gateway="gw809", clock_ms=clock
    )
    return up, spool


def _driver(n: int) -> Report:
    fields: dict[str, object] = {"name": f"driver {n}", "id_card": "320102198001011234"}
    return Report("P1", TANKER, "driver", fields, "苏A12345", 2)


def _position(ts: int) -> dict[str, object]:
    return {"ts": ts, "lat": 31.6, "lon": 120.3, "speed": 60.0, "heading": 90}


def test_reports_dropped_alone_make_no_drop_report(tmp_path: Path) -> None:
    up, spool = _uplink(tmp_path, max_bytes=1_000)
    try:
        for n in range(20):  # far more than 1,000 bytes: the oldest go
            up.submit_report(_driver(n), 1_800_000_000_000 + n)
        kept = spool.peek(100)
        assert 0 < len(kept) < 20 and all(b.readings == MESSAGE for b in kept)
        assert all(b.topic.endswith("/vehicles/tanker-01/info") for b in kept)
        assert up.counters["reports_dropped"] == 20 - len(kept)
        assert spool.drop_reports() == []  # no positions lost: the hub is told nothing
    finally:
        spool.close()


def test_a_drop_report_counts_the_positions_alone(tmp_path: Path) -> None:
    up, spool = _uplink(tmp_path, max_bytes=2_000)
    try:
        t = 1_800_000_000_000
        for n in range(30):  # reports and positions of the vehicle, in turn
            up.submit_report(_driver(n), t + n)
            up.submit_many([(TANKER, (_position(t + n),))], t + n)
        kept = spool.peek(100)
        positions_kept = sum(1 for b in kept if b.readings != MESSAGE)
        reports_kept = len(kept) - positions_kept
        (report,) = spool.drop_reports()
        assert (report.site, report.device) == ("vehicles", "acme-chem/tanker-01")
        # each position batch dropped is one reading; the reports dropped are not among them
        assert report.batches == report.readings == 30 - positions_kept
        assert up.counters["reports_dropped"] == 30 - reports_kept > 0
        assert spool.take_messages_dropped() == {}  # counted once
    finally:
        spool.close()
